//! The product's own kernels: the coupling networks' operations and the network runner.
//!
//! `conv` and `transposed` hold the convolutions, `ops` the other operations; `lanes` the
//! convolutions' inner loop once per instruction set, picked by a [`KernelPath`] (the scalar
//! one is the reference).

mod blocks;
pub mod conv;
pub mod lanes;
pub mod ops;
pub mod path;
pub mod transposed;
pub mod weights;

pub use path::KernelPath;

use flowgate_shared::validate::{SlotPlan, infer_op};
use flowgate_shared::{Dims, NetNode, NetOp, Seq, layers::MAX_SLOTS};

use crate::error::{Error, Result};
use weights::Weights;

/// The work area split into the network's slots, at the offsets of its [`SlotPlan`].
struct Slots<'w> {
    work: &'w mut [f32],
    plan: &'w SlotPlan,
}

impl Slots<'_> {
    fn range(&self, slot: u8, len: usize) -> Result<core::ops::Range<usize>> {
        let start = self.plan.offset(slot);
        let capacity = self
            .plan
            .capacity
            .get(usize::from(slot))
            .copied()
            .ok_or(Error::Inconsistent)?;
        if len > capacity {
            return Err(Error::Inconsistent);
        }
        Ok(start..start + len)
    }

    fn get_mut(&mut self, slot: u8, len: usize) -> Result<&mut [f32]> {
        let range = self.range(slot, len)?;
        self.work.get_mut(range).ok_or(Error::Inconsistent)
    }

    /// Slot `read` (len `read_len`) and a different slot `write` (len `write_len`).
    fn pair(
        &mut self,
        read: u8,
        read_len: usize,
        write: u8,
        write_len: usize,
    ) -> Result<(&[f32], &mut [f32])> {
        let r = self.range(read, read_len)?;
        let w = self.range(write, write_len)?;
        if read < write {
            let (low, high) = self
                .work
                .split_at_mut_checked(w.start)
                .ok_or(Error::Inconsistent)?;
            let input = low.get(r).ok_or(Error::Inconsistent)?;
            let output = high.get_mut(..w.len()).ok_or(Error::Inconsistent)?;
            Ok((input, output))
        } else if read > write {
            let (low, high) = self
                .work
                .split_at_mut_checked(r.start)
                .ok_or(Error::Inconsistent)?;
            let output = low.get_mut(w).ok_or(Error::Inconsistent)?;
            let input = high.get(..r.len()).ok_or(Error::Inconsistent)?;
            Ok((input, output))
        } else {
            Err(Error::Inconsistent)
        }
    }
}

/// Runs a coupling network whose input the caller wrote into slot 0 of `work` (laid out by
/// `plan`) with `path`'s kernels; returns the result's slot and shape.
pub fn run_net<'a>(
    net: &Seq<'a, NetNode<'a>>,
    input: Dims,
    plan: &SlotPlan,
    work: &mut [f32],
    path: KernelPath,
) -> Result<(u8, Dims)> {
    let mut shapes: [Option<Dims>; MAX_SLOTS] = [None; MAX_SLOTS];
    if let Some(first) = shapes.first_mut() {
        *first = Some(input);
    }
    let mut slots = Slots { work, plan };
    let mut last = None;
    for node in net.iter() {
        let node = node.map_err(|_| Error::Inconsistent)?;
        let shape_of = |slot: u8| {
            shapes
                .get(usize::from(slot))
                .copied()
                .flatten()
                .ok_or(Error::Inconsistent)
        };
        let in_dims = shape_of(node.input)?;
        let other = match node.op {
            NetOp::Add { other } => Some(shape_of(other)?),
            _ => None,
        };
        let (out_dims, _) = infer_op(&node.op, in_dims, other).map_err(|_| Error::Inconsistent)?;
        run_node(&node, in_dims, out_dims, &mut slots, path)?;
        if let Some(shape) = shapes.get_mut(usize::from(node.output)) {
            *shape = Some(out_dims);
        }
        last = Some((node.output, out_dims));
    }
    last.ok_or(Error::Inconsistent)
}

fn run_node(
    node: &NetNode<'_>,
    in_dims: Dims,
    out_dims: Dims,
    slots: &mut Slots<'_>,
    path: KernelPath,
) -> Result<()> {
    let in_len = in_dims.elements() as usize;
    let out_len = out_dims.elements() as usize;
    let (src, dst) = (node.input, node.output);
    match &node.op {
        NetOp::Conv2d(conv) => {
            let conv = conv::Conv::new(&conv.weight, &conv.bias, conv.stride, conv.padding)?;
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            conv::conv2d(input, in_dims, output, out_dims, &conv, path)
        }
        NetOp::ConvTranspose2d(conv) => {
            let conv = conv::Conv::new(&conv.weight, &conv.bias, conv.stride, conv.padding)?;
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            transposed::conv_transpose2d(input, in_dims, output, out_dims, &conv, path)
        }
        NetOp::Linear(linear) => {
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            ops::linear(
                input,
                output,
                Weights::new(&linear.weight),
                Weights::new(&linear.bias),
            );
            Ok(())
        }
        NetOp::ConcatNegated => {
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            ops::concat_negated(input, output)
        }
        NetOp::MaxPool2d { kernel, stride } | NetOp::AvgPool2d { kernel, stride } => {
            let max = matches!(node.op, NetOp::MaxPool2d { .. });
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            ops::pool2d(
                input,
                in_dims,
                output,
                out_dims,
                usize::from(*kernel),
                usize::from(*stride),
                max,
            )
        }
        NetOp::GlobalAvgPool => {
            let (input, output) = slots.pair(src, in_len, dst, out_len)?;
            ops::global_avg_pool(input, in_dims, output);
            Ok(())
        }
        NetOp::Add { other } => {
            let other = *other;
            if dst == src && dst == other {
                slots
                    .get_mut(dst, out_len)?
                    .iter_mut()
                    .for_each(|x| *x += *x);
                return Ok(());
            }
            if dst != src {
                // output = input, then output += other (or doubled if other is the output).
                let (input, output) = slots.pair(src, in_len, dst, out_len)?;
                if other == dst {
                    ops::add_assign(output, input);
                    return Ok(());
                }
                copy(output, input)?;
            }
            let (addend, output) = slots.pair(other, in_len, dst, out_len)?;
            ops::add_assign(output, addend);
            Ok(())
        }
        // Elementwise operations: move to the output slot first when it differs.
        NetOp::Relu | NetOp::Tanh | NetOp::ChannelAffine(_) | NetOp::Reshape { .. } => {
            if dst != src {
                let (input, output) = slots.pair(src, in_len, dst, out_len)?;
                copy(output, input)?;
            }
            let data = slots.get_mut(dst, out_len)?;
            match &node.op {
                NetOp::Relu => ops::relu(data),
                NetOp::Tanh => ops::tanh(data),
                NetOp::ChannelAffine(affine) => ops::channel_affine(
                    data,
                    out_dims,
                    Weights::new(&affine.scale),
                    Weights::new(&affine.shift),
                ),
                _ => {}
            }
            Ok(())
        }
    }
}

/// Slot `slot` of `work` holding `len` elements, read-only.
pub fn slot<'w>(
    plan: &'w SlotPlan,
    work: &'w mut [f32],
    slot: u8,
    len: usize,
) -> Result<&'w [f32]> {
    let slots = Slots { work, plan };
    let range = slots.range(slot, len)?;
    slots.work.get(range).ok_or(Error::Inconsistent)
}

/// `output = input`, refusing slices of different lengths.
fn copy(output: &mut [f32], input: &[f32]) -> Result<()> {
    if output.len() != input.len() {
        return Err(Error::Inconsistent);
    }
    output.copy_from_slice(input);
    Ok(())
}
