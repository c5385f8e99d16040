//! Which frames train and which are held out: a tenth of them (at least [`MIN_HELD_OUT`]),
//! placed as [`SplitKind`] says. The held-out frames stop the trainings early
//! (`train.validate_every`) and set the threshold; the recipes get the placement as
//! `data.validation`, `data.validation_blocks` and `data.validation_guard`, so
//! [`crate::data::training_data`] reads the same split.
//!
//! - [`SplitKind::End`] (the default): the last tenth. A video is chronological, so these are
//!   the frames nearest the ones the gate will judge next, and no training frame lies beyond
//!   them; but the last stretch can miss what happens elsewhere in the footage.
//! - [`SplitKind::Spread`]: blocks spread over the footage ([`HeldOutLayout`]), up to
//!   [`MAX_BLOCKS`] of at least [`MIN_BLOCK`] frames, each ending one of as many equal
//!   stretches. Neighbouring frames of a video are near copies, so half a block on each side
//!   of each block is dropped (less where the footage is short, so that at least as many
//!   frames train as are held out).
//!
//! Measured (docs/results.md), one seed each: on the door camera, whose last tenth is a
//! still door, `end` set a threshold that rejected 16.8% of later normal frames and `spread`
//! 9.0%; on vtest.avi, where people cross the picture all the time, `end` gave 1.0% and
//! `spread` 3.6%. fit warns when its threshold rejects many training frames, the sign of a
//! held-out set calmer than the rest, and suggests `--split spread`.

use super::error::{FitError, FitResult};
use crate::data::HeldOutLayout;

/// At least this many frames are held out, so that the threshold rests on more than a handful.
pub const MIN_HELD_OUT: usize = 16;

/// The share of the frames held out when that is more than [`MIN_HELD_OUT`].
pub const HELD_OUT_SHARE: f64 = 0.10;

/// Fewest frames in a held-out block of [`SplitKind::Spread`].
pub const MIN_BLOCK: usize = 8;

/// Most held-out blocks of [`SplitKind::Spread`].
pub const MAX_BLOCKS: usize = 16;

/// Where the held-out frames lie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitKind {
    /// The last frames.
    #[default]
    End,
    /// Blocks spread over the footage, with the frames beside each block dropped.
    Spread,
}

/// How `frames` frames split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Which frames train and which are held out.
    pub layout: HeldOutLayout,
    /// How they were placed.
    pub kind: SplitKind,
}

impl Split {
    /// Fewest frames fit takes: [`MIN_HELD_OUT`] held out and as many to train on.
    pub const MIN_FRAMES: usize = 2 * MIN_HELD_OUT;

    /// The split of `frames` frames from `input`.
    pub fn of(frames: usize, input: &std::path::Path, kind: SplitKind) -> FitResult<Self> {
        if frames < Self::MIN_FRAMES {
            return Err(FitError::TooFewFrames {
                input: input.to_path_buf(),
                found: frames,
                needed: Self::MIN_FRAMES,
                held_out: MIN_HELD_OUT,
            });
        }
        let held_out = ((frames as f64 * HELD_OUT_SHARE).ceil() as usize).max(MIN_HELD_OUT);
        Ok(Self::with_held_out(frames, held_out, kind))
    }

    /// `held_out` of `frames` frames (at most half) held out as `kind` places them.
    pub fn with_held_out(frames: usize, held_out: usize, kind: SplitKind) -> Self {
        let held_out = held_out.min(frames / 2);
        let (blocks, guard) = match kind {
            SplitKind::End => (1, 0),
            SplitKind::Spread => {
                let blocks = (held_out / MIN_BLOCK).clamp(1, MAX_BLOCKS);
                let spare = frames - 2 * held_out;
                // At most `2 * blocks - 1` guards: before every block and after all but the
                // last.
                let guard = (held_out / blocks / 2).min(spare / (2 * blocks - 1));
                (blocks, guard)
            }
        };
        let layout = HeldOutLayout::new(frames, held_out, blocks, guard);
        Split { layout, kind }
    }

    /// Frames in all.
    pub fn frames(&self) -> usize {
        self.layout.count
    }

    /// Frames that train.
    pub fn train(&self) -> usize {
        self.layout.train_count()
    }

    /// Frames held out.
    pub fn held_out(&self) -> usize {
        self.layout.held_out_count()
    }

    /// Blocks the held-out frames lie in.
    pub fn blocks(&self) -> usize {
        self.layout.held_out.len()
    }

    /// Frames dropped on each side of each block.
    pub fn guard(&self) -> usize {
        self.layout.guard
    }

    /// What the split holds out, for a reader.
    pub fn held_out_how(&self) -> String {
        match self.kind {
            SplitKind::End => format!("the last {} frames (--split end)", self.held_out()),
            SplitKind::Spread => format!(
                "{} frames in {} blocks spread over the footage, {} frames dropped on each side \
                 of each block ({} in all) (--split spread)",
                self.held_out(),
                self.blocks(),
                self.guard(),
                self.layout.dropped_count()
            ),
        }
    }
}

/// The frames of `ranges` (positions into `names`) as "first .. last, first .. last (N
/// frames)" for a reader; lists of more than seven keep their first and last three
/// stretches.
pub fn describe(names: &[String], ranges: &[std::ops::Range<usize>]) -> String {
    describe_by(|position| names.get(position).cloned(), ranges)
}

/// [`describe`] with each position named by `name` (`None`: unknown).
pub fn describe_by(
    name: impl Fn(usize) -> Option<String>,
    ranges: &[std::ops::Range<usize>],
) -> String {
    let stretch = |range: &std::ops::Range<usize>| match (
        name(range.start),
        range.end.checked_sub(1).and_then(&name),
    ) {
        (Some(first), Some(last)) if range.len() > 1 => format!("{first} .. {last}"),
        (Some(only), _) => only,
        _ => "?".to_owned(),
    };
    let count: usize = ranges.iter().map(ExactSizeIterator::len).sum();
    if count == 0 {
        return "none".to_owned();
    }
    let mut parts: Vec<String> = Vec::new();
    if ranges.len() > 7 {
        parts.extend(ranges[..3].iter().map(stretch));
        parts.push(format!("... {} more ...", ranges.len() - 6));
        parts.extend(ranges[ranges.len() - 3..].iter().map(stretch));
    } else {
        parts.extend(ranges.iter().map(stretch));
    }
    let unit = if count == 1 { "frame" } else { "frames" };
    format!("{} ({count} {unit})", parts.join(", "))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
// Lists of one stretch are what the layouts hold, not ranges meant as Vecs.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_last_tenth_is_held_out_but_never_fewer_than_sixteen() {
        let split =
            |n| Split::of(n, Path::new("in"), SplitKind::End).map(|s| (s.train(), s.held_out()));
        assert_eq!(split(795).unwrap(), (715, 80));
        assert_eq!(split(600).unwrap(), (540, 60));
        assert_eq!(split(164).unwrap(), (147, 17));
        assert_eq!(split(32).unwrap(), (16, 16));
        let error = split(31).unwrap_err().to_string();
        assert!(
            error.contains("31 usable frames") && error.contains("at least 32"),
            "{error}"
        );
        let end = Split::of(600, Path::new("in"), SplitKind::End).unwrap();
        assert_eq!(
            (end.layout.train.clone(), end.layout.held_out.clone()),
            (vec![0..540], vec![540..600])
        );
    }

    #[test]
    fn spread_holds_out_a_tenth_in_blocks_with_guards() {
        let split = |n| {
            Split::of(n, Path::new("in"), SplitKind::Spread)
                .map(|s| (s.train(), s.held_out(), s.blocks(), s.guard()))
        };
        // vtest's 600 frames: 60 held out in 7 blocks of 8-9, 4 dropped beside each.
        assert_eq!(split(600).unwrap(), (488, 60, 7, 4));
        // The door's 1866 frames: 187 in 16 blocks of 11-12, 5 beside each.
        assert_eq!(split(1866).unwrap(), (1524, 187, 16, 5));
        assert_eq!(split(164).unwrap(), (135, 17, 2, 4));
        // Short footage: the guards shrink so that as many frames train as are held out.
        assert_eq!(split(48).unwrap(), (20, 16, 2, 4));
        assert_eq!(split(32).unwrap(), (16, 16, 2, 0));
        for frames in 32..400 {
            let split = Split::of(frames, Path::new("in"), SplitKind::Spread).unwrap();
            assert!(split.train() >= split.held_out(), "{frames}");
            assert_eq!(split.layout.held_out.last().map(|b| b.end), Some(frames));
        }
    }

    #[test]
    fn stretches_are_described_by_their_ends() {
        let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        assert_eq!(describe(&names, &[1..3]), "f1 .. f2 (2 frames)");
        assert_eq!(describe(&names, &[1..3, 5..6]), "f1 .. f2, f5 (3 frames)");
        assert_eq!(describe(&names, &[]), "none");
        let many: Vec<_> = (0..8).map(|i| 4 * i..4 * i + 2).collect();
        assert_eq!(
            describe(&names, &many),
            "f0 .. f1, f4 .. f5, f8 .. f9, ... 2 more ..., f20 .. f21, f24 .. f25, f28 .. f29 (16 frames)"
        );
    }
}
