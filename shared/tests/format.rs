//! Model-file round trips, pinned bytes, and robustness of the decoder against truncated,
//! corrupted and random input.

use flowgate_shared::example::{tiny_detail_model, tiny_model};
use flowgate_shared::{
    Dims, Error, FORMAT_VERSION, FlowLayer, HEADER_LEN, InputSpec, Invalid, Location, MAGIC, Model,
    NetOp, Preprocess, Resize, ScoreKind, Seq, Tensor, decode, decode_payload, encode,
};

fn tiny_file() -> Vec<u8> {
    encode(&tiny_model()).expect("the fixture is valid")
}

/// Rewrites the header's length and CRC so a modified payload gets past the framing.
fn reframe(payload: &[u8]) -> Vec<u8> {
    let mut file = flowgate_shared::header::header_for(payload)
        .expect("small payload")
        .to_vec();
    file.extend_from_slice(payload);
    file
}

#[test]
fn round_trip_reencodes_to_identical_bytes() {
    let file = tiny_file();
    let decoded = decode(&file).expect("decodes");
    assert_eq!(encode(&decoded.model).expect("re-encodes"), file);
    assert_eq!(decoded.model.name, "tiny");
    assert_eq!(
        decoded.model.input.preprocess,
        Preprocess::Logit { alpha: 0.05 }
    );
    assert_eq!(decoded.model.score, ScoreKind::BitsPerDim);
    let threshold = decoded.model.threshold.as_ref().expect("calibrated");
    assert_eq!(threshold.ood_score, 2.5);
    assert_eq!(threshold.quantiles.len(), 2);
}

#[test]
fn round_trip_preserves_every_weight() {
    let original = tiny_model();
    let file = tiny_file();
    let decoded = decode(&file).expect("decodes").model;
    fn weights(model: &Model<'_>) -> Vec<f32> {
        let mut all = Vec::new();
        for layer in model.flow.iter() {
            if let FlowLayer::Coupling(coupling) = layer.expect("layer") {
                all.extend(coupling.scale.to_f32_vec());
                for node in coupling.net.iter() {
                    if let NetOp::Conv2d(conv) = node.expect("node").op {
                        all.extend(conv.weight.to_f32_vec());
                        all.extend(conv.bias.to_f32_vec());
                    }
                }
            }
        }
        all
    }
    let before = weights(&original);
    assert!(before.len() > 100, "fixture has conv weights");
    assert_eq!(before, weights(&decoded));
}

#[test]
fn summary_counts_layers_parameters_and_scratch() {
    let file = tiny_file();
    let summary = decode(&file).expect("decodes").summary;
    assert_eq!(summary.input_dims, 16);
    assert_eq!(summary.flow_layers, 11);
    assert_eq!(summary.couplings, 5);
    assert_eq!(summary.int8_tensors, 1);
    // The residual net's slots on (1,4,4): input 16, concat 32, conv 64, conv 64, out 32.
    // The channel-wise net on (4,2,2) needs less, so the residual net sets the work area.
    assert_eq!(summary.scratch.state, 16);
    assert_eq!(summary.scratch.work, 16 + 32 + 64 + 64 + 32);
    // Hand count of the first coupling: 3x3 conv 2->4 on 4x4 = 16*4*2*9, affine 64,
    // 1x1 conv 4->4 = 16*4*4, 1x1 conv 4->2 = 16*2*4.
    let first = 16 * 4 * 2 * 9 + 64 + 16 * 4 * 4 + 16 * 2 * 4;
    assert!(summary.macs_per_frame > first);
}

#[test]
fn header_bytes_are_pinned() {
    let file = tiny_file();
    assert_eq!(&file[..8], b"FLOWGATE");
    assert_eq!(MAGIC, *b"FLOWGATE");
    assert_eq!(u16::from_le_bytes([file[8], file[9]]), FORMAT_VERSION);
    assert_eq!(FORMAT_VERSION, 2);
    let length = u32::from_le_bytes(file[12..16].try_into().unwrap()) as usize;
    assert_eq!(length, file.len() - HEADER_LEN);
    let crc = u32::from_le_bytes(file[16..20].try_into().unwrap());
    assert_eq!(crc, crc32fast::hash(&file[HEADER_LEN..]));
}

/// A 1x2x3 model without flow layers (an independent Gaussian on the logits).
fn minimal_model(score: ScoreKind) -> Model<'static> {
    Model {
        name: "m",
        provenance: "",
        input: InputSpec {
            channels: 1,
            height: 2,
            width: 3,
            preprocess: Preprocess::Logit { alpha: 0.05 },
            resize: Resize::Exact,
        },
        flow: Seq::from_vec(Vec::new()),
        score,
        threshold: None,
        detail: None,
    }
}

/// The smallest model (no flow layers: an independent Gaussian on the logits), byte for byte.
/// A change here breaks every model file in the field: bump FORMAT_VERSION with it.
#[test]
fn minimal_model_wire_bytes_are_pinned() {
    let model = minimal_model(ScoreKind::BitsPerDim);
    let file = encode(&model).expect("valid");
    let payload = &file[HEADER_LEN..];
    let alpha = 0.05f32.to_le_bytes();
    let expected: Vec<u8> = [
        &[1, b'm'][..], // name
        &[0],           // provenance
        &[1, 2, 3],     // channels, height, width (varints)
        &[0],           // Preprocess::Logit
        &alpha,         // alpha, f32 little-endian
        &[0],           // Resize::Exact
        &[0, 0],        // flow: count 0, no element bytes
        &[0],           // ScoreKind::BitsPerDim
        &[0],           // threshold: None
        &[0],           // detail: None (format version 2)
    ]
    .concat();
    assert_eq!(payload, expected.as_slice());
    let summary = decode(&file).expect("decodes").summary;
    assert_eq!(summary.flow_layers, 0);
    assert_eq!(summary.scratch.total(), 6);
}

/// The typicality score stores its centre after the variant index; a non-finite centre is
/// refused.
#[test]
fn typical_score_round_trips_and_needs_a_finite_center() {
    let mut model = minimal_model(ScoreKind::TypicalBitsPerDim { center: 4.5 });
    let file = encode(&model).expect("valid");
    let payload = &file[HEADER_LEN..];
    // Variant 1, the centre, then no threshold and no detail branch.
    let tail: Vec<u8> = [&[1][..], &4.5f32.to_le_bytes(), &[0, 0]].concat();
    assert!(payload.ends_with(&tail), "{payload:?}");
    assert_eq!(decode(&file).expect("decodes").model.score, model.score);
    assert!((model.score.ood_score(3.0) - 1.5).abs() < 1e-12);
    assert!((model.score.ood_score(6.0) - 1.5).abs() < 1e-12);
    model.score = ScoreKind::TypicalBitsPerDim { center: f32::NAN };
    let error = encode(&model).expect_err("NaN centre");
    assert!(error.to_string().contains("OOD score"), "{error}");
}

#[test]
fn every_prefix_is_an_error() {
    let file = tiny_file();
    for len in 0..file.len() {
        let result = decode(&file[..len]);
        assert!(result.is_err(), "prefix of {len} bytes decoded");
    }
    // The payloads's prefixes must fail in the decoder itself too, not only on the length.
    let payload = &file[HEADER_LEN..];
    for len in 0..payload.len() {
        assert!(
            decode(&reframe(&payload[..len])).is_err(),
            "payload prefix {len}"
        );
    }
}

#[test]
fn every_byte_flip_is_an_error_or_a_valid_model() {
    let file = tiny_file();
    let mut decoded_after_flip = 0;
    for position in 0..file.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut corrupted = file.clone();
            corrupted[position] ^= mask;
            // The checksum catches every flip in the payload; a flip in the header is caught
            // by the magic, version, reserved, length or checksum fields.
            assert!(
                decode(&corrupted).is_err(),
                "flip {mask:#x} at {position} passed"
            );

            // With a recomputed checksum the flip reaches the decoder and validator.
            if position >= HEADER_LEN {
                let refrained = reframe(&corrupted[HEADER_LEN..]);
                if let Ok(model) = decode(&refrained) {
                    decoded_after_flip += 1;
                    encode(&model.model).expect("a model that validates re-encodes");
                }
            }
        }
    }
    // Flips inside weight values leave valid models: the test did reach the validator's
    // accept path, not just error paths.
    assert!(
        decoded_after_flip > 100,
        "only {decoded_after_flip} flips decoded"
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let payload = tiny_file()[HEADER_LEN..].to_vec();
    for round in 0..20_000 {
        let len = (next() % 256) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if round % 2 == 0 {
            // Half the inputs start like a real payload, so decoding gets deep.
            let keep = (next() as usize) % payload.len();
            bytes.splice(0..0, payload[..keep].iter().copied());
        }
        let _ = decode_payload(&bytes);
        let _ = decode(&reframe(&bytes));
    }
}

#[test]
fn framing_errors_are_specific() {
    let file = tiny_file();
    assert!(matches!(
        decode(&file[..5]),
        Err(Error::TooShort { len: 5 })
    ));

    let mut bad_magic = file.clone();
    bad_magic[0] = b'X';
    assert_eq!(decode(&bad_magic).unwrap_err(), Error::BadMagic);

    let mut future = file.clone();
    future[8] = 3;
    assert_eq!(
        decode(&future).unwrap_err(),
        Error::UnsupportedVersion {
            found: 3,
            supported: 2
        }
    );
    let mut before_the_first = file.clone();
    before_the_first[8] = 0;
    assert!(matches!(
        decode(&before_the_first),
        Err(Error::UnsupportedVersion { found: 0, .. })
    ));

    let mut corrupted = file.clone();
    let last = corrupted.len() - 1;
    corrupted[last] ^= 0x10;
    assert!(matches!(
        decode(&corrupted),
        Err(Error::ChecksumMismatch { .. })
    ));
    let message = decode(&corrupted).unwrap_err().to_string();
    assert!(message.contains("checksum"), "{message}");

    let mut padded = file.clone();
    padded.push(0);
    assert!(matches!(decode(&padded), Err(Error::LengthMismatch { .. })));

    let mut trailing = file[HEADER_LEN..].to_vec();
    trailing.push(0);
    assert_eq!(
        decode(&reframe(&trailing)).unwrap_err(),
        Error::TrailingPayload { unread: 1 }
    );
}

fn with_layers(layers: Vec<FlowLayer<'static>>, input: (u32, u32, u32)) -> Model<'static> {
    let mut model = tiny_model();
    model.input.channels = input.0;
    model.input.height = input.1;
    model.input.width = input.2;
    model.flow = Seq::from_vec(layers);
    model
}

fn invalid_reason(model: &Model<'_>) -> (Location, Invalid) {
    match encode(model) {
        Err(Error::Invalid { at, reason }) => (at, reason),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn validation_names_the_layer_and_the_rule() {
    // Squeeze on an odd height.
    let model = with_layers(vec![FlowLayer::Squeeze], (1, 3, 4));
    assert_eq!(
        invalid_reason(&model),
        (Location::Flow { layer: 0 }, Invalid::NotDivisible)
    );

    // Factor-out that keeps every channel.
    let model = with_layers(
        vec![
            FlowLayer::Squeeze,
            FlowLayer::FactorOut { keep_channels: 4 },
        ],
        (1, 4, 4),
    );
    assert_eq!(
        invalid_reason(&model),
        (Location::Flow { layer: 1 }, Invalid::FactorOut)
    );

    // Input with 2 channels.
    let model = with_layers(vec![], (2, 4, 4));
    assert_eq!(
        invalid_reason(&model),
        (Location::Input, Invalid::Channels { channels: 2 })
    );

    // A coupling network whose output has the wrong channel count: take the tiny model's
    // first coupling and apply it to a 3-channel input.
    let first = tiny_model().flow.iter().next().unwrap().unwrap();
    let model = with_layers(vec![first], (3, 4, 4));
    let (at, _) = invalid_reason(&model);
    assert!(matches!(
        at,
        Location::Flow { layer: 0 } | Location::Net { layer: 0, .. }
    ));

    // A tensor whose bytes do not match its shape.
    let mut short = Tensor::from_f32(&[4], &[1.0; 4]).unwrap();
    short.shape = heapless::Vec::from_slice(&[5]).unwrap();
    let model = with_layers(
        vec![FlowLayer::ActNorm(flowgate_shared::ActNorm {
            bias: short,
            log_scale: Tensor::from_f32(&[1], &[0.0]).unwrap(),
        })],
        (1, 4, 4),
    );
    assert_eq!(
        invalid_reason(&model),
        (Location::Flow { layer: 0 }, Invalid::TensorShape)
    );

    // A NaN weight.
    let model = with_layers(
        vec![FlowLayer::ActNorm(flowgate_shared::ActNorm {
            bias: Tensor::from_f32(&[1], &[f32::NAN]).unwrap(),
            log_scale: Tensor::from_f32(&[1], &[0.0]).unwrap(),
        })],
        (1, 4, 4),
    );
    assert_eq!(
        invalid_reason(&model),
        (Location::Flow { layer: 0 }, Invalid::NonFinite)
    );
}

#[test]
fn dims_report_elements() {
    assert_eq!(Dims::new(4, 14, 14).elements(), 784);
}

#[test]
fn embedding_models_count_the_embedding_and_must_embed_first() {
    let model = flowgate_shared::example::tiny_embedding_model();
    let bytes = encode(&model).expect("the example encodes");
    let validated = decode(&bytes).expect("and decodes");
    let summary = validated.summary;
    assert!(summary.embedded);
    assert_eq!((summary.input_dims, summary.density_dims), (16, 4));
    assert_eq!(summary.couplings, 2);
    assert_eq!(encode(&validated.model).expect("re-encodes"), bytes);

    // The extractor anywhere but first is refused.
    let mut layers: Vec<FlowLayer<'static>> = model
        .flow
        .iter()
        .map(|layer| layer.expect("a layer"))
        .collect();
    let zero = || Tensor::from_f32(&[1], &[0.0]).expect("one value");
    layers.insert(
        0,
        FlowLayer::ActNorm(flowgate_shared::ActNorm {
            bias: zero(),
            log_scale: zero(),
        }),
    );
    let moved = with_layers(layers, (1, 4, 4));
    assert_eq!(
        invalid_reason(&moved),
        (Location::Flow { layer: 1 }, Invalid::EmbedNotFirst)
    );
}

/// A version-1 file: the model's payload without the detail field, under a version-1 header.
fn version_1_file(model: &Model<'_>) -> Vec<u8> {
    assert!(model.detail.is_none());
    let file = encode(model).expect("valid");
    let payload = &file[HEADER_LEN..file.len() - 1];
    assert_eq!(
        file.last(),
        Some(&0),
        "the detail field's None tag ends the payload"
    );
    let mut old = reframe(payload);
    old[8..10].copy_from_slice(&1u16.to_le_bytes());
    old
}

#[test]
fn version_1_files_still_decode_without_a_detail_branch() {
    let model = tiny_model();
    let old = version_1_file(&model);
    let decoded = decode(&old).expect("a version-1 file decodes");
    assert!(decoded.model.detail.is_none());
    assert_eq!(decoded.summary, decode(&tiny_file()).unwrap().summary);
    // Re-encoding writes the current version.
    assert_eq!(encode(&decoded.model).unwrap(), tiny_file());
    // A version-1 header on a version-2 payload leaves a byte over.
    let mut mislabelled = tiny_file();
    mislabelled[8..10].copy_from_slice(&1u16.to_le_bytes());
    assert!(matches!(
        decode(&mislabelled),
        Err(Error::TrailingPayload { unread: 1 })
    ));
}

#[test]
fn detail_branches_round_trip_and_count_their_patches() {
    let model = tiny_detail_model();
    let file = encode(&model).expect("valid");
    let decoded = decode(&file).expect("decodes");
    assert_eq!(encode(&decoded.model).unwrap(), file);
    let plain = decode(&tiny_file()).unwrap().summary;
    let summary = decoded.summary;
    let detail = summary.detail.expect("the summary describes the branch");
    assert_eq!(detail.patches, 6);
    assert_eq!(detail.patch, (4, 4));
    assert_eq!(detail.macs_per_patch, plain.macs_per_frame);
    assert_eq!(summary.macs_per_frame, 7 * plain.macs_per_frame);
    assert_eq!(summary.parameters, 2 * plain.parameters);
    assert_eq!(summary.scratch, plain.scratch);
    assert_eq!(detail.patch_scratch, plain.scratch);
}

#[test]
fn detail_branches_are_validated() {
    let with_detail = |change: &dyn Fn(&mut flowgate_shared::Detail<'static>)| {
        let mut model = tiny_detail_model();
        change(model.detail.as_mut().unwrap());
        model
    };
    let patch_payload = |change: &dyn Fn(&mut Model<'static>)| {
        let mut patch = tiny_model();
        patch.threshold = None;
        patch.input.resize = Resize::Exact;
        change(&mut patch);
        flowgate_shared::Bytes::Owned(postcard::to_allocvec(&patch).unwrap())
    };
    let cases: Vec<(&str, Model<'static>, Invalid)> = vec![
        (
            "zero spread",
            with_detail(&|d| d.detail.spread = 0.0),
            Invalid::ParameterOutOfRange,
        ),
        (
            "NaN centre",
            with_detail(&|d| d.frame.center = f32::NAN),
            Invalid::NonFinite,
        ),
        (
            "no patches",
            with_detail(&|d| d.columns = 0),
            Invalid::DimensionOutOfRange { value: 0 },
        ),
        (
            "too many patches",
            with_detail(&|d| (d.columns, d.rows) = (100, 100)),
            Invalid::DimensionOutOfRange { value: 10_000 },
        ),
        (
            "patch larger than the frame",
            with_detail(&|d| d.frame_width = 3),
            Invalid::PatchModel,
        ),
        (
            "calibrated patch model",
            with_detail(&|d| {
                d.patch_model = patch_payload(&|p| p.threshold = tiny_model().threshold)
            }),
            Invalid::PatchModel,
        ),
        (
            "resizing patch model",
            with_detail(&|d| {
                d.patch_model = patch_payload(&|p| p.input.resize = Resize::AreaAverage)
            }),
            Invalid::PatchModel,
        ),
        (
            "nested detail branch",
            with_detail(&|d| {
                d.patch_model = patch_payload(&|p| p.detail = tiny_detail_model().detail)
            }),
            Invalid::PatchModel,
        ),
        (
            "garbage patch model",
            with_detail(&|d| d.patch_model = flowgate_shared::Bytes::Owned(vec![1, 2, 3])),
            Invalid::PatchModel,
        ),
        (
            "broken layer in the patch model",
            with_detail(&|d| {
                d.patch_model = patch_payload(&|p| {
                    p.flow = Seq::from_vec(vec![FlowLayer::FactorOut { keep_channels: 0 }])
                })
            }),
            Invalid::FactorOut,
        ),
    ];
    for (what, model, reason) in cases {
        assert_eq!(invalid_reason(&model), (Location::Detail, reason), "{what}");
    }
}
