//! Scoring without Python: a gate that owns its model file, and the scratch each thread reuses.
//!
//! The scratch lives in a thread-local buffer: the first frame a thread scores sizes it, and
//! every later frame on that thread (with this or any other gate) reuses it, so scoring
//! allocates nothing per frame, and several Python threads can score with one gate at once
//! while the GIL is released.

use std::cell::RefCell;

use flowgate_edge::kernels::KernelPath;
use flowgate_edge::{Frame, Gate, Verdict};

self_cell::self_cell!(
    /// A model file's bytes and the gate that borrows them.
    pub struct OwnedGate {
        owner: Box<[u8]>,
        #[covariant]
        dependent: Gate,
    }
);

impl OwnedGate {
    /// Validates `bytes` as a model within the runtime's default limits (those of the
    /// largest board in firmware-configs/) and selects `kernels`.
    pub fn load(bytes: Box<[u8]>, kernels: KernelPath) -> flowgate_edge::Result<Self> {
        OwnedGate::try_new(bytes, |bytes| {
            Gate::new(bytes).and_then(|gate| gate.with_kernels(kernels))
        })
    }

    /// The gate.
    pub fn gate(&self) -> &Gate<'_> {
        self.borrow_dependent()
    }

    /// Scores one frame in this thread's scratch.
    pub fn score(&self, frame: &Frame<'_>) -> flowgate_edge::Result<Verdict> {
        with_scratch(self.gate().scratch_len(), |scratch| {
            self.gate().score(frame, scratch)
        })
    }
}

impl std::fmt::Debug for OwnedGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedGate")
            .field("model_bytes", &self.borrow_owner().len())
            .field("kernels", &self.gate().kernels())
            .finish()
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `score` with at least `len` elements of this thread's scratch, growing it (once) if
/// it is shorter.
fn with_scratch<R>(len: usize, score: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        score(&mut scratch[..len])
    })
}

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    use flowgate_edge::PixelFormat;

    use super::*;

    /// Counts this thread's heap allocations (tests run on several threads at once).
    struct CountingAllocator;

    thread_local! {
        static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
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

    fn camera_gate() -> OwnedGate {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/camera-vtest.fgm");
        let bytes = std::fs::read(path).expect("the committed camera gate");
        OwnedGate::load(bytes.into_boxed_slice(), KernelPath::detect()).expect("a valid model")
    }

    #[test]
    fn scoring_allocates_nothing_after_the_first_frame_of_a_thread() {
        let gate = camera_gate();
        let (width, height) = (200u32, 150u32);
        let pixels: Vec<u8> = (0..width * height).map(|i| (i * 7 % 251) as u8).collect();
        let frame = Frame::packed(&pixels, width, height, PixelFormat::Gray8).expect("a frame");
        let first = gate.score(&frame).expect("scored");
        let before = ALLOCATIONS.with(Cell::get);
        for _ in 0..20 {
            assert_eq!(gate.score(&frame).expect("scored"), first);
        }
        assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0);
    }

    #[test]
    fn threads_share_a_gate_with_a_scratch_each() {
        let gate = camera_gate();
        let frames: Vec<Vec<u8>> = (0..8u32)
            .map(|seed| {
                (0..64 * 48)
                    .map(|i| ((i * 31 + seed * 97) % 256) as u8)
                    .collect()
            })
            .collect();
        let score = |pixels: &Vec<u8>| {
            let frame = Frame::packed(pixels, 64, 48, PixelFormat::Gray8).expect("a frame");
            gate.score(&frame).expect("scored")
        };
        let serial: Vec<Verdict> = frames.iter().map(score).collect();
        let parallel: Vec<Verdict> = std::thread::scope(|scope| {
            let handles: Vec<_> = frames
                .iter()
                .map(|pixels| scope.spawn(move || score(pixels)))
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().expect("no panic"))
                .collect()
        });
        assert_eq!(serial, parallel);
    }
}
