//! The GStreamer plugin `flowgate` (`libgstflowgate.so`): one element, `flowgate`, a video
//! filter that scores every buffer with flowgate's edge gate ([`flowgate_edge::Gate`], the
//! same code as the `flowgate-edge` command line and the C ABI) and drops the frames the gate
//! rejects, or passes every frame with its verdict attached.
//!
//! ```sh
//! GST_PLUGIN_PATH=edge-runtime/gst/target/release gst-launch-1.0 v4l2src ! videoconvert \
//!     ! flowgate model=camera.fgm ! autovideosink
//! ```
//!
//! Downstream code reads the verdict from each buffer's [`verdict::META_NAME`] custom meta
//! ([`verdict::read`] in Rust) and each rejection from the bus (an element message named
//! [`verdict::REJECT_MESSAGE`]). The rlib serves the tests and Rust applications that
//! register the element statically ([`plugin_register_static`]).

mod element;
pub mod verdict;

pub use element::{Flowgate, Kernels, LumaChoice};

gst::plugin_define!(
    flowgate,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    env!("CARGO_PKG_VERSION"),
    // GStreamer accepts only the licence names it knows; the crate is MIT OR Apache-2.0.
    "MIT/X11",
    "flowgate",
    "flowgate",
    env!("CARGO_PKG_REPOSITORY")
);

fn plugin_init(plugin: &gst::Plugin) -> Result<(), gst::glib::BoolError> {
    verdict::register_meta();
    element::register(plugin)
}
