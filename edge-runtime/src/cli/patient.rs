//! Writing to a descriptor that may be non-blocking.
//!
//! A camera pipeline may hand the gate a stdout opened with `O_NONBLOCK` (some supervisors
//! and GStreamer's `fdsink` do). A full pipe then answers a write with `EAGAIN`
//! ([`io::ErrorKind::WouldBlock`]), which `write_all` treats as fatal: the gate would stop
//! on a downstream model that is merely slow. [`Patient`] waits that out, and retries writes
//! interrupted by signals; every other error, a closed pipe included, still ends the write.

use std::io::{self, Write};
use std::time::Duration;

/// A writer that retries writes that would block or were interrupted.
#[derive(Debug)]
pub struct Patient<W> {
    inner: W,
}

/// The pause before retrying a write to a full non-blocking pipe. A frame's worth of data
/// drains in well under a millisecond once the reader reads, so this adds no visible
/// latency, and keeps the wait off the CPU.
const RETRY_PAUSE: Duration = Duration::from_millis(1);

impl<W: Write> Patient<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Patient { inner }
    }

    fn retry<T>(&mut self, mut op: impl FnMut(&mut W) -> io::Result<T>) -> io::Result<T> {
        loop {
            match op(&mut self.inner) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(RETRY_PAUSE);
                }
                result => return result,
            }
        }
    }
}

impl<W: Write> Write for Patient<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.retry(|inner| inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.retry(Write::flush)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::vec::Vec;

    use super::*;

    /// Accepts two bytes per write, and only every third call: the others would block or
    /// are interrupted. After `limit` bytes the pipe is closed.
    struct Fussy {
        data: Vec<u8>,
        calls: usize,
        limit: usize,
    }

    impl Write for Fussy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.data.len() >= self.limit {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            match self.calls % 3 {
                0 => Err(io::ErrorKind::WouldBlock.into()),
                1 => Err(io::ErrorKind::Interrupted.into()),
                _ => {
                    let n = buf.len().min(2);
                    self.data.extend_from_slice(&buf[..n]);
                    Ok(n)
                }
            }
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn waits_out_full_and_interrupted_writes() {
        let mut out = Patient::new(Fussy {
            data: Vec::new(),
            calls: 0,
            limit: usize::MAX,
        });
        out.write_all(b"a frame of bytes").unwrap();
        out.flush().unwrap();
        assert_eq!(out.inner.data, b"a frame of bytes");
    }

    #[test]
    fn a_closed_pipe_is_still_an_error() {
        let mut out = Patient::new(Fussy {
            data: Vec::new(),
            calls: 0,
            limit: 4,
        });
        let error = out.write_all(b"a frame of bytes").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(out.inner.data, b"a fr");
    }
}
