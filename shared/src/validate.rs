//! Shape inference and the checks that make a decoded model safe for the runtime.
//!
//! The runtime trusts what passes here: every tensor has the length its layer reads, every
//! activation fits the scratch the summary reports, and no size computation overflows.

use crate::bytes::Seq;
use crate::detail::Detail;
use crate::error::{Error, Invalid, Location, Result};
use crate::layers::{Coupling, FlowLayer, MAX_SLOTS, Mask, NetNode, NetOp};
use crate::model::{Model, Preprocess, Resize, ScoreKind, Threshold};
use crate::tensor::{Tensor, TensorData, shape_elements};

/// Largest height, width or channel count of any activation.
pub const MAX_DIM: u32 = 1 << 16;
/// Largest element count of any activation or tensor.
pub const MAX_ELEMENTS: u64 = 1 << 26;
/// Largest convolution kernel side.
pub const MAX_KERNEL: u32 = 31;
/// Largest magnitude of a log-scale: an actnorm's `log_scale` and a coupling's `scale` (the
/// bound of `s = scale * tanh(.)`). The runtime takes `exp` of them; `e^64` (6e27) leaves
/// ten orders of magnitude below f32's largest value for what it multiplies, so the
/// exponential itself never overflows, and the log-determinant these terms sum stays
/// finite. Trained flows stay far below (|log-scale| < 10).
pub const MAX_LOG_SCALE: f32 = 64.0;

/// Shape of one activation: (channels, height, width).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Channels.
    pub channels: u32,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
}

impl Dims {
    /// A shape.
    pub const fn new(channels: u32, height: u32, width: u32) -> Self {
        Dims {
            channels,
            height,
            width,
        }
    }

    /// `C * H * W` (saturating).
    pub fn elements(self) -> u64 {
        self.pixels().saturating_mul(u64::from(self.channels))
    }

    /// `H * W`.
    pub fn pixels(self) -> u64 {
        u64::from(self.height) * u64::from(self.width)
    }

    fn checked(self) -> core::result::Result<Self, Invalid> {
        for value in [self.channels, self.height, self.width] {
            if value == 0 || value > MAX_DIM {
                return Err(Invalid::DimensionOutOfRange { value });
            }
        }
        if self.elements() > MAX_ELEMENTS {
            return Err(Invalid::TooLarge);
        }
        Ok(self)
    }
}

/// What a validated model costs to run; the runtime sizes its scratch from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSummary {
    /// Dimensions of the flow's input, `D = C * H * W`.
    pub input_dims: u64,
    /// Dimensions the density is over: `input_dims`, or the embedding's for a flow on
    /// embeddings ([`crate::FlowLayer::Embed`]); bits/dim divide by it.
    pub density_dims: u64,
    /// Whether the flow starts with a feature extractor: the log-likelihood is then the
    /// embedding's, without the preprocessing's log-determinant.
    pub embedded: bool,
    /// Number of flow layers.
    pub flow_layers: u32,
    /// Number of coupling layers.
    pub couplings: u32,
    /// Learned scalars in all tensors.
    pub parameters: u64,
    /// Bytes the tensors' values take in the file.
    pub weight_bytes: u64,
    /// Tensors stored as int8.
    pub int8_tensors: u32,
    /// Tensors stored as f32.
    pub f32_tensors: u32,
    /// Multiply-accumulates per frame: convolutions, linear layers, 1x1 convolutions and
    /// per-channel affine maps (elementwise functions are not counted).
    pub macs_per_frame: u64,
    /// Scratch layout for the runtime (of the main flow: the patch model's is in
    /// [`DetailSummary::patch_scratch`]).
    pub scratch: ScratchPlan,
    /// The detail branch's costs (included in the totals above), if there is one.
    pub detail: Option<DetailSummary>,
}

/// What a model's detail branch costs; `ModelSummary`'s totals include it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetailSummary {
    /// Patches scored per frame.
    pub patches: u64,
    /// `(width, height)` of one patch.
    pub patch: (u32, u32),
    /// Multiply-accumulates of one patch.
    pub macs_per_patch: u64,
    /// The patch model's scratch layout.
    pub patch_scratch: ScratchPlan,
}

/// Most patches a detail branch may score per frame.
pub const MAX_PATCHES: u64 = 4096;

/// The runtime's scratch, in f32 elements: the flow's state, then a work area.
///
/// `state` holds the activation as it flows (it only shrinks: squeezes keep `D`, factor-outs
/// drop channels). `work` holds, during a coupling, the network's slots laid end to end in
/// slot order ([`SlotPlan`]), and during a squeeze, unsqueeze or 1x1 convolution a copy of
/// the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScratchPlan {
    /// Elements for the flow's state.
    pub state: usize,
    /// Elements for the work area.
    pub work: usize,
}

impl ScratchPlan {
    /// Total f32 elements the caller must provide.
    pub fn total(&self) -> usize {
        self.state + self.work
    }
}

/// Shapes and scratch of one coupling network, from its input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotPlan {
    /// Largest element count each slot ever holds (0: unused).
    pub capacity: [usize; MAX_SLOTS],
    /// Slot holding the result.
    pub output_slot: u8,
    /// Shape of the result.
    pub output: Dims,
    /// Multiply-accumulates of one run.
    pub macs: u64,
}

impl SlotPlan {
    /// Offset of `slot` in the work area: capacities of lower slots, summed.
    pub fn offset(&self, slot: u8) -> usize {
        self.capacity.iter().take(usize::from(slot)).sum()
    }

    /// Work-area elements all slots need.
    pub fn total(&self) -> usize {
        self.capacity.iter().sum()
    }
}

/// Checks everything the runtime relies on and reports the model's costs.
pub fn validate(model: &Model<'_>) -> Result<ModelSummary> {
    let input = &model.input;
    let at_input = |reason| Error::Invalid {
        at: Location::Input,
        reason,
    };
    if input.channels != 1 && input.channels != 3 {
        return Err(at_input(Invalid::Channels {
            channels: input.channels,
        }));
    }
    let mut dims = Dims::new(input.channels, input.height, input.width)
        .checked()
        .map_err(at_input)?;
    match input.preprocess {
        Preprocess::Logit { alpha } => {
            if !(alpha > 0.0 && alpha < 0.5) {
                return Err(at_input(Invalid::ParameterOutOfRange));
            }
        }
    }

    let input_elements = dims.elements() as usize;
    let mut summary = ModelSummary {
        input_dims: dims.elements(),
        density_dims: dims.elements(),
        embedded: false,
        flow_layers: 0,
        couplings: 0,
        parameters: 0,
        weight_bytes: 0,
        int8_tensors: 0,
        f32_tensors: 0,
        macs_per_frame: 0,
        scratch: ScratchPlan {
            state: input_elements,
            work: 0,
        },
        detail: None,
    };

    let mut layers = model.flow.iter();
    let mut index = 0u32;
    for layer in layers.by_ref() {
        let at = Location::Flow { layer: index };
        let layer = layer.map_err(|_| Error::Invalid {
            at,
            reason: Invalid::Sequence,
        })?;
        dims = validate_layer(&layer, dims, index, &mut summary)?;
        index = index.checked_add(1).ok_or(Error::Invalid {
            at,
            reason: Invalid::TooLarge,
        })?;
    }
    if index as usize != model.flow.len() || !layers.unread_bytes().is_empty() {
        return Err(Error::Invalid {
            at: Location::Flow { layer: index },
            reason: Invalid::Sequence,
        });
    }
    summary.flow_layers = index;

    if let ScoreKind::TypicalBitsPerDim { center } = model.score
        && !center.is_finite()
    {
        return Err(Error::Invalid {
            at: Location::Score,
            reason: Invalid::NonFinite,
        });
    }
    if let Some(threshold) = &model.threshold {
        validate_threshold(threshold).map_err(|reason| Error::Invalid {
            at: Location::Threshold,
            reason,
        })?;
    }
    if let Some(detail) = &model.detail {
        let at_detail = |reason| Error::Invalid {
            at: Location::Detail,
            reason,
        };
        let costs = validate_detail(detail).map_err(at_detail)?;
        add_detail_costs(&mut summary, &costs).map_err(at_detail)?;
    }
    Ok(summary)
}

/// The detail branch's geometry, standardisation and patch model; the patch model's summary
/// and the branch's costs.
fn validate_detail(
    detail: &Detail<'_>,
) -> core::result::Result<(ModelSummary, DetailSummary), Invalid> {
    Dims::new(1, detail.frame_height, detail.frame_width).checked()?;
    let patches = detail.patches();
    if patches == 0 || patches > MAX_PATCHES {
        return Err(Invalid::DimensionOutOfRange {
            value: patches.min(u64::from(u32::MAX)) as u32,
        });
    }
    for part in [detail.frame, detail.detail] {
        if !part.center.is_finite() || !part.spread.is_finite() {
            return Err(Invalid::NonFinite);
        }
        if part.spread <= 0.0 {
            return Err(Invalid::ParameterOutOfRange);
        }
    }
    let patch_model = crate::take_all::<Model<'_>>(detail.patch_model.as_slice())
        .map_err(|_| Invalid::PatchModel)?;
    let input = patch_model.input;
    let fits = patch_model.detail.is_none()
        && patch_model.threshold.is_none()
        && patch_model.score == ScoreKind::BitsPerDim
        && input.channels == 1
        && input.resize == Resize::Exact
        && input.width <= detail.frame_width
        && input.height <= detail.frame_height;
    if !fits {
        return Err(Invalid::PatchModel);
    }
    let patch_summary = validate(&patch_model).map_err(|error| match error {
        Error::Invalid { reason, .. } => reason,
        _ => Invalid::PatchModel,
    })?;
    let costs = DetailSummary {
        patches,
        patch: (input.width, input.height),
        macs_per_patch: patch_summary.macs_per_frame,
        patch_scratch: patch_summary.scratch,
    };
    Ok((patch_summary, costs))
}

fn add_detail_costs(
    summary: &mut ModelSummary,
    (patch, costs): &(ModelSummary, DetailSummary),
) -> core::result::Result<(), Invalid> {
    let macs = costs
        .macs_per_patch
        .checked_mul(costs.patches)
        .ok_or(Invalid::TooLarge)?;
    add_macs(summary, macs)?;
    summary.parameters = summary
        .parameters
        .checked_add(patch.parameters)
        .ok_or(Invalid::TooLarge)?;
    summary.weight_bytes = summary
        .weight_bytes
        .checked_add(patch.weight_bytes)
        .ok_or(Invalid::TooLarge)?;
    summary.int8_tensors = summary.int8_tensors.saturating_add(patch.int8_tensors);
    summary.f32_tensors = summary.f32_tensors.saturating_add(patch.f32_tensors);
    summary.detail = Some(*costs);
    Ok(())
}

fn validate_layer(
    layer: &FlowLayer<'_>,
    dims: Dims,
    index: u32,
    summary: &mut ModelSummary,
) -> Result<Dims> {
    let at = Location::Flow { layer: index };
    let fail = |reason| Error::Invalid { at, reason };
    let state_copy = dims.elements() as usize;
    let out = match layer {
        FlowLayer::Coupling(coupling) => {
            summary.couplings += 1;
            let plan = validate_coupling(coupling, dims, index, summary)?;
            summary.scratch.work = summary.scratch.work.max(plan.total());
            add_macs(summary, plan.macs).map_err(fail)?;
            dims
        }
        FlowLayer::Squeeze => {
            if !dims.height.is_multiple_of(2) || !dims.width.is_multiple_of(2) {
                return Err(fail(Invalid::NotDivisible));
            }
            summary.scratch.work = summary.scratch.work.max(state_copy);
            Dims::new(dims.channels * 4, dims.height / 2, dims.width / 2)
                .checked()
                .map_err(fail)?
        }
        FlowLayer::Unsqueeze => {
            if !dims.channels.is_multiple_of(4) {
                return Err(fail(Invalid::NotDivisible));
            }
            summary.scratch.work = summary.scratch.work.max(state_copy);
            Dims::new(dims.channels / 4, dims.height * 2, dims.width * 2)
                .checked()
                .map_err(fail)?
        }
        FlowLayer::ActNorm(actnorm) => {
            let channels = [dims.channels];
            check_tensor(&actnorm.bias, &channels, summary).map_err(fail)?;
            check_tensor(&actnorm.log_scale, &channels, summary).map_err(fail)?;
            check_log_scale(&actnorm.log_scale).map_err(fail)?;
            add_macs(summary, dims.elements()).map_err(fail)?;
            dims
        }
        FlowLayer::InvertibleConv1x1(conv) => {
            check_tensor(&conv.weight, &[dims.channels, dims.channels], summary).map_err(fail)?;
            if !conv.log_abs_det.is_finite() {
                return Err(fail(Invalid::NonFinite));
            }
            summary.scratch.work = summary.scratch.work.max(state_copy);
            let macs = dims.elements().saturating_mul(u64::from(dims.channels));
            add_macs(summary, macs).map_err(fail)?;
            dims
        }
        FlowLayer::FactorOut { keep_channels } => {
            if *keep_channels == 0 || *keep_channels >= dims.channels {
                return Err(fail(Invalid::FactorOut));
            }
            Dims::new(*keep_channels, dims.height, dims.width)
        }
        FlowLayer::Embed(embed) => {
            if index != 0 {
                return Err(fail(Invalid::EmbedNotFirst));
            }
            let plan = plan_net(&embed.net, dims, |op| check_net_tensors(op, summary)).map_err(
                |NetError { node, reason }| Error::Invalid {
                    at: Location::Net { layer: index, node },
                    reason,
                },
            )?;
            summary.scratch.work = summary.scratch.work.max(plan.total());
            summary.scratch.state = summary.scratch.state.max(plan.output.elements() as usize);
            add_macs(summary, plan.macs).map_err(fail)?;
            summary.density_dims = plan.output.elements();
            summary.embedded = true;
            plan.output
        }
    };
    Ok(out)
}

fn validate_coupling(
    coupling: &Coupling<'_>,
    dims: Dims,
    layer: u32,
    summary: &mut ModelSummary,
) -> Result<SlotPlan> {
    let fail = |reason| Error::Invalid {
        at: Location::Flow { layer },
        reason,
    };
    let net_input = coupling_net_input(coupling.mask, dims).map_err(fail)?;
    check_tensor(&coupling.scale, &[net_input.channels], summary).map_err(fail)?;
    check_log_scale(&coupling.scale).map_err(fail)?;
    let plan = plan_net(&coupling.net, net_input, |op| {
        check_net_tensors(op, summary)
    })
    .map_err(|NetError { node, reason }| Error::Invalid {
        at: Location::Net { layer, node },
        reason,
    })?;
    let expected = Dims::new(net_input.channels * 2, net_input.height, net_input.width);
    if plan.output != expected {
        return Err(fail(Invalid::NetOutputShape));
    }
    Ok(plan)
}

/// Shape the coupling network reads for `mask` on an activation of shape `dims`; errors when
/// the mask does not fit.
pub fn coupling_net_input(mask: Mask, dims: Dims) -> core::result::Result<Dims, Invalid> {
    match mask {
        Mask::Checkerboard { .. } => {
            if dims.pixels() < 2 {
                return Err(Invalid::MaskShape);
            }
            Ok(dims)
        }
        Mask::Horizontal { .. } => {
            if dims.height < 2 {
                return Err(Invalid::MaskShape);
            }
            Ok(dims)
        }
        Mask::Quadrant { read, write } => {
            if dims.height < 2 || dims.width < 2 || read == write {
                return Err(Invalid::MaskShape);
            }
            Ok(dims)
        }
        Mask::ChannelWise { .. } => {
            if dims.channels < 2 || !dims.channels.is_multiple_of(2) {
                return Err(Invalid::MaskShape);
            }
            Ok(Dims::new(dims.channels / 2, dims.height, dims.width))
        }
    }
}

/// A network node that breaks a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct NetError {
    /// Node index.
    pub node: u32,
    /// The broken rule.
    pub reason: Invalid,
}

/// Infers every slot's shape through `net` reading `input` in slot 0, and the scratch its
/// slots need. `check` sees each node's operation first (tensor checks, accounting).
pub fn plan_net<'a, F>(
    net: &Seq<'a, NetNode<'a>>,
    input: Dims,
    mut check: F,
) -> core::result::Result<SlotPlan, NetError>
where
    F: FnMut(&NetOp<'a>) -> core::result::Result<(), Invalid>,
{
    let mut shapes: [Option<Dims>; MAX_SLOTS] = [None; MAX_SLOTS];
    let mut capacity = [0usize; MAX_SLOTS];
    shapes[0] = Some(input);
    capacity[0] = input.elements() as usize;
    let mut last: Option<(u8, Dims)> = None;
    let mut macs = 0u64;
    let mut nodes = net.iter();
    let mut node_index = 0u32;
    for node in nodes.by_ref() {
        let at = |reason| NetError {
            node: node_index,
            reason,
        };
        let node = node.map_err(|_| at(Invalid::Sequence))?;
        check(&node.op).map_err(at)?;
        let slot_shape = |slot: u8| -> core::result::Result<Dims, Invalid> {
            shapes
                .get(usize::from(slot))
                .ok_or(Invalid::SlotOutOfRange)?
                .ok_or(Invalid::SlotUnset)
        };
        let input_shape = slot_shape(node.input).map_err(at)?;
        let out_slot = usize::from(node.output);
        if out_slot >= MAX_SLOTS {
            return Err(at(Invalid::SlotOutOfRange));
        }
        if node.input == node.output && !is_elementwise(&node.op) {
            return Err(at(Invalid::SlotAliased));
        }
        let other = match node.op {
            NetOp::Add { other } => Some(slot_shape(other).map_err(at)?),
            _ => None,
        };
        let (out, op_macs) = infer_op(&node.op, input_shape, other).map_err(at)?;
        let out = out.checked().map_err(at)?;
        macs = macs.checked_add(op_macs).ok_or(at(Invalid::TooLarge))?;
        if let (Some(shape), Some(capacity)) =
            (shapes.get_mut(out_slot), capacity.get_mut(out_slot))
        {
            *shape = Some(out);
            *capacity = (*capacity).max(out.elements() as usize);
        }
        last = Some((node.output, out));
        node_index = node_index.checked_add(1).ok_or(at(Invalid::TooLarge))?;
    }
    if node_index as usize != net.len() || !nodes.unread_bytes().is_empty() {
        return Err(NetError {
            node: node_index,
            reason: Invalid::Sequence,
        });
    }
    let (output_slot, output) = last.ok_or(NetError {
        node: 0,
        reason: Invalid::EmptyNet,
    })?;
    Ok(SlotPlan {
        capacity,
        output_slot,
        output,
        macs,
    })
}

fn is_elementwise(op: &NetOp<'_>) -> bool {
    matches!(
        op,
        NetOp::Relu
            | NetOp::Tanh
            | NetOp::ChannelAffine(_)
            | NetOp::Add { .. }
            | NetOp::Reshape { .. }
    )
}

/// Output shape and multiply-accumulates of `op` on an input of shape `input`
/// (`other`: the second operand's shape, for `Add`). Tensor shapes must already be checked.
pub fn infer_op(
    op: &NetOp<'_>,
    input: Dims,
    other: Option<Dims>,
) -> core::result::Result<(Dims, u64), Invalid> {
    match op {
        NetOp::Conv2d(conv) => {
            let [out_c, in_c, kh, kw] = dims4(&conv.weight)?;
            if in_c != input.channels {
                return Err(Invalid::OperandShape);
            }
            let stride = u32::from(conv.stride);
            let pad = u32::from(conv.padding);
            if stride == 0 {
                return Err(Invalid::ParameterOutOfRange);
            }
            let out_h = conv_out(input.height, kh, stride, pad)?;
            let out_w = conv_out(input.width, kw, stride, pad)?;
            let out = Dims::new(out_c, out_h, out_w);
            let macs = product(&[out.elements(), in_c.into(), kh.into(), kw.into()])?;
            Ok((out, macs))
        }
        NetOp::ConvTranspose2d(conv) => {
            let [in_c, out_c, kh, kw] = dims4(&conv.weight)?;
            if in_c != input.channels {
                return Err(Invalid::OperandShape);
            }
            let stride = u32::from(conv.stride);
            let pad = u32::from(conv.padding);
            let extra = u32::from(conv.output_padding);
            if stride == 0 || extra >= stride {
                return Err(Invalid::ParameterOutOfRange);
            }
            let out_h = conv_transpose_out(input.height, kh, stride, pad, extra)?;
            let out_w = conv_transpose_out(input.width, kw, stride, pad, extra)?;
            let macs = product(&[input.elements(), out_c.into(), kh.into(), kw.into()])?;
            Ok((Dims::new(out_c, out_h, out_w), macs))
        }
        NetOp::Linear(linear) => {
            let [out_f, in_f] = match linear.weight.shape.as_slice() {
                [o, i] => [*o, *i],
                _ => return Err(Invalid::TensorShape),
            };
            if u64::from(in_f) != input.elements() {
                return Err(Invalid::OperandShape);
            }
            Ok((Dims::new(out_f, 1, 1), u64::from(out_f) * u64::from(in_f)))
        }
        NetOp::ChannelAffine(affine) => {
            if !affine.scale.has_shape(&[input.channels]) {
                return Err(Invalid::OperandShape);
            }
            Ok((input, input.elements()))
        }
        NetOp::Relu | NetOp::Tanh => Ok((input, 0)),
        NetOp::ConcatNegated => Ok((
            Dims::new(input.channels.saturating_mul(2), input.height, input.width),
            0,
        )),
        NetOp::Reshape {
            channels,
            height,
            width,
        } => {
            let out = Dims::new(*channels, *height, *width);
            if out.elements() != input.elements() {
                return Err(Invalid::OperandShape);
            }
            Ok((out, 0))
        }
        NetOp::Add { .. } => {
            if other != Some(input) {
                return Err(Invalid::OperandShape);
            }
            Ok((input, 0))
        }
        NetOp::MaxPool2d { kernel, stride } | NetOp::AvgPool2d { kernel, stride } => {
            let (kernel, stride) = (u32::from(*kernel), u32::from(*stride));
            if kernel == 0 || stride == 0 {
                return Err(Invalid::ParameterOutOfRange);
            }
            let out_h = conv_out(input.height, kernel, stride, 0)?;
            let out_w = conv_out(input.width, kernel, stride, 0)?;
            Ok((Dims::new(input.channels, out_h, out_w), 0))
        }
        NetOp::GlobalAvgPool => Ok((Dims::new(input.channels, 1, 1), 0)),
    }
}

fn product(factors: &[u64]) -> core::result::Result<u64, Invalid> {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(f))
        .ok_or(Invalid::TooLarge)
}

fn dims4(tensor: &Tensor<'_>) -> core::result::Result<[u32; 4], Invalid> {
    match tensor.shape.as_slice() {
        [a, b, c, d] => Ok([*a, *b, *c, *d]),
        _ => Err(Invalid::TensorShape),
    }
}

fn conv_out(size: u32, kernel: u32, stride: u32, pad: u32) -> core::result::Result<u32, Invalid> {
    let padded = size + 2 * pad;
    if kernel == 0 || kernel > MAX_KERNEL || padded < kernel {
        return Err(Invalid::OperandShape);
    }
    Ok((padded - kernel) / stride + 1)
}

fn conv_transpose_out(
    size: u32,
    kernel: u32,
    stride: u32,
    pad: u32,
    extra: u32,
) -> core::result::Result<u32, Invalid> {
    if kernel == 0 || kernel > MAX_KERNEL {
        return Err(Invalid::OperandShape);
    }
    let full = u64::from(size - 1) * u64::from(stride) + u64::from(kernel) + u64::from(extra);
    let out = full
        .checked_sub(2 * u64::from(pad))
        .filter(|&out| out > 0)
        .ok_or(Invalid::OperandShape)?;
    u32::try_from(out).map_err(|_| Invalid::TooLarge)
}

fn check_net_tensors(op: &NetOp<'_>, summary: &mut ModelSummary) -> Result<(), Invalid> {
    match op {
        NetOp::Conv2d(conv) => {
            let [out_c, ..] = dims4(&conv.weight)?;
            check_tensor(&conv.weight, conv.weight.shape.as_slice(), summary)?;
            check_tensor(&conv.bias, &[out_c], summary)
        }
        NetOp::ConvTranspose2d(conv) => {
            let [_, out_c, ..] = dims4(&conv.weight)?;
            check_tensor(&conv.weight, conv.weight.shape.as_slice(), summary)?;
            check_tensor(&conv.bias, &[out_c], summary)
        }
        NetOp::Linear(linear) => {
            let out_f = match linear.weight.shape.as_slice() {
                [o, _] => *o,
                _ => return Err(Invalid::TensorShape),
            };
            check_tensor(&linear.weight, linear.weight.shape.as_slice(), summary)?;
            check_tensor(&linear.bias, &[out_f], summary)
        }
        NetOp::ChannelAffine(affine) => {
            let channels = match affine.scale.shape.as_slice() {
                [c] => *c,
                _ => return Err(Invalid::TensorShape),
            };
            check_tensor(&affine.scale, &[channels], summary)?;
            check_tensor(&affine.shift, &[channels], summary)
        }
        _ => Ok(()),
    }
}

/// Checks a tensor's shape against `dims`, its byte lengths and that its values are finite,
/// and counts it in `summary`.
fn check_tensor(
    tensor: &Tensor<'_>,
    dims: &[u32],
    summary: &mut ModelSummary,
) -> core::result::Result<(), Invalid> {
    if !tensor.has_shape(dims) || dims.iter().any(|&d| d == 0 || d > MAX_DIM) {
        return Err(Invalid::TensorShape);
    }
    let elements = shape_elements(dims)
        .filter(|&n| n as u64 <= MAX_ELEMENTS)
        .ok_or(Invalid::TooLarge)?;
    match &tensor.data {
        TensorData::F32(bytes) => {
            expect_len(bytes.len(), elements * 4)?;
            summary.f32_tensors += 1;
        }
        TensorData::I8 { values, scales } => {
            expect_len(values.len(), elements)?;
            let rows = dims.first().copied().unwrap_or(1) as usize;
            expect_len(scales.len(), rows * 4)?;
            summary.int8_tensors += 1;
        }
    }
    let all_finite = match (tensor.f32_values(), tensor.i8_values()) {
        (Some(values), _) => values.iter().all(f32::is_finite),
        (_, Some((_, scales))) => scales.iter().all(f32::is_finite),
        _ => true,
    };
    if !all_finite {
        return Err(Invalid::NonFinite);
    }
    summary.parameters += elements as u64;
    summary.weight_bytes += tensor.stored_bytes() as u64;
    Ok(())
}

/// Every value of a (checked) log-scale tensor lies within [`MAX_LOG_SCALE`].
fn check_log_scale(tensor: &Tensor<'_>) -> core::result::Result<(), Invalid> {
    let count = tensor.element_count().unwrap_or(0);
    let within = (0..count).all(|index| {
        tensor
            .get(index)
            .is_some_and(|value| value.abs() <= MAX_LOG_SCALE)
    });
    if within {
        Ok(())
    } else {
        Err(Invalid::LogScaleOutOfRange)
    }
}

fn expect_len(found: usize, expected: usize) -> core::result::Result<(), Invalid> {
    if found == expected {
        Ok(())
    } else {
        Err(Invalid::TensorLength { expected, found })
    }
}

fn add_macs(summary: &mut ModelSummary, macs: u64) -> core::result::Result<(), Invalid> {
    summary.macs_per_frame = summary
        .macs_per_frame
        .checked_add(macs)
        .ok_or(Invalid::TooLarge)?;
    Ok(())
}

fn validate_threshold(threshold: &Threshold) -> core::result::Result<(), Invalid> {
    if !threshold.ood_score.is_finite() {
        return Err(Invalid::NonFinite);
    }
    let rate = threshold.target_false_reject_rate;
    if !(rate > 0.0 && rate < 1.0) {
        return Err(Invalid::ParameterOutOfRange);
    }
    let mut previous = f32::NEG_INFINITY;
    for quantile in &threshold.quantiles {
        let level_ok = (0.0..=1.0).contains(&quantile.level) && quantile.level >= previous;
        if !level_ok || !quantile.ood_score.is_finite() {
            return Err(Invalid::Quantiles);
        }
        previous = quantile.level;
    }
    Ok(())
}
