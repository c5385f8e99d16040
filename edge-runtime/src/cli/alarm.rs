//! A stream-level alarm: a tampered camera is a state, not a frame.
//!
//! One rejected frame in a stream is a glitch (a bird, a flash); the camera covered, knocked
//! or turned away rejects frame after frame. The alarm is raised after `confirm` consecutive
//! rejected frames and cleared after `confirm` consecutive accepted ones, so a supervisor gets
//! one event per change of state instead of one line per frame.

use core::num::NonZeroU32;

/// A change of the stream's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `confirm` consecutive frames were rejected, the last being `frame`.
    Raised {
        /// The frame that completed the run.
        frame: u64,
        /// The first frame of the run.
        since: u64,
    },
    /// `confirm` consecutive frames were accepted after an alarm, the last being `frame`.
    Cleared {
        /// The frame that completed the run.
        frame: u64,
        /// The first frame of the run.
        since: u64,
    },
}

/// The alarm's state machine.
#[derive(Debug, Clone)]
pub struct Alarm {
    confirm: u64,
    raised: bool,
    /// Consecutive frames that disagree with the current state, and the first of them.
    run: u64,
    run_start: u64,
}

impl Alarm {
    /// An alarm confirmed by `confirm` consecutive frames; the stream starts normal.
    pub fn new(confirm: NonZeroU32) -> Self {
        Alarm {
            confirm: u64::from(confirm.get()),
            raised: false,
            run: 0,
            run_start: 0,
        }
    }

    /// Whether the alarm is raised.
    pub fn raised(&self) -> bool {
        self.raised
    }

    /// Feeds frame `frame`'s decision (`rejected`); returns the event it completes, if any.
    pub fn observe(&mut self, frame: u64, rejected: bool) -> Option<Event> {
        if rejected != self.raised {
            if self.run == 0 {
                self.run_start = frame;
            }
            self.run += 1;
        } else {
            self.run = 0;
        }
        if self.run < self.confirm {
            return None;
        }
        self.run = 0;
        self.raised = rejected;
        let since = self.run_start;
        Some(if rejected {
            Event::Raised { frame, since }
        } else {
            Event::Cleared { frame, since }
        })
    }
}

impl Event {
    /// The event as one JSON object (a line of `--events`).
    pub fn to_json(&self, source: &str) -> std::string::String {
        let (event, frame, since) = match *self {
            Event::Raised { frame, since } => ("alarm", frame, since),
            Event::Cleared { frame, since } => ("clear", frame, since),
        };
        std::format!(
            "{{\"event\":\"{event}\",\"source\":{},\"frame\":{frame},\"since\":{since}}}",
            super::report::json_string(source)
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::vec::Vec;

    use super::*;

    fn events(confirm: u32, decisions: &str) -> Vec<Event> {
        let mut alarm = Alarm::new(NonZeroU32::new(confirm).unwrap());
        decisions
            .chars()
            .enumerate()
            .filter_map(|(frame, c)| alarm.observe(frame as u64, c == 'R'))
            .collect()
    }

    #[test]
    fn raised_after_k_rejections_in_a_row_cleared_after_k_acceptances() {
        assert_eq!(
            events(3, "ARRARRRRAARAAA"),
            [
                Event::Raised { frame: 6, since: 4 },
                Event::Cleared {
                    frame: 13,
                    since: 11
                },
            ]
        );
        // Isolated rejections never raise it.
        assert!(events(2, "ARARARARA").is_empty());
        // K = 1: every change of decision is an event.
        assert_eq!(
            events(1, "ARRA"),
            [
                Event::Raised { frame: 1, since: 1 },
                Event::Cleared { frame: 3, since: 3 },
            ]
        );
    }

    #[test]
    fn events_are_json_lines() {
        let event = Event::Raised { frame: 9, since: 5 };
        assert_eq!(
            event.to_json("-"),
            "{\"event\":\"alarm\",\"source\":\"-\",\"frame\":9,\"since\":5}"
        );
    }
}
