//! `Gate::score` allocates nothing: a counting global allocator wraps the whole test binary.
//!
//! It counts only on threads that asked it to ([`counted`]): the test harness and the other
//! test thread allocate while a test runs (CI saw one such allocation land in the measured
//! window once), and those are not the gate's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use flowgate_edge::{Frame, Gate, PixelFormat};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

/// The allocations this thread makes while running `f`.
fn counted(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|counting| counting.set(true));
    f();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn scoring_frames_allocates_nothing() {
    scoring_allocates_nothing(&flowgate_shared::example::tiny_model());
    // A flow on embeddings runs its feature extractor in the same scratch.
    scoring_allocates_nothing(&flowgate_shared::example::tiny_embedding_model());
}

fn scoring_allocates_nothing(model: &flowgate_shared::Model<'_>) {
    let bytes = flowgate_shared::encode(model).unwrap();
    let gate = Gate::new(&bytes).unwrap();
    let mut scratch = vec![0f32; gate.scratch_len()];
    // Frames of the model's size and of other sizes and formats (resize and luma paths).
    let gray: Vec<u8> = (0..16u8).map(|v| v * 13).collect();
    let big_rgb: Vec<u8> = (0..(12 * 10 * 3)).map(|v| (v * 7 % 256) as u8).collect();
    let frames = [
        Frame::packed(&gray, 4, 4, PixelFormat::Gray8).unwrap(),
        Frame::packed(&big_rgb, 12, 10, PixelFormat::Rgb8).unwrap(),
        Frame::packed(&big_rgb, 12, 15, PixelFormat::Yuyv).unwrap(),
    ];
    // Warm up anything lazily initialised outside the gate (none expected).
    gate.score(&frames[0], &mut scratch).unwrap();

    let mut verdicts = [None; 30];
    let allocations = counted(|| {
        for (slot, frame) in verdicts.iter_mut().zip(frames.iter().cycle()) {
            *slot = gate.score(frame, &mut scratch).ok();
        }
    });
    assert!(
        verdicts
            .iter()
            .all(|v| v.is_some_and(|v| v.log_likelihood.is_finite())),
        "{verdicts:?}"
    );
    assert_eq!(allocations, 0, "score allocated {allocations} times");
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the test above against a counter that never counts.
    let allocations = counted(|| drop(std::hint::black_box(Box::new([0u8; 64]))));
    assert_eq!(allocations, 1);
}

/// `Gate::new_in` (a `no_std` build without an allocator) plans into the caller's buffers,
/// sized by `Gate::plan_sizes`, without allocating, and scores exactly as `Gate::new` does;
/// buffers one element short are a typed error, not a panic or an overrun.
#[test]
fn planning_into_caller_buffers_allocates_nothing_and_matches_the_allocating_gate() {
    use flowgate_edge::{Error, Limits, Step};
    let models = [
        flowgate_shared::example::tiny_model(),
        flowgate_shared::example::tiny_embedding_model(),
    ];
    for model in &models {
        let bytes = flowgate_shared::encode(model).unwrap();
        let sizes = Gate::plan_sizes(&bytes).unwrap();
        let mut steps = vec![Step::EMPTY; sizes.steps];
        let mut floats = vec![0f32; sizes.floats];
        let owned = Gate::new(&bytes).unwrap();
        let mut scratch = vec![0f32; owned.scratch_len()];
        let gray: Vec<u8> = (0..16u8).map(|v| v * 13).collect();
        let frame = Frame::packed(&gray, 4, 4, PixelFormat::Gray8).unwrap();
        let expected = owned.score(&frame, &mut scratch).unwrap();

        let mut verdict = None;
        let allocations = counted(|| {
            let gate = Gate::new_in(&bytes, Limits::DEFAULT, &mut steps, &mut floats).unwrap();
            assert_eq!(gate.scratch_len(), scratch.len());
            verdict = gate.score(&frame, &mut scratch).ok();
        });
        assert_eq!(
            allocations, 0,
            "new_in + score allocated {allocations} times"
        );
        let verdict = verdict.expect("scores");
        assert_eq!(
            verdict.log_likelihood.to_bits(),
            expected.log_likelihood.to_bits()
        );

        let short_steps = Gate::new_in(
            &bytes,
            Limits::DEFAULT,
            &mut steps[..sizes.steps - 1],
            &mut floats,
        );
        assert!(
            matches!(short_steps, Err(Error::PlanMemoryTooSmall { .. })),
            "{short_steps:?}"
        );
        if sizes.floats > 0 {
            let short_floats = Gate::new_in(
                &bytes,
                Limits::DEFAULT,
                &mut steps,
                &mut floats[..sizes.floats - 1],
            );
            assert!(
                matches!(short_floats, Err(Error::PlanMemoryTooSmall { .. })),
                "{short_floats:?}"
            );
        }
    }
}
