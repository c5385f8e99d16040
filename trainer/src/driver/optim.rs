//! The optimisers and global gradient clipping.

use burn::module::{ModuleVisitor, Param};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, RmsPropConfig};
use burn::prelude::*;

use crate::config::{OptimizerKind, TrainConfig};

/// The optimiser a config asks for.
pub fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    let decay = config.train.weight_decay.map(WeightDecayConfig::new);
    match config.train.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Rmsprop => RmsPropConfig::new().with_weight_decay(decay).init(),
    }
}

/// Scales the gradients so their global L2 norm is at most `max_norm` (as PyTorch's
/// `clip_grad_norm_`; burn's own clipping works per tensor). Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    struct SquaredNorm<'a> {
        grads: &'a GradientsParams,
        total: f64,
    }
    impl ModuleVisitor for SquaredNorm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.total += f64::from(grad.square().sum().into_scalar::<f32>());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads
                    .register::<D>(param.id, grad.mul_scalar(self.factor));
            }
        }
    }
    let mut norm = SquaredNorm { grads, total: 0.0 };
    module.visit(&mut norm);
    let norm = norm.total.sqrt() as f32;
    if norm > max_norm {
        let factor = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, factor });
    }
    norm
}
