//! The same seed gives the same model, and a resumed run the same model as an uninterrupted
//! one (batches, dequantisation noise, optimiser state and early stopping included).

mod common;

use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data;
use flowgate_trainer::export::{ExportInfo, to_file_bytes};
use flowgate_trainer::training::{self, Compute};

fn config(steps: usize) -> TrainConfig {
    let train = format!("steps = {steps}\nseed = 3\ncheckpoint_every = 3\nvalidate_every = 2");
    let text = common::small_realnvp_toml("determinism", "", &train);
    TrainConfig::from_toml(&text, "determinism").expect("valid config")
}

/// Trains `config` into a fresh folder (optionally in two invocations, split at `pause`)
/// and returns the exported model's bytes.
fn train(name: &str, steps: usize, pause: Option<usize>) -> Vec<u8> {
    let out = std::env::temp_dir().join(format!(
        "flowgate-determinism-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let data_dir = data::default_data_dir();
    if let Some(pause) = pause {
        training::train(&config(pause), &data_dir, &out, false, false, Compute::Cpu)
            .expect("first half trains");
    }
    let (_, model) = training::train(
        &config(steps),
        &data_dir,
        &out,
        pause.is_some(),
        false,
        Compute::Cpu,
    )
    .expect("trains");
    let bytes = to_file_bytes(&model.for_inference(), &ExportInfo::default()).expect("exports");
    let _ = std::fs::remove_dir_all(&out);
    bytes
}

#[test]
fn same_seed_same_model_and_resume_is_seamless() {
    let first = train("a", 6, None);
    let second = train("b", 6, None);
    assert!(
        first == second,
        "two runs with one seed gave different models"
    );
    let resumed = train("c", 6, Some(3));
    assert!(
        first == resumed,
        "a run resumed at step 3 differs from an uninterrupted one"
    );
    // The test can fail: another step count gives another model.
    assert!(train("d", 5, None) != first);
}
