//! The element scores a buffer without a heap allocation: its scratch is allocated once, at
//! start. Counts the Rust allocations made on the streaming thread between the element's
//! sink pad (the buffer going in) and its src pad (the same buffer, judged, coming out).
//! GStreamer's own allocations (C's malloc: the meta on the buffer) are not Rust's and are
//! not counted.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static AT_SINK_PAD: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn scoring_a_buffer_allocates_nothing() {
    init();
    let description = format!(
        "{} ! videoconvert ! video/x-raw,format=GRAY8 ! flowgate name=gate model={} drop=false \
         ! fakesink sync=false",
        png_source_of(0, 39),
        camera_model().display()
    );
    let pipeline = gst::parse::launch(&description)
        .expect("the pipeline")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let gate = pipeline.by_name("gate").expect("the element");
    let counts = Arc::new(Mutex::new(Vec::new()));
    gate.static_pad("sink")
        .expect("a sink pad")
        .add_probe(gst::PadProbeType::BUFFER, |_, _| {
            AT_SINK_PAD.with(|mark| mark.set(ALLOCATIONS.with(Cell::get)));
            gst::PadProbeReturn::Ok
        })
        .expect("a probe");
    let collected = Arc::clone(&counts);
    gate.static_pad("src")
        .expect("a src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let allocations = ALLOCATIONS.with(Cell::get) - AT_SINK_PAD.with(Cell::get);
            let decision = info
                .buffer()
                .and_then(|buffer| gstflowgate::verdict::read(buffer))
                .and_then(|verdict| verdict.verdict.decision);
            collected
                .lock()
                .expect("not poisoned")
                .push((allocations, decision));
            gst::PadProbeReturn::Ok
        })
        .expect("a probe");
    pipeline.set_state(gst::State::Playing).expect("it plays");
    let bus = pipeline.bus().expect("a bus");
    let message = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(300),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline ends");
    assert!(
        matches!(message.view(), gst::MessageView::Eos(_)),
        "{message:?}"
    );
    pipeline.set_state(gst::State::Null).expect("it stops");

    let counts = counts.lock().expect("not poisoned");
    assert_eq!(counts.len(), 40);
    // Accepted frames: no rejection message is built, so nothing at all may allocate.
    let accepted: Vec<u64> = counts
        .iter()
        .filter(|(_, decision)| *decision == Some(flowgate_edge::Decision::Accept))
        .map(|(allocations, _)| *allocations)
        .collect();
    assert!(accepted.len() >= 30, "{counts:?}");
    // The first buffer may set up GStreamer's lazily made state on this thread.
    assert!(
        accepted.iter().skip(1).all(|&allocations| allocations == 0),
        "Rust allocations per accepted buffer: {accepted:?}"
    );
    println!(
        "{} accepted buffers, Rust allocations while scoring each: {:?}",
        accepted.len(),
        accepted
    );
}
