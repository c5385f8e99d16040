//! The `flowgate` element: a video filter in place, in front of the downstream model.

mod imp;
mod kernels;
mod loaded;
mod luma;
mod reading;

use gst::glib;
use gst::prelude::*;

pub use kernels::Kernels;
pub use luma::LumaChoice;

glib::wrapper! {
    /// The `flowgate` element (see the crate docs); make it with
    /// `gst::ElementFactory::make("flowgate")`.
    pub struct Flowgate(ObjectSubclass<imp::Flowgate>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

pub(crate) fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "flowgate",
        gst::Rank::NONE,
        Flowgate::static_type(),
    )
}
