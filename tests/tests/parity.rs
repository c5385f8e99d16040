//! The runtime computes what the trainer computes: every architecture the trainer builds,
//! trained a few steps (so batch-norm statistics and weights are far from their start),
//! exported, and scored by both on real Fashion-MNIST and MNIST test images.
//!
//! Flows on embeddings are checked the same way, their bits/dim per embedding dimension: the
//! extractor's convolutions, pools and linear map join the parity.
//!
//! Tolerance: |delta bits/dim| <= 1e-4 (f32 arithmetic on both sides, in different orders;
//! observed differences are about 1e-6).

use flowgate_edge::{Frame, Gate, PixelFormat};
use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data::{self, DatasetName, Split};
use flowgate_trainer::export::{ExportInfo, to_file_bytes};
use flowgate_trainer::training::{self, ImageSet};

const TOLERANCE_BPD: f64 = 1e-4;

fn config(name: &str, architecture: &str, st_net: &str) -> TrainConfig {
    let text = format!(
        r#"
name = "{name}"
[model]
channels = 1
height = 28
width = 28
[model.architecture]
{architecture}
[model.st_net]
{st_net}
[data]
dataset = "fashion-mnist"
validation = 100
limit = 256
[train]
lr = 5e-3
grad_clip = 100.0
batch = 16
steps = 4
seed = 7
checkpoint_every = 1000
"#
    );
    TrainConfig::from_toml(&text, name).expect("valid test config")
}

fn test_images(dataset: DatasetName, count: usize) -> ImageSet {
    let all = training::load_idx_split(&data::default_data_dir(), dataset, Split::Test)
        .expect("run scripts/fetch-data.sh first");
    all.slice(0..count)
}

fn burn_device() -> flowgate_trainer::flows::Device {
    flowgate_trainer::flows::Device::flex()
}

fn check_parity(config: TrainConfig) {
    let out = std::env::temp_dir().join(format!(
        "flowgate-parity-{}-{}",
        config.name,
        std::process::id()
    ));
    let (_, model) = training::train(
        &config,
        &data::default_data_dir(),
        &out,
        false,
        false,
        training::Compute::Cpu,
    )
    .expect("training runs");
    let model = model.for_inference();
    for coupling in &model.tabular {
        let last = coupling.net.layers.last().expect("an output layer");
        let size = last.weight.val().abs().sum().into_scalar::<f32>();
        assert!(
            size > 0.0,
            "{}: a coupling stayed at the identity",
            config.name
        );
    }
    let bytes = to_file_bytes(
        &model,
        &ExportInfo {
            name: &config.name,
            ..ExportInfo::default()
        },
    )
    .expect("exports");
    let gate = Gate::new(&bytes).expect("the runtime loads the export");
    let mut scratch = vec![0f32; gate.scratch_len()];
    let dims = config.model.density_dims() as f64 * std::f64::consts::LN_2;
    // The untrained flow is the identity (zero-initialised last layers): the trained one must
    // differ from it, or agreeing with the runtime would prove little.
    let untrained = training::seeded_model(&config, &burn_device()).expect("builds");
    let mut worst = 0f64;
    for dataset in [DatasetName::FashionMnist, DatasetName::Mnist] {
        let images = test_images(dataset, 24);
        let trainer = training::log_likelihoods(&model, &images, 8).expect("scores");
        let identity = training::log_likelihoods(&untrained, &images, 8).expect("scores");
        let moved = trainer
            .iter()
            .zip(&identity)
            .map(|(a, b)| (a - b).abs() / dims)
            .sum::<f64>()
            / trainer.len() as f64;
        assert!(
            moved > 1e-3,
            "{}: training left the flow at the identity",
            config.name
        );
        for (index, trainer_ll) in trainer.iter().enumerate() {
            let frame = Frame::packed(images.image(index), 28, 28, PixelFormat::Gray8).unwrap();
            let runtime = gate.score(&frame, &mut scratch).expect("runtime scores");
            let delta = (runtime.log_likelihood - trainer_ll).abs() / dims;
            worst = worst.max(delta);
            assert!(
                delta <= TOLERANCE_BPD,
                "{}: {dataset} image {index}: trainer {:.6} bpd, runtime {:.6} bpd",
                config.name,
                -trainer_ll / dims,
                runtime.bits_per_dim
            );
        }
    }
    eprintln!("{}: worst |delta bpd| = {worst:.2e}", config.name);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn realnvp_checkerboard_and_channel_wise() {
    check_parity(config(
        "realnvp",
        "kind = \"real_nvp\"\nscales = 2",
        "channels = 4\nblocks = 1",
    ));
}

#[test]
fn cycle_mask() {
    check_parity(config(
        "cycle",
        "kind = \"cycle_mask\"\ncouplings = 4",
        "channels = 4\nblocks = 2",
    ));
}

#[test]
fn cycle_mask_with_bottleneck() {
    check_parity(config(
        "cycle-bottleneck",
        "kind = \"cycle_mask\"\ncouplings = 4",
        "channels = 2\nblocks = 2\nbottleneck = 4",
    ));
}

#[test]
fn cycle_mask_with_autoencoder() {
    check_parity(config(
        "cycle-autoencoder",
        "kind = \"cycle_mask\"\ncouplings = 4",
        "channels = 4\nblocks = 0\nbottleneck = 4\nkind = \"autoencoder\"",
    ));
}

#[test]
fn horizontal() {
    check_parity(config(
        "horizontal",
        "kind = \"horizontal\"\ncouplings = 2",
        "channels = 4\nblocks = 1",
    ));
}

#[test]
fn glow() {
    check_parity(config(
        "glow",
        "kind = \"glow\"\nscales = 2\nsteps = 2",
        "channels = 4\nblocks = 1",
    ));
}

#[test]
fn glow_starting_from_rotations() {
    check_parity(config(
        "glow-rotation",
        "kind = \"glow\"\nscales = 2\nsteps = 2\nconv_init = \"rotation\"",
        "channels = 4\nblocks = 1",
    ));
}

#[test]
fn embedding_with_labels() {
    check_parity(config(
        "embedding-labels",
        "kind = \"embedding\"\ncouplings = 4\n[model.architecture.extractor]\n\
         channels = [4, 8, 8]\nembedding = 8\nobjective = \"labels\"\nsteps = 10",
        "kind = \"mlp\"\nchannels = 16\nblocks = 2",
    ));
}

#[test]
fn embedding_with_flips() {
    check_parity(config(
        "embedding-flips",
        "kind = \"embedding\"\ncouplings = 2\n[model.architecture.extractor]\n\
         channels = [4, 8]\nembedding = 6\nobjective = \"flips\"\nsteps = 10",
        "kind = \"mlp\"\nchannels = 16\nblocks = 1",
    ));
}

#[test]
fn embedding_whitened() {
    check_parity(config(
        "embedding-whitened",
        "kind = \"embedding\"\ncouplings = 2\n[model.architecture.extractor]\n\
         channels = [4, 8]\nembedding = 6\nobjective = \"flips\"\nsteps = 10\nwhiten = true",
        "kind = \"mlp\"\nchannels = 16\nblocks = 1",
    ));
}
