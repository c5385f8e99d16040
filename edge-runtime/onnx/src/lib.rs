//! flowgate's ONNX export: a gate's flow as an ONNX graph, for TensorRT and other ONNX
//! runtimes.
//!
//! [`export`] turns a model file (`*.fgm`, f32 or int8) into an ONNX model (opset 13, IR
//! version 7: what TensorRT 8.x, e.g. on a Jetson Nano, parses) that computes what the
//! runtime's `Gate::score_levels_in_scratch` does:
//!
//! - input `levels`: float32 `[N, C, H, W]`, pixel levels 0..=255 at the model's input size
//!   (RGB channels in the order R, G, B). `N` is dynamic. Resizing is the caller's job; the
//!   runtime resizes by area averaging and rounds to integer levels.
//! - output `log_likelihood`: float32 `[N]`, in nats (of the discrete image, or of its
//!   embedding for a flow on embeddings);
//! - output `bits_per_dim`: float32 `[N]`, `-log_likelihood / (D ln 2)`.
//!
//! The OOD score and the decision stay with the caller, from the model's `metadata_props`
//! ([`keys`]): the score is `bits_per_dim`, or `|bits_per_dim - score_center|` for the
//! typical score, and a frame is rejected when its score is above `threshold` or is not
//! finite.
//!
//! A model with a native-resolution detail branch ([`flowgate_shared::Detail`]) becomes one
//! graph over the whole frame, which makes the thumbnail and crops the patches itself, as
//! the runtime's `Gate::score` does:
//!
//! - input `frame`: float32 `[N, C, H, W]`, the frame at the camera's own size
//!   (`flowgate.detail.frame` in the metadata) as full-range levels 0..=255: the gray (Y)
//!   plane for a gray model, R, G, B for a colour one;
//! - outputs `log_likelihood` and `bits_per_dim` of the thumbnail's flow as above, plus
//!   `detail_bits_per_dim` (the patches' mean) and `ood_score` (the two standardised scores
//!   combined), each float32 `[N]`. A frame is rejected when `ood_score` is above
//!   `threshold`, or when any output is not finite.
//!
//! The thumbnail is the runtime's area average rounded half up, computed from exact integer
//! sums, so integer frames give the runtime's levels. A colour frame's luma (for the
//! patches) is rounded after an f32 dot product whose order a runtime picks: a pixel whose
//! luma is within f32 rounding of a half level may land one level from the runtime's.
//!
//! ```no_run
//! // flowgate onnx --model GATE.fgm --out GATE.onnx
//! let model_file = std::fs::read("GATE.fgm")?;
//! let onnx = flowgate_onnx::export(&model_file, &flowgate_onnx::ExportOptions::default())?;
//! std::fs::write("GATE.onnx", onnx)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With a dynamic `N`, TensorRT needs an optimisation profile, e.g. for a 1x24x32 model
//! `trtexec --onnx=GATE.onnx --minShapes=levels:1x1x24x32 --optShapes=levels:1x1x24x32
//! --maxShapes=levels:8x1x24x32`. The threshold was calibrated on f32 scores: build the
//! engine in FP32 (FP16's precision is far coarser than the scores' 1e-4 bits/dim
//! agreement), or recalibrate on the engine's own scores.
//!
//! The graph uses only operators TensorRT 8 supports: Conv, ConvTranspose, Gemm, Flatten,
//! Reshape, Transpose, Slice and Concat (constant indices), Add, Sub, Mul, Neg, Exp, Log,
//! Tanh, Relu, MaxPool, AveragePool, GlobalAveragePool, ReduceSum, ReduceSumSquare, Sum,
//! (only with a detail branch) Div, Floor, Abs, Max and MatMul (only for a frame that is not
//! a whole multiple of the input size), and (only with [`Int8Weights::DequantizeLinear`])
//! DequantizeLinear. Masks are constant tensors.

mod coupling;
mod detail;
mod flow;
mod graph;
mod metadata;
mod net;
mod preprocess;
mod proto;
mod weights;

use prost::Message;

use flowgate_shared::{Dims, decode, decode_payload};

pub use metadata::{keys, score_kinds};

use crate::graph::Graph;
use crate::net::Activation;
use crate::proto::{
    GraphProto, ModelProto, OperatorSetIdProto, TypeProto, ValueInfoProto, tensor_proto::DataType,
    tensor_shape_proto, type_proto,
};

/// The ONNX operator set the graph is written for.
pub const OPSET_VERSION: i64 = 13;
/// The ONNX IR version of opset 13 (ONNX 1.8).
pub const IR_VERSION: i64 = 7;
/// Name of the graph's input: pixel levels at the model's input size.
pub const INPUT: &str = "levels";
/// Name of the graph's input for a model with a detail branch: the full-size frame.
pub const FRAME: &str = "frame";
/// Name of the log-likelihood output.
pub const LOG_LIKELIHOOD: &str = "log_likelihood";
/// Name of the bits/dim output.
pub const BITS_PER_DIM: &str = "bits_per_dim";
/// Name of the detail branch's output: the patches' mean bits/dim.
pub const DETAIL_BITS_PER_DIM: &str = "detail_bits_per_dim";
/// Name of the combined OOD score's output (a model with a detail branch).
pub const OOD_SCORE: &str = "ood_score";
/// The symbolic batch dimension of the input and outputs.
pub const BATCH_DIM: &str = "N";

/// How int8 weights are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Int8Weights {
    /// As their f32 values (`q * scale`, the runtime's product): every ONNX runtime reads
    /// them, TensorRT 8 included. The Jetson Nano's GPU has no int8 arithmetic anyway.
    #[default]
    Dequantized,
    /// As int8 initializers, each feeding a DequantizeLinear (one scale per index of the
    /// first dimension, as the format stores them; zero point 0) in front of its Conv,
    /// ConvTranspose or Gemm: a quarter of the weight bytes, the same arithmetic. The activations stay f32: this is weight-only quantization,
    /// which TensorRT 8 does not run as int8; it is for runtimes that fold or fuse it (ONNX
    /// Runtime, TensorRT 10). Other int8 tensors (biases, scales) are still dequantized.
    DequantizeLinear,
}

/// How to export.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExportOptions {
    /// How int8 weights are written.
    pub int8_weights: Int8Weights,
}

impl ExportOptions {
    /// These options with int8 weights written as `int8_weights`.
    pub fn with_int8_weights(mut self, int8_weights: Int8Weights) -> Self {
        self.int8_weights = int8_weights;
        self
    }
}

/// Why a model could not be exported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The bytes are not a valid model file.
    #[error("not a valid flowgate model: {0}")]
    Model(#[from] flowgate_shared::Error),
    /// The model has a detail branch whose thumbnail the graph cannot compute as the
    /// runtime does: the model takes its input at an exact size that is not the frame's, the
    /// frame is smaller than the model's input, or one thumbnail pixel
    /// averages so many source pixels (in the resize's units) that f32 could not round
    /// their mean as the runtime does.
    #[error(
        "the model's detail branch reads {}x{} frames, which the graph cannot area-average to \
         the model's {}x{} input exactly as the runtime does; score whole frames with \
         flowgate-edge, the C library, GStreamer or Python instead",
        from.0, from.1, to.0, to.1
    )]
    DetailResize {
        /// The camera's frame size (width, height).
        from: (u32, u32),
        /// The model's input size (width, height).
        to: (u32, u32),
    },
}

/// Exports a model file (`*.fgm`) as a serialized ONNX model; see the crate documentation
/// for the graph's inputs, outputs and metadata.
pub fn export(model_file: &[u8], options: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    let validated = decode(model_file)?;
    let (model, summary) = (&validated.model, &validated.summary);
    let spec = model.input;
    let int8 = options.int8_weights;

    let mut graph = Graph::default();
    let mut outputs = vec![LOG_LIKELIHOOD, BITS_PER_DIM];
    if model.detail.is_some() {
        outputs.extend([DETAIL_BITS_PER_DIM, OOD_SCORE]);
    }
    let input_name = if model.detail.is_some() { FRAME } else { INPUT };
    for name in core::iter::once(input_name).chain(outputs.iter().copied()) {
        graph.reserve(name);
    }
    let (levels, input_shape) = match &model.detail {
        // The branch reads the frame at the camera's size; the graph makes the thumbnail.
        Some(detail) => {
            let (from, to) = (
                (detail.frame_width, detail.frame_height),
                (spec.width, spec.height),
            );
            // The runtime refuses such frames (an exact-size model is never resized).
            if spec.resize == flowgate_shared::Resize::Exact && from != to {
                return Err(ExportError::DetailResize { from, to });
            }
            let levels = detail::thumbnail(&mut graph, FRAME, spec.channels, from, to)?;
            (
                levels,
                [spec.channels, detail.frame_height, detail.frame_width],
            )
        }
        None => (INPUT.to_owned(), [spec.channels, spec.height, spec.width]),
    };
    let thumbnail = Levels {
        name: &levels,
        dims: Dims::new(spec.channels, spec.height, spec.width),
    };
    let outputs_of_the_flow = [LOG_LIKELIHOOD, BITS_PER_DIM];
    emit_density(
        &mut graph,
        model,
        summary,
        thumbnail,
        int8,
        "",
        outputs_of_the_flow,
    )?;
    if let Some(detail) = &model.detail {
        emit_detail(&mut graph, model, detail, int8)?;
    }

    let (node, initializer) = graph.into_parts();
    let doc_string = match model.detail {
        Some(_) => "full-size frames to log-likelihood, bits/dim, patches' bits/dim, OOD score",
        None => "pixel levels to log-likelihood and bits/dim",
    };
    let graph = GraphProto {
        node,
        name: Some(model.name.to_owned()),
        initializer,
        doc_string: Some(format!("flowgate gate '{}': {doc_string}", model.name)),
        input: vec![tensor_value(input_name, &input_shape.map(i64::from))],
        output: outputs.iter().map(|name| tensor_value(name, &[])).collect(),
        ..Default::default()
    };
    let onnx = ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET_VERSION),
        }],
        producer_name: Some("flowgate-onnx".to_owned()),
        producer_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        doc_string: Some(model.provenance.to_owned()),
        graph: Some(graph),
        metadata_props: metadata::entries(model, summary, int8),
        ..Default::default()
    };
    Ok(onnx.encode_to_vec())
}

/// A flow's input levels: a value `[N, C, H, W]` of pixel levels 0..=255.
struct Levels<'a> {
    name: &'a str,
    dims: Dims,
}

/// One flow (the model's, or a detail branch's patch model) on `levels`: the preprocessing,
/// the layers and the prior, written into `outputs` (log-likelihood, bits/dim). `scope`
/// prefixes the flow's value names.
fn emit_density(
    graph: &mut Graph,
    model: &flowgate_shared::Model<'_>,
    summary: &flowgate_shared::ModelSummary,
    levels: Levels<'_>,
    int8: Int8Weights,
    scope: &str,
    outputs: [&str; 2],
) -> Result<(), ExportError> {
    let preprocessed = preprocess::emit(
        graph,
        model.input.preprocess,
        levels.name,
        levels.dims.elements(),
        scope,
    );
    let input = Activation {
        name: preprocessed.input,
        dims: levels.dims,
    };
    let mut density = flow::emit_flow(graph, model, input, int8, scope)?;
    // A flow on embeddings models the embedding, not the pixels the preprocessing maps.
    if !summary.embedded {
        density.per_frame.push(preprocessed.log_det_per_frame);
        density.constant += preprocessed.log_det_constant;
    }
    emit_outputs(graph, density, summary.density_dims, scope, outputs);
    Ok(())
}

/// The detail branch on the graph's full-size frame: its patches through the patch model,
/// their mean bits/dim and the combined score (the outputs [`DETAIL_BITS_PER_DIM`] and
/// [`OOD_SCORE`]).
fn emit_detail(
    graph: &mut Graph,
    model: &flowgate_shared::Model<'_>,
    detail: &flowgate_shared::Detail<'_>,
    int8: Int8Weights,
) -> Result<(), ExportError> {
    let patch_model = decode_payload(detail.patch_model.as_slice())?;
    let patch_spec = patch_model.model.input;
    let luma = detail::luma(graph, FRAME, model.input.channels);
    let patch = (patch_spec.width, patch_spec.height);
    let batch = detail::patches(graph, &luma, detail, patch)?;
    let patch_levels = Levels {
        name: &batch,
        dims: Dims::new(1, patch_spec.height, patch_spec.width),
    };
    let patch_log_likelihood = graph.claim("patch.log_likelihood");
    let patch_bits = graph.claim("patch.bits_per_dim");
    emit_density(
        graph,
        &patch_model.model,
        &patch_model.summary,
        patch_levels,
        int8,
        "patch.",
        [&patch_log_likelihood, &patch_bits],
    )?;
    detail::mean_per_frame(graph, &patch_bits, detail.patches(), DETAIL_BITS_PER_DIM);
    detail::combined_score(
        graph,
        detail,
        model.score,
        BITS_PER_DIM,
        DETAIL_BITS_PER_DIM,
        OOD_SCORE,
    );
    Ok(())
}

/// `log_likelihood = sum(per_frame) - sum(squares) / 2 + constant` and `bits_per_dim`,
/// written into `outputs`.
fn emit_outputs(
    graph: &mut Graph,
    density: flow::LogDensity,
    density_dims: u64,
    scope: &str,
    [log_likelihood_out, bits_per_dim_out]: [&str; 2],
) {
    let sum = |graph: &mut Graph, terms: &[String], hint: &str| -> String {
        let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
        graph.op("Sum", &terms, vec![], hint)
    };
    // The prior over what remains is always there: `squares` is never empty.
    let squares = sum(
        graph,
        &density.squares,
        &format!("{scope}prior.sum_squares"),
    );
    let minus_half = graph.f32_scalar("prior.minus_half", 1, -0.5);
    let mut log_likelihood = graph.op(
        "Mul",
        &[&squares, &minus_half],
        vec![],
        &format!("{scope}prior.quadratic"),
    );
    if !density.per_frame.is_empty() {
        let log_dets = sum(graph, &density.per_frame, &format!("{scope}log_det"));
        log_likelihood = graph.op(
            "Add",
            &[&log_likelihood, &log_dets],
            vec![],
            &format!("{scope}log_density"),
        );
    }
    let constant = graph.f32_scalar(
        &format!("{scope}log_density.constant"),
        1,
        density.constant as f32,
    );
    graph.op_into(
        "Add",
        &[&log_likelihood, &constant],
        vec![],
        log_likelihood_out,
    );
    let per_bit = -1.0 / (density_dims as f64 * core::f64::consts::LN_2);
    let per_bit = graph.f32_scalar(&format!("{scope}bits_per_dim.factor"), 1, per_bit as f32);
    graph.op_into(
        "Mul",
        &[log_likelihood_out, &per_bit],
        vec![],
        bits_per_dim_out,
    );
}

/// A float32 tensor `[N, frame_shape...]`.
fn tensor_value(name: &str, frame_shape: &[i64]) -> ValueInfoProto {
    use tensor_shape_proto::{Dimension, dimension::Value};
    let batch = Dimension {
        value: Some(Value::DimParam(BATCH_DIM.to_owned())),
        ..Default::default()
    };
    let dims = frame_shape.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d)),
        ..Default::default()
    });
    let shape = crate::proto::TensorShapeProto {
        dim: core::iter::once(batch).chain(dims).collect(),
    };
    ValueInfoProto {
        name: Some(name.to_owned()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(shape),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}
