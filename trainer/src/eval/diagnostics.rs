//! The poster's diagnostic pictures: for a few in-distribution and OOD images, the flow's
//! input, its latent z, and what the first coupling saw and the shift `-t` it applied. The
//! paper's point: `-t` re-predicts the masked-out pixels from their neighbours for any image,
//! in or out of distribution, so the coupling learns local correlations, not the data.

use std::path::Path;

use crate::error::Result;
use burn::prelude::*;

use super::plots::{GrayImage, GridOptions, image_grid};
use crate::data::ImageSet;
use crate::flows::{Device, FlowModel};

/// Channel 0 of image `index` of a `[B, C, H, W]` tensor, row-major, with its width and height.
fn plane(tensor: &Tensor<4>, index: usize) -> Result<(Vec<f32>, usize, usize)> {
    let [_, _, height, width] = tensor.dims();
    let slice = tensor
        .clone()
        .narrow(0, index, 1)
        .narrow(1, 0, 1)
        .reshape([height * width]);
    let values = crate::export::values(slice)?;
    Ok((values, width, height))
}

/// Writes `diagnostics.png`-style grids: one row per image (the first `per_set` of each set),
/// columns input, latent z, first coupling's input, its `-t`.
pub fn write_diagnostics(
    path: &Path,
    model: &FlowModel,
    sets: &[(String, ImageSet)],
    per_set: usize,
) -> Result<()> {
    let device = Device::flex();
    let mut planes = Vec::new();
    let mut titles = Vec::new();
    for (name, set) in sets {
        let count = per_set.min(set.count);
        if count == 0 {
            continue;
        }
        let indices: Vec<usize> = (0..count).collect();
        let diagnostics = model.diagnostics(set.batch(&indices, &device));
        for index in 0..count {
            let mut row = vec![
                plane(&diagnostics.input, index)?,
                plane(&diagnostics.latent, index)?,
            ];
            if let Some(trace) = &diagnostics.first_coupling {
                row.push(plane(&trace.net_input, index)?);
                row.push(plane(&trace.shift.clone().neg(), index)?);
            }
            planes.push(row);
            titles.push(format!("{name} {index}"));
        }
    }
    let rows: Vec<Vec<GrayImage<'_>>> = planes
        .iter()
        .map(|row| {
            row.iter()
                .map(|(values, width, height)| GrayImage::new(values, *width, *height))
                .collect()
        })
        .collect();
    let row_titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    image_grid(
        path,
        &rows,
        &row_titles,
        &["input (logit)", "latent z", "coupling input", "-t"],
        &GridOptions {
            title: Some("What the flow sees: latent z and the first coupling's -t".to_owned()),
            ..GridOptions::default()
        },
    )?;
    Ok(())
}
