//! The `flowgate` command line: arguments and the commands they run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::data;

/// flowgate's trainer: trains normalizing flows on a camera's normal frames, calibrates,
/// quantises and exports them for the edge gate.
///
/// Training, evaluation and export land with their issues; today the trainer reads and
/// summarises the datasets.
#[derive(Debug, Parser)]
#[command(name = "flowgate", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The trainer's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Datasets: what is in the data dir (fill it with scripts/fetch-data.sh).
    #[command(subcommand)]
    Data(DataCommand),
}

/// Dataset commands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Counts, image sizes, label histograms and mean pixel value of every split, and the
    /// sample videos.
    Summary(SummaryArgs),
}

/// Arguments of `data summary`.
#[derive(Debug, Args)]
pub struct SummaryArgs {
    /// The data dir [default: $FLOWGATE_DATA_DIR, else data/ in the workspace].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// List every file of the opencv samples, not only the videos.
    #[arg(long)]
    pub all_files: bool,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Data(DataCommand::Summary(args)) => {
            let dir = args.data_dir.unwrap_or_else(data::default_data_dir);
            let summary = data::summary(&dir)
                .with_context(|| format!("cannot summarise the data in {}", dir.display()))?;
            if args.all_files {
                print!("{summary:#}");
            } else {
                print!("{summary}");
            }
            Ok(())
        }
    }
}
