//! The element's GObject implementation: properties, caps, and the per-buffer gate.
//!
//! Fail closed: a buffer is passed on only with a verdict the gate computed. A rejected
//! buffer is dropped (`drop=true`) or passed marked `reject` (`drop=false`); a buffer the
//! gate cannot score at all (it does not hold the frame its caps describe) is dropped in both
//! modes, with a warning and a rejection message whose fault is `unscorable`, and the stream
//! goes on: one broken buffer from a camera should not stop the pipeline, and must not reach
//! the downstream model unjudged.

use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use flowgate_edge::{Decision, Verdict};
use flowgate_shared::Resize;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::VideoFrameRef;
use gst_video::subclass::prelude::*;

use super::kernels::Kernels;
use super::loaded::{LoadError, LoadedGate};
use super::luma::LumaChoice;
use super::reading::{FORMATS, Reading};
use crate::verdict::{self, Rejected};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "flowgate",
        gst::DebugColorFlags::empty(),
        Some("flowgate out-of-distribution gate"),
    )
});

#[derive(Debug, Clone)]
struct Settings {
    model: Option<PathBuf>,
    drop: bool,
    kernels: Kernels,
    luma_range: LumaChoice,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            drop: true,
            kernels: Kernels::Auto,
            luma_range: LumaChoice::Auto,
        }
    }
}

/// What the element holds between `start` and `stop`.
#[derive(Debug)]
struct State {
    gate: LoadedGate,
    threshold: Option<f32>,
    /// The gate's working memory, allocated once at start: scoring a buffer allocates nothing.
    scratch: Vec<f32>,
    /// The negotiated frames and how the gate reads them; `None` until caps arrive.
    video: Option<(gst_video::VideoInfo, Reading)>,
    /// Buffers received since start.
    frames: u64,
}

impl State {
    /// The gate's verdict on a buffer, or why it could not be scored.
    fn score(&mut self, buffer: &gst::BufferRef) -> Result<Verdict, String> {
        let Some((info, reading)) = &self.video else {
            return Err("no caps were negotiated before the first buffer".into());
        };
        let frame = VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
            format!(
                "the buffer ({} bytes) does not hold the {}x{} {} frame its caps describe ({} bytes)",
                buffer.size(),
                info.width(),
                info.height(),
                info.format(),
                info.size()
            )
        })?;
        let view = reading.frame(&frame)?;
        self.gate
            .gate()
            .score(&view, &mut self.scratch)
            .map_err(|error| error.to_string())
    }
}

/// The `flowgate` element.
#[derive(Debug, Default)]
pub struct Flowgate {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

impl Flowgate {
    // A panic elsewhere in the element must not wedge every later call.
    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn state(&self) -> MutexGuard<'_, Option<State>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn load(&self) -> Result<State, gst::ErrorMessage> {
        let settings = self.settings().clone();
        let Some(path) = settings.model else {
            return Err(gst::error_msg!(
                gst::ResourceError::NotFound,
                ("no model: set the `model` property to a flowgate model file (.fgm)")
            ));
        };
        let gate = LoadedGate::load(&path, settings.kernels.path()).map_err(|error| {
            let domain = match error {
                LoadError::Read(_) => gst::ResourceError::OpenRead,
                LoadError::Gate(_) => gst::ResourceError::Settings,
            };
            gst::error_msg!(domain, ("{}: {error}", path.display()))
        })?;
        let threshold = gate.gate().model().threshold.as_ref().map(|t| t.ood_score);
        if settings.drop && threshold.is_none() {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                (
                    "{}: the model has no calibrated threshold, so the element cannot decide which buffers to drop; calibrate it, or set drop=false to attach scores only",
                    path.display()
                )
            ));
        }
        let scratch = vec![0f32; gate.gate().scratch_len()];
        gst::info!(
            CAT,
            imp = self,
            "{}: threshold {threshold:?}, {} f32 of scratch, {} kernels",
            path.display(),
            scratch.len(),
            gate.gate().kernels()
        );
        Ok(State {
            gate,
            threshold,
            scratch,
            video: None,
            frames: 0,
        })
    }

    /// How the gate reads `info`'s frames, if the loaded model can score them.
    fn reading_for(&self, info: &gst_video::VideoInfo) -> Result<Reading, String> {
        let luma_range = self
            .settings()
            .luma_range
            .range(info.format(), info.colorimetry().range());
        let reading = Reading::new(info.format(), info.width(), info.height(), luma_range)
            .map_err(|error| error.to_string())?;
        let mut guard = self.state();
        let state = guard
            .as_mut()
            .ok_or_else(|| String::from("caps arrived before the element started"))?;
        let input = state.gate.gate().model().input;
        if input.resize == Resize::Exact
            && (info.width(), info.height()) != (input.width, input.height)
        {
            return Err(format!(
                "frames are {}x{}; the model takes exactly {}x{} and does not resize (add videoscale before flowgate)",
                info.width(),
                info.height(),
                input.width,
                input.height
            ));
        }
        state.video = Some((info.clone(), reading));
        Ok(reading)
    }

    fn post_rejection(
        &self,
        frame_number: u64,
        pts: Option<gst::ClockTime>,
        rejected: Rejected<'_>,
        threshold: Option<f32>,
        dropped: bool,
    ) {
        let element = self.obj();
        let message = verdict::rejection_message(
            element.upcast_ref(),
            frame_number,
            pts,
            rejected,
            threshold,
            dropped,
        );
        // Without a bus (an element outside any pipeline) there is no one to tell.
        let _ = element.post_message(message);
    }
}

#[glib::object_subclass]
impl ObjectSubclass for Flowgate {
    const NAME: &'static str = "GstFlowgate";
    type Type = super::Flowgate;
    type ParentType = gst_video::VideoFilter;
}

impl ObjectImpl for Flowgate {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb("Path of the flowgate model (.fgm); read when the element starts")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("drop")
                    .nick("Drop")
                    .blurb(
                        "Drop rejected buffers (true), or pass every buffer with its verdict \
                         attached (false); buffers that cannot be scored are always dropped",
                    )
                    .default_value(true)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("kernels", Kernels::Auto)
                    .nick("Kernels")
                    .blurb("The convolution kernels; all give the same decisions")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("luma-range", LumaChoice::Auto)
                    .nick("Luma range")
                    .blurb(
                        "Whether the frames' luma spans 0-255 (full) or video's 16-235 \
                         (limited), which the gate expands to the full range its models learn \
                         from; auto reads the caps' colorimetry (GStreamer's defaults: YUV \
                         limited, GRAY8 full)",
                    )
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings();
        match pspec.name() {
            "model" => {
                let path: Option<String> = value.get().expect("type checked upstream");
                settings.model = path.map(PathBuf::from);
            }
            "drop" => settings.drop = value.get().expect("type checked upstream"),
            "kernels" => settings.kernels = value.get().expect("type checked upstream"),
            "luma-range" => settings.luma_range = value.get().expect("type checked upstream"),
            name => unreachable!("no property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let settings = self.settings();
        match pspec.name() {
            "model" => settings
                .model
                .as_ref()
                .map(|path| path.to_string_lossy().into_owned())
                .to_value(),
            "drop" => settings.drop.to_value(),
            "kernels" => settings.kernels.to_value(),
            "luma-range" => settings.luma_range.to_value(),
            name => unreachable!("no property {name}"),
        }
    }
}

impl GstObjectImpl for Flowgate {}

impl ElementImpl for Flowgate {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "flowgate out-of-distribution gate",
                "Filter/Analyzer/Video",
                "Scores every frame's likelihood under a normalizing flow and drops (or marks) \
                 the frames a downstream model should not see",
                "flowgate",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            [gst::PadDirection::Src, gst::PadDirection::Sink]
                .into_iter()
                .map(|direction| {
                    let name = if direction == gst::PadDirection::Src {
                        "src"
                    } else {
                        "sink"
                    };
                    gst::PadTemplate::new(name, direction, gst::PadPresence::Always, &caps)
                        .expect("a static template is valid")
                })
                .collect()
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for Flowgate {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    // Never passthrough: every buffer is judged, and the verdict written onto it.
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let state = self.load()?;
        *self.state() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state() = None;
        Ok(())
    }

    /// Scores the buffer where it lies: it is mapped for reading only (a shared buffer is
    /// not copied), and only the meta is written.
    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let drop_rejected = self.settings().drop;
        let (frame_number, threshold, scored) = {
            let mut guard = self.state();
            let Some(state) = guard.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let frame_number = state.frames;
            state.frames += 1;
            (frame_number, state.threshold, state.score(buffer))
        };
        // Messages are posted without the state lock: a bus sync handler may call back in.
        let pts = buffer.pts();
        match scored {
            Ok(verdict) => {
                let rejected = verdict.decision == Some(Decision::Reject);
                let dropped = rejected && drop_rejected;
                if rejected {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "frame {frame_number} rejected: {verdict:?}"
                    );
                    self.post_rejection(
                        frame_number,
                        pts,
                        Rejected::Judged(&verdict),
                        threshold,
                        dropped,
                    );
                }
                if dropped {
                    return Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED);
                }
                verdict::attach(buffer, frame_number, &verdict, threshold).map_err(|error| {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Failed,
                        ("cannot attach the verdict to frame {frame_number}: {error}")
                    );
                    gst::FlowError::Error
                })?;
                Ok(gst::FlowSuccess::Ok)
            }
            Err(error) => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    ("frame {frame_number} dropped: it could not be scored: {error}")
                );
                self.post_rejection(
                    frame_number,
                    pts,
                    Rejected::Unscorable(&error),
                    threshold,
                    true,
                );
                Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED)
            }
        }
    }
}

impl VideoFilterImpl for Flowgate {
    fn set_info(
        &self,
        _incaps: &gst::Caps,
        in_info: &gst_video::VideoInfo,
        _outcaps: &gst::Caps,
        _out_info: &gst_video::VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        match self.reading_for(in_info) {
            Ok(reading) => {
                gst::debug!(CAT, imp = self, "reading {in_info:?} as {reading:?}");
                Ok(())
            }
            Err(error) => {
                // The base class reports only "not negotiated"; say why.
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{error}"));
                Err(gst::loggable_error!(CAT, "{error}"))
            }
        }
    }
}
