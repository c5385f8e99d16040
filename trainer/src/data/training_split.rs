//! A config's training and held-out images.

use std::path::Path;

use super::{DatasetName, HeldOutLayout, ImageSet, Split, inputs};
use crate::config::{DatasetSource, TrainConfig};
use crate::error::{Error, Result};

/// The `split` of an idx dataset as images.
pub fn load_idx_split(data_dir: &Path, dataset: DatasetName, split: Split) -> Result<ImageSet> {
    let images = super::load(data_dir, dataset, split)?.images;
    Ok(ImageSet {
        count: images.count,
        shape: [1, images.rows, images.cols],
        pixels: images.pixels,
    })
}

/// Training and held-out images of a config: `data.validation` images (of the train split,
/// or of the folder in file-name order), at most half of them, held out where
/// [`HeldOutLayout`] puts them (by default the last ones); `data.limit` keeps the first
/// training images.
pub fn training_data(config: &TrainConfig, data_dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let shape = config.model.input_shape();
    let all = match &config.data.dataset {
        DatasetSource::Folder(folder) => {
            let loaded = inputs::load_input(&data_dir.join(folder), shape, None)?;
            for skipped in &loaded.skipped {
                eprintln!("warning: skipped {skipped}");
            }
            loaded.set
        }
        DatasetSource::FashionMnist => idx_train_split(data_dir, DatasetName::FashionMnist, shape)?,
        DatasetSource::Mnist => idx_train_split(data_dir, DatasetName::Mnist, shape)?,
    };
    let layout = layout_of(config, all.count);
    let mut train = layout.train_positions();
    if let Some(limit) = config.data.limit {
        train.truncate(limit);
    }
    Ok((all.subset(&train), all.subset(&layout.held_out_positions())))
}

/// Where a config holds out images of a dataset of `count`.
pub fn layout_of(config: &TrainConfig, count: usize) -> HeldOutLayout {
    let data = &config.data;
    HeldOutLayout::new(
        count,
        data.validation,
        data.validation_blocks,
        data.validation_guard,
    )
}

fn idx_train_split(data_dir: &Path, dataset: DatasetName, shape: [usize; 3]) -> Result<ImageSet> {
    let all = load_idx_split(data_dir, dataset, Split::Train)?;
    if all.shape != shape {
        return Err(Error::ImageShape {
            source_name: format!("{dataset} {}", Split::Train),
            found: all.shape,
            expected: shape,
        });
    }
    Ok(all)
}
