//! The progress bar of a training loop.

use indicatif::{ProgressBar, ProgressStyle};

/// The progress bar of a `steps`-step loop (hidden without `progress`), labelled `prefix`.
pub fn step_bar(steps: usize, progress: bool, prefix: &str) -> ProgressBar {
    let bar = if progress {
        ProgressBar::new(steps as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_prefix(prefix.to_owned());
    bar
}
