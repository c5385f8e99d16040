//! Every shipped config loads and builds its flow: the CPU-size ones under `configs/` and the
//! paper-size GPU variants under `configs/gpu/`, each of which has a CPU-size sibling.

use std::path::{Path, PathBuf};

use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::flows::{Device, FlowModel};

fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
}

fn parameters(path: &Path) -> usize {
    let config = TrainConfig::load(path).unwrap_or_else(|e| panic!("{e}"));
    FlowModel::new(&config.model, 0, &Device::flex())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .parameter_count()
}

#[test]
fn every_config_builds_and_gpu_variants_are_paper_size() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let cpu = tomls(&configs);
    assert!(cpu.len() >= 12, "{cpu:?}");
    for path in &cpu {
        let count = parameters(path);
        assert!(count < 1_000_000, "{}: {count} parameters", path.display());
    }
    let gpu = tomls(&configs.join("gpu"));
    assert!(gpu.len() >= 7, "{gpu:?}");
    for path in &gpu {
        let sibling = configs.join(path.file_name().expect("a file"));
        assert!(
            sibling.is_file(),
            "{} has no CPU-size sibling",
            path.display()
        );
        let (big, small) = (parameters(path), parameters(&sibling));
        assert!(
            big > 20 * small,
            "{}: {big} vs {small} parameters",
            path.display()
        );
    }
    // The paper's RealNVP for 28x28 has about 14.7M parameters (weight norm adds none here).
    let realnvp = parameters(&configs.join("gpu/fmnist-realnvp.toml"));
    eprintln!("paper-size RealNVP: {realnvp} parameters");
    assert!(
        (13_000_000..=16_500_000).contains(&realnvp),
        "paper-size RealNVP: {realnvp} parameters"
    );
}
