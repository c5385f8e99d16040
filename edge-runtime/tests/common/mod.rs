//! Helpers the `flowgate-edge` command-line tests share (each test file says `mod common;`).

#![allow(dead_code)] // each test binary uses its own subset

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use image::{DynamicImage, GrayImage, ImageFormat};

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("flowgate-edge-cli-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The tiny model (input 1x4x4, area-averaging resize) with its threshold set to
/// `threshold` (`None`: uncalibrated), written into `dir`.
pub fn tiny_model_file(dir: &Path, threshold: Option<f32>) -> String {
    let mut model = flowgate_shared::example::tiny_model();
    match threshold {
        Some(ood_score) => model.threshold.as_mut().unwrap().ood_score = ood_score,
        None => model.threshold = None,
    }
    let path = dir.join(format!("tiny-{threshold:?}.fgm"));
    std::fs::write(&path, flowgate_shared::encode(&model).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The tiny model as exported: its calibrated threshold is 2.5 bits/dim.
pub fn tiny_model(dir: &Path) -> String {
    tiny_model_file(dir, Some(2.5))
}

/// The untrained tiny model scores 7.4 to 20 bits/dim; 9 splits the fixture frames into
/// accepted and rejected ones.
pub const SPLITTING_THRESHOLD: f32 = 9.0;

#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8(self.stdout.clone()).unwrap()
    }

    /// The rows of a CSV table after checking its header.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let text = self.stdout();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "source,frame,log_likelihood,bits_per_dim,ood_score,decision,fault,detail_bits_per_dim"
            ),
            "{self:?}"
        );
        lines
            .map(|line| line.split(',').map(str::to_owned).collect::<Vec<_>>())
            .inspect(|row| assert_eq!(row.len(), 8, "{row:?}"))
            .collect()
    }
}

pub fn run_edge(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowgate-edge"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // A writer thread: the child may fill its stdout before it has read all of stdin.
    let writer = std::thread::spawn(move || {
        // The child may exit without reading everything (an argument error).
        let _ = pipe.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: output.status.code(),
        stdout: output.stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The fixture frames: 6x4 gray (the gate resizes them to 4x4), flat and textured.
pub const WIDTH: u32 = 6;
pub const HEIGHT: u32 = 4;

pub fn frames() -> Vec<Vec<u8>> {
    let len = (WIDTH * HEIGHT) as usize;
    let mut frames: Vec<Vec<u8>> = [0u8, 96, 128, 160, 255]
        .iter()
        .map(|&level| vec![level; len])
        .collect();
    frames.push((0..len).map(|i| (i * 11) as u8).collect());
    frames.push(
        (0..len)
            .map(|i| if i % 2 == 0 { 120 } else { 136 })
            .collect(),
    );
    frames.push((0..len).map(|i| if i % 3 == 0 { 0 } else { 255 }).collect());
    frames
}

pub fn png_bytes(image: DynamicImage) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut bytes), ImageFormat::Png)
        .unwrap();
    bytes
}

pub fn gray_png(width: u32, height: u32, pixels: Vec<u8>) -> Vec<u8> {
    png_bytes(DynamicImage::ImageLuma8(
        GrayImage::from_raw(width, height, pixels).unwrap(),
    ))
}

/// An idx3-ubyte file holding `frames` of WIDTH x HEIGHT.
pub fn idx_file(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut file = 0x0803u32.to_be_bytes().to_vec();
    for dim in [frames.len() as u32, HEIGHT, WIDTH] {
        file.extend(dim.to_be_bytes());
    }
    file.extend(frames.concat());
    file
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// The fixture frames as PNGs in a folder of their own, in order.
pub fn png_folder(dir: &Path) -> PathBuf {
    let folder = dir.join("pngs");
    std::fs::create_dir_all(&folder).unwrap();
    for (index, frame) in frames().into_iter().enumerate() {
        let png = gray_png(WIDTH, HEIGHT, frame);
        std::fs::write(folder.join(format!("frame-{index:02}.png")), png).unwrap();
    }
    folder
}

pub fn raw_args<'a>(model: &'a str, size: &'a str, pixel: &'a str) -> Vec<&'a str> {
    vec![
        "score", "--model", model, "--input", "-", "--raw", size, "--pixel", pixel,
    ]
}

/// The numeric and decision columns of a table, which must not depend on the front end.
pub fn scores(rows: &[Vec<String>]) -> Vec<Vec<String>> {
    rows.iter().map(|row| row[2..].to_vec()).collect()
}
