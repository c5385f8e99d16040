//! Where the CPU training step loses to PyTorch (issue 16): one 3x3 same-padding convolution,
//! forward and backward (input and weight gradients), at the s/t networks' shapes (batch 64),
//! through burn's `conv2d` and through the same convolution written as nine shifted slices of
//! the padded input (im2col) and one matmul, which burn differentiates with GEMMs. Prints the
//! two paths' agreement and their median times.
//!
//!     RAYON_NUM_THREADS=1 cargo run --release -p flowgate-trainer --example conv_paths
//!     OMP_NUM_THREADS=1 target/libtorch/release/examples/conv_paths libtorch   # LibTorch
//!
//! Measured 2026-12-01, one thread: burn's conv2d 54.2 / 24.6 / 16.8 / 10.0 ms for 8 ch 28x28,
//! 16 ch 14x14, 32 ch 7x7, 2 ch 28x28; im2col + matmul 1.1-1.8x slower; PyTorch 2.15 (same
//! shapes, `torch.set_num_threads(1)`) 15.2 / 6.5 / 4.5 / 4.8 ms. A profile of `flowgate train`
//! puts most of the step in burn-flex's conv weight gradient (conv3d im2col and layout copies)
//! and input gradient (conv_transpose3d), so the gap is burn-flex's convolution at small
//! channel counts, not the model code. On LibTorch (built with `--features libtorch` in
//! scripts/build-libtorch.sh's environment), burn's conv2d takes 14.6 / 7.4 / 6.2 / 5.6 ms:
//! PyTorch's speed.
use std::time::Instant;

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::ops::PadMode;

/// The convolution as nine shifted slices of the zero-padded input and one matmul.
fn im2col_conv(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let weight = conv.weight.val();
    let [co, _, k, _] = weight.dims();
    let p = k / 2;
    let xp = x.pad((p, p, p, p), PadMode::Constant(0.0));
    let mut taps = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            taps.push(xp.clone().slice([0..n, 0..c, ky..ky + h, kx..kx + w]));
        }
    }
    let cols: Tensor<5> = Tensor::stack(taps, 2); // [n, c, k*k, h, w]
    let cols: Tensor<3> = cols.reshape([n, c * k * k, h * w]);
    let wmat: Tensor<3> = weight.reshape([1, co, c * k * k]);
    let mut y = wmat.matmul(cols);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, co, 1]);
    }
    y.reshape([n, co, h, w])
}

fn main() {
    // `-- libtorch` (a build with `--features libtorch`) times burn's LibTorch backend instead.
    let compute = match std::env::args().nth(1).as_deref() {
        Some("libtorch") => flowgate_trainer::training::Compute::Libtorch,
        _ => flowgate_trainer::training::Compute::Cpu,
    };
    let device = match flowgate_trainer::training::device(compute) {
        Ok(device) => device.autodiff(),
        Err(error) => {
            eprintln!("{error}");
            std::process::exit(2);
        }
    };
    for (n, c, hw) in [(64, 8, 28), (64, 16, 14), (64, 32, 7), (64, 2, 28)] {
        let conv = Conv2dConfig::new([c, c], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        let x = Tensor::<4>::random([n, c, hw, hw], Distribution::Normal(0.0, 1.0), &device)
            .require_grad();
        let run = |im2col: bool| {
            let y = if im2col {
                im2col_conv(&conv, x.clone())
            } else {
                conv.forward(x.clone())
            };
            let loss = (y.clone() * y.clone()).sum();
            let grads = loss.backward();
            let gw = conv.weight.grad(&grads).unwrap();
            let gx = x.grad(&grads).unwrap();
            (y.inner(), gw, gx)
        };
        let (y0, w0, x0) = run(false);
        let (y1, w1, x1) = run(true);
        let diff = |a: Tensor<4>, b: Tensor<4>| (a - b).abs().max().into_scalar::<f32>();
        println!(
            "n{n} c{c} {hw}x{hw}: max |dy| {:.2e} |dgw| {:.2e} |dgx| {:.2e}",
            diff(y0, y1),
            diff(w0.inner(), w1.inner()),
            diff(x0.inner(), x1.inner())
        );
        let mut times = [Vec::new(), Vec::new()];
        for _round in 0..15 {
            for (path, t) in times.iter_mut().enumerate() {
                let start = Instant::now();
                let (y, _, _) = run(path == 1);
                let _ = y.into_data();
                t.push(start.elapsed().as_secs_f64() * 1e3);
            }
        }
        for t in &mut times {
            t.sort_by(f64::total_cmp);
        }
        println!(
            "   burn conv2d {:.2} ms, im2col+matmul {:.2} ms (median fwd+bwd), ratio {:.2}",
            times[0][7],
            times[1][7],
            times[0][7] / times[1][7]
        );
    }
}
