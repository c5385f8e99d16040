//! Data-parallel training (`--devices N`): each step's batch is split across N devices and
//! their gradients are summed on the first, as burn's multi-device strategy does it. burn's CPU
//! backend has one device, so the test runs two workers on it: that shows the split is right
//! (the same model as one device at the same global batch), not a speed-up.
//!
//! Tolerance: the two runs differ only in the order gradients are added (two half-batch sums
//! against one full-batch sum, f32), so after a few Adam steps the log-likelihoods of real
//! Fashion-MNIST test images agree within 1e-4 bits/dim (observed: identical, 0.0; without
//! the shards' weights the runs differ by 1.9e-2, and with each shard drawing its own
//! dequantisation noise by 2.0e-4, so the test sees either mistake). A flow with
//! batch-norm layers in its coupling networks sees each shard's batch statistics instead of
//! the batch's, so it is not expected to match; the test uses the flow on embeddings, whose
//! couplings are MLPs without batch-norm.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data::{self, DatasetName, Split};
use flowgate_trainer::device::data_parallel_devices;
use flowgate_trainer::training::{self, Compute, RunOptions};

const TOLERANCE_BPD: f64 = 1e-4;

fn config() -> TrainConfig {
    let text = r#"
name = "data-parallel"
[model]
channels = 1
height = 28
width = 28
alpha = 0.05
[model.architecture]
kind = "embedding"
couplings = 2
[model.architecture.extractor]
channels = [4, 8]
embedding = 6
objective = "labels"
steps = 3
[model.st_net]
kind = "mlp"
channels = 16
blocks = 1
[data]
dataset = "fashion-mnist"
validation = 32
limit = 256
[train]
lr = 5e-3
grad_clip = 100.0
batch = 15
steps = 4
seed = 11
checkpoint_every = 1000
"#;
    TrainConfig::from_toml(text, "data-parallel").expect("valid config")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flowgate-data-parallel-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn options(out: &Path, devices: Vec<Device>) -> RunOptions {
    RunOptions {
        devices,
        ..RunOptions::cpu(&data::default_data_dir(), out, "data-parallel test")
    }
}

#[test]
fn two_devices_train_the_model_one_device_trains_at_the_same_global_batch() {
    let config = config();
    let (one_dir, two_dir) = (scratch("one"), scratch("two"));
    let (_, one) = training::train_run(&config, &options(&one_dir, Vec::new())).expect("trains");
    let devices = data_parallel_devices(Compute::Cpu, 2).expect("two CPU workers");
    // 15 images per batch: shards of 8 and 7, so the shares must weigh them.
    let (_, two) = training::train_run(&config, &options(&two_dir, devices)).expect("trains");

    let images = training::load_idx_split(
        &data::default_data_dir(),
        DatasetName::FashionMnist,
        Split::Test,
    )
    .expect("run scripts/fetch-data.sh first")
    .slice(0..32);
    let dims = config.model.density_dims() as f64 * std::f64::consts::LN_2;
    let one_ll = training::log_likelihoods(&one.for_inference(), &images, 16).expect("scores");
    let two_ll = training::log_likelihoods(&two.for_inference(), &images, 16).expect("scores");
    let untrained = training::seeded_model(&config, &Device::flex()).expect("builds");
    let start_ll = training::log_likelihoods(&untrained, &images, 16).expect("scores");
    let mut worst = 0f64;
    let mut moved = 0f64;
    for ((a, b), s) in one_ll.iter().zip(&two_ll).zip(&start_ll) {
        worst = worst.max((a - b).abs() / dims);
        moved += (a - s).abs() / dims;
    }
    moved /= one_ll.len() as f64;
    eprintln!("two devices against one: worst |delta bpd| {worst:.2e}; training moved {moved:.3}");
    assert!(moved > 1e-3, "training left the flow where it started");
    assert!(
        worst <= TOLERANCE_BPD,
        "two devices give another model than one: worst |delta bpd| {worst:.2e}"
    );

    // A batch smaller than the devices is refused, not silently shrunk.
    let mut tiny = config.clone();
    tiny.train.batch = 1;
    let devices = data_parallel_devices(Compute::Cpu, 2).expect("two CPU workers");
    let error = training::train_run(&tiny, &options(&scratch("tiny"), devices)).unwrap_err();
    assert!(error.to_string().contains("--devices"), "{error}");

    for dir in [one_dir, two_dir, scratch("tiny")] {
        let _ = std::fs::remove_dir_all(dir);
    }
}
