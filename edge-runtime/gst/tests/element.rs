//! The `flowgate` element in real pipelines: the decisions of `flowgate-edge score` on the
//! same frames, in every format it accepts; what comes out for normal and corrupted input;
//! failing closed; and the errors a user sees for a bad setup.

mod common;

use common::*;
use gst::prelude::*;
use gstflowgate::verdict::UNSCORABLE;

/// The whole of vtest.avi in GRAY8 at full size, as a camera pipeline would feed it.
fn vtest_gray8(flowgate: &str) -> String {
    format!(
        "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=GRAY8 \
         ! {flowgate} ! appsink name=out sync=false",
        vtest().display()
    )
}

#[test]
fn every_vtest_frame_in_gray8_gets_the_decision_of_flowgate_edge() {
    let model = camera_model();
    let dir = temp_dir("vtest-gray8");
    let frames = dir.join("frames.gray");
    let marked = run(
        &vtest_gray8(&format!("flowgate model={} drop=false", model.display())),
        Some((&frames, Packing::Plane0 { bytes_per_pixel: 1 })),
    )
    .ok();
    let verdicts = marked.verdicts();
    assert_eq!(verdicts.len(), 795, "drop=false passes every frame");
    let cli = cli_score(&model, &frames, (768, 576), "gray8", &[]);
    let (accepted, rejected) = assert_same_as_cli(&verdicts, &cli);
    let held_out_rejected = cli[600..].iter().filter(|r| r.decision == "reject").count();
    println!(
        "vtest.avi 768x576 GRAY8 (limited-range luma): {accepted} accepted, {rejected} rejected \
         ({held_out_rejected} of the 195 held-out), the same as flowgate-edge"
    );
    assert!(rejected > 0, "the comparison needs rejected frames too");
    assert_eq!(
        marked.rejections.len(),
        rejected,
        "one message per rejected frame"
    );
    assert!(marked.rejections.iter().all(|r| !r.dropped));
}

/// The decoder's I420 as it comes (no colorimetry in its caps: GStreamer's default for YUV,
/// limited range), and the same luma taken to GRAY8 by videoconvert, which copies the plane
/// unchanged under GRAY8's full-range caps, so only `luma-range=limited` reads it right.
/// Either way, read as limited range, every frame gets flowgate-edge's `--luma-range
/// limited` decision and the held-out normal frames pass as ffmpeg's full-range gray does
/// (read as full range instead, 14 of the 195 were rejected).
#[test]
fn vtest_luma_read_in_its_own_range_passes_the_held_out_frames() {
    let model = camera_model();
    let dir = temp_dir("vtest-limited");
    for (name, caps, flowgate) in [
        (
            "I420, luma-range=auto",
            "video/x-raw,format=I420",
            "flowgate",
        ),
        (
            "GRAY8, luma-range=limited",
            "videoconvert ! video/x-raw,format=GRAY8",
            "flowgate luma-range=limited",
        ),
    ] {
        let frames = dir.join("frames.gray");
        let marked = run(
            &format!(
                "filesrc location={} ! decodebin ! {caps} ! {flowgate} model={} drop=false \
                 ! appsink name=out sync=false",
                vtest().display(),
                model.display()
            ),
            Some((&frames, Packing::Plane0 { bytes_per_pixel: 1 })),
        )
        .ok();
        let verdicts = marked.verdicts();
        assert_eq!(verdicts.len(), 795, "{name}: drop=false passes every frame");
        let cli = cli_score(
            &model,
            &frames,
            (768, 576),
            "gray8",
            &["--luma-range", "limited"],
        );
        let (accepted, rejected) = assert_same_as_cli(&verdicts, &cli);
        let held_out_rejected = cli[600..].iter().filter(|r| r.decision == "reject").count();
        println!(
            "vtest.avi 768x576 {name}: {accepted} accepted, {rejected} rejected \
             ({held_out_rejected} of the 195 held-out), the same as flowgate-edge"
        );
        assert!(
            held_out_rejected <= HELD_OUT_REJECTED_AT_MOST,
            "{name}: {held_out_rejected} of the 195 held-out normal frames rejected"
        );
    }
}

/// ffmpeg's gray frames of vtest.avi, which the gate learnt from, lose 0 of the 195 held-out
/// frames through flowgate-edge; GStreamer's decoder rounds differently, so allow a few.
const HELD_OUT_REJECTED_AT_MOST: usize = 3;

/// See `fed_rgb_the_camera_gate_passes_the_held_out_frames_of_vtest`.
const HELD_OUT_RGB_REJECTED_AT_MOST: usize = 19;

#[test]
fn fed_rgb_the_camera_gate_passes_the_held_out_frames_of_vtest() {
    let model = camera_model();
    let outcome = run(
        &format!(
            "filesrc location={} ! decodebin ! videoconvert ! video/x-raw,format=RGB \
             ! flowgate model={} ! appsink name=out sync=false",
            vtest().display(),
            model.display()
        ),
        None,
    )
    .ok();
    let passed = outcome.verdicts();
    let frames_in = passed.len() + outcome.rejections.len();
    let held_out_rejected = outcome
        .rejections
        .iter()
        .filter(|r| r.frame_number >= 600)
        .count();
    println!(
        "vtest.avi 768x576 RGB, drop=true: {frames_in} frames in, {} out, {} rejected \
         ({held_out_rejected} of the 195 held-out)",
        passed.len(),
        outcome.rejections.len()
    );
    assert_eq!(frames_in, 795);
    // GStreamer's I420-to-RGB conversion (and the gate's RGB-to-luma) rounds differently from
    // ffmpeg's gray frames the gate learnt from, moving a frame's bits/dim by a few
    // hundredths. The committed gate's threshold is the 99% point of 60 calibration frames,
    // and the frames nearest it tip over: 11 of the 195 held-out frames in the RGB path on
    // 2026-12-01, against 1 fed gray (the test above; ffmpeg's own RGB frames: 5, its gray
    // ones: 2). More than a tenth would mean the conversion itself is off.
    assert!(
        held_out_rejected <= HELD_OUT_RGB_REJECTED_AT_MOST,
        "{held_out_rejected} of the 195 held-out frames rejected: {:?}",
        outcome.rejections
    );
    assert!(outcome.rejections.len() <= 80, "{:?}", outcome.rejections);
    let bytes = std::fs::read(&model).expect("reads the model");
    let threshold = flowgate_shared::decode(&bytes)
        .expect("valid")
        .model
        .threshold
        .expect("a calibrated gate")
        .ood_score;
    let threshold = f64::from(threshold);
    for rejection in &outcome.rejections {
        let verdict = rejection.verdict.expect("scored");
        assert!(rejection.dropped);
        assert_eq!(rejection.fault, "none");
        assert_eq!(rejection.threshold, Some(threshold));
        assert!(verdict.ood_score > threshold, "{rejection:?}");
        // vtest.avi runs at 10 frames a second.
        let pts = rejection.pts.expect("decoded frames have timestamps");
        assert_eq!(
            pts.mseconds(),
            rejection.frame_number * 100,
            "{rejection:?}"
        );
    }
}

#[test]
fn drop_true_passes_exactly_the_frames_drop_false_marks_accepted() {
    let model = camera_model();
    let line = |drop: bool| {
        format!(
            "{} ! videoconvert ! video/x-raw,format=GRAY8 ! flowgate model={} drop={drop} \
             ! appsink name=out sync=false",
            png_source(),
            model.display()
        )
    };
    let marked = run(&line(false), None).ok().verdicts();
    let dropping = run(&line(true), None).ok();
    let (accepted, rejected): (Vec<_>, Vec<_>) = marked
        .iter()
        .partition(|v| v.verdict.decision == Some(flowgate_edge::Decision::Accept));
    let numbers = |verdicts: &[&gstflowgate::verdict::BufferVerdict]| {
        verdicts.iter().map(|v| v.frame_number).collect::<Vec<_>>()
    };
    let passed: Vec<u64> = dropping.verdicts().iter().map(|v| v.frame_number).collect();
    assert_eq!(passed, numbers(&accepted));
    let messages: Vec<u64> = dropping.rejections.iter().map(|r| r.frame_number).collect();
    assert_eq!(messages, numbers(&rejected));
    assert!(!passed.is_empty() && !messages.is_empty());
    assert!(
        dropping
            .verdicts()
            .iter()
            .all(|v| v.verdict.decision == Some(flowgate_edge::Decision::Accept))
    );
}

/// Each format the element accepts, at a size whose rows GStreamer pads (so strides count),
/// how `flowgate-edge --raw` reads the same frames (pixel format and luma range: the element's
/// `luma-range=auto` reads YUV caps without colorimetry as limited range, GRAY8 as full), and
/// the packing that writes them for it.
const FORMATS: [(&str, u32, u32, &str, &str, Packing); 6] = [
    (
        "GRAY8",
        321,
        241,
        "gray8",
        "full",
        Packing::Plane0 { bytes_per_pixel: 1 },
    ),
    (
        "RGB",
        321,
        241,
        "rgb8",
        "full",
        Packing::Plane0 { bytes_per_pixel: 3 },
    ),
    (
        "BGR",
        321,
        241,
        "bgr8",
        "full",
        Packing::Plane0 { bytes_per_pixel: 3 },
    ),
    (
        "YUY2",
        322,
        242,
        "yuyv",
        "limited",
        Packing::Plane0 { bytes_per_pixel: 2 },
    ),
    ("NV12", 322, 242, "nv12", "limited", Packing::Nv12),
    // I420's luma plane is read as gray8.
    (
        "I420",
        322,
        242,
        "gray8",
        "limited",
        Packing::Plane0 { bytes_per_pixel: 1 },
    ),
];

/// Of the 40 normal frames of [`png_source`], the fewest any format must accept (all 40 were,
/// in every format; read as full range, YUY2, NV12 and I420 lost up to 16).
const ACCEPTED_NORMAL_AT_LEAST: usize = 38;

#[test]
fn every_format_gets_the_decisions_of_flowgate_edge_on_the_same_frames() {
    let model = camera_model();
    let dir = temp_dir("formats");
    for (format, width, height, pixel, luma, packing) in FORMATS {
        let frames = dir.join(format!("{format}.raw"));
        let outcome = run(
            &format!(
                "{} ! videoconvert ! videoscale ! video/x-raw,format={format},width={width},height={height} \
                 ! flowgate model={} drop=false ! appsink name=out sync=false",
                png_source(),
                model.display()
            ),
            Some((&frames, packing)),
        )
        .ok();
        let verdicts = outcome.verdicts();
        assert_eq!(verdicts.len(), 80, "{format}");
        let cli = cli_score(
            &model,
            &frames,
            (width, height),
            pixel,
            &["--luma-range", luma],
        );
        let (accepted, rejected) = assert_same_as_cli(&verdicts, &cli);
        println!(
            "{format} {width}x{height} ({luma} range): {accepted} accepted, {rejected} rejected, as flowgate-edge"
        );
        // The first 40 are normal frames, the last 40 the same upside down.
        let accepted_normal = cli[..40].iter().filter(|r| r.decision == "accept").count();
        let rejected_flipped = cli[40..].iter().filter(|r| r.decision == "reject").count();
        // Read in its own range, every format's luma is the full-range luma the camera gate
        // learnt (read as full range, YUY2, NV12 and I420 cost it up to 16 of the 40).
        assert!(
            accepted_normal >= ACCEPTED_NORMAL_AT_LEAST,
            "{format}: {accepted_normal} of 40 normal frames accepted"
        );
        assert_eq!(
            rejected_flipped, 40,
            "{format}: upside-down frames rejected"
        );
    }
}

#[test]
fn the_scalar_kernels_give_the_scalar_cli_its_scores() {
    let model = camera_model();
    let dir = temp_dir("scalar");
    let frames = dir.join("frames.gray");
    let outcome = run(
        &format!(
            "{} ! videoconvert ! video/x-raw,format=GRAY8 ! flowgate model={} drop=false kernels=scalar \
             ! appsink name=out sync=false",
            png_source(),
            model.display()
        ),
        Some((&frames, Packing::Plane0 { bytes_per_pixel: 1 })),
    )
    .ok();
    let cli = cli_score(
        &model,
        &frames,
        (768, 576),
        "gray8",
        &["--kernels", "scalar"],
    );
    assert_same_as_cli(&outcome.verdicts(), &cli);
}

#[test]
fn corrupted_frames_do_not_come_out() {
    let model = camera_model();
    let cases = [
        (
            "lens covered (black)",
            "videotestsrc pattern=black num-buffers=30".to_owned(),
        ),
        (
            "sensor noise (snow)",
            "videotestsrc pattern=snow num-buffers=30".to_owned(),
        ),
        (
            "camera knocked (vtest upside down)",
            format!(
                "{} ! videoconvert ! videoflip video-direction=vert",
                png_source_of(0, 39)
            ),
        ),
    ];
    for (name, source) in cases {
        let outcome = run(
            &format!(
                "{source} ! videoconvert ! videoscale ! video/x-raw,format=I420,width=768,height=576 \
                 ! flowgate model={} ! appsink name=out sync=false",
                model.display()
            ),
            None,
        )
        .ok();
        let frames_in = outcome.rejections.len() + outcome.passed.len();
        println!(
            "{name}: {frames_in} frames in, {} out",
            outcome.passed.len()
        );
        assert!(frames_in >= 30, "{name}");
        assert_eq!(outcome.passed.len(), 0, "{name}: {:?}", outcome.passed);
        let numbers: Vec<u64> = outcome.rejections.iter().map(|r| r.frame_number).collect();
        assert_eq!(numbers, (0..frames_in as u64).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn a_non_finite_score_is_a_marked_rejection_like_flowgate_edge_s() {
    let dir = temp_dir("hostile");
    let model = hostile_model(&dir);
    // Rows of 8 bytes: GStreamer pads gray8 rows to 4 bytes, and flowgate-edge reads packed
    // ones.
    let (width, height) = (8u32, 4u32);
    // Frames that make the hostile model's score both finite and not (after fail_closed.rs's).
    let frames: Vec<u8> = (0..64u32)
        .flat_map(|seed| {
            (0..width * height)
                .map(move |i| (i.wrapping_mul(37).wrapping_add(seed * 101) ^ (i / 7)) as u8)
        })
        .collect();
    let raw = dir.join("frames.gray");
    std::fs::write(&raw, &frames).expect("written");
    let source = format!(
        "filesrc location={} blocksize={} ! rawvideoparse format=gray8 width={width} height={height} \
         framerate=10/1 ! video/x-raw,format=GRAY8",
        raw.display(),
        width * height
    );
    let marked = run(
        &format!(
            "{source} ! flowgate model={} drop=false ! appsink name=out sync=false",
            model.display()
        ),
        None,
    )
    .ok();
    let cli = cli_score(&model, &raw, (width, height), "gray8", &[]);
    let verdicts = marked.verdicts();
    assert_same_as_cli(&verdicts, &cli);
    let faulted = verdicts
        .iter()
        .filter(|v| v.verdict.fault.is_some())
        .count();
    assert!(faulted > 0, "the hostile model should overflow");
    for verdict in &verdicts {
        let finite =
            verdict.verdict.ood_score.is_finite() && verdict.verdict.log_likelihood.is_finite();
        assert_eq!(verdict.verdict.fault.is_some(), !finite, "{verdict:?}");
        assert_eq!(
            verdict.verdict.decision == Some(flowgate_edge::Decision::Reject),
            !finite,
            "only the faulted frames pass this model's threshold: {verdict:?}"
        );
    }
    let faults = marked
        .rejections
        .iter()
        .filter(|r| r.fault == "non-finite-score")
        .count();
    assert_eq!(
        faults, faulted,
        "a message per faulted frame, marked as a fault"
    );

    let dropping = run(
        &format!(
            "{source} ! flowgate model={} ! appsink name=out sync=false",
            model.display()
        ),
        None,
    )
    .ok();
    assert_eq!(dropping.passed.len(), 64 - faulted);
    assert!(
        dropping
            .verdicts()
            .iter()
            .all(|v| v.verdict.fault.is_none())
    );
    println!("hostile model: {faulted} of 64 frames non-finite, all rejected and marked");
}

#[test]
fn a_buffer_that_cannot_be_scored_is_dropped_with_a_warning_even_without_drop() {
    crate::common::init();
    let model = camera_model();
    let pipeline = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=GRAY8,width=64,height=48,framerate=10/1 \
         ! flowgate model={} drop=false ! appsink name=out sync=false",
        model.display()
    ))
    .expect("the pipeline")
    .downcast::<gst::Pipeline>()
    .expect("a pipeline");
    let src = pipeline
        .by_name("src")
        .and_then(|src| src.downcast::<gst_app::AppSrc>().ok())
        .expect("an appsrc");
    let sink = pipeline
        .by_name("out")
        .and_then(|sink| sink.downcast::<gst_app::AppSink>().ok())
        .expect("an appsink");
    pipeline.set_state(gst::State::Playing).expect("it plays");
    // A whole frame of mid-grey, one truncated to a third, then a whole one again.
    for (index, len) in [64 * 48, 1024, 64 * 48].into_iter().enumerate() {
        let mut buffer = gst::Buffer::from_mut_slice(vec![128u8; len]);
        buffer
            .get_mut()
            .expect("writable")
            .set_pts(gst::ClockTime::from_mseconds(100 * index as u64));
        src.push_buffer(buffer).expect("pushed");
    }
    src.end_of_stream().expect("EOS");
    let mut frames_out = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().expect("a buffer");
        frames_out.push(
            gstflowgate::verdict::read(buffer)
                .expect("a verdict")
                .frame_number,
        );
    }
    let bus = pipeline.bus().expect("a bus");
    let mut warnings = Vec::new();
    let mut rejections = Vec::new();
    while let Some(message) = bus.pop() {
        match message.view() {
            gst::MessageView::Warning(warning) => warnings.push(warning.error().to_string()),
            gst::MessageView::Error(error) => panic!("the pipeline failed: {}", error.error()),
            _ => rejections.extend(gstflowgate::verdict::Rejection::from_message(&message)),
        }
    }
    pipeline.set_state(gst::State::Null).expect("it stops");
    assert_eq!(frames_out, [0, 2], "the truncated buffer is not passed on");
    // Uniform grey is out of distribution too: frames 0 and 2 are rejected, but passed.
    assert_eq!(
        rejections
            .iter()
            .map(|r| (r.frame_number, r.dropped))
            .collect::<Vec<_>>(),
        [(0, false), (1, true), (2, false)]
    );
    let rejection = &rejections[1];
    assert_eq!(
        (rejection.frame_number, rejection.fault.as_str()),
        (1, UNSCORABLE)
    );
    assert!(rejection.dropped && rejection.verdict.is_none());
    let error = rejection.error.as_deref().unwrap_or_default();
    assert!(error.contains("1024 bytes"), "{error}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("frame 1 dropped"), "{warnings:?}");
}

#[test]
fn a_model_without_threshold_scores_with_drop_false_and_refuses_to_drop() {
    let dir = temp_dir("uncalibrated");
    let model = uncalibrated_camera_model(&dir);
    let source = "videotestsrc num-buffers=5 ! video/x-raw,format=GRAY8,width=64,height=48";
    let scores = run(
        &format!(
            "{source} ! flowgate model={} drop=false ! appsink name=out sync=false",
            model.display()
        ),
        None,
    )
    .ok();
    let verdicts = scores.verdicts();
    assert_eq!(verdicts.len(), 5);
    assert!(
        verdicts
            .iter()
            .all(|v| v.verdict.decision.is_none() && v.threshold.is_none())
    );
    assert!(verdicts.iter().all(|v| v.verdict.bits_per_dim.is_finite()));
    assert!(scores.rejections.is_empty());

    let refused = run(
        &format!(
            "{source} ! flowgate model={} ! appsink name=out sync=false",
            model.display()
        ),
        None,
    );
    let error = refused.error.expect("drop=true needs a threshold");
    assert!(error.contains("no calibrated threshold"), "{error}");
    assert!(refused.passed.is_empty());
}

#[test]
fn a_bad_setup_fails_with_a_message_saying_what_to_fix() {
    let dir = temp_dir("setup");
    let garbage = dir.join("garbage.fgm");
    std::fs::write(&garbage, b"FLOWGATE but not a model").expect("written");
    #[cfg(target_arch = "x86_64")]
    let unavailable = "neon";
    #[cfg(not(target_arch = "x86_64"))]
    let unavailable = "avx2-fma";
    let camera = camera_model();
    let exact = exact_size_model(&dir);
    let cases = [
        ("flowgate".to_owned(), "no model"),
        (
            format!("flowgate model={}", dir.join("missing.fgm").display()),
            "cannot read the model",
        ),
        (
            format!("flowgate model={}", garbage.display()),
            "garbage.fgm",
        ),
        (
            format!("flowgate model={} kernels={unavailable}", camera.display()),
            unavailable,
        ),
        (format!("flowgate model={}", exact.display()), "exactly 4x4"),
    ];
    for (flowgate, expected) in cases {
        let outcome = run(
            &format!(
                "videotestsrc num-buffers=3 ! video/x-raw,format=GRAY8,width=64,height=48 ! {flowgate} \
                 ! appsink name=out sync=false"
            ),
            None,
        );
        let error = outcome
            .error
            .unwrap_or_else(|| panic!("`{flowgate}` should fail"));
        assert!(error.contains(expected), "`{flowgate}`: {error}");
        assert!(outcome.passed.is_empty(), "`{flowgate}`");
    }
    // The exact-size model takes its own size.
    let outcome = run(
        &format!(
            "videotestsrc num-buffers=3 ! video/x-raw,format=GRAY8,width=4,height=4 \
             ! flowgate model={} drop=false ! appsink name=out sync=false",
            exact.display()
        ),
        None,
    )
    .ok();
    assert_eq!(outcome.passed.len(), 3);
}

#[test]
fn the_verdict_meta_survives_conversion_downstream() {
    let outcome = run(
        &format!(
            "videotestsrc num-buffers=4 ! video/x-raw,format=GRAY8,width=64,height=48 \
             ! flowgate model={} drop=false ! videoconvert ! videoscale \
             ! video/x-raw,format=RGB,width=32,height=24 ! queue ! appsink name=out sync=false",
            camera_model().display()
        ),
        None,
    )
    .ok();
    let verdicts = outcome.verdicts();
    assert_eq!(
        verdicts.iter().map(|v| v.frame_number).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}
