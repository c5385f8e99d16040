//! Runs that cannot do what they are asked stop with a clear error before training: a
//! checkpoint interval of 0, early stopping without held-out images, a checkpoint of a longer
//! run, a second training into a folder another one is writing.

use std::path::PathBuf;

use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data;
use flowgate_trainer::run_folder::{RunFolder, files};
use flowgate_trainer::training::{self, Compute};

fn config_text(dataset: &str, train: &str) -> String {
    format!(
        r#"
name = "refused"
[model]
channels = 1
height = 8
width = 8
[model.architecture]
kind = "cycle_mask"
couplings = 2
[model.st_net]
channels = 2
blocks = 1
[data]
dataset = {dataset}
validation = 16
[train]
lr = 1e-3
batch = 4
{train}
"#
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-refused-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    dir
}

#[test]
fn a_checkpoint_interval_of_zero_is_a_config_error() {
    let text = config_text("\"fashion-mnist\"", "steps = 4\ncheckpoint_every = 0");
    let error = TrainConfig::from_toml(&text, "zero.toml").expect_err("refused");
    assert!(
        error
            .to_string()
            .contains("train.checkpoint_every must be positive"),
        "{error}"
    );
}

/// A folder of one frame holds none out (at most half of the images are), so early stopping
/// would have nothing to stop on: refused, where it used to keep the first weights silently.
#[test]
fn early_stopping_without_held_out_images_is_refused() {
    let dir = scratch("one-frame");
    let frames = dir.join("frames");
    std::fs::create_dir_all(&frames).expect("a frames folder");
    image::GrayImage::from_fn(8, 8, |x, y| image::Luma([(x * 30 + y) as u8]))
        .save(frames.join("frame-000000.png"))
        .expect("writes a frame");
    let dataset = format!("{{ folder = {:?} }}", frames.display().to_string());
    let text = config_text(&dataset, "steps = 2\nvalidate_every = 1");
    let config = TrainConfig::from_toml(&text, "one-frame").expect("a valid config");
    let error = training::train(
        &config,
        &data::default_data_dir(),
        &dir.join("run"),
        false,
        false,
        Compute::Cpu,
    )
    .expect_err("refused");
    assert!(
        error.to_string().contains("needs held-out images"),
        "{error}"
    );
    // Without early stopping the same data trains.
    let text = config_text(&dataset, "steps = 2");
    let config = TrainConfig::from_toml(&text, "one-frame").expect("a valid config");
    training::train(
        &config,
        &data::default_data_dir(),
        &dir.join("run"),
        false,
        false,
        Compute::Cpu,
    )
    .expect("trains");
    std::fs::remove_dir_all(dir).expect("cleans up");
}

#[test]
fn resuming_a_longer_runs_checkpoint_is_refused() {
    let dir = scratch("longer");
    let text = config_text("\"fashion-mnist\"", "steps = 4\ncheckpoint_every = 2")
        .replace("height = 8\nwidth = 8", "height = 28\nwidth = 28")
        .replace("validation = 16", "validation = 16\nlimit = 64");
    let mut config = TrainConfig::from_toml(&text, "longer").expect("a valid config");
    let run = dir.join("run");
    let train = |config: &TrainConfig, resume| {
        training::train(
            config,
            &data::default_data_dir(),
            &run,
            resume,
            false,
            Compute::Cpu,
        )
    };
    train(&config, false).expect("trains 4 steps");
    config.train.steps = 2;
    let error = train(&config, true).expect_err("refused").to_string();
    assert!(error.contains("past the run's 2 steps"), "{error}");
    // Without --resume the folder starts afresh.
    train(&config, false).expect("trains 2 steps afresh");
    std::fs::remove_dir_all(dir).expect("cleans up");
}

/// Two trainings into one folder would interleave checkpoints and overwrite each other's
/// weights: while one holds the folder, the other stops before touching it; once the first
/// is done (its lock dropped) the folder trains again.
#[test]
fn a_second_training_into_a_folder_in_use_is_refused() {
    let dir = scratch("in-use");
    let run = dir.join("run");
    let text = config_text("\"fashion-mnist\"", "steps = 2")
        .replace("height = 8\nwidth = 8", "height = 28\nwidth = 28")
        .replace("validation = 16", "validation = 16\nlimit = 64");
    let config = TrainConfig::from_toml(&text, "in-use").expect("a valid config");
    let train = || {
        training::train(
            &config,
            &data::default_data_dir(),
            &run,
            false,
            false,
            Compute::Cpu,
        )
    };
    let held = RunFolder::create(&run).expect("the first training's hold");
    let sentinel = run.join(files::MODEL);
    std::fs::write(&sentinel, b"the first training's weights").expect("writes");
    let error = train().expect_err("refused").to_string();
    assert!(
        error.contains("another flowgate train or distil"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&sentinel).expect("still there"),
        b"the first training's weights"
    );
    drop(held);
    train().expect("trains once the folder is free");
    std::fs::remove_dir_all(dir).expect("cleans up");
}
