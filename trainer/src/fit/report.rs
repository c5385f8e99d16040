//! What fit tells the user: a short summary on stdout and `<stem>.report.html` with its
//! histogram `<stem>.report.png` beside the gate: the held-out frames' scores against the
//! threshold, the training frames that look least normal (to clean the footage), and the
//! gate's size and cost as `flowgate-edge inspect` counts them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::budget::{Board, Cost};
use super::size::GateSize;
use super::split::{self, Split};
use crate::calibration::share_above;

/// Training frames listed as least normal.
pub const LEAST_NORMAL: usize = 10;

/// One of the least normal training frames.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    /// Where it came from ("frame 123", or the image file's name).
    pub origin: String,
    /// Its file in the work folder's frames.
    pub file: String,
    /// The gate's bits/dim of it.
    pub bits_per_dim: f64,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Report {
    /// The input, as given.
    pub input: PathBuf,
    /// The gate written.
    pub gate: PathBuf,
    /// The work folder.
    pub work: PathBuf,
    /// The input size chosen.
    pub size: GateSize,
    /// The split.
    pub split: Split,
    /// Per frame, where it came from (the manifest's origins, in training order).
    pub origins: Vec<String>,
    /// The gate's bits/dim of the training frames.
    pub train_scores: Vec<f64>,
    /// And of the held-out frames.
    pub held_out_scores: Vec<f64>,
    /// The threshold (bits/dim).
    pub threshold: f64,
    /// The target false-reject rate.
    pub rate: f64,
    /// The share of held-out frames above the threshold.
    pub held_out_rejected: f64,
    /// The least normal training frames, worst first.
    pub least_normal: Vec<Outlier>,
    /// The gate's size and cost.
    pub cost: Cost,
    /// `--board`'s budget and how much of it the gate takes.
    pub board: Option<String>,
    /// Per training, "name: N steps run now, kept step S (held-out X)".
    pub trainings: Vec<String>,
    /// The native-resolution detail branch, if the gate has one: what it is and what the
    /// combined decision rejects of the held-out frames (the threshold above and the
    /// histogram are the thumbnail's alone).
    pub detail: Option<String>,
    /// Whether the frames came from an earlier run.
    pub frames_reused: bool,
    /// Seconds the whole fit took.
    pub seconds: f64,
}

/// The `count` training frames with the highest bits/dim, worst first (non-finite scores,
/// the least normal of all, lead).
pub fn least_normal(
    scores: &[f64],
    origins: &[String],
    files: &[String],
    count: usize,
) -> Vec<Outlier> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    let key = |i: usize| {
        let score = scores[i];
        if score.is_nan() { f64::INFINITY } else { score }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    order
        .into_iter()
        .take(count)
        .map(|i| Outlier {
            origin: origins.get(i).cloned().unwrap_or_default(),
            file: files.get(i).cloned().unwrap_or_default(),
            bits_per_dim: scores[i],
        })
        .collect()
}

/// `<stem>.report.html` and `<stem>.report.png` beside `gate`.
pub fn report_paths(gate: &Path) -> (PathBuf, PathBuf) {
    let stem = gate
        .file_stem()
        .map_or_else(|| "gate".into(), |s| s.to_string_lossy().into_owned());
    let dir = gate.parent().unwrap_or(Path::new(""));
    (
        dir.join(format!("{stem}.report.html")),
        dir.join(format!("{stem}.report.png")),
    )
}

fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// A warning when the threshold, set on the held-out frames at `rate`, rejects far more of the
/// training frames (`training_share` of them): the held-out frames then missed activity that
/// the training frames show, and the gate will reject it. Training frames score lower than
/// unseen ones when the held-out frames are like them, so a share several times the target
/// rate says they are not.
fn calibration_warning(training_share: f64, rate: f64) -> Option<String> {
    (training_share > (5.0 * rate).max(0.05)).then(|| {
        format!(
            "{:.0}% of the training frames score above the threshold, which was set on the \
             held-out frames at {:.1}%: the held-out frames look calmer than the rest of the \
             footage, so the gate will reject normal activity they do not show. Fit again with \
             --split spread (held-out frames from the whole footage) or on longer footage in \
             which that activity recurs; the report's histogram shows the two sets",
            100.0 * training_share,
            100.0 * rate
        )
    })
}

impl Report {
    /// "frame 0 .. frame 60, frame 74 .. frame 136, ... (488 frames)" for the training
    /// frames, and the held-out ones.
    pub fn split_lines(&self) -> (String, String) {
        (
            split::describe(&self.origins, &self.split.layout.train),
            split::describe(&self.origins, &self.split.layout.held_out),
        )
    }

    /// [`calibration_warning`] for this gate's training frames.
    pub fn calibration_warning(&self) -> Option<String> {
        calibration_warning(share_above(&self.train_scores, self.threshold), self.rate)
    }

    /// The few lines fit prints when it is done.
    pub fn summary(&self) -> String {
        let (train, held_out) = self.split_lines();
        let mut text = String::new();
        let _ = writeln!(text, "gate      {}", self.gate.display());
        let _ = writeln!(text, "input     {} -> {}", self.input.display(), self.size);
        let _ = writeln!(text, "train     {train}");
        let _ = writeln!(text, "held out  {held_out}: early stopping and calibration");
        let _ = writeln!(text, "          {}", self.split.held_out_how());
        let _ = writeln!(
            text,
            "threshold {:.4} bits/dim (target {:.1}% false rejects): rejects {:.1}% of the held-out \
             frames (mean {:.4}; training frames mean {:.4})",
            self.threshold,
            100.0 * self.rate,
            100.0 * self.held_out_rejected,
            mean(&self.held_out_scores),
            mean(&self.train_scores)
        );
        if let Some(warning) = self.calibration_warning() {
            let _ = writeln!(text, "warning   {warning}");
        }
        let _ = writeln!(
            text,
            "model     int8, {} parameters, {} file, {} MACs per frame, memory {} (file {} + \
             plan {} + scratch {})",
            self.cost.parameters,
            kib(self.cost.file_bytes),
            self.cost.macs_per_frame,
            kib(self.cost.memory_bytes),
            kib(self.cost.file_bytes),
            kib(self.cost.plan_bytes),
            kib(self.cost.scratch_bytes)
        );
        for training in &self.trainings {
            let _ = writeln!(text, "trained   {training}");
        }
        if let Some(detail) = &self.detail {
            let _ = writeln!(text, "detail    {detail}");
        }
        if let Some(board) = &self.board {
            let _ = writeln!(text, "fits      {board}");
        }
        if let Some(worst) = self.least_normal.first() {
            let _ = writeln!(
                text,
                "{}",
                least_normal_line(worst, self.least_normal.len())
            );
        }
        let (html, _) = report_paths(&self.gate);
        let _ = write!(
            text,
            "report    {} (this run took {:.0} s)",
            html.display(),
            self.seconds
        );
        text
    }

    /// The HTML page; `png_name` is the histogram's file name beside it.
    pub fn html(&self, png_name: &str) -> String {
        let (train, held_out) = self.split_lines();
        let mut page = String::new();
        let title = format!(
            "flowgate fit: {}",
            self.gate
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        );
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
             <style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}\
             table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;\
             text-align:left}}td.n{{text-align:right}}</style></head><body>\n<h1>{}</h1>\n",
            escape(&title),
            escape(&title)
        );
        let rows = [
            ("input", self.input.display().to_string()),
            ("gate input", self.size.to_string()),
            ("training frames", train),
            ("held-out frames (early stopping, calibration)", held_out),
            ("how they are held out", self.split.held_out_how()),
            (
                "frames",
                format!(
                    "{} in {} ({})",
                    self.split.frames(),
                    self.work.display(),
                    if self.frames_reused {
                        "reused from an earlier run"
                    } else {
                        "extracted now"
                    }
                ),
            ),
            ("trainings", self.trainings.join("; ")),
            ("time of this run", format!("{:.0} s", self.seconds)),
        ];
        page.push_str("<h2>Data</h2>\n<table>\n");
        for (name, value) in rows {
            let _ = writeln!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(&value)
            );
        }
        page.push_str("</table>\n<h2>Scores</h2>\n");
        let _ = writeln!(
            page,
            "<p>Threshold {:.4} bits/dim, set on the held-out frames at a target of {:.1}% false \
             rejects; it rejects {:.1}% of them. A frame scoring above it is rejected. Held-out \
             mean {:.4}, training mean {:.4} bits/dim.</p>\n<p><img src=\"{}\" alt=\"histogram of \
             the held-out and training frames' scores with the threshold\"></p>",
            self.threshold,
            100.0 * self.rate,
            100.0 * self.held_out_rejected,
            mean(&self.held_out_scores),
            mean(&self.train_scores),
            escape(png_name)
        );
        if let Some(warning) = self.calibration_warning() {
            let _ = writeln!(
                page,
                "<p><strong>Warning:</strong> {}.</p>",
                escape(&warning)
            );
        }
        if let Some(detail) = &self.detail {
            let _ = writeln!(
                page,
                "<p>The threshold and histogram above are the thumbnail's alone. The gate also \
                 has a native-resolution detail branch, and decides on the combined score: {}</p>",
                escape(detail)
            );
        }
        let _ = writeln!(
            page,
            "<h2>Least normal training frames</h2>\n<p>The {} training frames the gate finds \
             least normal (highest bits/dim). If they show something the camera should not \
             see in normal operation, remove them from the footage and fit again.</p>\n<table>\
             <tr><th>rank</th><th>frame</th><th>file (in the work folder)</th><th>bits/dim</th>\
             <th>above the threshold</th></tr>",
            self.least_normal.len()
        );
        for (rank, outlier) in self.least_normal.iter().enumerate() {
            let _ = writeln!(
                page,
                "<tr><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{:.4}</td>\
                 <td>{}</td></tr>",
                rank + 1,
                escape(&outlier.origin),
                escape(&outlier.file),
                outlier.bits_per_dim,
                if outlier.bits_per_dim > self.threshold {
                    "yes"
                } else {
                    "no"
                }
            );
        }
        page.push_str("</table>\n<h2>Model</h2>\n<table>\n");
        let cost = &self.cost;
        let mut model_rows = vec![
            ("weights", "int8".to_owned()),
            ("parameters", cost.parameters.to_string()),
            (
                "file size",
                format!("{} bytes ({})", cost.file_bytes, kib(cost.file_bytes)),
            ),
            ("MACs per frame", cost.macs_per_frame.to_string()),
            (
                "memory (file + plan + scratch)",
                format!(
                    "{} bytes ({}) = {} + {} + {}",
                    cost.memory_bytes,
                    kib(cost.memory_bytes),
                    cost.file_bytes,
                    cost.plan_bytes,
                    cost.scratch_bytes
                ),
            ),
        ];
        if let Some(board) = &self.board {
            model_rows.push(("board", board.clone()));
        }
        for (name, value) in model_rows {
            let _ = writeln!(
                page,
                "<tr><th>{}</th><td>{}</td></tr>",
                escape(name),
                escape(&value)
            );
        }
        page.push_str("</table>\n</body></html>\n");
        page
    }
}

/// The summary's line on the least normal training frame, of `listed` in the report.
fn least_normal_line(worst: &Outlier, listed: usize) -> String {
    // A folder's frames keep their file names, so there the origin is the file: name it once.
    let file = if worst.origin == worst.file {
        String::new()
    } else {
        format!("{}, ", worst.file)
    };
    format!(
        "least normal training frame: {} ({file}{:.4} bits/dim); the report lists {listed}",
        worst.origin, worst.bits_per_dim
    )
}

/// The board line of the report, when `--board` was given.
pub fn board_line(board: Option<&Board>, cost: &Cost) -> Option<String> {
    board.map(|board| board.describe(cost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_normal_frames_are_the_highest_scores_first() {
        let names: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let found = least_normal(&[1.0, 3.0, f64::NAN, 2.0], &names, &names, 3);
        let order: Vec<&str> = found.iter().map(|o| o.origin.as_str()).collect();
        assert_eq!(order, ["c", "b", "d"]);
        assert_eq!(escape("<a&b>"), "&lt;a&amp;b&gt;");
    }

    #[test]
    fn the_least_normal_frame_is_named_once_when_its_origin_is_its_file() {
        let from_video = Outlier {
            origin: "frame 360".into(),
            file: "frame-000360.png".into(),
            bits_per_dim: 7.87109,
        };
        assert_eq!(
            least_normal_line(&from_video, 10),
            "least normal training frame: frame 360 (frame-000360.png, 7.8711 bits/dim); \
             the report lists 10"
        );
        let from_folder = Outlier {
            origin: "frame-001303.png".into(),
            file: "frame-001303.png".into(),
            bits_per_dim: 4.09061,
        };
        assert_eq!(
            least_normal_line(&from_folder, 10),
            "least normal training frame: frame-001303.png (4.0906 bits/dim); the report lists 10"
        );
    }

    #[test]
    fn a_threshold_that_rejects_many_training_frames_is_flagged() {
        let scores = [5.5, 5.6, 5.7, 5.9, 6.4, f64::NAN, 5.4, 5.5];
        assert_eq!(share_above(&scores, 5.65), 0.5);
        assert_eq!(share_above(&[], 5.65), 0.0);
        // The door camera's gate: 29% of the training frames above a threshold set at 1%.
        let warning = calibration_warning(0.29, 0.01).unwrap();
        assert!(
            warning.starts_with("29% of the training frames"),
            "{warning}"
        );
        assert!(warning.contains("at 1.0%"), "{warning}");
        // vtest.avi-like: a few training frames above it, or a loose target rate.
        assert_eq!(calibration_warning(0.02, 0.01), None);
        assert_eq!(calibration_warning(0.04, 0.01), None);
        assert_eq!(calibration_warning(0.20, 0.05), None);
        assert!(calibration_warning(0.30, 0.05).is_some());
    }
}
