//! The runtime against an independent reference.
//!
//! The oracle below is written from the format's documentation (`flowgate_shared::layers`,
//! `flowgate_shared::model`), not from the runtime: deliberately naive scalar code in f64,
//! plain `Vec<f64>` activations and explicit index math, clarity over speed. The tests hold
//! [`Gate::score`] to it on the example model, on one-layer models (so a failure names the
//! layer), on a closed form with no oracle at all, and on the frame conversion (resize, luma;
//! those compare the gate with itself, so a flow bug does not show there).
//!
//! Tolerance: the runtime runs the layers in f32 and accumulates the log-likelihood in f64,
//! so it may differ from the all-f64 oracle by rounding only. We require
//! `|delta bits/dim| <= 1e-5` ([`BPD_TOLERANCE`]): f32 rounding of activations of order 1
//! is ~1e-7 per element, far below it, while any real mistake (a wrong index, mask, sign or
//! term) moves the score by orders of magnitude more.

// Explicit index loops are the point of a naive reference.
#![allow(clippy::needless_range_loop)]

use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Decision, Frame, Gate, LumaRange, PixelFormat, Verdict};
use flowgate_shared::example::tiny_model;
use flowgate_shared::{
    ActNorm, ChannelAffine, Conv2d, ConvTranspose2d, Coupling, FlowLayer, InputSpec,
    InvertibleConv1x1, Linear, Mask, Model, NetNode, NetOp, Preprocess, Quadrant, Resize,
    ScoreKind, Seq, Tensor, Threshold, encode,
};

/// Largest accepted |runtime - oracle| in bits per dimension (see the module docs).
const BPD_TOLERANCE: f64 = 1e-5;

// ---------------------------------------------------------------------------------------
// The oracle.
// ---------------------------------------------------------------------------------------

/// One activation, channel-major (C, H, W).
#[derive(Debug, Clone)]
struct Act {
    c: usize,
    h: usize,
    w: usize,
    v: Vec<f64>,
}

impl Act {
    fn zeros(c: usize, h: usize, w: usize) -> Act {
        Act {
            c,
            h,
            w,
            v: vec![0.0; c * h * w],
        }
    }

    fn index(&self, c: usize, i: usize, j: usize) -> usize {
        assert!(c < self.c && i < self.h && j < self.w, "index out of range");
        (c * self.h + i) * self.w + j
    }

    fn at(&self, c: usize, i: usize, j: usize) -> f64 {
        self.v[self.index(c, i, j)]
    }

    fn set(&mut self, c: usize, i: usize, j: usize, value: f64) {
        let index = self.index(c, i, j);
        self.v[index] = value;
    }
}

/// Element `index` (row-major) of a tensor, dequantised, in f64.
fn value(tensor: &Tensor<'_>, index: usize) -> f64 {
    f64::from(tensor.get(index).expect("tensor index in range"))
}

/// The tensor's dimensions.
fn shape(tensor: &Tensor<'_>) -> Vec<usize> {
    tensor.shape.iter().map(|&d| d as usize).collect()
}

/// `ln N(x; 0, 1)`.
fn log_normal(x: f64) -> f64 {
    -0.5 * x * x - 0.5 * (2.0 * std::f64::consts::PI).ln()
}

/// What the oracle says about one frame.
#[derive(Debug, Clone, Copy)]
struct Reference {
    log_likelihood: f64,
    bits_per_dim: f64,
}

/// The log-likelihood of pixel levels `levels` (channel-major C x H x W at the model's input
/// size) under `model`, from the format's documented semantics.
fn oracle(model: &Model<'_>, levels: &[u8]) -> Reference {
    let spec = model.input;
    let (c, h, w) = (
        spec.channels as usize,
        spec.height as usize,
        spec.width as usize,
    );
    let d = c * h * w;
    assert_eq!(levels.len(), d, "levels at the model's input size");

    // Preprocessing: z = (x + 1/2) / 256, p = alpha + (1 - 2 alpha) z, y = logit(p); the
    // log-likelihood of the discrete image adds ln |dy/dz| per dimension and -ln 256 for the
    // bin width.
    let Preprocess::Logit { alpha } = spec.preprocess;
    let alpha = f64::from(alpha);
    let mut x = Act::zeros(c, h, w);
    let mut ll = 0.0f64;
    for k in 0..d {
        let z = (f64::from(levels[k]) + 0.5) / 256.0;
        let p = alpha + (1.0 - 2.0 * alpha) * z;
        x.v[k] = p.ln() - (1.0 - p).ln();
        ll += (1.0 - 2.0 * alpha).ln() - p.ln() - (1.0 - p).ln();
        ll -= 256f64.ln();
    }

    // A flow on embeddings models the extractor's output: the density is over its dims,
    // and the preprocessing's log-determinant does not count.
    let mut density_dims = d;
    for layer in model.flow.iter() {
        let layer = layer.expect("a well-formed layer");
        if let FlowLayer::Embed(embed) = &layer {
            x = run_net(&embed.net, x);
            density_dims = x.v.len();
            ll = 0.0;
            continue;
        }
        let (next, contribution) = flow_layer(&layer, x);
        x = next;
        ll += contribution;
    }
    // Whatever is left is scored under the standard normal prior.
    for k in 0..x.v.len() {
        ll += log_normal(x.v[k]);
    }
    Reference {
        log_likelihood: ll,
        bits_per_dim: -ll / (density_dims as f64 * std::f64::consts::LN_2),
    }
}

/// Applies one flow layer; returns the new activation and the layer's contribution to the
/// log-likelihood (its log-determinant, or for a factor-out the prior of what leaves).
fn flow_layer(layer: &FlowLayer<'_>, x: Act) -> (Act, f64) {
    match layer {
        FlowLayer::Coupling(coupling) => coupling_layer(coupling, x),
        FlowLayer::Squeeze => {
            assert!(x.h.is_multiple_of(2) && x.w.is_multiple_of(2));
            let mut y = Act::zeros(4 * x.c, x.h / 2, x.w / 2);
            for c in 0..x.c {
                for i in 0..x.h / 2 {
                    for j in 0..x.w / 2 {
                        for dy in 0..2 {
                            for dx in 0..2 {
                                y.set(4 * c + 2 * dy + dx, i, j, x.at(c, 2 * i + dy, 2 * j + dx));
                            }
                        }
                    }
                }
            }
            (y, 0.0)
        }
        FlowLayer::Unsqueeze => {
            assert!(x.c.is_multiple_of(4));
            let mut y = Act::zeros(x.c / 4, 2 * x.h, 2 * x.w);
            for c in 0..x.c / 4 {
                for i in 0..x.h {
                    for j in 0..x.w {
                        for dy in 0..2 {
                            for dx in 0..2 {
                                y.set(c, 2 * i + dy, 2 * j + dx, x.at(4 * c + 2 * dy + dx, i, j));
                            }
                        }
                    }
                }
            }
            (y, 0.0)
        }
        FlowLayer::ActNorm(ActNorm { bias, log_scale }) => {
            let mut y = x.clone();
            let mut log_det = 0.0;
            for c in 0..x.c {
                let (b, s) = (value(bias, c), value(log_scale, c));
                for i in 0..x.h {
                    for j in 0..x.w {
                        y.set(c, i, j, (x.at(c, i, j) + b) * s.exp());
                    }
                }
                log_det += (x.h * x.w) as f64 * s;
            }
            (y, log_det)
        }
        FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
            weight,
            log_abs_det,
        }) => {
            assert_eq!(shape(weight), vec![x.c, x.c]);
            let mut y = Act::zeros(x.c, x.h, x.w);
            for o in 0..x.c {
                for i in 0..x.h {
                    for j in 0..x.w {
                        let mut sum = 0.0;
                        for c in 0..x.c {
                            sum += value(weight, o * x.c + c) * x.at(c, i, j);
                        }
                        y.set(o, i, j, sum);
                    }
                }
            }
            (y, (x.h * x.w) as f64 * f64::from(*log_abs_det))
        }
        FlowLayer::FactorOut { keep_channels } => {
            let keep = *keep_channels as usize;
            assert!(keep < x.c);
            let mut y = Act::zeros(keep, x.h, x.w);
            let mut prior = 0.0;
            for c in 0..x.c {
                for i in 0..x.h {
                    for j in 0..x.w {
                        if c < keep {
                            y.set(c, i, j, x.at(c, i, j));
                        } else {
                            prior += log_normal(x.at(c, i, j));
                        }
                    }
                }
            }
            (y, prior)
        }
        FlowLayer::Embed(_) => unreachable!("the oracle runs the extractor itself"),
    }
}

/// Quadrant of pixel `(i, j)` of an `h` x `w` grid, numbered clockwise from the top left,
/// split at `h / 2` and `w / 2`.
fn quadrant_number(i: usize, j: usize, h: usize, w: usize) -> u8 {
    match (i < h / 2, j < w / 2) {
        (true, true) => 0,
        (true, false) => 1,
        (false, false) => 2,
        (false, true) => 3,
    }
}

fn quadrant_of_number(number: u8) -> Quadrant {
    [
        Quadrant::TopLeft,
        Quadrant::TopRight,
        Quadrant::BottomRight,
        Quadrant::BottomLeft,
    ][number as usize]
}

/// For a spatial mask: (is pixel `(i, j)` read by the network, does it change).
fn spatial_mask(mask: Mask, i: usize, j: usize, h: usize, w: usize) -> (bool, bool) {
    match mask {
        Mask::Checkerboard { reverse } => {
            let read = ((i + j) % 2 == 1) != reverse;
            (read, !read)
        }
        Mask::Horizontal { reverse } => {
            let read = (i < h / 2) != reverse;
            (read, !read)
        }
        Mask::Quadrant { read, write } => {
            let here = quadrant_of_number(quadrant_number(i, j, h, w));
            (here == read, here == write)
        }
        Mask::ChannelWise { .. } => unreachable!("not a spatial mask"),
    }
}

fn coupling_layer(coupling: &Coupling<'_>, x: Act) -> (Act, f64) {
    let mut y = x.clone();
    let mut log_det = 0.0;
    match coupling.mask {
        Mask::ChannelWise { reverse } => {
            // Reads C/2..C and changes 0..C/2; reverse swaps the halves.
            let half = x.c / 2;
            let (read_first, write_first) = if reverse { (0, half) } else { (half, 0) };
            let mut input = Act::zeros(half, x.h, x.w);
            for c in 0..half {
                for i in 0..x.h {
                    for j in 0..x.w {
                        input.set(c, i, j, x.at(read_first + c, i, j));
                    }
                }
            }
            let out = run_net(&coupling.net, input);
            assert_eq!((out.c, out.h, out.w), (2 * half, x.h, x.w));
            for c in 0..half {
                let scale = value(&coupling.scale, c);
                for i in 0..x.h {
                    for j in 0..x.w {
                        let s = scale * out.at(c, i, j).tanh();
                        let t = out.at(half + c, i, j);
                        let old = x.at(write_first + c, i, j);
                        y.set(write_first + c, i, j, (old + t) * s.exp());
                        log_det += s;
                    }
                }
            }
        }
        mask => {
            // The network sees the whole tensor times the read mask and writes (2C, H, W);
            // only the write mask's positions change.
            let mut input = x.clone();
            for c in 0..x.c {
                for i in 0..x.h {
                    for j in 0..x.w {
                        let (read, _) = spatial_mask(mask, i, j, x.h, x.w);
                        input.set(c, i, j, if read { x.at(c, i, j) } else { 0.0 });
                    }
                }
            }
            let out = run_net(&coupling.net, input);
            assert_eq!((out.c, out.h, out.w), (2 * x.c, x.h, x.w));
            for c in 0..x.c {
                let scale = value(&coupling.scale, c);
                for i in 0..x.h {
                    for j in 0..x.w {
                        let (read, write) = spatial_mask(mask, i, j, x.h, x.w);
                        assert!(!(read && write), "a pixel both read and changed");
                        if write {
                            let s = scale * out.at(c, i, j).tanh();
                            let t = out.at(x.c + c, i, j);
                            y.set(c, i, j, (x.at(c, i, j) + t) * s.exp());
                            log_det += s;
                        }
                    }
                }
            }
        }
    }
    (y, log_det)
}

/// Runs a coupling network: slot 0 holds `input`; each node reads slot `input` (and for
/// `Add` slot `other`) and replaces slot `output`; the last node's output is the result.
fn run_net(net: &Seq<'_, NetNode<'_>>, input: Act) -> Act {
    let mut slots: Vec<Option<Act>> = vec![None; 8];
    slots[0] = Some(input);
    let mut last = None;
    for node in net.iter() {
        let node = node.expect("a well-formed node");
        let x = slots[node.input as usize].clone().expect("slot set");
        let y = match &node.op {
            NetOp::Conv2d(conv) => conv2d(conv, &x),
            NetOp::ConvTranspose2d(conv) => conv_transpose2d(conv, &x),
            NetOp::Linear(linear) => linear_op(linear, &x),
            NetOp::ChannelAffine(ChannelAffine { scale, shift }) => {
                let mut y = x.clone();
                for c in 0..x.c {
                    for i in 0..x.h {
                        for j in 0..x.w {
                            y.set(c, i, j, x.at(c, i, j) * value(scale, c) + value(shift, c));
                        }
                    }
                }
                y
            }
            NetOp::Relu => Act {
                v: x.v.iter().map(|&a| if a > 0.0 { a } else { 0.0 }).collect(),
                ..x
            },
            NetOp::Tanh => Act {
                v: x.v.iter().map(|a| a.tanh()).collect(),
                ..x
            },
            NetOp::ConcatNegated => {
                let mut y = Act::zeros(2 * x.c, x.h, x.w);
                for c in 0..x.c {
                    for i in 0..x.h {
                        for j in 0..x.w {
                            y.set(c, i, j, x.at(c, i, j));
                            y.set(x.c + c, i, j, -x.at(c, i, j));
                        }
                    }
                }
                y
            }
            NetOp::Reshape {
                channels,
                height,
                width,
            } => {
                let (c, h, w) = (*channels as usize, *height as usize, *width as usize);
                assert_eq!(c * h * w, x.v.len());
                Act { c, h, w, v: x.v }
            }
            NetOp::Add { other } => {
                let other = slots[*other as usize].clone().expect("slot set");
                assert_eq!((other.c, other.h, other.w), (x.c, x.h, x.w));
                let mut y = x.clone();
                for k in 0..x.v.len() {
                    y.v[k] = x.v[k] + other.v[k];
                }
                y
            }
            NetOp::MaxPool2d { kernel, stride } => pool(&x, *kernel, *stride, true),
            NetOp::AvgPool2d { kernel, stride } => pool(&x, *kernel, *stride, false),
            NetOp::GlobalAvgPool => {
                let mut y = Act::zeros(x.c, 1, 1);
                for c in 0..x.c {
                    let mut sum = 0.0;
                    for i in 0..x.h {
                        for j in 0..x.w {
                            sum += x.at(c, i, j);
                        }
                    }
                    y.set(c, 0, 0, sum / (x.h * x.w) as f64);
                }
                y
            }
        };
        slots[node.output as usize] = Some(y);
        last = Some(node.output as usize);
    }
    slots[last.expect("a non-empty network")]
        .clone()
        .expect("slot set")
}

/// Convolution with zero padding: `y[o, oy, ox] = b[o] + sum W[o, c, ky, kx] *
/// x[c, oy * s + ky - p, ox * s + kx - p]`, zero outside the input.
fn conv2d(conv: &Conv2d<'_>, x: &Act) -> Act {
    let [out_c, in_c, kh, kw] = shape(&conv.weight)[..] else {
        panic!("conv weight rank")
    };
    assert_eq!(in_c, x.c);
    let (s, p) = (conv.stride as usize, conv.padding as usize);
    let out_h = (x.h + 2 * p - kh) / s + 1;
    let out_w = (x.w + 2 * p - kw) / s + 1;
    let mut y = Act::zeros(out_c, out_h, out_w);
    for o in 0..out_c {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut sum = value(&conv.bias, o);
                for c in 0..in_c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            // Position in the unpadded input, as signed numbers.
                            let iy = (oy * s + ky) as i64 - p as i64;
                            let ix = (ox * s + kx) as i64 - p as i64;
                            if iy < 0 || ix < 0 || iy >= x.h as i64 || ix >= x.w as i64 {
                                continue;
                            }
                            let weight = value(&conv.weight, ((o * in_c + c) * kh + ky) * kw + kx);
                            sum += weight * x.at(c, iy as usize, ix as usize);
                        }
                    }
                }
                y.set(o, oy, ox, sum);
            }
        }
    }
    y
}

/// PyTorch's transposed convolution, written as a gather: output `(oy, ox)` receives
/// `W[c, o, ky, kx] * x[c, iy, ix]` for every `iy * s + ky - p == oy` (likewise for x), over
/// an output of `(H - 1) s + k + output_padding - 2p` rows (likewise columns), plus the bias.
fn conv_transpose2d(conv: &ConvTranspose2d<'_>, x: &Act) -> Act {
    let [in_c, out_c, kh, kw] = shape(&conv.weight)[..] else {
        panic!("conv-transpose weight rank")
    };
    assert_eq!(in_c, x.c);
    let (s, p, extra) = (
        conv.stride as i64,
        conv.padding as i64,
        conv.output_padding as i64,
    );
    let out_h = (x.h as i64 - 1) * s + kh as i64 + extra - 2 * p;
    let out_w = (x.w as i64 - 1) * s + kw as i64 + extra - 2 * p;
    let mut y = Act::zeros(out_c, out_h as usize, out_w as usize);
    for o in 0..out_c {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut sum = value(&conv.bias, o);
                for c in 0..in_c {
                    for ky in 0..kh as i64 {
                        for kx in 0..kw as i64 {
                            let (ny, nx) = (oy + p - ky, ox + p - kx);
                            if ny < 0 || nx < 0 || ny % s != 0 || nx % s != 0 {
                                continue;
                            }
                            let (iy, ix) = (ny / s, nx / s);
                            if iy >= x.h as i64 || ix >= x.w as i64 {
                                continue;
                            }
                            let index = ((c * out_c + o) * kh + ky as usize) * kw + kx as usize;
                            sum += value(&conv.weight, index) * x.at(c, iy as usize, ix as usize);
                        }
                    }
                }
                y.set(o, oy as usize, ox as usize, sum);
            }
        }
    }
    y
}

/// Fully connected on the flattened (C * H * W) input; output (out, 1, 1).
fn linear_op(linear: &Linear<'_>, x: &Act) -> Act {
    let [out_f, in_f] = shape(&linear.weight)[..] else {
        panic!("linear weight rank")
    };
    assert_eq!(in_f, x.v.len());
    let mut y = Act::zeros(out_f, 1, 1);
    for o in 0..out_f {
        let mut sum = value(&linear.bias, o);
        for k in 0..in_f {
            sum += value(&linear.weight, o * in_f + k) * x.v[k];
        }
        y.set(o, 0, 0, sum);
    }
    y
}

/// Max or mean over `kernel` x `kernel` windows every `stride` pixels, no padding.
fn pool(x: &Act, kernel: u8, stride: u8, max: bool) -> Act {
    let (k, s) = (kernel as usize, stride as usize);
    let out_h = (x.h - k) / s + 1;
    let out_w = (x.w - k) / s + 1;
    let mut y = Act::zeros(x.c, out_h, out_w);
    for c in 0..x.c {
        for oy in 0..out_h {
            for ox in 0..out_w {
                let mut window = Vec::new();
                for ky in 0..k {
                    for kx in 0..k {
                        window.push(x.at(c, oy * s + ky, ox * s + kx));
                    }
                }
                let result = if max {
                    window.iter().copied().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    window.iter().sum::<f64>() / window.len() as f64
                };
                y.set(c, oy, ox, result);
            }
        }
    }
    y
}

// ---------------------------------------------------------------------------------------
// Helpers: deterministic values, model building, scoring through the gate.
// ---------------------------------------------------------------------------------------

/// A deterministic pseudo-random stream (64-bit LCG, high bits).
struct Rng(u64);

impl Rng {
    fn next_u32(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }

    fn level(&mut self) -> u8 {
        (self.next_u32() >> 24) as u8
    }

    /// Uniform in [-amplitude, amplitude].
    fn uniform(&mut self, amplitude: f32) -> f32 {
        let unit = (self.next_u32() >> 8) as f32 / (1u32 << 24) as f32;
        (unit * 2.0 - 1.0) * amplitude
    }

    fn tensor(&mut self, dims: &[u32], amplitude: f32) -> Tensor<'static> {
        let count: usize = dims.iter().map(|&d| d as usize).product();
        let values: Vec<f32> = (0..count).map(|_| self.uniform(amplitude)).collect();
        Tensor::from_f32(dims, &values).expect("values match dims")
    }

    /// Symmetric int8 with one scale per index of the first dimension.
    fn tensor_i8(&mut self, dims: &[u32], amplitude: f32) -> Tensor<'static> {
        let count: usize = dims.iter().map(|&d| d as usize).product();
        let values: Vec<i8> = (0..count)
            .map(|_| (self.next_u32() % 255) as i32 - 127)
            .map(|q| q as i8)
            .collect();
        let scales: Vec<f32> = (0..dims[0])
            .map(|_| amplitude / 127.0 * (0.5 + self.uniform(0.5).abs()))
            .collect();
        Tensor::from_i8(dims, &values, &scales).expect("values match dims")
    }

    fn conv(
        &mut self,
        out: u32,
        inp: u32,
        kernel: (u32, u32),
        stride: u8,
        padding: u8,
    ) -> NetOp<'static> {
        NetOp::Conv2d(Conv2d {
            weight: self.tensor(&[out, inp, kernel.0, kernel.1], 0.4),
            bias: self.tensor(&[out], 0.1),
            stride,
            padding,
        })
    }

    fn conv_transpose(
        &mut self,
        inp: u32,
        out: u32,
        kernel: u32,
        stride: u8,
        padding: u8,
        output_padding: u8,
    ) -> NetOp<'static> {
        NetOp::ConvTranspose2d(ConvTranspose2d {
            weight: self.tensor(&[inp, out, kernel, kernel], 0.4),
            bias: self.tensor(&[out], 0.1),
            stride,
            padding,
            output_padding,
        })
    }

    fn linear(&mut self, out: u32, inp: u32) -> NetOp<'static> {
        NetOp::Linear(Linear {
            weight: self.tensor(&[out, inp], 0.3),
            bias: self.tensor(&[out], 0.1),
        })
    }

    fn frame(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.level()).collect()
    }
}

fn node(op: NetOp<'static>, input: u8, output: u8) -> NetNode<'static> {
    NetNode { op, input, output }
}

fn coupling(mask: Mask, scale: Tensor<'static>, net: Vec<NetNode<'static>>) -> FlowLayer<'static> {
    FlowLayer::Coupling(Coupling {
        mask,
        net: Seq::from_vec(net),
        scale,
    })
}

fn model(
    channels: u32,
    height: u32,
    width: u32,
    alpha: f32,
    flow: Vec<FlowLayer<'static>>,
) -> Model<'static> {
    Model {
        name: "reference",
        provenance: "edge-runtime/tests/reference.rs",
        input: InputSpec {
            channels,
            height,
            width,
            preprocess: Preprocess::Logit { alpha },
            resize: Resize::AreaAverage,
        },
        flow: Seq::from_vec(flow),
        score: ScoreKind::BitsPerDim,
        threshold: None,
        detail: None,
    }
}

/// Scores channel-major levels at the model's size through the gate (Gray8 for one
/// channel, interleaved Rgb8 for three).
fn gate_score(gate: &Gate<'_>, levels: &[u8]) -> Verdict {
    let spec = gate.model().input;
    let (c, h, w) = (
        spec.channels as usize,
        spec.height as usize,
        spec.width as usize,
    );
    assert_eq!(levels.len(), c * h * w);
    let (bytes, format) = if c == 1 {
        (levels.to_vec(), PixelFormat::Gray8)
    } else {
        let mut rgb = vec![0u8; 3 * h * w];
        for ch in 0..3 {
            for p in 0..h * w {
                rgb[3 * p + ch] = levels[ch * h * w + p];
            }
        }
        (rgb, PixelFormat::Rgb8)
    };
    let frame = Frame::packed(&bytes, w as u32, h as u32, format).expect("a valid frame");
    let mut scratch = vec![0f32; gate.scratch_len()];
    gate.score(&frame, &mut scratch)
        .expect("the gate scores the frame")
}

/// The frames every isolation test uses: black, white, mid grey and pseudo-random ones.
fn test_frames(len: usize, seed: u64, random: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed);
    let mut frames = vec![vec![0u8; len], vec![255u8; len], vec![128u8; len]];
    frames.extend((0..random).map(|_| rng.frame(len)));
    frames
}

/// Encodes `model`, loads it into a gate and checks the gate against the oracle on `frames`,
/// on every kernel path this CPU runs (the scalar reference and the SIMD one); returns the
/// largest |delta bits/dim|.
fn check_against_oracle(what: &str, model: &Model<'_>, frames: &[Vec<u8>]) -> f64 {
    let bytes = encode(model).unwrap_or_else(|e| panic!("{what}: encode: {e}"));
    let gate = Gate::new(&bytes).unwrap_or_else(|e| panic!("{what}: load: {e}"));
    let mut worst = 0.0f64;
    for path in KernelPath::ALL.into_iter().filter(|path| path.available()) {
        let gate = gate.clone().with_kernels(path).expect("available");
        worst = worst.max(check_gate(
            &format!("{what} [{path}]"),
            &gate,
            model,
            frames,
        ));
    }
    worst
}

fn check_gate(what: &str, gate: &Gate<'_>, model: &Model<'_>, frames: &[Vec<u8>]) -> f64 {
    let d = gate.summary().density_dims as f64;
    let mut worst = 0.0f64;
    for (n, levels) in frames.iter().enumerate() {
        let expected = oracle(model, levels);
        let verdict = gate_score(gate, levels);
        let delta = (verdict.bits_per_dim - expected.bits_per_dim).abs();
        assert!(
            delta <= BPD_TOLERANCE,
            "{what}: frame {n} ({levels:?}): runtime ll {} bpd {}, oracle ll {} bpd {} \
             (|delta bpd| = {delta:e})",
            verdict.log_likelihood,
            verdict.bits_per_dim,
            expected.log_likelihood,
            expected.bits_per_dim,
        );
        // The verdict's fields agree with each other.
        let bpd_from_ll = -verdict.log_likelihood / (d * std::f64::consts::LN_2);
        assert!(
            (verdict.bits_per_dim - bpd_from_ll).abs() <= 1e-12,
            "{what}"
        );
        assert_eq!(verdict.ood_score, verdict.bits_per_dim, "{what}");
        worst = worst.max(delta);
    }
    worst
}

// ---------------------------------------------------------------------------------------
// 1. The example model.
// ---------------------------------------------------------------------------------------

#[test]
fn tiny_model_matches_the_oracle() {
    let model = tiny_model();
    let frames = test_frames(16, 0xf1a9_0001, 50);
    let bytes = encode(&model).expect("the example encodes");
    let gate = Gate::new(&bytes).expect("the example loads");
    let mut scratch = vec![0f32; gate.scratch_len()];
    for (n, pixels) in frames.iter().enumerate() {
        let frame = Frame::packed(pixels, 4, 4, PixelFormat::Gray8).expect("a 4x4 frame");
        let verdict = gate.score(&frame, &mut scratch).expect("scored");
        let expected = oracle(&model, pixels);
        // |delta bpd| <= 1e-5: the runtime accumulates in f64 but runs the layers in f32.
        let delta_bpd = (verdict.bits_per_dim - expected.bits_per_dim).abs();
        let delta_ll = (verdict.log_likelihood - expected.log_likelihood).abs();
        assert!(
            delta_bpd <= BPD_TOLERANCE,
            "frame {n} {pixels:?}: runtime ll {}, oracle ll {} (|delta ll| {delta_ll:e}, \
             |delta bpd| {delta_bpd:e})",
            verdict.log_likelihood,
            expected.log_likelihood,
        );
        assert!(expected.log_likelihood.is_finite());
    }
    // The same through the generic helper, which also checks the verdict's consistency.
    check_against_oracle("tiny_model", &model, &frames);
}

#[test]
fn tiny_embedding_model_matches_the_oracle() {
    let model = flowgate_shared::example::tiny_embedding_model();
    let frames = test_frames(16, 0xe4be_0001, 50);
    let worst = check_against_oracle("tiny_embedding_model", &model, &frames);
    eprintln!("tiny_embedding_model: worst |delta bpd| {worst:e}");
    // Not vacuous: the frames' scores differ by far more than the tolerance.
    let scores: Vec<f64> = frames
        .iter()
        .map(|f| oracle(&model, f).bits_per_dim)
        .collect();
    let spread = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
        - scores.iter().cloned().fold(f64::INFINITY, f64::min);
    assert!(spread > 100.0 * BPD_TOLERANCE, "spread {spread}");
}

/// The oracle is not vacuous: on the example model it tells different frames apart by much
/// more than the tolerance.
#[test]
fn the_oracle_discriminates() {
    let model = tiny_model();
    let frames = test_frames(16, 7, 10);
    let scores: Vec<f64> = frames
        .iter()
        .map(|f| oracle(&model, f).bits_per_dim)
        .collect();
    for a in 0..scores.len() {
        for b in a + 1..scores.len() {
            assert!((scores[a] - scores[b]).abs() > 100.0 * BPD_TOLERANCE);
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. One layer kind at a time.
// ---------------------------------------------------------------------------------------

/// A spatial coupling on a (c, h, w) input with a one-conv network.
fn single_spatial_coupling(mask: Mask, c: u32, h: u32, w: u32, seed: u64) -> Model<'static> {
    let mut rng = Rng(seed);
    let net = vec![node(rng.conv(2 * c, c, (3, 3), 1, 1), 0, 1)];
    let scale = rng.tensor(&[c], 1.5);
    model(c, h, w, 0.05, vec![coupling(mask, scale, net)])
}

#[test]
fn coupling_checkerboard() {
    for reverse in [false, true] {
        for (c, h, w) in [(1, 4, 4), (3, 4, 4), (1, 5, 3)] {
            let model = single_spatial_coupling(Mask::Checkerboard { reverse }, c, h, w, 11);
            let frames = test_frames((c * h * w) as usize, 1, 12);
            check_against_oracle(
                &format!("checkerboard reverse={reverse} {c}x{h}x{w}"),
                &model,
                &frames,
            );
        }
    }
}

#[test]
fn coupling_horizontal() {
    for reverse in [false, true] {
        for (c, h, w) in [(1, 4, 4), (3, 4, 4), (1, 5, 3)] {
            let model = single_spatial_coupling(Mask::Horizontal { reverse }, c, h, w, 12);
            let frames = test_frames((c * h * w) as usize, 2, 12);
            check_against_oracle(
                &format!("horizontal reverse={reverse} {c}x{h}x{w}"),
                &model,
                &frames,
            );
        }
    }
}

#[test]
fn coupling_quadrant_every_pair() {
    for read in 0..4u8 {
        for write in 0..4u8 {
            if read == write {
                continue;
            }
            let mask = Mask::Quadrant {
                read: quadrant_of_number(read),
                write: quadrant_of_number(write),
            };
            for (c, h, w) in [(1, 4, 4), (3, 4, 4), (1, 5, 7)] {
                let model = single_spatial_coupling(mask, c, h, w, 13 + u64::from(read));
                let frames = test_frames((c * h * w) as usize, 3, 8);
                check_against_oracle(
                    &format!("quadrant read {read} write {write} {c}x{h}x{w}"),
                    &model,
                    &frames,
                );
            }
        }
    }
}

/// The oracle's own quadrant numbering agrees with the documented one.
#[test]
fn quadrant_numbering_is_clockwise() {
    for q in 0..4u8 {
        assert_eq!(quadrant_of_number(q).index(), q);
        assert_eq!(Quadrant::from_index(q), quadrant_of_number(q));
    }
    // 4 x 4: (0, 0) top-left, (0, 3) top-right, (3, 3) bottom-right, (3, 0) bottom-left.
    assert_eq!(quadrant_number(0, 0, 4, 4), 0);
    assert_eq!(quadrant_number(0, 3, 4, 4), 1);
    assert_eq!(quadrant_number(3, 3, 4, 4), 2);
    assert_eq!(quadrant_number(3, 0, 4, 4), 3);
    // 5 x 7 splits at row 2 and column 3.
    assert_eq!(quadrant_number(1, 2, 5, 7), 0);
    assert_eq!(quadrant_number(2, 2, 5, 7), 3);
    assert_eq!(quadrant_number(1, 3, 5, 7), 1);
}

/// A squeeze changes the activation's channel order, which only layers after it can see:
/// the standard normal prior alone is invariant under the permutation. So the squeeze is
/// followed by an ActNorm with distinct per-channel parameters.
#[test]
fn squeeze() {
    for c in [1u32, 3] {
        let mut rng = Rng(21);
        let actnorm = FlowLayer::ActNorm(ActNorm {
            bias: rng.tensor(&[4 * c], 1.0),
            log_scale: rng.tensor(&[4 * c], 0.5),
        });
        let model = model(c, 4, 4, 0.05, vec![FlowLayer::Squeeze, actnorm]);
        let frames = test_frames((c * 16) as usize, 4, 12);
        check_against_oracle(&format!("squeeze {c}x4x4 + actnorm"), &model, &frames);
    }
}

/// Squeeze then unsqueeze is the identity: a checkerboard coupling after the pair must see
/// the original pixel layout.
#[test]
fn squeeze_unsqueeze_pair() {
    let mut rng = Rng(22);
    let net = vec![node(rng.conv(2, 1, (3, 3), 1, 1), 0, 1)];
    let scale = rng.tensor(&[1], 1.5);
    let flow = vec![
        FlowLayer::Squeeze,
        FlowLayer::Unsqueeze,
        coupling(
            Mask::Checkerboard { reverse: false },
            scale.clone(),
            net.clone(),
        ),
    ];
    let pair = model(1, 4, 4, 0.05, flow);
    let frames = test_frames(16, 5, 12);
    check_against_oracle("squeeze + unsqueeze + checkerboard", &pair, &frames);

    // And it scores exactly like the coupling alone.
    let alone = model(
        1,
        4,
        4,
        0.05,
        vec![coupling(Mask::Checkerboard { reverse: false }, scale, net)],
    );
    for levels in &frames {
        let (a, b) = (oracle(&pair, levels), oracle(&alone, levels));
        assert!((a.log_likelihood - b.log_likelihood).abs() < 1e-12);
    }
}

/// Unsqueeze alone, on a squeezed activation of a 3-channel input: a per-channel ActNorm
/// before it makes the channel order visible.
#[test]
fn unsqueeze_after_actnorm() {
    let mut rng = Rng(23);
    let flow = vec![
        FlowLayer::Squeeze,
        FlowLayer::ActNorm(ActNorm {
            bias: rng.tensor(&[12], 1.0),
            log_scale: rng.tensor(&[12], 0.5),
        }),
        FlowLayer::Unsqueeze,
        FlowLayer::ActNorm(ActNorm {
            bias: rng.tensor(&[3], 1.0),
            log_scale: rng.tensor(&[3], 0.5),
        }),
        coupling(
            Mask::Horizontal { reverse: false },
            rng.tensor(&[3], 1.0),
            vec![node(rng.conv(6, 3, (3, 3), 1, 1), 0, 1)],
        ),
    ];
    let model = model(3, 4, 4, 0.05, flow);
    check_against_oracle(
        "squeeze, actnorm, unsqueeze",
        &model,
        &test_frames(48, 6, 12),
    );
}

#[test]
fn factor_out_after_squeeze() {
    for keep in [1u32, 2, 3] {
        let mut rng = Rng(24);
        let flow = vec![
            FlowLayer::Squeeze,
            FlowLayer::FactorOut {
                keep_channels: keep,
            },
            // Makes the choice of kept channels visible.
            FlowLayer::ActNorm(ActNorm {
                bias: rng.tensor(&[keep], 1.0),
                log_scale: rng.tensor(&[keep], 0.5),
            }),
        ];
        let model = model(1, 4, 4, 0.05, flow);
        check_against_oracle(
            &format!("squeeze + factor-out keep {keep}"),
            &model,
            &test_frames(16, 7, 12),
        );
    }
}

#[test]
fn actnorm() {
    for c in [1u32, 3] {
        let mut rng = Rng(25);
        let flow = vec![FlowLayer::ActNorm(ActNorm {
            bias: rng.tensor(&[c], 1.0),
            log_scale: rng.tensor(&[c], 0.7),
        })];
        let model = model(c, 4, 5, 0.05, flow);
        check_against_oracle(
            &format!("actnorm {c}x4x5"),
            &model,
            &test_frames((c * 20) as usize, 8, 12),
        );
    }
}

/// A lower-triangular matrix, so `ln |det W|` is the sum of `ln |diagonal|`.
fn triangular(c: usize, diagonal: &[f32], rng: &mut Rng) -> (Vec<f32>, f32) {
    let mut values = vec![0f32; c * c];
    for o in 0..c {
        for i in 0..c {
            values[o * c + i] = match i.cmp(&o) {
                std::cmp::Ordering::Less => rng.uniform(0.5),
                std::cmp::Ordering::Equal => diagonal[o],
                std::cmp::Ordering::Greater => 0.0,
            };
        }
    }
    let log_abs_det = diagonal
        .iter()
        .map(|d| f64::from(d.abs()).ln())
        .sum::<f64>();
    (values, log_abs_det as f32)
}

#[test]
fn invertible_conv_1x1() {
    let mut rng = Rng(26);
    // 3 channels at the input.
    let (values, log_abs_det) = triangular(3, &[1.5, -0.5, 2.0], &mut rng);
    let flow = vec![FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
        weight: Tensor::from_f32(&[3, 3], &values).expect("9 values"),
        log_abs_det,
    })];
    let model3 = model(3, 4, 4, 0.05, flow);
    check_against_oracle("1x1 conv 3 channels", &model3, &test_frames(48, 9, 12));

    // 4 channels after a squeeze, followed by a per-channel ActNorm (the prior alone would
    // not see a wrong channel order among outputs of equal scale).
    let (values, log_abs_det) = triangular(4, &[1.0, 2.0, 0.5, -1.5], &mut rng);
    let flow = vec![
        FlowLayer::Squeeze,
        FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
            weight: Tensor::from_f32(&[4, 4], &values).expect("16 values"),
            log_abs_det,
        }),
        FlowLayer::ActNorm(ActNorm {
            bias: rng.tensor(&[4], 1.0),
            log_scale: rng.tensor(&[4], 0.5),
        }),
    ];
    let model4 = model(1, 4, 4, 0.05, flow);
    check_against_oracle(
        "squeeze + 1x1 conv 4 channels",
        &model4,
        &test_frames(16, 10, 12),
    );

    // The stored log_abs_det is what counts (not recomputed): a permutation matrix with a
    // deliberately stated log-determinant of 0.25 per pixel.
    let permutation = [0f32, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
    let flow = vec![FlowLayer::InvertibleConv1x1(InvertibleConv1x1 {
        weight: Tensor::from_f32(&[3, 3], &permutation).expect("9 values"),
        log_abs_det: 0.25,
    })];
    let stated = model(3, 4, 4, 0.05, flow);
    let plain = model(3, 4, 4, 0.05, vec![]);
    let bytes = (
        encode(&stated).expect("encodes"),
        encode(&plain).expect("encodes"),
    );
    let gates = (
        Gate::new(&bytes.0).expect("loads"),
        Gate::new(&bytes.1).expect("loads"),
    );
    for levels in test_frames(48, 11, 4) {
        let difference = gate_score(&gates.0, &levels).log_likelihood
            - gate_score(&gates.1, &levels).log_likelihood;
        assert!(
            (difference - 16.0 * 0.25).abs() < 1e-9,
            "difference {difference}"
        );
    }
}

#[test]
fn coupling_channel_wise() {
    for reverse in [false, true] {
        let mut rng = Rng(27);
        let flow = vec![
            FlowLayer::Squeeze,
            coupling(
                Mask::ChannelWise { reverse },
                rng.tensor(&[2], 1.5),
                vec![node(rng.conv(4, 2, (3, 3), 1, 1), 0, 1)],
            ),
        ];
        let model1 = model(1, 4, 4, 0.05, flow);
        check_against_oracle(
            &format!("squeeze + channel-wise reverse={reverse}"),
            &model1,
            &test_frames(16, 12, 12),
        );

        // 12 channels (3-channel input squeezed), int8 network weights.
        let flow = vec![
            FlowLayer::Squeeze,
            coupling(
                Mask::ChannelWise { reverse },
                rng.tensor(&[6], 1.5),
                vec![node(
                    NetOp::Conv2d(Conv2d {
                        weight: rng.tensor_i8(&[12, 6, 3, 3], 0.3),
                        bias: rng.tensor(&[12], 0.1),
                        stride: 1,
                        padding: 1,
                    }),
                    0,
                    1,
                )],
            ),
        ];
        let model3 = model(3, 4, 6, 0.05, flow);
        check_against_oracle(
            &format!("squeeze 3x4x6 + channel-wise int8 reverse={reverse}"),
            &model3,
            &test_frames(72, 13, 12),
        );
    }
}

/// A checkerboard coupling on a 1 x h x w input around the network `net` (whose output
/// must be (2, h, w)).
fn net_model(h: u32, w: u32, seed: u64, net: Vec<NetNode<'static>>) -> Model<'static> {
    let mut rng = Rng(seed);
    let scale = rng.tensor(&[1], 1.5);
    model(
        1,
        h,
        w,
        0.05,
        vec![coupling(Mask::Checkerboard { reverse: false }, scale, net)],
    )
}

#[test]
fn net_conv2d_padding_stride_and_rectangular_kernels() {
    let mut rng = Rng(31);
    // (3 x 1) kernel, padding 1: (1, 4, 4) -> (3, 4, 6); then (1 x 3), no padding: -> (2, 4, 4).
    let net = vec![
        node(rng.conv(3, 1, (3, 1), 1, 1), 0, 1),
        node(rng.conv(2, 3, (1, 3), 1, 0), 1, 2),
    ];
    check_against_oracle(
        "conv rectangular kernels",
        &net_model(4, 4, 1, net),
        &test_frames(16, 14, 12),
    );
    // Stride 2 with padding on an odd size: (1, 5, 7) -> (3, 3, 4) -> conv-transpose back.
    let net = vec![
        node(rng.conv(3, 1, (3, 3), 2, 1), 0, 1),
        node(rng.conv_transpose(3, 2, 3, 2, 1, 0), 1, 2),
    ];
    check_against_oracle(
        "conv stride 2 + conv-transpose",
        &net_model(5, 7, 2, net),
        &test_frames(35, 15, 12),
    );
    // Stride 3, no padding, 5 x 5 kernel on 8 x 8: -> (2, 2, 2); back with a stride-4,
    // padding-0 transpose: (2 - 1) * 4 + 4 = 8.
    let net = vec![
        node(rng.conv(2, 1, (5, 5), 3, 0), 0, 1),
        node(rng.conv_transpose(2, 2, 4, 4, 0, 0), 1, 2),
    ];
    check_against_oracle(
        "conv stride 3",
        &net_model(8, 8, 3, net),
        &test_frames(64, 16, 8),
    );
}

/// Shapes that exercise the convolution kernels' layout (kernels/conv.rs): flat planes whose
/// length is not a whole number of tiles, tiles that run across rows, blocks of 4 output
/// channels with a remainder, the phase split of strided convolutions on odd and wide
/// planes, transposed phases that no tap reaches (kernel smaller than the stride), and long
/// runs of input channels.
#[test]
fn net_wide_planes_on_every_kernel_path() {
    let mut rng = Rng(34);
    // 19 wide: two full 8-lane vectors and a tail of 3; 6 channels: one block of 4, then 2.
    let net = vec![
        node(rng.conv(6, 1, (3, 3), 1, 1), 0, 1),
        node(NetOp::Relu, 1, 1),
        node(rng.conv(2, 6, (3, 3), 1, 1), 1, 2),
    ];
    check_against_oracle(
        "unit stride 9x19",
        &net_model(9, 19, 35, net),
        &test_frames(9 * 19, 21, 4),
    );
    // Stride-2 phase splits and transposed phases on even, wide and odd planes.
    for (h, w) in [(6u32, 40u32), (6, 150), (10, 14)] {
        let net = vec![
            node(rng.conv(5, 1, (4, 4), 2, 1), 0, 1),
            node(rng.conv_transpose(5, 2, 4, 2, 1, 0), 1, 2),
        ];
        check_against_oracle(
            &format!("stride 2 and transpose {h}x{w}"),
            &net_model(h, w, 36, net),
            &test_frames((h * w) as usize, 22, 4),
        );
    }
}

#[test]
fn net_long_channel_runs_and_phases_no_tap_reaches() {
    let mut rng = Rng(37);
    // 1x1 convs over 17 and 25 channels (runs of weights past any register block), then a
    // 3x3 back to 2 channels.
    let net = vec![
        node(rng.conv(17, 1, (1, 1), 1, 0), 0, 1),
        node(NetOp::Relu, 1, 1),
        node(rng.conv(25, 17, (1, 1), 1, 0), 1, 2),
        node(rng.conv(2, 25, (3, 3), 1, 1), 2, 3),
    ];
    check_against_oracle(
        "1x1 over 17 and 25 channels",
        &net_model(5, 6, 38, net),
        &test_frames(30, 23, 6),
    );
    // A 2x2 transpose with stride 3: output phase 2 of each axis gets no tap, only the bias.
    // (1, 6, 6) -> conv k2 s3: (3, 2, 2) -> transpose k2 s3, output padding 1:
    // (2 - 1) * 3 + 2 + 1 = 6.
    let net = vec![
        node(rng.conv(3, 1, (2, 2), 3, 0), 0, 1),
        node(rng.conv_transpose(3, 2, 2, 3, 0, 1), 1, 2),
    ];
    check_against_oracle(
        "transpose k2 s3: a phase without taps",
        &net_model(6, 6, 39, net),
        &test_frames(36, 24, 8),
    );
}

#[test]
fn net_conv_transpose_padding_and_output_padding() {
    let mut rng = Rng(32);
    // (1, 4, 4) -> conv k3 s2 p1 -> (2, 2, 2) -> transpose k3 s2 p1 op1 -> (2, 4, 4).
    let net = vec![
        node(rng.conv(2, 1, (3, 3), 2, 1), 0, 1),
        node(rng.conv_transpose(2, 2, 3, 2, 1, 1), 1, 2),
    ];
    check_against_oracle(
        "conv-transpose output_padding 1",
        &net_model(4, 4, 4, net),
        &test_frames(16, 17, 12),
    );
    // k4 s2 p1: (2 - 1) * 2 + 4 - 2 = 4.
    let net = vec![
        node(rng.conv(3, 1, (2, 2), 2, 0), 0, 1),
        node(rng.conv_transpose(3, 2, 4, 2, 1, 0), 1, 2),
    ];
    check_against_oracle(
        "conv-transpose k4 s2 p1",
        &net_model(4, 4, 5, net),
        &test_frames(16, 18, 12),
    );
    // Stride 3 with output padding 2 and padding 2: (6, 2, 2) -> (2 - 1) * 3 + 5 + 2 - 4 = 6.
    let net = vec![
        node(rng.conv(6, 1, (3, 3), 3, 0), 0, 1),
        node(rng.conv_transpose(6, 2, 5, 3, 2, 2), 1, 2),
    ];
    check_against_oracle(
        "conv-transpose s3 p2 op2",
        &net_model(6, 6, 6, net),
        &test_frames(36, 19, 12),
    );
    // Stride 1 transpose, padding 1: same size.
    let net = vec![node(rng.conv_transpose(1, 2, 3, 1, 1, 0), 0, 1)];
    check_against_oracle(
        "conv-transpose s1 p1",
        &net_model(4, 4, 7, net),
        &test_frames(16, 20, 12),
    );
}

#[test]
fn net_linear_and_reshape() {
    let mut rng = Rng(33);
    let net = vec![
        node(rng.linear(12, 16), 0, 1),
        node(NetOp::Tanh, 1, 1),
        node(rng.linear(32, 12), 1, 2),
        node(
            NetOp::Reshape {
                channels: 2,
                height: 4,
                width: 4,
            },
            2,
            3,
        ),
    ];
    check_against_oracle(
        "linear, tanh, linear, reshape",
        &net_model(4, 4, 8, net),
        &test_frames(16, 21, 12),
    );
    // Reshape in place, and a linear layer on a reshaped (4, 2, 2) activation.
    let net = vec![
        node(
            NetOp::Reshape {
                channels: 4,
                height: 2,
                width: 2,
            },
            0,
            0,
        ),
        node(rng.linear(32, 16), 0, 1),
        node(
            NetOp::Reshape {
                channels: 2,
                height: 4,
                width: 4,
            },
            1,
            1,
        ),
    ];
    check_against_oracle(
        "reshape in place, linear",
        &net_model(4, 4, 9, net),
        &test_frames(16, 22, 12),
    );
}

#[test]
fn net_elementwise_ops() {
    let mut rng = Rng(34);
    let net = vec![
        node(NetOp::ConcatNegated, 0, 1),
        node(
            NetOp::ChannelAffine(ChannelAffine {
                scale: rng.tensor(&[2], 1.5),
                shift: rng.tensor(&[2], 0.5),
            }),
            1,
            2,
        ),
        node(NetOp::Relu, 2, 3),
        node(NetOp::Tanh, 3, 4),
        node(
            NetOp::ChannelAffine(ChannelAffine {
                scale: rng.tensor(&[2], 1.5),
                shift: rng.tensor(&[2], 0.5),
            }),
            4,
            4,
        ),
    ];
    check_against_oracle(
        "concat-negated, affine, relu, tanh, affine in place",
        &net_model(4, 4, 10, net),
        &test_frames(16, 23, 12),
    );
}

#[test]
fn net_add_and_slot_reuse() {
    let mut rng = Rng(35);
    // Add of two different slots into a third; x + x; in place; and a slot overwritten
    // with a different shape before it is read again.
    let net = vec![
        node(rng.conv(2, 1, (3, 3), 1, 1), 0, 1),
        node(rng.conv(2, 1, (1, 1), 1, 0), 0, 2),
        node(NetOp::Add { other: 2 }, 1, 3),
        node(NetOp::Add { other: 3 }, 3, 4),
        node(NetOp::Add { other: 1 }, 4, 4),
        node(NetOp::Relu, 4, 4),
        // Slot 1 now holds something of another shape.
        node(
            NetOp::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
            4,
            1,
        ),
        node(rng.conv_transpose(2, 2, 2, 2, 0, 0), 1, 5),
        node(NetOp::Add { other: 2 }, 5, 6),
    ];
    check_against_oracle(
        "add and slot reuse",
        &net_model(4, 4, 11, net),
        &test_frames(16, 24, 12),
    );
    // Add whose other operand is its own input, writing elsewhere.
    let net = vec![
        node(rng.conv(2, 1, (3, 3), 1, 1), 0, 1),
        node(NetOp::Add { other: 1 }, 1, 2),
    ];
    check_against_oracle(
        "add input to itself",
        &net_model(4, 4, 12, net),
        &test_frames(16, 25, 8),
    );
}

#[test]
fn net_pooling() {
    let mut rng = Rng(36);
    // MaxPool k2 s2 -> (1, 3, 3) on 6x6; AvgPool k3 s1 on 6x6 -> (1, 4, 4)... bring both back.
    let net = vec![
        node(
            NetOp::MaxPool2d {
                kernel: 2,
                stride: 2,
            },
            0,
            1,
        ),
        node(rng.conv_transpose(1, 2, 2, 2, 0, 0), 1, 2),
        node(
            NetOp::AvgPool2d {
                kernel: 3,
                stride: 1,
            },
            0,
            3,
        ),
        node(rng.conv_transpose(1, 2, 3, 1, 0, 0), 3, 4),
        node(NetOp::Add { other: 2 }, 4, 5),
    ];
    check_against_oracle(
        "max-pool and avg-pool",
        &net_model(6, 6, 13, net),
        &test_frames(36, 26, 12),
    );
    // Overlapping max windows (k3 s1) and strided average windows that skip pixels (k2 s3):
    // 7x7 -> (1, 5, 5) and (1, 2, 2).
    let net = vec![
        node(
            NetOp::MaxPool2d {
                kernel: 3,
                stride: 1,
            },
            0,
            1,
        ),
        node(rng.conv_transpose(1, 2, 3, 1, 0, 0), 1, 2),
        node(
            NetOp::AvgPool2d {
                kernel: 2,
                stride: 3,
            },
            0,
            3,
        ),
        node(rng.linear(98, 4), 3, 4),
        node(
            NetOp::Reshape {
                channels: 2,
                height: 7,
                width: 7,
            },
            4,
            4,
        ),
        node(NetOp::Add { other: 2 }, 4, 5),
    ];
    check_against_oracle(
        "overlapping and strided pools",
        &net_model(7, 7, 14, net),
        &test_frames(49, 27, 12),
    );
    // Global average pooling of a multi-channel activation.
    let net = vec![
        node(rng.conv(3, 1, (3, 3), 1, 1), 0, 1),
        node(NetOp::GlobalAvgPool, 1, 2),
        node(rng.linear(32, 3), 2, 3),
        node(
            NetOp::Reshape {
                channels: 2,
                height: 4,
                width: 4,
            },
            3,
            3,
        ),
    ];
    check_against_oracle(
        "global average pool",
        &net_model(4, 4, 15, net),
        &test_frames(16, 28, 12),
    );
}

// ---------------------------------------------------------------------------------------
// 3. A closed form, no oracle.
// ---------------------------------------------------------------------------------------

#[test]
fn no_flow_layers_closed_form() {
    for (alpha, c) in [(0.05f32, 1u32), (0.2, 3), (1e-3, 1)] {
        let model = model(c, 3, 5, alpha, vec![]);
        let bytes = encode(&model).expect("encodes");
        let gate = Gate::new(&bytes).expect("loads");
        let a = f64::from(alpha);
        for levels in test_frames((c * 15) as usize, 29, 10) {
            let mut expected = 0.0f64;
            for &x in &levels {
                let z = (f64::from(x) + 0.5) / 256.0;
                let p = a + (1.0 - 2.0 * a) * z;
                let y = (p / (1.0 - p)).ln();
                let log_normal = -0.5 * y * y - 0.5 * (2.0 * std::f64::consts::PI).ln();
                expected +=
                    log_normal + (1.0 - 2.0 * a).ln() - p.ln() - (1.0 - p).ln() - 256f64.ln();
            }
            let verdict = gate_score(&gate, &levels);
            let d = levels.len() as f64;
            let delta_bpd =
                (verdict.log_likelihood - expected).abs() / (d * std::f64::consts::LN_2);
            assert!(
                delta_bpd <= BPD_TOLERANCE,
                "alpha {alpha}, {levels:?}: runtime {}, closed form {expected}",
                verdict.log_likelihood
            );
            assert!(
                verdict.decision.is_none(),
                "an uncalibrated model decides nothing"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// 4. Frame conversion: area-average resize and luma.
// ---------------------------------------------------------------------------------------

fn score_frame(gate: &Gate<'_>, data: &[u8], w: u32, h: u32, format: PixelFormat) -> Verdict {
    let frame = Frame::packed(data, w, h, format).expect("a valid frame");
    let mut scratch = vec![0f32; gate.scratch_len()];
    gate.score(&frame, &mut scratch).expect("scored")
}

#[test]
fn block_constant_frame_resizes_exactly() {
    let model = tiny_model();
    assert_eq!(model.input.resize, Resize::AreaAverage);
    let bytes = encode(&model).expect("encodes");
    let gate = Gate::new(&bytes).expect("loads");
    let mut rng = Rng(41);
    for _ in 0..20 {
        let small = rng.frame(16);
        let mut large = vec![0u8; 64];
        for y in 0..8 {
            for x in 0..8 {
                large[y * 8 + x] = small[(y / 2) * 4 + x / 2];
            }
        }
        let direct = score_frame(&gate, &small, 4, 4, PixelFormat::Gray8);
        let resized = score_frame(&gate, &large, 8, 8, PixelFormat::Gray8);
        assert_eq!(direct, resized, "the 8x8 frame of 2x2 blocks of {small:?}");
    }
}

#[test]
fn limited_range_luma_is_expanded_to_full_range() {
    let bytes = encode(&tiny_model()).expect("encodes");
    let gate = Gate::new(&bytes).expect("loads");
    let mut scratch = vec![0f32; gate.scratch_len()];
    let mut rng = Rng(43);
    for _ in 0..20 {
        // Studio-range luma 16..=235 (and a few values outside, which clamp).
        let limited: Vec<u8> = (0..16).map(|_| rng.level()).collect();
        let full: Vec<u8> = limited
            .iter()
            .map(|&v| {
                ((f64::from(v) - 16.0) * 255.0 / 219.0)
                    .clamp(0.0, 255.0)
                    .round() as u8
            })
            .collect();
        let expected = score_frame(&gate, &full, 4, 4, PixelFormat::Gray8);
        // NV12 and YUYV luma the same way; NV12 here holds only its luma plane.
        let yuyv: Vec<u8> = limited.iter().flat_map(|&y| [y, 128]).collect();
        for (data, format) in [
            (&limited, PixelFormat::Gray8),
            (&limited, PixelFormat::Nv12),
            (&yuyv, PixelFormat::Yuyv),
        ] {
            let frame = Frame::packed(data, 4, 4, format)
                .expect("a valid frame")
                .with_luma_range(LumaRange::Limited);
            let verdict = gate.score(&frame, &mut scratch).expect("scores");
            assert_eq!(verdict, expected, "{format:?} {limited:?}");
        }
        // Full range (the default) reads the values as they are.
        let as_is = score_frame(&gate, &limited, 4, 4, PixelFormat::Gray8);
        if limited != full {
            assert_ne!(as_is.log_likelihood, expected.log_likelihood);
        }
    }
}

/// Random RGB values whose BT.601 luma (the mean over `count` pixels) is at least 0.01 from a
/// rounding tie, so f32 and f64 arithmetic round it the same way; returns the pixels and the
/// rounded level.
fn rgb_block(rng: &mut Rng, count: usize) -> (Vec<[u8; 3]>, u8) {
    loop {
        let pixels: Vec<[u8; 3]> = (0..count)
            .map(|_| [rng.level(), rng.level(), rng.level()])
            .collect();
        let mean = pixels
            .iter()
            .map(|&[r, g, b]| 0.299 * f64::from(r) + 0.587 * f64::from(g) + 0.114 * f64::from(b))
            .sum::<f64>()
            / count as f64;
        if (mean - mean.floor() - 0.5).abs() > 0.01 {
            return (pixels, mean.round() as u8);
        }
    }
}

#[test]
fn rgb_frames_use_bt601_luma() {
    let model = tiny_model();
    let bytes = encode(&model).expect("encodes");
    let gate = Gate::new(&bytes).expect("loads");
    let mut rng = Rng(42);
    for _ in 0..20 {
        // Same size: one RGB pixel per level.
        let mut rgb = vec![0u8; 48];
        let mut bgr = vec![0u8; 48];
        let mut levels = vec![0u8; 16];
        for p in 0..16 {
            let (pixels, level) = rgb_block(&mut rng, 1);
            let [r, g, b] = pixels[0];
            rgb[3 * p..3 * p + 3].copy_from_slice(&[r, g, b]);
            bgr[3 * p..3 * p + 3].copy_from_slice(&[b, g, r]);
            levels[p] = level;
        }
        let gray = score_frame(&gate, &levels, 4, 4, PixelFormat::Gray8);
        assert_eq!(score_frame(&gate, &rgb, 4, 4, PixelFormat::Rgb8), gray);
        assert_eq!(score_frame(&gate, &bgr, 4, 4, PixelFormat::Bgr8), gray);

        // 8x8 RGB -> 4x4: the luma of each source pixel, averaged over the 2x2 block, then
        // rounded to the nearest level.
        let mut large = vec![0u8; 8 * 8 * 3];
        for by in 0..4 {
            for bx in 0..4 {
                let (pixels, level) = rgb_block(&mut rng, 4);
                for (k, rgb) in pixels.iter().enumerate() {
                    let (y, x) = (2 * by + k / 2, 2 * bx + k % 2);
                    large[3 * (y * 8 + x)..3 * (y * 8 + x) + 3].copy_from_slice(rgb);
                }
                levels[by * 4 + bx] = level;
            }
        }
        let gray = score_frame(&gate, &levels, 4, 4, PixelFormat::Gray8);
        assert_eq!(score_frame(&gate, &large, 8, 8, PixelFormat::Rgb8), gray);
    }
}

/// The typicality score: `|bpd - center|`, so a threshold rejects frames far more likely
/// than normal ones as well as far less likely ones.
#[test]
fn typical_score_is_two_sided() {
    let mut plain = model(1, 2, 4, 0.05, Vec::new());
    let frames = test_frames(8, 11, 4);
    let plain_bytes = encode(&plain).expect("valid");
    let plain_gate = Gate::new(&plain_bytes).expect("loads");
    let bpd: Vec<f64> = frames
        .iter()
        .map(|frame| gate_score(&plain_gate, frame).bits_per_dim)
        .collect();
    let center = bpd[3] as f32;
    plain.score = ScoreKind::TypicalBitsPerDim { center };
    plain.threshold = Some(Threshold {
        ood_score: 0.01,
        target_false_reject_rate: 0.01,
        calibration_frames: 1,
        quantiles: Default::default(),
    });
    let bytes = encode(&plain).expect("valid");
    let gate = Gate::new(&bytes).expect("loads");
    for (frame, expected_bpd) in frames.iter().zip(&bpd) {
        let verdict = gate_score(&gate, frame);
        assert_eq!(verdict.bits_per_dim, *expected_bpd);
        let expected = (expected_bpd - f64::from(center)).abs();
        assert!((verdict.ood_score - expected).abs() < 1e-12);
        let reject = expected > 0.01;
        assert_eq!(verdict.decision == Some(Decision::Reject), reject);
    }
    // Both sides of the band are rejected: black (very likely) and a random frame.
    let below = bpd.iter().any(|&b| b < f64::from(center) - 0.01);
    let above = bpd.iter().any(|&b| b > f64::from(center) + 0.01);
    assert!(
        below && above,
        "the frames must straddle the centre: {bpd:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 5. The native-resolution detail branch.
// ---------------------------------------------------------------------------------------

/// Where patch `index` of a `cols x rows` grid sits in a `fw x fh` frame, computed naively
/// from the format's words: centred on its cell's centre (rounded down), moved inside the
/// frame at the edges.
fn naive_patch_origin(
    fw: usize,
    fh: usize,
    cols: usize,
    rows: usize,
    p: usize,
    index: usize,
) -> (usize, usize) {
    let (row, col) = (index / cols, index % cols);
    let centre_x = ((col as f64 + 0.5) * fw as f64 / cols as f64).floor() as i64;
    let centre_y = ((row as f64 + 0.5) * fh as f64 / rows as f64).floor() as i64;
    let start = |centre: i64, extent: usize| {
        (centre - (p / 2) as i64).clamp(0, (extent - p) as i64) as usize
    };
    (start(centre_x, fw), start(centre_y, fh))
}

#[test]
fn detail_branch_matches_the_oracle_on_its_patches() {
    let model = flowgate_shared::example::tiny_detail_model();
    let detail = model.detail.clone().expect("a detail branch");
    let patch_model = flowgate_shared::decode_payload(detail.patch_model.as_slice())
        .expect("the patch model decodes")
        .model;
    let (fw, fh) = (detail.frame_width as usize, detail.frame_height as usize);
    let (cols, rows) = (detail.columns as usize, detail.rows as usize);
    let p = patch_model.input.width as usize;
    let bytes = encode(&model).expect("encodes");
    let gate = Gate::new(&bytes).expect("loads");
    // The same main flow without the branch scores the thumbnail.
    let plain_bytes = encode(&Model {
        detail: None,
        ..model.clone()
    })
    .expect("encodes");
    let plain = Gate::new(&plain_bytes).expect("loads");
    let mut worst = 0.0f64;
    for (n, frame) in test_frames(fw * fh, 83, 6).iter().enumerate() {
        let thumbnail = score_frame(&plain, frame, fw as u32, fh as u32, PixelFormat::Gray8);
        let mut patch_bits = 0.0;
        for index in 0..cols * rows {
            let (x0, y0) = naive_patch_origin(fw, fh, cols, rows, p, index);
            let levels: Vec<u8> = (0..p * p)
                .map(|k| frame[(y0 + k / p) * fw + x0 + k % p])
                .collect();
            patch_bits += oracle(&patch_model, &levels).bits_per_dim;
        }
        let mean = patch_bits / (cols * rows) as f64;
        let frame_z =
            (thumbnail.ood_score - f64::from(detail.frame.center)) / f64::from(detail.frame.spread);
        let detail_z =
            ((mean - f64::from(detail.detail.center)) / f64::from(detail.detail.spread)).abs();
        let expected = frame_z.max(detail_z);
        for path in KernelPath::ALL.into_iter().filter(|path| path.available()) {
            let gate = gate.clone().with_kernels(path).expect("available");
            let verdict = score_frame(&gate, frame, fw as u32, fh as u32, PixelFormat::Gray8);
            let got = verdict.detail_bits_per_dim.expect("the branch scored");
            let delta = (got - mean).abs();
            assert!(
                delta <= BPD_TOLERANCE,
                "frame {n} [{path}]: patches {got} vs oracle {mean}"
            );
            // Standardising divides by spreads of 0.25 and 0.5: at most 4x the bpd tolerance.
            assert!(
                (verdict.ood_score - expected).abs() <= 4.0 * BPD_TOLERANCE,
                "frame {n} [{path}]: combined {} vs {expected}",
                verdict.ood_score
            );
            let thumbnail_here = score_frame(
                &plain.clone().with_kernels(path).expect("available"),
                frame,
                fw as u32,
                fh as u32,
                PixelFormat::Gray8,
            );
            assert_eq!(
                verdict.bits_per_dim, thumbnail_here.bits_per_dim,
                "frame {n} [{path}]: the thumbnail scores as without the branch"
            );
            let threshold = f64::from(model.threshold.as_ref().unwrap().ood_score);
            let decision = if verdict.ood_score > threshold {
                Decision::Reject
            } else {
                Decision::Accept
            };
            assert_eq!(verdict.decision, Some(decision), "frame {n} [{path}]");
            worst = worst.max(delta);
        }
    }
    eprintln!("detail branch: worst |delta bpd| {worst:e}");
}
