//! Where the held-out images of a sequence lie.
//!
//! A dataset's held-out images are the last ones (`data.validation`), which suits a shuffled
//! dataset such as Fashion-MNIST. A camera's frames are a sequence in time, and its last
//! stretch can miss what happens elsewhere in the footage: the door camera's last tenth is
//! a still door, so a threshold set on it rejected the frames where a person walks by
//! (docs/results.md). So the held-out images can be spread over the sequence in
//! `data.validation_blocks` blocks, each at the end of one of as many equal segments (the
//! last block ends the sequence, so one block is the old tail). Neighbouring frames of a
//! video are near copies, so `data.validation_guard` frames on each side of each block are
//! dropped: neither trained on nor held out, so a held-out frame's nearest training frame is
//! at least that far away.

use std::ops::Range;

/// Which positions of a sequence train and which are held out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldOutLayout {
    /// Images in the sequence.
    pub count: usize,
    /// The held-out blocks, in order.
    pub held_out: Vec<Range<usize>>,
    /// The training stretches between them (guards excluded), in order.
    pub train: Vec<Range<usize>>,
    /// Images dropped on each side of each block.
    pub guard: usize,
}

impl HeldOutLayout {
    /// `held_out` images (at most half of `count`) in `blocks` blocks (at most one per
    /// held-out image) with `guard` images dropped on each side of each block.
    pub fn new(count: usize, held_out: usize, blocks: usize, guard: usize) -> Self {
        let held = held_out.min(count / 2);
        if held == 0 {
            return HeldOutLayout {
                count,
                held_out: Vec::new(),
                train: chunk(0..count).into_iter().collect(),
                guard: 0,
            };
        }
        let blocks = blocks.clamp(1, held);
        let held_out: Vec<Range<usize>> = (0..blocks)
            .map(|block| {
                // Segment `block` ends at (block + 1) * count / blocks; its block ends there.
                let end = (block + 1) * count / blocks;
                let size = held / blocks + usize::from(block < held % blocks);
                end - size..end
            })
            .collect();
        let mut train = Vec::with_capacity(blocks + 1);
        let mut start = 0;
        for block in &held_out {
            let end = block.start.saturating_sub(guard).max(start);
            train.extend(chunk(start..end));
            start = block.end.saturating_add(guard).min(count);
        }
        train.extend(chunk(start..count));
        HeldOutLayout {
            count,
            held_out,
            train,
            guard,
        }
    }

    /// Held-out images.
    pub fn held_out_count(&self) -> usize {
        self.held_out.iter().map(ExactSizeIterator::len).sum()
    }

    /// Training images.
    pub fn train_count(&self) -> usize {
        self.train.iter().map(ExactSizeIterator::len).sum()
    }

    /// Images neither trained on nor held out.
    pub fn dropped_count(&self) -> usize {
        self.count - self.train_count() - self.held_out_count()
    }

    /// The training positions, in order.
    pub fn train_positions(&self) -> Vec<usize> {
        self.train.iter().cloned().flatten().collect()
    }

    /// The held-out positions, in order.
    pub fn held_out_positions(&self) -> Vec<usize> {
        self.held_out.iter().cloned().flatten().collect()
    }

    /// Whether `position` is held out.
    pub fn is_held_out(&self, position: usize) -> bool {
        self.held_out.iter().any(|block| block.contains(&position))
    }

    /// Whether `position` trains.
    pub fn is_train(&self, position: usize) -> bool {
        self.train.iter().any(|stretch| stretch.contains(&position))
    }
}

/// `range` as a list of at most one non-empty range.
fn chunk(range: Range<usize>) -> Option<Range<usize>> {
    (!range.is_empty()).then_some(range)
}

#[cfg(test)]
// Lists of one stretch are what the layouts hold, not ranges meant as Vecs.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    #[test]
    fn one_block_without_a_guard_is_the_tail() {
        let layout = HeldOutLayout::new(100, 10, 1, 0);
        assert_eq!(layout.held_out, vec![90..100]);
        assert_eq!(layout.train, vec![0..90]);
        assert_eq!(layout.dropped_count(), 0);
    }

    #[test]
    fn blocks_end_their_segments_and_guards_are_dropped() {
        let layout = HeldOutLayout::new(100, 10, 4, 2);
        // Segments end at 25, 50, 75, 100; blocks of 3, 3, 2, 2.
        assert_eq!(layout.held_out, vec![22..25, 47..50, 73..75, 98..100]);
        assert_eq!(layout.train, vec![0..20, 27..45, 52..71, 77..96]);
        // Seven guards of 2: before each block, and after each but the last.
        assert_eq!(
            (
                layout.train_count(),
                layout.held_out_count(),
                layout.dropped_count()
            ),
            (76, 10, 14)
        );
        // Every position is in at most one part, and the guard keeps every held-out image at
        // least 3 positions from the nearest training image.
        let train = layout.train_positions();
        for held in layout.held_out_positions() {
            assert!(layout.is_held_out(held) && !layout.is_train(held));
            assert!(train.iter().all(|&t| t.abs_diff(held) > 2), "{held}");
        }
        assert!(!layout.is_held_out(21) && !layout.is_held_out(25));
        assert!(!layout.is_train(21) && layout.is_train(19) && layout.is_train(27));
    }

    #[test]
    fn never_more_than_half_nor_more_blocks_than_images() {
        let layout = HeldOutLayout::new(10, 8, 20, 0);
        assert_eq!(layout.held_out_count(), 5);
        assert_eq!(layout.held_out.len(), 5);
        assert_eq!(layout.train_count(), 5);
        let none = HeldOutLayout::new(1, 5, 3, 1);
        assert_eq!((none.held_out_count(), none.train), (0, vec![0..1]));
        // A guard wider than the gaps leaves no training stretch there, and nothing overlaps.
        let tight = HeldOutLayout::new(12, 6, 3, 5);
        assert_eq!(tight.held_out, vec![2..4, 6..8, 10..12]);
        assert!(tight.train.is_empty());
        assert_eq!(tight.dropped_count(), 6);
    }
}
