//! Writes the models the Python tests need beside the committed ones: the camera gate without
//! its threshold (scores, no decisions), and a hostile model whose scores overflow (faults).
//!
//! `cargo run --release --example fixture-models -- OUT_DIR`

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: fixture-models OUT_DIR")?;
    std::fs::create_dir_all(&out)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");

    let camera = std::fs::read(root.join("models/camera-vtest.fgm"))?;
    let mut uncalibrated = flowgate_shared::decode(&camera)?.model;
    uncalibrated.threshold = None;
    std::fs::write(
        out.join("uncalibrated.fgm"),
        flowgate_shared::encode(&uncalibrated)?,
    )?;

    // The example model with every weight that is not a log-scale (those are bounded at
    // load) pushed to 1e30, its sign kept: valid, loads, and its activations overflow to
    // infinities whose sums of mixed signs are NaN (edge-runtime/tests/fail_closed.rs).
    let mut hostile = flowgate_shared::example::tiny_model();
    if let Some(threshold) = hostile.threshold.as_mut() {
        threshold.ood_score = f32::MAX;
    }
    let mut file = flowgate_shared::encode(&hostile)?;
    for range in flowgate_shared::tamper::f32_value_ranges(&file)? {
        if range.len() <= 8 {
            continue;
        }
        for value in file[range].chunks_exact_mut(4) {
            let old = f32::from_le_bytes([value[0], value[1], value[2], value[3]]);
            value.copy_from_slice(&(old.signum() * 1e30).to_le_bytes());
        }
    }
    flowgate_shared::tamper::reseal(&mut file)?;
    std::fs::write(out.join("hostile.fgm"), file)?;
    println!(
        "wrote uncalibrated.fgm and hostile.fgm to {}",
        out.display()
    );
    Ok(())
}
