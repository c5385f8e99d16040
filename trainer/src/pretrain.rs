//! The first stage of a flow on embeddings: the feature extractor learns its pretext task
//! on the training images, then the actnorm in front of the flow is set to standardise the
//! embeddings it produces, so the flow starts from unit-scale inputs.

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;

use crate::config::TrainConfig;
use crate::data::{self, Split};
use crate::flows::embedding::{ExtractorConfig, Objective, all_flips};
use crate::flows::preprocess::levels_to_flow_input;
use crate::flows::{Architecture, FlowModel};
use crate::training::{self, ImageSet, batch_indices};

/// Images whose embeddings set the standardisation.
const STANDARDISE_IMAGES: usize = 4096;

/// Trains `model`'s extractor on its pretext task and standardises its embeddings; a model
/// without an extractor comes back unchanged. `held_out` reports the pretext accuracy on
/// images the extractor never saw.
pub fn pretrain_extractor(
    mut model: FlowModel,
    config: &TrainConfig,
    data_dir: &Path,
    (train_set, held_out): (&ImageSet, &ImageSet),
    device: &Device,
    progress: bool,
) -> Result<FlowModel> {
    let Architecture::Embedding { extractor, .. } = &config.model.architecture else {
        return Ok(model);
    };
    let labels = match extractor.objective {
        Objective::Labels => Some(training_labels(config, data_dir, train_set, held_out)?),
        Objective::Flips => None,
    };
    let bar = training::step_bar(
        extractor.steps,
        progress,
        &format!("{} extractor", config.name),
    );
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    // Its own stream of batches and noise, so the flow's stay those of a pixel flow's run.
    let seed = config.train.seed ^ 0x5eed_e87a_c70f_0000;
    for step in 0..extractor.steps {
        let indices = batch_indices(seed, train_set.count, config.train.batch, step);
        let levels = train_set.batch(&indices, device);
        device.seed(seed.wrapping_add(1 + step as u64));
        let (y, targets) = pretext_batch(extractor, levels, &indices, labels.as_ref())?;
        let (y, _) = levels_to_flow_input(y, config.model.alpha, true);
        let Some(net) = &model.extractor else {
            bail!("the model has no extractor to pretrain");
        };
        let count = targets.len();
        let targets = Tensor::<1, Int>::from_data(TensorData::new(targets, [count]), device);
        let loss = loss_fn.forward(net.logits(y), targets);
        let loss_value = loss.clone().into_scalar::<f32>();
        if !loss_value.is_finite() {
            bail!("the extractor's loss became {loss_value} at step {step}: lower extractor.lr");
        }
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(extractor.lr, model, grads);
        bar.inc(1);
        bar.set_message(format!("cross-entropy {loss_value:.3}"));
    }
    bar.finish();
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
        bail!(
            "extractor.objective = \"labels\" needs a labelled idx dataset; image folders have no \
             labels: use objective = \"flips\""
        );
    };
    let all = data::load(data_dir, dataset, Split::Train)
        .with_context(|| format!("loading {dataset} labels"))?
        .labels;
    let train = all
        .get(..train_set.count)
        .context("fewer labels than images")?;
    let held = all
        .get(all.len().saturating_sub(held_out.count)..)
        .context("fewer labels than images")?;
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
        (Objective::Labels, Some(labels)) => {
            let targets = indices
                .iter()
                .map(|&i| labels.train.get(i).map(|&l| i64::from(l)))
                .collect::<Option<Vec<_>>>()
                .context("an image without a label")?;
            Ok((levels, targets))
        }
        (Objective::Flips, _) => Ok(all_flips(levels)),
        (Objective::Labels, None) => bail!("labels were not loaded"),
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
            (Objective::Labels, Some(labels)) => {
                let targets = chunk
                    .iter()
                    .map(|&i| labels.held_out.get(i).map(|&l| i64::from(l)))
                    .collect::<Option<Vec<_>>>()
                    .context("an image without a label")?;
                (levels, targets)
            }
            _ => all_flips(levels),
        };
        let (y, _) = levels_to_flow_input(levels, config.model.alpha, false);
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
    let std = (all - mean.clone())
        .square()
        .mean_dim(0)
        .sqrt()
        .add_scalar(1e-6);
    let bias = crate::export::values(mean.neg().reshape([-1]))?;
    let log_scale = crate::export::values(std.log().neg().reshape([-1]))?;
    let Some(actnorm) = model.actnorms.first_mut() else {
        bail!("a flow on embeddings starts with an actnorm");
    };
    let dims = bias.len();
    actnorm.bias = Param::from_tensor(Tensor::from_data(TensorData::new(bias, [dims]), device));
    actnorm.log_scale = Param::from_tensor(Tensor::from_data(
        TensorData::new(log_scale, [dims]),
        device,
    ));
    Ok(model)
}
