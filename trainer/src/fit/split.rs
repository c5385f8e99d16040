//! Which frames train and which are held out. The held-out frames are the last ones in file
//! order: a video is chronological, so they are its final segment, frames the flow never saw
//! (neighbouring frames of a video are near copies, so a random split would hold out frames
//! the flow trained on in all but name). They stop the trainings early (`train.validate_every`)
//! and set the threshold, exactly as `data.validation` holds out a folder dataset's last
//! images in [`crate::data::training_data`].

use super::error::{FitError, FitResult};

/// At least this many frames are held out, so that the threshold rests on more than a handful.
pub const MIN_HELD_OUT: usize = 16;

/// The share of the frames held out when that is more than [`MIN_HELD_OUT`].
pub const HELD_OUT_SHARE: f64 = 0.10;

/// How `frames` frames split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Frames in all.
    pub frames: usize,
    /// The first `train` frames train.
    pub train: usize,
    /// The last `held_out` frames are held out.
    pub held_out: usize,
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
        let held_out = ((frames as f64 * HELD_OUT_SHARE).ceil() as usize)
            .max(MIN_HELD_OUT)
            // training_data never holds out more than half.
            .min(frames / 2);
        Ok(Split {
            frames,
            train: frames - held_out,
            held_out,
        })
    }

    /// The training frames' positions.
    pub fn train_range(&self) -> std::ops::Range<usize> {
        0..self.train
    }

    /// The held-out frames' positions.
    pub fn held_out_range(&self) -> std::ops::Range<usize> {
        self.train..self.frames
    }
}

/// `names[range]` as "first .. last (N)" for a reader.
pub fn describe(names: &[String], range: std::ops::Range<usize>) -> String {
    match (
        names.get(range.start),
        range.end.checked_sub(1).and_then(|last| names.get(last)),
    ) {
        (Some(first), Some(last)) if range.len() > 1 => {
            format!("{first} .. {last} ({} frames)", range.len())
        }
        (Some(only), _) => format!("{only} (1 frame)"),
        _ => "none".to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_last_tenth_is_held_out_but_never_fewer_than_sixteen() {
        let split = |n| Split::of(n, Path::new("in")).map(|s| (s.train, s.held_out));
        assert_eq!(split(795).unwrap(), (715, 80));
        assert_eq!(split(164).unwrap(), (147, 17));
        assert_eq!(split(48).unwrap(), (32, 16));
        assert_eq!(split(32).unwrap(), (16, 16));
        let error = split(31).unwrap_err().to_string();
        assert!(
            error.contains("31 usable frames") && error.contains("at least 32"),
            "{error}"
        );
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        assert_eq!(describe(&names, 1..3), "b .. c (2 frames)");
    }
}
