//! The first stage of a flow on embeddings: the feature extractor learns its pretext task
//! on the training images, then the actnorm in front of the flow is set to standardise the
//! embeddings it produces, so the flow starts from unit-scale inputs.

use std::path::Path;

use burn::module::Param;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::AdamConfig;
use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::{self, ImageSet, Split};
use crate::driver::batches::{Batch, BatchOrder, BatchSource};
use crate::driver::{self, Objective, Schedule, Start, StepLoss};
use crate::error::{Error, Result};
use crate::flows::embedding::{ExtractorConfig, Objective as Pretext, all_flips};
use crate::flows::preprocess::{Dequantization, levels_to_flow_input};
use crate::flows::{Architecture, FlowModel};
use crate::seeds::Stream;

/// Images whose embeddings set the standardisation.
const STANDARDISE_IMAGES: usize = 4096;

/// Trains `model`'s extractor on its pretext task and standardises its embeddings; a model
/// without an extractor comes back unchanged. `held_out` reports the pretext accuracy on
/// images the extractor never saw.
pub fn pretrain_extractor(
    model: FlowModel,
    config: &TrainConfig,
    data_dir: &Path,
    (train_set, held_out): (&ImageSet, &ImageSet),
    device: &Device,
    progress: bool,
    deadline: Option<std::time::Instant>,
) -> Result<FlowModel> {
    let Architecture::Embedding { extractor, .. } = &config.model.architecture else {
        return Ok(model);
    };
    let labels = match extractor.objective {
        Pretext::Labels => Some(training_labels(config, data_dir, train_set, held_out)?),
        Pretext::Flips => None,
    };
    let schedule = Schedule {
        label: format!("{} extractor", config.name),
        steps: extractor.steps,
        lr: extractor.lr,
        grad_clip: None,
        validate_every: None,
        checkpoint_every: None,
        progress,
        run: None,
        deadline,
        devices: Vec::new(),
    };
    // Its own streams of batches and noise, so the flow's stay those of a pixel flow's run.
    let source = BatchSource {
        images: train_set,
        order: BatchOrder {
            seed: config.train.seed,
            stream: Stream::ExtractorBatchOrder,
            count: train_set.count,
            batch: config.train.batch,
        },
        noise: Stream::ExtractorDequantization,
        mutation_rate: None,
    };
    let mut objective = PretextTask {
        config,
        extractor,
        labels: labels.as_ref(),
        held_out,
        loss: CrossEntropyLossConfig::new().init(device),
    };
    let start = Start::fresh(model, AdamConfig::new().init());
    let model = driver::run(&schedule, &source, start, &mut objective, device)?.model;
    let accuracy = pretext_accuracy(&model, config, extractor, held_out, labels.as_ref())?;
    eprintln!(
        "{}: extractor held-out {:?} accuracy {:.1}% ({} images)",
        config.name,
        extractor.objective,
        100.0 * accuracy,
        held_out.count
    );
    standardise(model, train_set, device)
}

/// The extractor's pretext task: cross-entropy of its classes (labels or flips) on
/// dequantised training images; held out, its error rate.
struct PretextTask<'a> {
    config: &'a TrainConfig,
    extractor: &'a ExtractorConfig,
    labels: Option<&'a Labels>,
    held_out: &'a ImageSet,
    loss: CrossEntropyLoss,
}

impl Objective for PretextTask<'_> {
    fn loss_name(&self) -> &'static str {
        "extractor's"
    }

    fn divergence_hint(&self) -> &'static str {
        "lower extractor.lr"
    }

    fn loss(&mut self, model: &FlowModel, batch: &mut Batch) -> Result<StepLoss> {
        let (levels, targets) = pretext_batch(
            self.extractor,
            batch.levels.clone(),
            &batch.indices,
            self.labels,
        )?;
        let noise = batch.noise_like(&levels);
        let (y, _) = levels_to_flow_input(
            levels,
            self.config.model.alpha,
            Dequantization::Noise(noise),
        );
        let net = model
            .extractor
            .as_ref()
            .ok_or(Error::Pretraining("the model has no extractor to pretrain"))?;
        let count = targets.len();
        let device = y.device();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [count]), &device);
        let loss = self.loss.forward(net.logits(y), targets);
        let value = loss.clone().into_scalar::<f32>();
        Ok(StepLoss {
            loss,
            note: format!("cross-entropy {value:.3}"),
        })
    }

    fn held_out(&mut self, model: &FlowModel) -> Result<f64> {
        let accuracy = pretext_accuracy(
            model,
            self.config,
            self.extractor,
            self.held_out,
            self.labels,
        )?;
        Ok(1.0 - accuracy)
    }
}

/// `model` with its extractor (if any) frozen for training the flow on its embeddings: no
/// gradient reaches it, and its forward pass records no autodiff graph (a graph that no
/// backward pass consumes is never freed: it filled 24 GB in 500 steps).
pub fn freeze_extractor(mut model: FlowModel) -> FlowModel {
    model.extractor = model.extractor.take().map(Module::freeze);
    model
}

/// Labels of the training and held-out images, which `training_data` takes from the start
/// and the end of the train split.
struct Labels {
    train: Vec<u8>,
    held_out: Vec<u8>,
}

fn training_labels(
    config: &TrainConfig,
    data_dir: &Path,
    train_set: &ImageSet,
    held_out: &ImageSet,
) -> Result<Labels> {
    let Some(dataset) = config.data.dataset.dataset() else {
        return Err(Error::Pretraining(
            "extractor.objective = \"labels\" needs a labelled idx dataset; image folders have \
             no labels: use objective = \"flips\"",
        ));
    };
    let all = data::load(data_dir, dataset, Split::Train)?.labels;
    let fewer = || Error::Pretraining("the dataset has fewer labels than images");
    let train = all.get(..train_set.count).ok_or_else(fewer)?;
    let held = all
        .get(all.len().saturating_sub(held_out.count)..)
        .ok_or_else(fewer)?;
    Ok(Labels {
        train: train.to_vec(),
        held_out: held.to_vec(),
    })
}

/// The pretext task's inputs (levels) and class targets for the training images `indices`.
fn pretext_batch(
    extractor: &ExtractorConfig,
    levels: Tensor<4>,
    indices: &[usize],
    labels: Option<&Labels>,
) -> Result<(Tensor<4>, Vec<i64>)> {
    match (extractor.objective, labels) {
        (Pretext::Labels, Some(labels)) => {
            let targets = indices
                .iter()
                .map(|&i| labels.train.get(i).map(|&l| i64::from(l)))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::Pretraining("an image without a label"))?;
            Ok((levels, targets))
        }
        (Pretext::Flips, _) => Ok(all_flips(levels)),
        (Pretext::Labels, None) => Err(Error::Pretraining("labels were not loaded")),
    }
}

/// The share of held-out pretext examples the extractor classifies right.
fn pretext_accuracy(
    model: &FlowModel,
    config: &TrainConfig,
    extractor: &ExtractorConfig,
    held_out: &ImageSet,
    labels: Option<&Labels>,
) -> Result<f64> {
    let model = model.valid();
    let device = Device::flex();
    let Some(net) = &model.extractor else {
        return Ok(0.0);
    };
    let (mut right, mut total) = (0usize, 0usize);
    let all: Vec<usize> = (0..held_out.count).collect();
    for chunk in all.chunks(256) {
        let levels = held_out.batch(chunk, &device);
        let (levels, targets) = match (extractor.objective, labels) {
            (Pretext::Labels, Some(labels)) => {
                let targets = chunk
                    .iter()
                    .map(|&i| labels.held_out.get(i).map(|&l| i64::from(l)))
                    .collect::<Option<Vec<_>>>()
                    .ok_or(Error::Pretraining("an image without a label"))?;
                (levels, targets)
            }
            _ => all_flips(levels),
        };
        let (y, _) = levels_to_flow_input(levels, config.model.alpha, Dequantization::BinCentre);
        let predicted = crate::export::values(net.logits(y).argmax(1).float().reshape([-1]))?;
        right += predicted
            .iter()
            .zip(&targets)
            .filter(|(p, t)| **p as i64 == **t)
            .count();
        total += targets.len();
    }
    Ok(right as f64 / total.max(1) as f64)
}

/// Sets the flow's first actnorm so the training embeddings come out with zero mean and unit
/// variance per dimension.
fn standardise(mut model: FlowModel, train_set: &ImageSet, device: &Device) -> Result<FlowModel> {
    let inference = model.valid();
    let inner = Device::flex();
    let count = train_set.count.min(STANDARDISE_IMAGES);
    let indices: Vec<usize> = (0..count).collect();
    let mut embeddings = Vec::new();
    for chunk in indices.chunks(256) {
        if let Some(batch) = inference.embeddings(train_set.batch(chunk, &inner)) {
            embeddings.push(batch);
        }
    }
    if embeddings.is_empty() {
        return Ok(model);
    }
    let all = Tensor::cat(embeddings, 0);
    let mean = all.clone().mean_dim(0);
    let centred = all - mean.clone();
    let std = centred.clone().square().mean_dim(0).sqrt().add_scalar(1e-6);
    let bias = crate::export::values(mean.neg().reshape([-1]))?;
    let log_scale = crate::export::values(std.clone().log().neg().reshape([-1]))?;
    let Some(actnorm) = model.actnorms.first_mut() else {
        return Err(Error::Pretraining(
            "a flow on embeddings starts with an actnorm",
        ));
    };
    let dims = bias.len();
    actnorm.bias = Param::from_tensor(Tensor::from_data(TensorData::new(bias, [dims]), device));
    actnorm.log_scale = Param::from_tensor(Tensor::from_data(
        TensorData::new(log_scale, [dims]),
        device,
    ));
    if let Some(whitening) = model.inv_convs.first_mut() {
        let standardised = crate::export::values((centred / std).reshape([-1]))?;
        let matrix = zca_whitening(&standardised, dims);
        if !whitening.set_positive_definite(&matrix, device) {
            return Err(Error::Pretraining(
                "the embeddings' whitening matrix is not positive definite",
            ));
        }
    }
    Ok(model)
}

/// Eigenvalues of the correlation matrix below this share of the largest are raised to it, so
/// that a direction the embeddings barely use is not blown up without bound: the map then
/// scales no direction more than 10 times as much as another, and the rounding differences
/// between the trainer's and the runtime's extractor (and int8 weights') stay small. With a
/// floor of 1e-4, a briefly pretrained extractor's nearly degenerate embeddings put the
/// runtime 1.1e-4 bits/dim from the trainer on an MNIST image (the parity tolerance is 1e-4).
const WHITENING_FLOOR: f64 = 1e-2;

/// The ZCA whitening matrix `C^-1/2` of `rows` (row-major, `dims` columns, standardised), with
/// `C` their correlation matrix: symmetric positive definite, and the map closest to the
/// identity that decorrelates them.
fn zca_whitening(rows: &[f32], dims: usize) -> nalgebra::DMatrix<f64> {
    let count = rows.len() / dims.max(1);
    let data = nalgebra::DMatrix::<f64>::from_row_iterator(
        count,
        dims,
        rows.iter().map(|&v| f64::from(v)),
    );
    let correlation = (data.transpose() * &data) / count.max(1) as f64;
    let eigen = correlation.symmetric_eigen();
    let largest = eigen.eigenvalues.max().max(f64::MIN_POSITIVE);
    let inverse_root = eigen
        .eigenvalues
        .map(|l| 1.0 / l.max(WHITENING_FLOOR * largest).sqrt());
    let v = &eigen.eigenvectors;
    let w = v * nalgebra::DMatrix::from_diagonal(&inverse_root) * v.transpose();
    // Symmetric up to rounding; make it exactly so for the Cholesky factorisation.
    (&w + w.transpose()) * 0.5
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zca_whitening_decorrelates_correlated_embeddings() {
        // Three correlated dimensions from a fixed mixing of independent ones (their
        // correlation matrix is well conditioned: no eigenvalue reaches the floor).
        let (count, dims) = (2000, 3);
        let mut state = 12345u64;
        let mut uniform = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        let mut rows = Vec::with_capacity(count * dims);
        for _ in 0..count {
            let (a, b, c) = (uniform(), uniform(), uniform());
            for v in [a, 0.5 * a + b, 0.5 * b + c] {
                rows.push(v as f32);
            }
        }
        let w = zca_whitening(&rows, dims);
        assert!((&w - w.transpose()).abs().max() < 1e-12, "symmetric");
        let data = nalgebra::DMatrix::<f64>::from_row_iterator(
            count,
            dims,
            rows.iter().map(|&v| f64::from(v)),
        );
        let whitened = data * &w;
        let second_moment = (whitened.transpose() * &whitened) / count as f64;
        let identity = nalgebra::DMatrix::<f64>::identity(dims, dims);
        assert!(
            (second_moment - identity).abs().max() < 1e-6,
            "the whitened rows' second moment is the identity"
        );
        // A direction the rows do not use is raised to the floor, not blown up.
        let flat: Vec<f32> = rows.chunks(3).flat_map(|r| [r[0], r[1], 1e-7]).collect();
        let w = zca_whitening(&flat, dims);
        let eigen = w.clone().symmetric_eigen().eigenvalues;
        assert!(eigen.max() / eigen.min() <= WHITENING_FLOOR.powf(-0.5) + 1e-9);
        assert!(w.clone().cholesky().is_some(), "positive definite");
    }
}
