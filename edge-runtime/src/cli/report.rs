//! The score table: one row per frame, as CSV or JSON lines.

use std::format;
use std::io::{self, Write};
use std::string::String;

use crate::gate::{Decision, Fault, Verdict};

/// The columns, in order (CSV header; JSON keys). `fault` is empty (null) unless the frame
/// was rejected because it could not be judged ([`crate::Fault`]); `detail_bits_per_dim`
/// unless the model has a native-resolution detail branch (the patches' mean bits/dim; the
/// OOD score is then the combined one).
pub const COLUMNS: [&str; 8] = [
    "source",
    "frame",
    "log_likelihood",
    "bits_per_dim",
    "ood_score",
    "decision",
    "fault",
    "detail_bits_per_dim",
];

/// How the table is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// One JSON object per line; `decision` is null without a threshold.
    Jsonl,
}

/// Writes score rows to `out`.
#[derive(Debug)]
pub struct Report<W: Write> {
    out: W,
    format: Format,
}

impl<W: Write> Report<W> {
    /// Starts a table (the CSV header goes out at once, so an empty table still has it).
    pub fn new(mut out: W, format: Format) -> io::Result<Self> {
        if format == Format::Csv {
            writeln!(out, "{}", COLUMNS.join(","))?;
        }
        Ok(Report { out, format })
    }

    /// One frame's row: `source` is the file (or `-`), `frame` the index within it.
    pub fn row(&mut self, source: &str, frame: u64, verdict: &Verdict) -> io::Result<()> {
        let decision = verdict.decision.map(decision_name);
        let fault = verdict.fault.map(Fault::name);
        let [log_likelihood, bits_per_dim, ood_score] = [
            verdict.log_likelihood,
            verdict.bits_per_dim,
            verdict.ood_score,
        ];
        match self.format {
            Format::Csv => writeln!(
                self.out,
                "{},{frame},{log_likelihood:.6},{bits_per_dim:.6},{ood_score:.6},{},{},{}",
                csv_field(source),
                decision.unwrap_or(""),
                fault.unwrap_or(""),
                verdict
                    .detail_bits_per_dim
                    .map_or_else(String::new, |bits| format!("{bits:.6}"))
            ),
            Format::Jsonl => writeln!(
                self.out,
                "{{\"source\":{},\"frame\":{frame},\"log_likelihood\":{},\"bits_per_dim\":{},\"ood_score\":{},\"decision\":{},\"fault\":{},\"detail_bits_per_dim\":{}}}",
                json_string(source),
                json_number(log_likelihood),
                json_number(bits_per_dim),
                json_number(ood_score),
                decision.map_or_else(|| "null".into(), json_string),
                fault.map_or_else(|| "null".into(), json_string),
                verdict
                    .detail_bits_per_dim
                    .map_or_else(|| "null".into(), json_number),
            ),
        }
    }

    /// Flushes the output (after each row of a live stream, and at the end).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `accept` or `reject`.
pub fn decision_name(decision: Decision) -> &'static str {
    match decision {
        Decision::Accept => "accept",
        Decision::Reject => "reject",
    }
}

fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        std::format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// `text` as a JSON string literal.
pub fn json_string(text: &str) -> std::string::String {
    use core::fmt::Write as _;
    let mut out = std::string::String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// JSON has no NaN or infinities: those become null.
fn json_number(value: f64) -> std::string::String {
    if value.is_finite() {
        std::format!("{value:.6}")
    } else {
        "null".into()
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    fn verdict(decision: Option<Decision>) -> Verdict {
        Verdict {
            log_likelihood: -12.5,
            bits_per_dim: 1.127_171_6,
            ood_score: 1.127_171_6,
            decision,
            fault: None,
            detail_bits_per_dim: None,
        }
    }

    fn table(format: Format, rows: &[(&str, u64, Verdict)]) -> String {
        let mut report = Report::new(Vec::new(), format).unwrap();
        for (source, frame, verdict) in rows {
            report.row(source, *frame, verdict).unwrap();
        }
        String::from_utf8(report.finish().unwrap()).unwrap()
    }

    #[test]
    fn csv_has_the_header_and_quotes_when_needed() {
        assert_eq!(
            table(Format::Csv, &[]),
            "source,frame,log_likelihood,bits_per_dim,ood_score,decision,fault,detail_bits_per_dim\n"
        );
        let text = table(
            Format::Csv,
            &[
                ("a.png", 0, verdict(Some(Decision::Accept))),
                ("odd,\"name\".png", 3, verdict(None)),
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "a.png,0,-12.500000,1.127172,1.127172,accept,,");
        assert_eq!(
            lines[2],
            "\"odd,\"\"name\"\".png\",3,-12.500000,1.127172,1.127172,,,"
        );
    }

    #[test]
    fn jsonl_has_the_same_keys() {
        let mut nan = verdict(Some(Decision::Reject));
        nan.log_likelihood = f64::NAN;
        nan.fault = Some(Fault::NonFiniteScore);
        let text = table(
            Format::Jsonl,
            &[("-", 7, verdict(None)), ("dir\\\"x\"", 1, nan)],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "{\"source\":\"-\",\"frame\":7,\"log_likelihood\":-12.500000,\"bits_per_dim\":1.127172,\"ood_score\":1.127172,\"decision\":null,\"fault\":null,\"detail_bits_per_dim\":null}"
        );
        assert_eq!(
            lines[1],
            "{\"source\":\"dir\\\\\\\"x\\\"\",\"frame\":1,\"log_likelihood\":null,\"bits_per_dim\":1.127172,\"ood_score\":1.127172,\"decision\":\"reject\",\"fault\":\"non-finite-score\",\"detail_bits_per_dim\":null}"
        );
    }
}
