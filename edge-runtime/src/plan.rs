//! The execution plan: a validated model turned, once at load, into steps that
//! [`crate::Gate::score`] walks without decoding, re-planning or re-checking.
//!
//! Building the plan decodes every layer, infers every shape, lays out every activation in
//! the scratch's work area, chooses each convolution's geometry and copies every weight,
//! dequantised and packed in the order its kernel reads it, into one float arena. Scoring
//! then reads plain integers and contiguous floats.
//!
//! The plan lives in memory the caller provides ([`Gate::new_in`](crate::Gate::new_in), sized
//! by [`PlanSizes`]) or, with the `alloc` feature, that the gate allocates, so the core needs
//! no allocator. Steps are plain data: no references, so a `[Step]` can be any buffer.
//!
//! Layout of the step list: the flow's layers in order; each coupling's (or extractor's)
//! network steps follow their layer's step directly, which names them by a [`Span`].

use flowgate_shared::validate::{SlotPlan, coupling_net_input, infer_op, plan_net};
use flowgate_shared::{Dims, FlowLayer, Mask, Model, NetNode, NetOp, Seq, Tensor};

use crate::error::{Error, Result};
use crate::kernels::conv::{ConvGeometry, pack_conv};
use crate::kernels::linear::{LinearGeometry, pack_linear};

/// A range of the step list or of the float arena.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

impl Span {
    pub fn end(self) -> usize {
        self.start + self.len
    }
}

/// A region of the scratch's work area, in f32 elements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Region {
    pub offset: usize,
    pub len: usize,
}

impl Region {
    pub fn end(self) -> usize {
        self.offset + self.len
    }
}

/// One step of a planned model. Opaque: callers only size and provide the buffer
/// ([`Step::EMPTY`] fills it).
#[derive(Debug, Clone, Copy)]
pub struct Step(pub(crate) Op);

impl Step {
    /// A placeholder to fill a step buffer with before [`crate::Gate::new_in`] plans into it.
    pub const EMPTY: Step = Step(Op::Empty);
}

impl Default for Step {
    fn default() -> Self {
        Step::EMPTY
    }
}

/// How much memory a model's plan needs beyond the model file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanSizes {
    /// [`Step`]s of the step list.
    pub steps: usize,
    /// f32 elements of the float arena (weights, dequantised and packed).
    pub floats: usize,
    /// f32 elements of scratch the kernels need besides the flow's state and the networks'
    /// activations (a convolution's padded input and tiled output).
    pub kernel_scratch: usize,
}

impl PlanSizes {
    /// Two plans held side by side (a model and its detail branch's patch model): steps and
    /// floats add up; the kernels' scratch is the larger, as they run one after the other.
    pub fn beside(self, other: PlanSizes) -> PlanSizes {
        PlanSizes {
            steps: self.steps.saturating_add(other.steps),
            floats: self.floats.saturating_add(other.floats),
            kernel_scratch: self.kernel_scratch.max(other.kernel_scratch),
        }
    }

    /// Bytes of the step list and the float arena together.
    pub fn bytes(&self) -> u64 {
        let steps = (self.steps as u64).saturating_mul(core::mem::size_of::<Step>() as u64);
        steps.saturating_add((self.floats as u64).saturating_mul(4))
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Op {
    /// Not a step: what [`Step::EMPTY`] holds.
    Empty,
    // ---- flow layers, on the flow's state ----
    /// An affine coupling; its network's steps follow it.
    Coupling(CouplingStep),
    /// Squeeze of a state of shape `dims`.
    Squeeze {
        dims: Dims,
    },
    /// Unsqueeze of a state of shape `dims`.
    Unsqueeze {
        dims: Dims,
    },
    /// Actnorm of a state of shape `dims`.
    ActNorm {
        dims: Dims,
        bias: Span,
        log_scale: Span,
    },
    /// Invertible 1x1 convolution (weight `[C, C]`, row-major) of a state of shape `dims`.
    InvConv {
        dims: Dims,
        weight: Span,
        log_abs_det: f32,
    },
    /// Factor-out of a state of shape `dims`, keeping `keep` channels.
    FactorOut {
        dims: Dims,
        keep: u32,
    },
    /// A feature extractor; its network's steps follow it and leave the embedding (shape
    /// `out_dims`) in `output`.
    Embed {
        net: Span,
        output: Region,
        out_dims: Dims,
    },
    // ---- network operations, on the work area ----
    Conv(ConvStep),
    Linear(LinearStep),
    ConcatNegated {
        input: Region,
        output: Region,
    },
    Pool {
        input: Region,
        output: Region,
        in_dims: Dims,
        out_dims: Dims,
        kernel: u8,
        stride: u8,
        max: bool,
    },
    GlobalAvgPool {
        input: Region,
        output: Region,
        dims: Dims,
    },
    /// `output = input + other`; any of the three may coincide.
    Add {
        input: Region,
        other: Region,
        output: Region,
    },
    /// `output = input` (an elementwise operation writing another slot, or a reshape).
    Copy {
        input: Region,
        output: Region,
    },
    Relu {
        data: Region,
    },
    Tanh {
        data: Region,
    },
    Affine {
        data: Region,
        dims: Dims,
        scale: Span,
        shift: Span,
    },
}

/// A coupling layer: the masked state goes to the start of the work area, the network runs,
/// and its result in `output` (`s_raw`, then `t`) updates the state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CouplingStep {
    pub mask: Mask,
    pub dims: Dims,
    pub net_input: Dims,
    pub net: Span,
    pub scale: Span,
    pub output: Region,
}

/// A convolution (or transposed convolution) between two regions of the work area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvStep {
    pub input: Region,
    pub output: Region,
    pub geometry: ConvGeometry,
    /// Packed weights ([`pack_conv`]).
    pub weights: Span,
    pub bias: Span,
}

/// A fully connected layer between two regions of the work area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinearStep {
    pub input: Region,
    pub output: Region,
    pub geometry: LinearGeometry,
    /// Packed bias and weights ([`pack_linear`]).
    pub weights: Span,
}

/// Writes a plan, or only counts what it would write (when given no buffers): the same code
/// sizes the plan and fills it, so the sizes cannot disagree with what is written.
pub(crate) struct Builder<'p> {
    steps: Option<&'p mut [Step]>,
    floats: Option<&'p mut [f32]>,
    step_count: usize,
    float_count: usize,
    kernel_scratch: usize,
}

impl<'p> Builder<'p> {
    /// A builder that only counts.
    pub fn counting() -> Builder<'static> {
        Builder {
            steps: None,
            floats: None,
            step_count: 0,
            float_count: 0,
            kernel_scratch: 0,
        }
    }

    /// A builder that writes into these buffers (sized by a counting run).
    pub fn writing(steps: &'p mut [Step], floats: &'p mut [f32]) -> Self {
        Builder {
            steps: Some(steps),
            floats: Some(floats),
            step_count: 0,
            float_count: 0,
            kernel_scratch: 0,
        }
    }

    pub fn sizes(&self) -> PlanSizes {
        PlanSizes {
            steps: self.step_count,
            floats: self.float_count,
            kernel_scratch: self.kernel_scratch,
        }
    }

    fn push(&mut self, op: Op) -> Result<usize> {
        let index = self.step_count;
        if let Some(steps) = self.steps.as_deref_mut() {
            *steps.get_mut(index).ok_or(Error::Inconsistent)? = Step(op);
        }
        self.step_count += 1;
        Ok(index)
    }

    fn set(&mut self, index: usize, op: Op) -> Result<()> {
        if let Some(steps) = self.steps.as_deref_mut() {
            *steps.get_mut(index).ok_or(Error::Inconsistent)? = Step(op);
        }
        Ok(())
    }

    /// Appends `len` floats that `fill` writes (called only when writing).
    fn floats(&mut self, len: usize, fill: impl FnOnce(&mut [f32])) -> Result<Span> {
        let span = Span {
            start: self.float_count,
            len,
        };
        if let Some(floats) = self.floats.as_deref_mut() {
            fill(
                floats
                    .get_mut(span.start..span.end())
                    .ok_or(Error::Inconsistent)?,
            );
        }
        self.float_count += len;
        Ok(span)
    }

    /// A tensor's values, dequantised, in row-major order.
    fn tensor(&mut self, tensor: &Tensor<'_>) -> Result<Span> {
        let len = tensor.element_count().ok_or(Error::Inconsistent)?;
        self.floats(len, |out| {
            for (index, value) in out.iter_mut().enumerate() {
                *value = tensor.get(index).unwrap_or(0.0);
            }
        })
    }

    fn need_kernel_scratch(&mut self, len: usize) {
        self.kernel_scratch = self.kernel_scratch.max(len);
    }
}

/// Plans every layer of a validated model.
pub(crate) fn build(model: &Model<'_>, builder: &mut Builder<'_>) -> Result<()> {
    let input = model.input;
    let mut dims = Dims::new(input.channels, input.height, input.width);
    for layer in model.flow.iter() {
        let layer = layer.map_err(|_| Error::Inconsistent)?;
        dims = plan_layer(&layer, dims, builder)?;
    }
    Ok(())
}

fn plan_layer(layer: &FlowLayer<'_>, dims: Dims, builder: &mut Builder<'_>) -> Result<Dims> {
    Ok(match layer {
        FlowLayer::Coupling(coupling) => {
            let net_input =
                coupling_net_input(coupling.mask, dims).map_err(|_| Error::Inconsistent)?;
            let scale = builder.tensor(&coupling.scale)?;
            let at = builder.push(Op::Empty)?;
            let (net, output, _) = plan_network(&coupling.net, net_input, builder)?;
            let step = CouplingStep {
                mask: coupling.mask,
                dims,
                net_input,
                net,
                scale,
                output,
            };
            builder.set(at, Op::Coupling(step))?;
            dims
        }
        FlowLayer::Squeeze => {
            builder.push(Op::Squeeze { dims })?;
            Dims::new(dims.channels * 4, dims.height / 2, dims.width / 2)
        }
        FlowLayer::Unsqueeze => {
            builder.push(Op::Unsqueeze { dims })?;
            Dims::new(dims.channels / 4, dims.height * 2, dims.width * 2)
        }
        FlowLayer::ActNorm(actnorm) => {
            let bias = builder.tensor(&actnorm.bias)?;
            let log_scale = builder.tensor(&actnorm.log_scale)?;
            builder.push(Op::ActNorm {
                dims,
                bias,
                log_scale,
            })?;
            dims
        }
        FlowLayer::InvertibleConv1x1(conv) => {
            let weight = builder.tensor(&conv.weight)?;
            builder.push(Op::InvConv {
                dims,
                weight,
                log_abs_det: conv.log_abs_det,
            })?;
            dims
        }
        FlowLayer::FactorOut { keep_channels } => {
            builder.push(Op::FactorOut {
                dims,
                keep: *keep_channels,
            })?;
            Dims::new(*keep_channels, dims.height, dims.width)
        }
        FlowLayer::Embed(embed) => {
            let at = builder.push(Op::Empty)?;
            let (net, output, out_dims) = plan_network(&embed.net, dims, builder)?;
            builder.set(
                at,
                Op::Embed {
                    net,
                    output,
                    out_dims,
                },
            )?;
            out_dims
        }
    })
}

/// Plans a network reading `input` in slot 0 (at the start of the work area); returns its
/// steps, the region of its result and the result's shape.
fn plan_network(
    net: &Seq<'_, NetNode<'_>>,
    input: Dims,
    builder: &mut Builder<'_>,
) -> Result<(Span, Region, Dims)> {
    let slots = plan_net(net, input, |_| Ok(())).map_err(|_| Error::Inconsistent)?;
    let first = builder.step_count;
    let mut shapes: [Option<Dims>; flowgate_shared::layers::MAX_SLOTS] =
        [None; flowgate_shared::layers::MAX_SLOTS];
    *shapes.first_mut().ok_or(Error::Inconsistent)? = Some(input);
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
        plan_node(&node, in_dims, other, out_dims, &slots, builder)?;
        *shapes
            .get_mut(usize::from(node.output))
            .ok_or(Error::Inconsistent)? = Some(out_dims);
        last = Some((node.output, out_dims));
    }
    let (slot, dims) = last.ok_or(Error::Inconsistent)?;
    let span = Span {
        start: first,
        len: builder.step_count - first,
    };
    Ok((span, region(&slots, slot, dims)?, dims))
}

/// The work-area region of `slot` holding an activation of shape `dims`.
fn region(slots: &SlotPlan, slot: u8, dims: Dims) -> Result<Region> {
    let len = dims.elements() as usize;
    let capacity = slots
        .capacity
        .get(usize::from(slot))
        .copied()
        .ok_or(Error::Inconsistent)?;
    if len > capacity {
        return Err(Error::Inconsistent);
    }
    Ok(Region {
        offset: slots.offset(slot),
        len,
    })
}

fn plan_node(
    node: &NetNode<'_>,
    in_dims: Dims,
    other_dims: Option<Dims>,
    out_dims: Dims,
    slots: &SlotPlan,
    builder: &mut Builder<'_>,
) -> Result<()> {
    let input = region(slots, node.input, in_dims)?;
    let output = region(slots, node.output, out_dims)?;
    match &node.op {
        NetOp::Conv2d(conv) => {
            let geometry =
                ConvGeometry::direct(&conv.weight, conv.stride, conv.padding, in_dims, out_dims)?;
            plan_conv(geometry, &conv.weight, &conv.bias, input, output, builder)?;
        }
        NetOp::ConvTranspose2d(conv) => {
            let geometry = ConvGeometry::transposed(
                &conv.weight,
                conv.stride,
                conv.padding,
                in_dims,
                out_dims,
            )?;
            plan_conv(geometry, &conv.weight, &conv.bias, input, output, builder)?;
        }
        NetOp::Linear(linear) => {
            let geometry =
                LinearGeometry::new(in_dims.elements() as usize, out_dims.elements() as usize);
            let weights = builder.floats(geometry.packed_len(), |out| {
                pack_linear(&linear.weight, &linear.bias, &geometry, out)
            })?;
            builder.need_kernel_scratch(geometry.scratch_len());
            builder.push(Op::Linear(LinearStep {
                input,
                output,
                geometry,
                weights,
            }))?;
        }
        NetOp::ConcatNegated => {
            builder.push(Op::ConcatNegated { input, output })?;
        }
        NetOp::MaxPool2d { kernel, stride } | NetOp::AvgPool2d { kernel, stride } => {
            builder.push(Op::Pool {
                input,
                output,
                in_dims,
                out_dims,
                kernel: *kernel,
                stride: *stride,
                max: matches!(node.op, NetOp::MaxPool2d { .. }),
            })?;
        }
        NetOp::GlobalAvgPool => {
            builder.push(Op::GlobalAvgPool {
                input,
                output,
                dims: in_dims,
            })?;
        }
        NetOp::Add { other } => {
            let other = region(slots, *other, other_dims.ok_or(Error::Inconsistent)?)?;
            builder.push(Op::Add {
                input,
                other,
                output,
            })?;
        }
        NetOp::Relu | NetOp::Tanh | NetOp::ChannelAffine(_) | NetOp::Reshape { .. } => {
            if node.input != node.output {
                builder.push(Op::Copy { input, output })?;
            }
            let data = output;
            match &node.op {
                NetOp::Relu => {
                    builder.push(Op::Relu { data })?;
                }
                NetOp::Tanh => {
                    builder.push(Op::Tanh { data })?;
                }
                NetOp::ChannelAffine(affine) => {
                    let scale = builder.tensor(&affine.scale)?;
                    let shift = builder.tensor(&affine.shift)?;
                    builder.push(Op::Affine {
                        data,
                        dims: out_dims,
                        scale,
                        shift,
                    })?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn plan_conv(
    geometry: ConvGeometry,
    weight: &Tensor<'_>,
    bias: &Tensor<'_>,
    input: Region,
    output: Region,
    builder: &mut Builder<'_>,
) -> Result<()> {
    let weights = builder.floats(geometry.packed_len(), |out| {
        pack_conv(weight, &geometry, out)
    })?;
    let bias = builder.tensor(bias)?;
    builder.need_kernel_scratch(geometry.scratch_len());
    builder.push(Op::Conv(ConvStep {
        input,
        output,
        geometry,
        weights,
        bias,
    }))?;
    Ok(())
}
