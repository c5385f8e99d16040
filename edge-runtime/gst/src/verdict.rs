//! What the element tells the rest of the pipeline: a verdict meta on every buffer it passes
//! and an element message on the bus for every frame it rejects.
//!
//! The meta is a `GstCustomMeta` (GStreamer 1.20+), so code in any language reads it without
//! a flowgate header: in C, `gst_buffer_get_custom_meta (buffer, "FlowgateVerdictMeta")`,
//! then `gst_custom_meta_get_structure` and `gst_structure_get_double (s, "ood-score", &v)`.
//! It is registered without tags, so elements that copy untagged metas (`videoconvert`,
//! `videoscale`, `queue`, `tee`) keep it downstream.
//!
//! Fields of the meta's structure (and of the message, which adds `pts`, `dropped` and, for a
//! buffer that could not be scored, `error`):
//!
//! | field | type | meaning |
//! | --- | --- | --- |
//! | `frame-number` | `guint64` | buffers the element received before this one since it started |
//! | `log-likelihood` | `gdouble` | nats |
//! | `bits-per-dim` | `gdouble` | |
//! | `ood-score` | `gdouble` | higher = more anomalous |
//! | `detail-bits-per-dim` | `gdouble` | mean bits/dim of the native-resolution patches; absent for a model without a detail branch |
//! | `threshold` | `gdouble` | the model's calibrated threshold; absent for an uncalibrated model |
//! | `decision` | string | `accept`, `reject`, or `none` (no threshold) |
//! | `fault` | string | `none`, `non-finite-score`, or (messages only) `unscorable` |

use std::ffi::CStr;

use flowgate_edge::{Decision, Fault, Verdict};
use gst::meta::CustomMeta;

/// The custom meta the element attaches to every buffer it passes.
pub const META_NAME: &str = "FlowgateVerdictMeta";

/// [`META_NAME`] as C takes it: gstreamer-rs's `CustomMeta::add` and `from_mut_buffer` copy
/// their `&str` into a new C string on every call, and attaching a verdict should not.
const META_NAME_C: &CStr = c"FlowgateVerdictMeta";

/// The name of the element message posted for every rejected frame.
pub const REJECT_MESSAGE: &str = "flowgate-reject";

/// `fault` of a buffer that could not be scored at all (it is always dropped).
pub const UNSCORABLE: &str = "unscorable";

const NO_FAULT: &str = "none";

/// Registers [`META_NAME`] once per process (plugin loading can run more than once).
pub(crate) fn register_meta() {
    if !CustomMeta::is_registered(META_NAME) {
        CustomMeta::register(META_NAME, &[]);
    }
}

/// A verdict as the element attached it to a buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BufferVerdict {
    /// Buffers the element received before this one since it started.
    pub frame_number: u64,
    /// The gate's verdict.
    pub verdict: Verdict,
    /// The model's calibrated threshold on the OOD score, if it has one.
    pub threshold: Option<f64>,
}

/// The verdict attached to `buffer`, if it carries one (a buffer that did not pass through a
/// `flowgate` element does not).
pub fn read(buffer: &gst::BufferRef) -> Option<BufferVerdict> {
    let meta = CustomMeta::from_buffer(buffer, META_NAME).ok()?;
    let fields = meta.structure();
    let fault = match fields.get::<&str>("fault").ok()? {
        NO_FAULT => None,
        name if name == Fault::NonFiniteScore.name() => Some(Fault::NonFiniteScore),
        _ => return None,
    };
    Some(BufferVerdict {
        frame_number: fields.get("frame-number").ok()?,
        verdict: Verdict {
            log_likelihood: fields.get("log-likelihood").ok()?,
            bits_per_dim: fields.get("bits-per-dim").ok()?,
            ood_score: fields.get("ood-score").ok()?,
            decision: decision_from_name(fields.get("decision").ok()?)?,
            fault,
            detail_bits_per_dim: fields.get("detail-bits-per-dim").ok(),
        },
        threshold: fields.get("threshold").ok(),
    })
}

/// Attaches (or, when an earlier `flowgate` element attached one, overwrites) the verdict.
/// Allocates nothing on Rust's heap; GStreamer allocates the meta.
pub(crate) fn attach(
    buffer: &mut gst::BufferRef,
    frame_number: u64,
    verdict: &Verdict,
    threshold: Option<f32>,
) -> Result<(), gst::glib::BoolError> {
    let fields = verdict_fields(buffer)
        .ok_or_else(|| gst::glib::bool_error!("{META_NAME} is not registered"))?;
    fields.set("frame-number", frame_number);
    set_scores(fields, verdict, threshold);
    Ok(())
}

/// The structure of the buffer's verdict meta, added if the buffer has none.
fn verdict_fields(buffer: &mut gst::BufferRef) -> Option<&mut gst::StructureRef> {
    let buffer = buffer.as_mut_ptr();
    // SAFETY: `buffer` is a writable buffer (it came from a `&mut BufferRef`) and the name a
    // static NUL-terminated string; a custom meta always has a structure, owned by the meta,
    // which lives as long as the buffer and is borrowed with it.
    unsafe {
        let mut meta = gst::ffi::gst_buffer_get_custom_meta(buffer, META_NAME_C.as_ptr());
        if meta.is_null() {
            meta = gst::ffi::gst_buffer_add_custom_meta(buffer, META_NAME_C.as_ptr());
        }
        if meta.is_null() {
            return None;
        }
        Some(gst::StructureRef::from_glib_borrow_mut(
            gst::ffi::gst_custom_meta_get_structure(meta),
        ))
    }
}

/// Why the element rejected a frame, as its bus message carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Buffers the element received before this one since it started.
    pub frame_number: u64,
    /// The buffer's presentation time, if it had one.
    pub pts: Option<gst::ClockTime>,
    /// The gate's verdict; `None` when the buffer could not be scored.
    pub verdict: Option<Verdict>,
    /// The model's calibrated threshold, if it has one.
    pub threshold: Option<f64>,
    /// `none`, `non-finite-score` or `unscorable`.
    pub fault: String,
    /// Whether the element dropped the buffer (`drop=true`, or a buffer it could not score).
    pub dropped: bool,
    /// Why the buffer could not be scored.
    pub error: Option<String>,
}

impl Rejection {
    /// The rejection an element message describes; `None` for any other message.
    pub fn from_message(message: &gst::MessageRef) -> Option<Rejection> {
        let gst::MessageView::Element(element) = message.view() else {
            return None;
        };
        let fields = element.structure()?;
        if fields.name() != REJECT_MESSAGE {
            return None;
        }
        let fault: String = fields.get("fault").ok()?;
        let verdict = if fault == UNSCORABLE {
            None
        } else {
            Some(Verdict {
                log_likelihood: fields.get("log-likelihood").ok()?,
                bits_per_dim: fields.get("bits-per-dim").ok()?,
                ood_score: fields.get("ood-score").ok()?,
                decision: decision_from_name(fields.get("decision").ok()?)?,
                fault: (fault != NO_FAULT).then_some(Fault::NonFiniteScore),
                detail_bits_per_dim: fields.get("detail-bits-per-dim").ok(),
            })
        };
        Some(Rejection {
            frame_number: fields.get("frame-number").ok()?,
            pts: fields.get("pts").ok(),
            verdict,
            threshold: fields.get("threshold").ok(),
            fault,
            dropped: fields.get("dropped").ok()?,
            error: fields.get("error").ok(),
        })
    }
}

/// What the element knows about a rejected frame when it posts the message.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rejected<'a> {
    /// Scored, and the gate said reject.
    Judged(&'a Verdict),
    /// Not scorable (the buffer does not hold what its caps say); the text says why.
    Unscorable(&'a str),
}

/// The element message for a rejected frame.
pub(crate) fn rejection_message(
    source: &gst::Element,
    frame_number: u64,
    pts: Option<gst::ClockTime>,
    rejected: Rejected<'_>,
    threshold: Option<f32>,
    dropped: bool,
) -> gst::Message {
    let mut fields = gst::Structure::new_empty(REJECT_MESSAGE);
    fields.set("frame-number", frame_number);
    if let Some(pts) = pts {
        fields.set("pts", pts);
    }
    match rejected {
        Rejected::Judged(verdict) => set_scores(&mut fields, verdict, threshold),
        Rejected::Unscorable(error) => {
            if let Some(threshold) = threshold {
                fields.set("threshold", f64::from(threshold));
            }
            fields.set("fault", UNSCORABLE);
            fields.set("error", error);
        }
    }
    fields.set("dropped", dropped);
    gst::message::Element::builder(fields).src(source).build()
}

fn set_scores(fields: &mut gst::StructureRef, verdict: &Verdict, threshold: Option<f32>) {
    fields.set("log-likelihood", verdict.log_likelihood);
    fields.set("bits-per-dim", verdict.bits_per_dim);
    fields.set("ood-score", verdict.ood_score);
    match verdict.detail_bits_per_dim {
        Some(bits) => fields.set("detail-bits-per-dim", bits),
        None => fields.remove_field("detail-bits-per-dim"),
    }
    match threshold {
        Some(threshold) => fields.set("threshold", f64::from(threshold)),
        None => fields.remove_field("threshold"),
    }
    fields.set("decision", decision_name(verdict.decision));
    fields.set("fault", verdict.fault.map_or(NO_FAULT, Fault::name));
}

/// `accept`, `reject`, or `none` for a model without a threshold.
pub fn decision_name(decision: Option<Decision>) -> &'static str {
    match decision {
        Some(Decision::Accept) => "accept",
        Some(Decision::Reject) => "reject",
        None => "none",
    }
}

fn decision_from_name(name: &str) -> Option<Option<Decision>> {
    match name {
        "accept" => Some(Some(Decision::Accept)),
        "reject" => Some(Some(Decision::Reject)),
        "none" => Some(None),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_c_name_is_the_name() {
        assert_eq!(META_NAME_C.to_str(), Ok(META_NAME));
    }
}
