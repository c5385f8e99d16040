//! Frames per second of the edge gate, per shipped config, beside burn's CPU backend on the
//! same model in the same run.
//!
//! For each `configs/*.toml` the bench builds the flow (seeded initial weights: speed does not
//! depend on the values), exports it as f32 and as int8, and measures:
//! - `runtime-f32/<config>` and `runtime-int8/<config>`: `Gate::score` of one frame on
//!   one core (the gate is single-threaded), on the fastest kernels this CPU runs (AVX2+FMA
//!   or NEON where present; printed first);
//! - `runtime-f32-scalar/<config>`: the same on the scalar kernels, the reference;
//! - `burn-cpu/<config>`: the trainer's `FlowModel::log_likelihood` of one frame (batch 1) on
//!   burn's flex backend (which may use both cores).
//!
//! Throughput is reported in multiply-accumulates, so criterion's "elem/s" reads as MAC/s
//! (GMAC/s = Gelem/s); frames/s = MAC/s divided by the MACs per frame printed first.
//! Compare ratios within one run: the machine is shared and noisy.
//!
//! `cargo bench -p flowgate-tests --bench gate` (add `-- runtime` etc. to filter).

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Frame, Gate, PixelFormat};
use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::export::{ExportInfo, to_file_bytes};
use flowgate_trainer::flows::Device;
use flowgate_trainer::quantize::quantize_model;
use flowgate_trainer::training::{ImageSet, seeded_model};

fn configs() -> Vec<(String, TrainConfig)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("configs/")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (name, TrainConfig::load(&path).expect("valid config"))
        })
        .collect()
}

fn frame_pixels(len: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 37) % 251) as u8).collect()
}

fn bench_gate(c: &mut Criterion) {
    let device = Device::flex();
    println!("gate kernels: {}", KernelPath::detect());
    for (name, config) in configs() {
        let model = seeded_model(&config, &device)
            .expect("builds")
            .for_inference();
        let f32_bytes = to_file_bytes(&model, &ExportInfo::default()).expect("exports");
        let decoded = flowgate_shared::decode(&f32_bytes).expect("valid");
        let macs = decoded.summary.macs_per_frame;
        let int8_bytes =
            flowgate_shared::encode(&quantize_model(&decoded.model).expect("quantises"))
                .expect("valid");
        let (h, w) = (config.model.height, config.model.width);
        println!(
            "{name}: {} parameters, {:.2} MMAC/frame, f32 {} bytes, int8 {} bytes",
            decoded.summary.parameters,
            macs as f64 / 1e6,
            f32_bytes.len(),
            int8_bytes.len()
        );
        let pixels = frame_pixels(h * w);
        let frame = Frame::packed(&pixels, w as u32, h as u32, PixelFormat::Gray8).unwrap();

        let fastest = KernelPath::detect();
        for (kind, bytes, kernels) in [
            ("runtime-f32", &f32_bytes, fastest),
            ("runtime-int8", &int8_bytes, fastest),
            ("runtime-f32-scalar", &f32_bytes, KernelPath::Scalar),
        ] {
            let gate = Gate::new(bytes).unwrap().with_kernels(kernels).unwrap();
            let mut scratch = vec![0f32; gate.scratch_len()];
            let mut group = c.benchmark_group(kind);
            group.throughput(Throughput::Elements(macs));
            group.sample_size(20);
            group.bench_function(&name, |b| {
                b.iter(|| black_box(gate.score(black_box(&frame), &mut scratch).unwrap()))
            });
            group.finish();
        }

        let images = ImageSet {
            pixels: pixels.clone(),
            count: 1,
            shape: [1, h, w],
        };
        let mut group = c.benchmark_group("burn-cpu");
        group.throughput(Throughput::Elements(macs));
        group.sample_size(20);
        group.bench_function(&name, |b| {
            b.iter(|| {
                let levels = images.batch(&[0], &device);
                black_box(model.log_likelihood(levels, false).into_scalar::<f32>())
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench_gate);
criterion_main!(benches);
