//! `flowgate-edge` as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn temp_model(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flowgate-edge-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn edge(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn inspect_describes_layers_costs_and_threshold() {
    let bytes = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    let summary = flowgate_shared::decode(&bytes).unwrap().summary;
    let path = temp_model("tiny.fgm", &bytes);
    let (ok, stdout, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("model        tiny"), "{stdout}");
    assert!(stdout.contains("input        1x4x4"), "{stdout}");
    assert!(stdout.contains("quadrant 0 -> 1"), "{stdout}");
    assert!(stdout.contains(&format!("MACs/frame   {}", summary.macs_per_frame)));
    assert!(stdout.contains(&format!("parameters   {}", summary.parameters)));
    assert!(stdout.contains(&format!(
        "scratch      {} bytes",
        summary.scratch.total() * 4
    )));
    assert!(stdout.contains("reject when score > 2.5"), "{stdout}");
}

#[test]
fn inspect_names_the_file_and_the_corruption() {
    let mut bytes = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let path = temp_model("corrupt.fgm", &bytes);
    let (ok, _, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("corrupt.fgm"), "{stderr}");
    assert!(stderr.contains("checksum mismatch"), "{stderr}");

    let mut future = flowgate_shared::encode(&flowgate_shared::example::tiny_model()).unwrap();
    future[8] = 9;
    let path = temp_model("future.fgm", &future);
    let (ok, _, stderr) = edge(&["inspect", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("version 9 is not supported"), "{stderr}");

    let (ok, _, stderr) = edge(&["inspect", "/nonexistent/model.fgm"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot read /nonexistent/model.fgm"),
        "{stderr}"
    );
}
