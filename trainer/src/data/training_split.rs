//! A config's training and held-out images.

use std::path::Path;

use super::{DatasetName, ImageSet, Split, inputs};
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

/// Training and held-out images of a config: the held-out ones are the last
/// `data.validation` images (of the train split, or of the folder in file-name order), at
/// most half of them; `data.limit` keeps the first training images.
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
    let validation = config.data.validation.min(all.count / 2);
    let held_out = all.slice(all.count - validation..all.count);
    let train_end = config.data.limit.map_or(all.count - validation, |limit| {
        limit.min(all.count - validation)
    });
    Ok((all.slice(0..train_end), held_out))
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
