//! The same seed gives the same model whatever else runs in the process: two runs of one
//! config trained at the same time in two threads, while a third thread keeps reseeding and
//! drawing from burn's process-wide generator, write byte-identical model files. (The trainer
//! used to draw its initial weights and noise from that generator, so threads took each
//! other's draws: trainer/tests/distil.rs had to serialise its tests for that reason.)

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::*;
use burn::tensor::Distribution;

use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data;
use flowgate_trainer::export::{ExportInfo, to_file_bytes};
use flowgate_trainer::training::{self, Compute, files};

fn config(seed: u64) -> TrainConfig {
    let train = format!("steps = 8\nseed = {seed}\ncheckpoint_every = 4\nvalidate_every = 3");
    let text = common::small_realnvp_toml("concurrent", "mutation_rate = 0.1", &train);
    TrainConfig::from_toml(&text, "concurrent").expect("valid config")
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("flowgate-concurrent-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Trains `config` into `out` and returns its model file.
fn trained_model_file(config: &TrainConfig, out: &Path) -> Vec<u8> {
    training::train(
        config,
        &data::default_data_dir(),
        out,
        false,
        false,
        Compute::Cpu,
    )
    .expect("trains");
    std::fs::read(out.join(files::EXPORTED_MODEL)).expect("the run wrote model.fgm")
}

/// Sets its flag when dropped: the disturbing thread stops even when an assertion fails (the
/// scope would otherwise wait for it forever).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reseeds burn's process-wide generator and draws from it until `done`: anything in the
/// process that still drew from it would get draws that depend on this thread's timing.
fn disturb_burns_generator(done: &AtomicBool) {
    let device = Device::flex();
    let mut seed = 0u64;
    while !done.load(Ordering::Relaxed) {
        seed += 1;
        device.seed(seed);
        let _ = Tensor::<1>::random([256], Distribution::Uniform(0.0, 1.0), &device).into_data();
    }
}

#[test]
fn one_seed_trained_in_two_threads_at_once_gives_byte_identical_models() {
    let (left, right) = (scratch("left"), scratch("right"));
    let done = AtomicBool::new(false);
    let (a, b) = std::thread::scope(|scope| {
        let _stop = StopOnDrop(&done);
        scope.spawn(|| disturb_burns_generator(&done));
        let a = scope.spawn(|| trained_model_file(&config(3), &left));
        let b = scope.spawn(|| trained_model_file(&config(3), &right));
        (a.join().expect("a thread"), b.join().expect("a thread"))
    });
    assert!(a == b, "the same seed trained side by side gave two models");
    // The comparison can fail: another seed gives another model.
    let other = scratch("other");
    assert!(
        trained_model_file(&config(4), &other) != a,
        "another seed gave the same model"
    );
    for dir in [left, right, other] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Initial weights alone, many times over while burn's generator is disturbed: model
/// construction is a burst of draws far shorter than a training run, so a run beside others
/// could miss it by chance; a hundred constructions do not.
#[test]
fn initial_weights_do_not_depend_on_burns_generator() {
    let initial = || {
        let model = training::seeded_model(&config(3), &Device::flex()).expect("builds");
        to_file_bytes(&model, &ExportInfo::default()).expect("exports")
    };
    let alone = initial();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let _stop = StopOnDrop(&done);
        scope.spawn(|| disturb_burns_generator(&done));
        for attempt in 0..100 {
            assert!(initial() == alone, "attempt {attempt} drew other weights");
        }
    });
    let mut other = config(3);
    other.train.seed = 4;
    let model = training::seeded_model(&other, &Device::flex()).expect("builds");
    assert!(
        to_file_bytes(&model, &ExportInfo::default()).expect("exports") != alone,
        "another seed drew the same weights"
    );
}
