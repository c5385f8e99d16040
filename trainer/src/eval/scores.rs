//! Scores of a whole input for `eval`, `calibrate` and `quantize`: images read from an idx
//! file, an image folder or a score CSV, scored by burn (a run folder) or the edge gate (a
//! model file).

use std::io::Write;
use std::path::Path;

use crate::data::{self, ImageSet};
use crate::error::{Error, Result};
use crate::run_folder::RunFolder;
use crate::scoring::{self, GateScores};

/// Loads a scoring input and reports the image files it had to skip.
pub fn load_scored_input(
    path: &Path,
    shape: [usize; 3],
    limit: Option<usize>,
) -> Result<data::inputs::InputImages> {
    let input = data::inputs::load_input(path, shape, limit)?;
    for skipped in &input.skipped {
        eprintln!("warning: skipped {skipped}");
    }
    Ok(input)
}

/// Bits/dim and OOD scores of the images of an input (idx file, image or folder).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SetScores {
    /// Per image, bits/dim.
    pub bits_per_dim: Vec<f64>,
    /// Per image, the OOD score.
    pub ood_scores: Vec<f64>,
    /// Deflate-compressed bits per dimension of each image, when asked for (never for score
    /// CSVs).
    pub complexity: Option<Vec<f64>>,
}

impl From<GateScores> for SetScores {
    fn from(scores: GateScores) -> Self {
        SetScores {
            bits_per_dim: scores.bits_per_dim,
            ood_scores: scores.ood_scores,
            complexity: None,
        }
    }
}

/// Whether `path` names a score CSV (scores already computed) rather than images.
pub fn is_score_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Scores every image of an input under a run (burn: the OOD score is bits/dim) or a model
/// file (the edge runtime: the model's own OOD score), with each image's complexity when
/// `with_complexity`.
pub fn set_scores(
    model: &Path,
    input: &Path,
    limit: Option<usize>,
    with_complexity: bool,
) -> Result<SetScores> {
    if is_score_csv(input) {
        let mut scores = read_score_csv(input)?;
        if let Some(limit) = limit {
            scores.bits_per_dim.truncate(limit);
            scores.ood_scores.truncate(limit);
        }
        return Ok(scores);
    }
    if model.is_dir() {
        let (config, flow) = RunFolder::open(model).load_trained()?;
        let set = load_scored_input(input, config.model.input_shape(), limit)?.set;
        let dims = config.model.density_dims() as f64 * std::f64::consts::LN_2;
        let lls = scoring::log_likelihoods(&flow, &set, 256)?;
        let bits_per_dim: Vec<f64> = lls.iter().map(|ll| -ll / dims).collect();
        return Ok(SetScores {
            ood_scores: bits_per_dim.clone(),
            bits_per_dim,
            complexity: with_complexity.then(|| complexity(&set)).transpose()?,
        });
    }
    let bytes = std::fs::read(model).map_err(Error::io(model))?;
    // A workstation tool: models too large for any board are still evaluated.
    let gate = flowgate_edge::Gate::with_limits(&bytes, flowgate_edge::Limits::UNLIMITED)?;
    let spec = gate.model().input;
    let shape = [
        spec.channels as usize,
        spec.height as usize,
        spec.width as usize,
    ];
    let set = load_scored_input(input, shape, limit)?.set;
    Ok(SetScores {
        complexity: with_complexity.then(|| complexity(&set)).transpose()?,
        ..scoring::gate_scores(&gate, &set)?.into()
    })
}

/// Each image's deflate-compressed size (best compression) in bits per dimension: a generic
/// compressor's estimate of how complex the image is.
fn complexity(set: &ImageSet) -> Result<Vec<f64>> {
    use flate2::{Compression, write::DeflateEncoder};
    let compressed_len = |image: &[u8]| -> std::io::Result<usize> {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
        encoder.write_all(image)?;
        Ok(encoder.finish()?.len())
    };
    (0..set.count)
        .map(|index| {
            let image = set.image(index);
            let bytes = compressed_len(image).map_err(|source| Error::Io {
                path: "deflate (in memory)".into(),
                source,
            })?;
            Ok(bytes as f64 * 8.0 / image.len() as f64)
        })
        .collect()
}

/// Scores already computed, as `flowgate score` and `flowgate-edge score` write them
/// (columns `source,frame,log_likelihood,bits_per_dim,ood_score,decision`, and `fault` since
/// the gate fails closed; only the two score columns are read).
fn read_score_csv(path: &Path) -> Result<SetScores> {
    let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let bad = |reason: String| Error::ScoreCsv {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            bad(format!(
                "no '{name}' column (expected a score CSV of flowgate or flowgate-edge)"
            ))
        })
    };
    let (bpd_column, score_column) = (column("bits_per_dim")?, column("ood_score")?);
    let mut scores = SetScores::default();
    for (index, line) in lines.enumerate().filter(|(_, l)| !l.is_empty()) {
        // Sources may hold commas (quoted); the numeric columns are counted from the end.
        let fields: Vec<&str> = line.rsplitn(header.len(), ',').collect();
        let field = |column: usize| -> Result<f64> {
            let from_end = header.len() - 1 - column;
            fields
                .get(from_end)
                .and_then(|f| f.parse::<f64>().ok())
                .ok_or_else(|| bad(format!("line {}: not a number", index + 2)))
        };
        scores.bits_per_dim.push(field(bpd_column)?);
        scores.ood_scores.push(field(score_column)?);
    }
    if scores.ood_scores.is_empty() {
        return Err(bad("no score rows".into()));
    }
    Ok(scores)
}

/// Bits/dim of every image of an input under a run or a model file.
pub fn bits_per_dim(model: &Path, input: &Path, limit: Option<usize>) -> Result<Vec<f64>> {
    Ok(set_scores(model, input, limit, false)?.bits_per_dim)
}

/// A set's name: its folder (`fashion-mnist`, `mnist`) and file stem; a folder's own name;
/// a score CSV's stem.
pub fn set_name(path: &Path) -> String {
    if is_score_csv(path) {
        return path
            .file_stem()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    }
    if path.is_dir() {
        return path.file_name().map_or_else(
            || path.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
    }
    let folder = path
        .parent()
        .and_then(|p| p.file_name())
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = path
        .file_name()
        .map(|f| {
            f.to_string_lossy()
                .replace("-images-idx3-ubyte", "")
                .replace(".gz", "")
        })
        .unwrap_or_default();
    if folder.is_empty() {
        stem
    } else {
        format!("{folder}/{stem}")
    }
}
