//! What a TensorRT user relies on, read back from the exported bytes by tract's own ONNX
//! parser (not this crate's messages): opset 13 and IR 7, the input and outputs by name and
//! shape with a symbolic batch, only operators TensorRT 8 parses, and the score kind,
//! center and threshold in `metadata_props`.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::{committed_model, tiny_detail_model_file};
use flowgate_onnx::{
    BATCH_DIM, BITS_PER_DIM, DETAIL_BITS_PER_DIM, ExportError, ExportOptions, FRAME, INPUT,
    Int8Weights, LOG_LIKELIHOOD, OOD_SCORE, export, keys, score_kinds,
};
use flowgate_shared::example::{tiny_embedding_model, tiny_model};
use flowgate_shared::{Model, ScoreKind, decode, encode};
use tract_onnx::pb::{self, tensor_proto::DataType, tensor_shape_proto::dimension, type_proto};
use tract_onnx::prelude::Framework;

const COMMITTED: [&str; 7] = [
    "fmnist-realnvp.f32",
    "fmnist-realnvp.int8",
    "fmnist-cycle-mask-l16.f32",
    "fmnist-cycle-mask-l16.int8",
    "fmnist-embedding.f32",
    "fmnist-embedding.int8",
    "camera-vtest",
];

/// ONNX operators TensorRT 8.x's parser supports (onnx-tensorrt's operators.md for 8.0 to
/// 8.6) that this exporter may use.
const TENSORRT_8_OPERATORS: [&str; 28] = [
    "Abs",
    "Add",
    "AveragePool",
    "Concat",
    "Conv",
    "ConvTranspose",
    "DequantizeLinear",
    "Div",
    "Exp",
    "Flatten",
    "Floor",
    "Gemm",
    "GlobalAveragePool",
    "Log",
    "MatMul",
    "Max",
    "MaxPool",
    "Mul",
    "Neg",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Slice",
    "Sub",
    "Sum",
    "Tanh",
    "Transpose",
];

/// Every committed model and both fixtures, as model files.
fn all_models() -> Vec<(String, Vec<u8>)> {
    let mut models: Vec<(String, Vec<u8>)> = COMMITTED
        .iter()
        .map(|name| (name.to_string(), committed_model(name)))
        .collect();
    for model in [tiny_model(), tiny_embedding_model()] {
        models.push((model.name.to_owned(), encode(&model).expect("encodes")));
    }
    models
}

/// Models with a native-resolution detail branch: the committed camera gate's, and shared's
/// fixture at a frame size that is a whole multiple of its input and at one that is not.
fn detail_models() -> Vec<(String, Vec<u8>)> {
    vec![
        (
            "camera-vtest-detail".to_owned(),
            committed_model("camera-vtest-detail"),
        ),
        (
            "tiny-detail 24x18".to_owned(),
            tiny_detail_model_file((24, 18)),
        ),
        (
            "tiny-detail 25x17".to_owned(),
            tiny_detail_model_file((25, 17)),
        ),
    ]
}

fn parse(onnx: &[u8]) -> pb::ModelProto {
    tract_onnx::onnx()
        .proto_model_for_read(&mut &onnx[..])
        .expect("a well-formed ONNX model")
}

fn metadata(model: &pb::ModelProto) -> HashMap<&str, &str> {
    model
        .metadata_props
        .iter()
        .map(|entry| (entry.key.as_str(), entry.value.as_str()))
        .collect()
}

/// The tensor's element type and its dimensions, `None` for a symbolic one.
fn float_tensor_shape(value: &pb::ValueInfoProto) -> Vec<Result<i64, String>> {
    let Some(type_proto::Value::TensorType(tensor)) =
        value.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        panic!("{} is not a tensor", value.name);
    };
    assert_eq!(tensor.elem_type, DataType::Float as i32, "{}", value.name);
    let shape = tensor.shape.as_ref().expect("a declared shape");
    shape
        .dim
        .iter()
        .map(|dim| match dim.value.as_ref().expect("a dimension") {
            dimension::Value::DimValue(value) => Ok(*value),
            dimension::Value::DimParam(name) => Err(name.clone()),
        })
        .collect()
}

#[test]
fn every_export_is_opset_13_with_the_documented_input_and_outputs() {
    for (name, model_file) in all_models() {
        let spec = decode(&model_file).expect("valid").model.input;
        let onnx = parse(&export(&model_file, &ExportOptions::default()).expect("exports"));
        assert_eq!(onnx.ir_version, 7, "{name}");
        let opsets: Vec<(&str, i64)> = onnx
            .opset_import
            .iter()
            .map(|opset| (opset.domain.as_str(), opset.version))
            .collect();
        assert_eq!(
            opsets,
            [("", 13)],
            "{name}: the default domain at opset 13 only"
        );
        let graph = onnx.graph.as_ref().expect("a graph");
        let inputs: Vec<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(inputs, [INPUT], "{name}");
        let batch = Err(BATCH_DIM.to_owned());
        let frame = [spec.channels, spec.height, spec.width].map(|d| Ok(i64::from(d)));
        let expected: Vec<_> = std::iter::once(batch.clone()).chain(frame).collect();
        assert_eq!(float_tensor_shape(&graph.input[0]), expected, "{name}");
        let outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(outputs, [LOG_LIKELIHOOD, BITS_PER_DIM], "{name}");
        for output in &graph.output {
            assert_eq!(
                float_tensor_shape(output),
                std::slice::from_ref(&batch),
                "{name}"
            );
        }
    }
}

#[test]
fn exports_use_only_operators_tensorrt_8_parses() {
    let allowed: BTreeSet<&str> = TENSORRT_8_OPERATORS.into_iter().collect();
    let mut used = BTreeSet::new();
    for (name, model_file) in all_models().into_iter().chain(detail_models()) {
        for int8 in [Int8Weights::Dequantized, Int8Weights::DequantizeLinear] {
            let options = ExportOptions::default().with_int8_weights(int8);
            let onnx = parse(&export(&model_file, &options).expect("exports"));
            for node in &onnx.graph.as_ref().expect("a graph").node {
                assert!(
                    allowed.contains(node.op_type.as_str()),
                    "{name}: {} is not on the TensorRT 8 list",
                    node.op_type
                );
                assert!(
                    node.domain.is_empty(),
                    "{name}: {} outside ONNX",
                    node.op_type
                );
                used.insert(node.op_type.clone());
            }
        }
    }
    println!("operators used: {used:?}");
    // The fixtures reach every operator on the list: none is there for nothing.
    assert_eq!(used.len(), allowed.len(), "unused: {:?}", allowed);
}

#[test]
fn metadata_holds_the_score_kind_and_threshold() {
    for (name, model_file) in all_models() {
        let model = decode(&model_file).expect("valid").model;
        let onnx = parse(&export(&model_file, &ExportOptions::default()).expect("exports"));
        let props = metadata(&onnx);
        assert_eq!(props.get(keys::MODEL), Some(&model.name), "{name}");
        assert_eq!(
            props.get(keys::SCORE_KIND),
            Some(&score_kinds::BITS_PER_DIM),
            "{name}"
        );
        assert_eq!(props.get(keys::SCORE_CENTER), None, "{name}");
        match &model.threshold {
            Some(threshold) => {
                let written: f32 = props[keys::THRESHOLD].parse().expect("a number");
                assert_eq!(written.to_bits(), threshold.ood_score.to_bits(), "{name}");
                let rate: f32 = props[keys::TARGET_FALSE_REJECT_RATE].parse().expect("rate");
                assert_eq!(rate, threshold.target_false_reject_rate, "{name}");
            }
            None => assert_eq!(props.get(keys::THRESHOLD), None, "{name}"),
        }
    }
}

#[test]
fn metadata_holds_the_typical_score_center() {
    let center = 2.718_281_7_f32;
    let model = Model {
        score: ScoreKind::TypicalBitsPerDim { center },
        ..tiny_model()
    };
    let onnx = export(&encode(&model).expect("encodes"), &ExportOptions::default());
    let onnx = parse(&onnx.expect("exports"));
    let props = metadata(&onnx);
    assert_eq!(
        props.get(keys::SCORE_KIND),
        Some(&score_kinds::TYPICAL_BITS_PER_DIM)
    );
    let written: f32 = props[keys::SCORE_CENTER].parse().expect("a number");
    assert_eq!(written.to_bits(), center.to_bits());
    assert_eq!(props[keys::THRESHOLD], "2.5");
}

#[test]
fn dequantize_linear_keeps_int8_weights_and_f32_models_unchanged() {
    let dequantize_linear =
        ExportOptions::default().with_int8_weights(Int8Weights::DequantizeLinear);
    for name in COMMITTED {
        let model_file = committed_model(name);
        let summary = decode(&model_file).expect("valid").summary;
        let dequantized = export(&model_file, &ExportOptions::default()).expect("exports");
        let kept = export(&model_file, &dequantize_linear).expect("exports");
        // Quantized values and zero points: one byte per element.
        let int8_bytes: usize = parse(&kept)
            .graph
            .expect("a graph")
            .initializer
            .iter()
            .filter(|tensor| tensor.data_type == DataType::Int8 as i32)
            .map(|tensor| tensor.raw_data.len())
            .sum();
        println!(
            "{name}: {} bytes as f32, {} bytes with DequantizeLinear",
            dequantized.len(),
            kept.len()
        );
        if summary.int8_tensors == 0 {
            assert_eq!(kept, dequantized, "{name}: nothing to keep as int8");
        } else {
            // Each int8 weight saves 3 of its f32 value's 4 bytes, less its scale, zero
            // point and DequantizeLinear node.
            assert!(int8_bytes > 0, "{name}");
            let saved = dequantized.len() - kept.len();
            assert!(
                saved >= 2 * int8_bytes,
                "{name}: {saved} bytes saved on {int8_bytes}"
            );
            assert_eq!(
                metadata(&parse(&kept))[keys::WEIGHTS],
                "int8_dequantize_linear"
            );
        }
    }
}

#[test]
fn exports_are_deterministic() {
    let model_file = committed_model("camera-vtest");
    let first = export(&model_file, &ExportOptions::default()).expect("exports");
    let second = export(&model_file, &ExportOptions::default()).expect("exports");
    assert_eq!(first, second);
}

#[test]
fn invalid_model_files_are_refused() {
    assert!(matches!(
        export(b"not a model", &ExportOptions::default()),
        Err(ExportError::Model(_))
    ));
    let mut corrupted = committed_model("camera-vtest");
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x55; // the checksum no longer matches
    assert!(matches!(
        export(&corrupted, &ExportOptions::default()),
        Err(ExportError::Model(
            flowgate_shared::Error::ChecksumMismatch { .. }
        ))
    ));
}

#[test]
fn a_detail_branch_takes_the_full_frame_and_adds_two_outputs() {
    for (name, model_file) in detail_models() {
        let model = decode(&model_file).expect("valid").model;
        let detail = model.detail.as_ref().expect("a branch");
        let onnx = parse(&export(&model_file, &ExportOptions::default()).expect("exports"));
        let graph = onnx.graph.as_ref().expect("a graph");
        let inputs: Vec<&str> = graph.input.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(inputs, [FRAME], "{name}");
        let batch = Err(BATCH_DIM.to_owned());
        let frame = [
            model.input.channels,
            detail.frame_height,
            detail.frame_width,
        ]
        .map(|d| Ok(i64::from(d)));
        let expected: Vec<_> = std::iter::once(batch.clone()).chain(frame).collect();
        assert_eq!(float_tensor_shape(&graph.input[0]), expected, "{name}");
        let outputs: Vec<&str> = graph.output.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(
            outputs,
            [LOG_LIKELIHOOD, BITS_PER_DIM, DETAIL_BITS_PER_DIM, OOD_SCORE],
            "{name}"
        );
        for output in &graph.output {
            assert_eq!(
                float_tensor_shape(output),
                std::slice::from_ref(&batch),
                "{name}"
            );
        }
        let props = metadata(&onnx);
        assert_eq!(
            props.get(keys::SCORE_KIND),
            Some(&score_kinds::DETAIL_COMBINED),
            "{name}"
        );
        let frame = format!("{}x{}", detail.frame_width, detail.frame_height);
        assert_eq!(
            props.get(keys::DETAIL_FRAME),
            Some(&frame.as_str()),
            "{name}"
        );
        let grid = format!("{}x{}", detail.columns, detail.rows);
        assert_eq!(props.get(keys::DETAIL_GRID), Some(&grid.as_str()), "{name}");
        assert!(props.contains_key(keys::DETAIL_PATCH), "{name}");
        if let Some(threshold) = &model.threshold {
            let written: f32 = props[keys::THRESHOLD].parse().expect("a number");
            assert_eq!(written.to_bits(), threshold.ood_score.to_bits(), "{name}");
        }
    }
}

#[test]
fn a_detail_branch_the_graph_cannot_average_exactly_is_refused() {
    // 257 columns into 4 and 257 rows into 4: each thumbnail pixel is 257 x 257 units of a
    // quarter pixel, past what f32 rounds as the runtime does.
    assert!(matches!(
        export(
            &tiny_detail_model_file((257, 257)),
            &ExportOptions::default()
        ),
        Err(ExportError::DetailResize {
            from: (257, 257),
            to: (4, 4)
        })
    ));
    // A model that takes only frames of its exact size never resizes: the runtime refuses
    // the branch's frames, and so does the export.
    let mut exact = flowgate_shared::example::tiny_detail_model();
    exact.input.resize = flowgate_shared::Resize::Exact;
    assert!(matches!(
        export(&encode(&exact).expect("encodes"), &ExportOptions::default()),
        Err(ExportError::DetailResize { to: (4, 4), .. })
    ));
    // 128 x 128 into 4 x 4 is 32 x 32 whole pixels.
    assert!(
        export(
            &tiny_detail_model_file((128, 128)),
            &ExportOptions::default()
        )
        .is_ok()
    );
}
