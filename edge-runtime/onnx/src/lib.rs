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
//! Tanh, Relu, MaxPool, AveragePool, GlobalAveragePool, ReduceSum, ReduceSumSquare, Sum, and
//! (only with [`Int8Weights::DequantizeLinear`]) DequantizeLinear. Masks are constant
//! tensors.

mod coupling;
mod flow;
mod graph;
mod metadata;
mod net;
mod preprocess;
mod proto;
mod weights;

use prost::Message;

use flowgate_shared::{Dims, decode};

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
/// Name of the graph's input.
pub const INPUT: &str = "levels";
/// Name of the log-likelihood output.
pub const LOG_LIKELIHOOD: &str = "log_likelihood";
/// Name of the bits/dim output.
pub const BITS_PER_DIM: &str = "bits_per_dim";
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
    /// The model has a native-resolution detail branch, which the graph cannot express yet
    /// (its input is the thumbnail; the branch reads patches of the full-size frame).
    #[error(
        "the model has a native-resolution detail branch, which the ONNX export does not carry \
         yet: export the gate without it (the one flowgate detail was given), and score whole \
         frames with flowgate-edge, the C library, GStreamer or Python for the branch"
    )]
    DetailBranch,
}

/// Exports a model file (`*.fgm`) as a serialized ONNX model; see the crate documentation
/// for the graph's inputs, outputs and metadata.
pub fn export(model_file: &[u8], options: &ExportOptions) -> Result<Vec<u8>, ExportError> {
    let validated = decode(model_file)?;
    let (model, summary) = (&validated.model, &validated.summary);
    // Exporting the thumbnail's flow alone would silently drop half of the decision.
    if model.detail.is_some() {
        return Err(ExportError::DetailBranch);
    }
    let spec = model.input;
    let int8 = options.int8_weights;

    let mut graph = Graph::default();
    for name in [INPUT, LOG_LIKELIHOOD, BITS_PER_DIM] {
        graph.reserve(name);
    }
    let preprocessed = preprocess::emit(&mut graph, spec.preprocess, INPUT, summary.input_dims);
    let input = Activation {
        name: preprocessed.input,
        dims: Dims::new(spec.channels, spec.height, spec.width),
    };
    let mut density = flow::emit_flow(&mut graph, model, input, int8)?;
    // A flow on embeddings models the embedding, not the pixels the preprocessing maps.
    if !summary.embedded {
        density.per_frame.push(preprocessed.log_det_per_frame);
        density.constant += preprocessed.log_det_constant;
    }
    emit_outputs(&mut graph, density, summary.density_dims);

    let (node, initializer) = graph.into_parts();
    let frame_shape = [spec.channels, spec.height, spec.width].map(i64::from);
    let graph = GraphProto {
        node,
        name: Some(model.name.to_owned()),
        initializer,
        doc_string: Some(format!(
            "flowgate gate '{}': pixel levels to log-likelihood and bits/dim",
            model.name
        )),
        input: vec![tensor_value(INPUT, &frame_shape)],
        output: vec![
            tensor_value(LOG_LIKELIHOOD, &[]),
            tensor_value(BITS_PER_DIM, &[]),
        ],
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

/// `log_likelihood = sum(per_frame) - sum(squares) / 2 + constant` and `bits_per_dim`.
fn emit_outputs(graph: &mut Graph, density: flow::LogDensity, density_dims: u64) {
    let sum = |graph: &mut Graph, terms: &[String], hint: &str| -> String {
        let terms: Vec<&str> = terms.iter().map(String::as_str).collect();
        graph.op("Sum", &terms, vec![], hint)
    };
    // The prior over what remains is always there: `squares` is never empty.
    let squares = sum(graph, &density.squares, "prior.sum_squares");
    let minus_half = graph.f32_scalar("prior.minus_half", 1, -0.5);
    let mut log_likelihood = graph.op("Mul", &[&squares, &minus_half], vec![], "prior.quadratic");
    if !density.per_frame.is_empty() {
        let log_dets = sum(graph, &density.per_frame, "log_det");
        log_likelihood = graph.op("Add", &[&log_likelihood, &log_dets], vec![], "log_density");
    }
    let constant = graph.f32_scalar("log_density.constant", 1, density.constant as f32);
    graph.op_into("Add", &[&log_likelihood, &constant], vec![], LOG_LIKELIHOOD);
    let per_bit = -1.0 / (density_dims as f64 * core::f64::consts::LN_2);
    let per_bit = graph.f32_scalar("bits_per_dim.factor", 1, per_bit as f32);
    graph.op_into("Mul", &[LOG_LIKELIHOOD, &per_bit], vec![], BITS_PER_DIM);
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
