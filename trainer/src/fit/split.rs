//! Which frames train and which are held out. A video is chronological and its last stretch
//! can miss what happens elsewhere (the door camera's last tenth is a still door, so a
//! threshold set on it rejected every frame with a person close by), so the held-out frames
//! are blocks spread over the footage ([`HeldOutLayout`]): up to [`MAX_BLOCKS`] blocks of at
//! least [`MIN_BLOCK`] frames, each ending one of as many equal segments. Neighbouring frames
//! of a video are near copies, so half a block on each side of each block is dropped (less
//! where the footage is short, so that at least as many frames train as are held out): a
//! random split would hold out frames the flow trained on in all but name. The held-out
//! frames stop the trainings early (`train.validate_every`) and set the threshold; the
//! recipes get the layout as `data.validation`, `data.validation_blocks` and
//! `data.validation_guard`, so [`crate::data::training_data`] reads the same split.

use super::error::{FitError, FitResult};
use crate::data::HeldOutLayout;

/// At least this many frames are held out, so that the threshold rests on more than a handful.
pub const MIN_HELD_OUT: usize = 16;

/// The share of the frames held out when that is more than [`MIN_HELD_OUT`].
pub const HELD_OUT_SHARE: f64 = 0.10;

/// Fewest frames in a held-out block (fewer blocks than [`MAX_BLOCKS`] where that needs it).
pub const MIN_BLOCK: usize = 8;

/// Most held-out blocks.
pub const MAX_BLOCKS: usize = 16;

/// How `frames` frames split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Frames in all.
    pub frames: usize,
    /// Frames that train.
    pub train: usize,
    /// Frames held out.
    pub held_out: usize,
    /// Where they lie.
    pub layout: HeldOutLayout,
}

impl Split {
    /// Fewest frames fit takes: [`MIN_HELD_OUT`] held out and as many to train on.
    pub const MIN_FRAMES: usize = 2 * MIN_HELD_OUT;

    /// The split of `frames` frames from `input`.
    pub fn of(frames: usize, input: &std::path::Path) -> FitResult<Self> {
        if frames < Self::MIN_FRAMES {
            return Err(FitError::TooFewFrames {
                input: input.to_path_buf(),
                found: frames,
                needed: Self::MIN_FRAMES,
                held_out: MIN_HELD_OUT,
            });
        }
        let held_out = ((frames as f64 * HELD_OUT_SHARE).ceil() as usize).max(MIN_HELD_OUT);
        Ok(Self::with_held_out(frames, held_out))
    }

    /// `held_out` of `frames` frames (at most half) held out in fit's blocks.
    pub fn with_held_out(frames: usize, held_out: usize) -> Self {
        let held_out = held_out.min(frames / 2);
        let blocks = (held_out / MIN_BLOCK).clamp(1, MAX_BLOCKS);
        let spare = frames - 2 * held_out;
        // At most `2 * blocks - 1` guards: before every block and after all but the last.
        let guard = (held_out / blocks / 2).min(spare / (2 * blocks - 1));
        let layout = HeldOutLayout::new(frames, held_out, blocks, guard);
        Split {
            frames,
            train: layout.train_count(),
            held_out: layout.held_out_count(),
            layout,
        }
    }

    /// Blocks the held-out frames lie in.
    pub fn blocks(&self) -> usize {
        self.layout.held_out.len()
    }

    /// Frames dropped on each side of each block.
    pub fn guard(&self) -> usize {
        self.layout.guard
    }

    /// What the split holds out, for a reader: "N frames in B blocks of ..., G dropped on
    /// each side of each".
    pub fn held_out_how(&self) -> String {
        format!(
            "{} frames in {} blocks spread over the footage, {} frames dropped on each side of \
             each block ({} in all)",
            self.held_out,
            self.blocks(),
            self.guard(),
            self.layout.dropped_count()
        )
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
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_tenth_is_held_out_in_blocks_but_never_fewer_than_sixteen() {
        let split = |n| Split::of(n, Path::new("in")).map(|s| (s.train, s.held_out, s.blocks(), s.guard()));
        // vtest's 600 frames: 60 held out in 7 blocks of 8-9, 4 dropped beside each.
        assert_eq!(split(600).unwrap(), (488, 60, 7, 4));
        // The door's 1866 frames: 187 in 16 blocks of 11-12, 5 beside each.
        assert_eq!(split(1866).unwrap(), (1524, 187, 16, 5));
        assert_eq!(split(164).unwrap(), (135, 17, 2, 4));
        // Short footage: the guards shrink so that as many frames train as are held out.
        assert_eq!(split(48).unwrap(), (20, 16, 2, 4));
        assert_eq!(split(32).unwrap(), (16, 16, 2, 0));
        let error = split(31).unwrap_err().to_string();
        assert!(
            error.contains("31 usable frames") && error.contains("at least 32"),
            "{error}"
        );
        for frames in 32..400 {
            let split = Split::of(frames, Path::new("in")).unwrap();
            assert!(split.train >= split.held_out, "{frames}");
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
