//! The product's own kernels: the networks' operations on the scratch's work area, as the
//! plan ([`crate::plan`]) lays them out.
//!
//! `conv` and `linear` prepare the work of the inner loops in `tiles`, written once per
//! instruction set over `lanes`; `ops` holds the other, cheap operations. A [`KernelPath`]
//! picks the instruction set (the scalar one is the reference).

pub(crate) mod conv;
pub(crate) mod lanes;
pub(crate) mod linear;
pub(crate) mod ops;
pub mod path;
pub(crate) mod tiles;
pub(crate) mod vmath;

pub use path::KernelPath;

use crate::error::{Error, Result};
use crate::plan::{Op, Region, Span, Step};

/// The planned network steps `steps` on the work area; `kernel_scratch` holds the kernels'
/// temporaries.
pub(crate) fn run_net(
    steps: &[Step],
    floats: &[f32],
    work: &mut [f32],
    kernel_scratch: &mut [f32],
    path: KernelPath,
) -> Result<()> {
    for step in steps {
        run_step(&step.0, floats, work, kernel_scratch, path)?;
    }
    Ok(())
}

fn span(floats: &[f32], span: Span) -> Result<&[f32]> {
    floats
        .get(span.start..span.end())
        .ok_or(Error::Inconsistent)
}

fn region(work: &mut [f32], region: Region) -> Result<&mut [f32]> {
    work.get_mut(region.offset..region.end())
        .ok_or(Error::Inconsistent)
}

/// Two disjoint regions of the work area: one to read, one to write. The plan only pairs
/// different slots, whose regions never overlap.
fn read_write(work: &mut [f32], read: Region, write: Region) -> Result<(&[f32], &mut [f32])> {
    if read.end() <= write.offset {
        let (low, high) = work
            .split_at_mut_checked(write.offset)
            .ok_or(Error::Inconsistent)?;
        let input = low
            .get(read.offset..read.end())
            .ok_or(Error::Inconsistent)?;
        let output = high.get_mut(..write.len).ok_or(Error::Inconsistent)?;
        Ok((input, output))
    } else if write.end() <= read.offset {
        let (low, high) = work
            .split_at_mut_checked(read.offset)
            .ok_or(Error::Inconsistent)?;
        let output = low
            .get_mut(write.offset..write.end())
            .ok_or(Error::Inconsistent)?;
        let input = high.get(..read.len).ok_or(Error::Inconsistent)?;
        Ok((input, output))
    } else {
        Err(Error::Inconsistent)
    }
}

fn run_step(
    op: &Op,
    floats: &[f32],
    work: &mut [f32],
    kernel_scratch: &mut [f32],
    path: KernelPath,
) -> Result<()> {
    match op {
        Op::Conv(step) => {
            let (input, output) = read_write(work, step.input, step.output)?;
            conv::conv(
                &step.geometry,
                input,
                output,
                span(floats, step.weights)?,
                span(floats, step.bias)?,
                kernel_scratch,
                path,
            )
        }
        Op::Linear(step) => {
            let (input, output) = read_write(work, step.input, step.output)?;
            linear::linear(
                &step.geometry,
                input,
                output,
                span(floats, step.weights)?,
                kernel_scratch,
                path,
            )
        }
        Op::ConcatNegated { input, output } => {
            let (input, output) = read_write(work, *input, *output)?;
            ops::concat_negated(input, output)
        }
        Op::Pool {
            input,
            output,
            in_dims,
            out_dims,
            kernel,
            stride,
            max,
        } => {
            let (input, output) = read_write(work, *input, *output)?;
            ops::pool2d(
                input,
                *in_dims,
                output,
                *out_dims,
                usize::from(*kernel),
                usize::from(*stride),
                *max,
            )
        }
        Op::GlobalAvgPool {
            input,
            output,
            dims,
        } => {
            let (input, output) = read_write(work, *input, *output)?;
            ops::global_avg_pool(input, *dims, output);
            Ok(())
        }
        Op::Add {
            input,
            other,
            output,
        } => add(work, *input, *other, *output),
        Op::Copy { input, output } => {
            let (input, output) = read_write(work, *input, *output)?;
            if input.len() != output.len() {
                return Err(Error::Inconsistent);
            }
            output.copy_from_slice(input);
            Ok(())
        }
        Op::Relu { data } => {
            ops::relu(region(work, *data)?);
            Ok(())
        }
        Op::Tanh { data } => {
            ops::tanh(region(work, *data)?, path);
            Ok(())
        }
        Op::Affine {
            data,
            dims,
            scale,
            shift,
        } => {
            ops::channel_affine(
                region(work, *data)?,
                *dims,
                span(floats, *scale)?,
                span(floats, *shift)?,
            );
            Ok(())
        }
        // Flow layers are not network steps: the plan never puts one in a network.
        _ => Err(Error::Inconsistent),
    }
}

/// `output = input + other`, where regions are either the same slot or disjoint.
fn add(work: &mut [f32], input: Region, other: Region, output: Region) -> Result<()> {
    let same = |a: Region, b: Region| a.offset == b.offset;
    if same(input, output) && same(other, output) {
        region(work, output)?.iter_mut().for_each(|x| *x += *x);
        return Ok(());
    }
    if same(input, output) || same(other, output) {
        let addend = if same(input, output) { other } else { input };
        let (addend, output) = read_write(work, addend, output)?;
        ops::add_assign(output, addend);
        return Ok(());
    }
    {
        let (input, output) = read_write(work, input, output)?;
        if input.len() != output.len() {
            return Err(Error::Inconsistent);
        }
        output.copy_from_slice(input);
    }
    let (other, output) = read_write(work, other, output)?;
    ops::add_assign(output, other);
    Ok(())
}
