//! Normalizing flows in burn, layer for layer the ones the model format describes.

pub mod coupling;
pub mod embedding;
pub mod glow;
pub mod init;
pub mod preprocess;
pub mod st_net;

use burn::prelude::*;

/// The device type, re-exported for crates that drive the trainer without naming burn.
pub use burn::prelude::Device;
/// The flow's config types (in `flowgate-config`, which has no burn).
pub use flowgate_config::{Architecture, ConvInit, FlowConfig, StNetConfig, StNetKind};
use flowgate_shared::{Mask, Quadrant};

use coupling::CouplingLayer;
use embedding::{Extractor, ExtractorConfig, TabularCoupling};
use glow::{ActNorm, InvertibleConv1x1};
use init::ParamInit;
use preprocess::{Dequantization, levels_to_flow_input, standard_normal_log_density};
use st_net::{StNet, StNetSpec};

/// One step of the flow; parameterised steps index into the model's layer lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `couplings[i]`.
    Coupling(usize),
    /// Squeeze 2x2.
    Squeeze,
    /// `actnorms[i]`.
    ActNorm(usize),
    /// `inv_convs[i]`.
    InvConv(usize),
    /// Keep the first `keep` channels.
    FactorOut(usize),
    /// `tabular[i]`: a coupling on an embedding.
    Tabular(usize),
}

/// A flow ready to train or evaluate.
#[derive(Module, Debug)]
pub struct FlowModel {
    pub couplings: Vec<CouplingLayer>,
    pub actnorms: Vec<ActNorm>,
    pub inv_convs: Vec<InvertibleConv1x1>,
    /// The feature extractor of a flow on embeddings.
    pub extractor: Option<Extractor>,
    pub tabular: Vec<TabularCoupling>,
    #[module(skip)]
    pub steps: Vec<Step>,
    #[module(skip)]
    pub config: FlowConfig,
}

/// Errors in a flow's shape.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FlowConfigError {
    /// A dimension does not divide as the architecture needs.
    #[error("{0}")]
    Shape(String),
}

/// Builds the flow's layers while tracking the activation shape.
struct Builder<'d> {
    device: &'d Device,
    init: ParamInit,
    st: StNetConfig,
    shape: (usize, usize, usize),
    model: FlowModel,
}

impl Builder<'_> {
    fn coupling(&mut self, mask: Mask, mid_channels: usize) {
        let (c, h, w) = self.shape;
        let in_channels = if matches!(mask, Mask::ChannelWise { .. }) {
            c / 2
        } else {
            c
        };
        let spec = StNetSpec {
            in_channels,
            mid_channels,
            blocks: self.st.blocks,
            height: h,
            width: w,
            bottleneck: self.st.bottleneck,
            double_after_norm: matches!(mask, Mask::Checkerboard { .. }),
            autoencoder: self.st.kind == StNetKind::Autoencoder,
        };
        let net = StNet::new(spec, &mut self.init, self.device);
        self.model
            .steps
            .push(Step::Coupling(self.model.couplings.len()));
        self.model
            .couplings
            .push(CouplingLayer::new(mask, net, in_channels, self.device));
    }

    fn squeeze(&mut self) -> Result<(), FlowConfigError> {
        let (c, h, w) = self.shape;
        if h % 2 != 0 || w % 2 != 0 {
            return Err(FlowConfigError::Shape(format!(
                "squeeze needs even height and width, the activation is {c}x{h}x{w}"
            )));
        }
        self.shape = (4 * c, h / 2, w / 2);
        self.model.steps.push(Step::Squeeze);
        Ok(())
    }

    fn factor_out(&mut self) {
        let (c, h, w) = self.shape;
        self.shape = (c / 2, h, w);
        self.model.steps.push(Step::FactorOut(c / 2));
    }

    fn glow_step(&mut self, reverse: bool, mid: usize, conv_init: ConvInit) {
        let channels = self.shape.0;
        self.model
            .steps
            .push(Step::ActNorm(self.model.actnorms.len()));
        self.model
            .actnorms
            .push(ActNorm::new(channels, self.device));
        self.model
            .steps
            .push(Step::InvConv(self.model.inv_convs.len()));
        let conv = match conv_init {
            ConvInit::Reverse => InvertibleConv1x1::new(channels, self.device),
            ConvInit::Rotation => {
                InvertibleConv1x1::rotation(channels, self.model.inv_convs.len(), self.device)
            }
        };
        self.model.inv_convs.push(conv);
        self.coupling(Mask::ChannelWise { reverse }, mid);
    }
}

impl Builder<'_> {
    fn embedding(
        &mut self,
        couplings: usize,
        extractor: &ExtractorConfig,
        in_channels: usize,
    ) -> Result<(), FlowConfigError> {
        let dims = extractor.embedding;
        if dims < 2 || !dims.is_multiple_of(2) || extractor.channels.is_empty() {
            return Err(FlowConfigError::Shape(format!(
                "a flow on embeddings needs an even embedding size of at least 2 and at least one \
                 conv stage (embedding {dims}, {} stages)",
                extractor.channels.len()
            )));
        }
        let model = &mut self.model;
        model.extractor = Some(Extractor::new(
            extractor,
            in_channels,
            &mut self.init,
            self.device,
        ));
        self.shape = (dims, 1, 1);
        // Standardises the embedding: set from the embeddings' statistics after pretraining.
        model.steps.push(Step::ActNorm(model.actnorms.len()));
        model.actnorms.push(ActNorm::new(dims, self.device));
        if extractor.whiten {
            // Whitens it: set after pretraining too (`pretrain::standardise`).
            model.steps.push(Step::InvConv(model.inv_convs.len()));
            model
                .inv_convs
                .push(InvertibleConv1x1::identity(dims, self.device));
        }
        for k in 0..couplings {
            model.steps.push(Step::Tabular(model.tabular.len()));
            model.tabular.push(TabularCoupling::new(
                dims,
                self.st.channels,
                self.st.blocks,
                k % 2 == 1,
                &mut self.init,
                self.device,
            ));
        }
        Ok(())
    }
}

impl FlowModel {
    /// Builds the flow `config` describes. Its random parameters are drawn from a generator of
    /// its own seeded with `seed` (never from burn's process-wide one), so the same seed gives
    /// the same weights whatever else the process runs.
    pub fn new(config: &FlowConfig, seed: u64, device: &Device) -> Result<Self, FlowConfigError> {
        let st = config.st_net;
        if st.kind == StNetKind::Autoencoder
            && (st.bottleneck.is_none()
                || !config.height.is_multiple_of(4)
                || !config.width.is_multiple_of(4))
        {
            return Err(FlowConfigError::Shape(
                "the autoencoder s/t network needs a bottleneck and height and width divisible by 4"
                    .into(),
            ));
        }
        let embedding = matches!(config.architecture, Architecture::Embedding { .. });
        if embedding != (st.kind == StNetKind::Mlp) {
            return Err(FlowConfigError::Shape(
                "flows on embeddings need st_net.kind = \"mlp\", and only they can use it".into(),
            ));
        }
        if st.kind == StNetKind::Resnet && st.bottleneck.is_some() && st.blocks == 0 {
            return Err(FlowConfigError::Shape(
                "a bottleneck sits between residual blocks: blocks must be at least 1".into(),
            ));
        }
        let mut builder = Builder {
            device,
            init: ParamInit::new(seed),
            st,
            shape: (config.channels, config.height, config.width),
            model: FlowModel {
                couplings: Vec::new(),
                actnorms: Vec::new(),
                inv_convs: Vec::new(),
                extractor: None,
                tabular: Vec::new(),
                steps: Vec::new(),
                config: config.clone(),
            },
        };
        let mut mid = st.channels;
        match &config.architecture {
            Architecture::RealNvp { scales } => {
                for scale in 0..*scales {
                    for reverse in [false, true, false] {
                        builder.coupling(Mask::Checkerboard { reverse }, mid);
                    }
                    if scale + 1 == *scales {
                        builder.coupling(Mask::Checkerboard { reverse: true }, mid);
                    } else {
                        builder.squeeze()?;
                        if st.bottleneck.is_none() {
                            mid *= 2;
                        }
                        for reverse in [false, true, false] {
                            builder.coupling(Mask::ChannelWise { reverse }, mid);
                        }
                        builder.factor_out();
                    }
                }
            }
            Architecture::CycleMask { couplings } => {
                for k in 0..*couplings {
                    let read = Quadrant::from_index(k as u8);
                    let write = Quadrant::from_index(k as u8 + 1);
                    builder.coupling(Mask::Quadrant { read, write }, mid);
                }
            }
            Architecture::Horizontal { couplings } => {
                for k in 0..*couplings {
                    builder.coupling(
                        Mask::Horizontal {
                            reverse: k % 2 == 1,
                        },
                        mid,
                    );
                }
            }
            Architecture::Glow {
                scales,
                steps,
                conv_init,
            } => {
                for scale in 0..*scales {
                    builder.squeeze()?;
                    for step in 0..*steps {
                        builder.glow_step(step % 2 == 1, mid, *conv_init);
                    }
                    if scale + 1 < *scales {
                        builder.factor_out();
                    }
                }
            }
            Architecture::Embedding {
                couplings,
                extractor,
            } => builder.embedding(*couplings, extractor, config.channels)?,
        }
        Ok(builder.model)
    }

    /// Log-likelihood in nats of each image of `levels` (`[B, C, H, W]`, 0..=255), read at the
    /// bin centres (evaluation, as the runtime scores) or, when `dequantize`, with uniform
    /// noise from burn's process-wide generator. Training draws its noise from its own seeded
    /// generator instead: [`FlowModel::log_likelihood_dequantized`].
    ///
    /// For a flow on embeddings it is the log-likelihood of the image's embedding (the
    /// extractor is not invertible), and no gradient reaches the extractor: left free, it
    /// would learn to shrink every embedding.
    pub fn log_likelihood(&self, levels: Tensor<4>, dequantize: bool) -> Tensor<1> {
        let offset = if dequantize {
            Dequantization::BurnGenerator
        } else {
            Dequantization::BinCentre
        };
        self.log_likelihood_with(levels, offset)
    }

    /// [`FlowModel::log_likelihood`] of `levels` dequantised by `noise` (the same shape,
    /// uniform in `[0, 1)`): the training objective, with the noise the caller drew.
    pub fn log_likelihood_dequantized(&self, levels: Tensor<4>, noise: Tensor<4>) -> Tensor<1> {
        self.log_likelihood_with(levels, Dequantization::Noise(noise))
    }

    fn log_likelihood_with(&self, levels: Tensor<4>, offset: Dequantization) -> Tensor<1> {
        let (y, log_det) = levels_to_flow_input(levels, self.config.alpha, offset);
        match &self.extractor {
            Some(extractor) => {
                self.log_density(embedding_as_activation(extractor.features(y).detach()))
            }
            None => self.log_density(y) + log_det,
        }
    }

    /// The embeddings of `levels` (`[B, E]`), at the bin centres; `None` for pixel flows.
    pub fn embeddings(&self, levels: Tensor<4>) -> Option<Tensor<2>> {
        let extractor = self.extractor.as_ref()?;
        let (y, _) = levels_to_flow_input(levels, self.config.alpha, Dequantization::BinCentre);
        Some(extractor.features(y))
    }

    /// `ln p(y)` of the flow's input `y`: prior terms of everything leaving the flow plus the
    /// layers' log-determinants.
    pub fn log_density(&self, y: Tensor<4>) -> Tensor<1> {
        let (z, mut total) = self.forward_to_latent(y);
        for part in z {
            total = total + standard_normal_log_density(part);
        }
        total
    }

    /// Runs every step; returns the parts that left the flow (factored-out channels, then
    /// the final activation) and the summed log-determinant.
    pub fn forward_to_latent(&self, y: Tensor<4>) -> (Vec<Tensor<4>>, Tensor<1>) {
        let batch = y.dims()[0];
        let mut x = y;
        let mut log_det = Tensor::zeros([batch], &x.device());
        let mut latent = Vec::new();
        for step in &self.steps {
            match *step {
                Step::Coupling(i) => {
                    let (out, ld) = self.couplings[i].forward(x);
                    x = out;
                    log_det = log_det + ld;
                }
                Step::ActNorm(i) => {
                    let (out, ld) = self.actnorms[i].forward(x);
                    x = out;
                    log_det = log_det + ld;
                }
                Step::InvConv(i) => {
                    let (out, ld) = self.inv_convs[i].forward(x);
                    x = out;
                    log_det = log_det + ld;
                }
                Step::Tabular(i) => {
                    let (out, ld) = self.tabular[i].forward(x);
                    x = out;
                    log_det = log_det + ld;
                }
                Step::Squeeze => x = squeeze(x),
                Step::FactorOut(keep) => {
                    let channels = x.dims()[1];
                    latent.push(x.clone().narrow(1, keep, channels - keep));
                    x = x.narrow(1, 0, keep);
                }
            }
        }
        latent.push(x);
        (latent, log_det)
    }

    /// The poster's diagnostic pictures of `levels` (no dequantisation noise): the latent z
    /// laid out as the image (factored-out parts and squeezes undone), and what the first
    /// coupling saw and the shift it applied.
    pub fn diagnostics(&self, levels: Tensor<4>) -> Diagnostics {
        let (y, _) = levels_to_flow_input(levels, self.config.alpha, Dequantization::BinCentre);
        let (mut parts, _) = self.forward_to_latent(y.clone());
        let mut z = parts.pop().unwrap_or_else(|| y.clone());
        for step in self.steps.iter().rev() {
            match *step {
                Step::FactorOut(_) => {
                    if let Some(part) = parts.pop() {
                        z = Tensor::cat(vec![z, part], 1);
                    }
                }
                Step::Squeeze => z = unsqueeze(z),
                _ => {}
            }
        }
        let mut x = y.clone();
        let mut coupling = None;
        for step in &self.steps {
            match *step {
                Step::Coupling(i) => {
                    coupling = Some(self.couplings[i].forward_traced(x).2);
                    break;
                }
                Step::ActNorm(i) => x = self.actnorms[i].forward(x).0,
                Step::InvConv(i) => x = self.inv_convs[i].forward(x).0,
                Step::Tabular(i) => x = self.tabular[i].forward(x).0,
                Step::Squeeze => x = squeeze(x),
                Step::FactorOut(keep) => x = x.narrow(1, 0, keep),
            }
        }
        Diagnostics {
            input: y,
            latent: z,
            first_coupling: coupling,
        }
    }

    /// The same flow for evaluation: plain (non-autodiff) tensors, batch-norms on their
    /// running statistics. Export and scoring use this.
    pub fn for_inference(&self) -> Self {
        self.valid()
    }

    /// Folds the batch-norms' pending running-statistics updates into the values a record
    /// holds. burn's `RunningState` keeps a training pass's update aside until the next
    /// training pass or `valid()` (so [`FlowModel::for_inference`]) syncs it, while a record
    /// (`save_file`, `into_record`) reads the value without it: saved right after a training
    /// step, the weights would carry the statistics of one step earlier (the initial ones after
    /// a single step) and disagree with every export and validation of the same model.
    /// Statistics that are already committed stay as they are.
    pub fn commit_running_statistics(&self) {
        // `valid()` syncs every running state it reads, and clones share that state.
        let _ = self.valid();
    }

    /// Parameters (learned scalars).
    pub fn parameter_count(&self) -> usize {
        self.num_params()
    }
}

/// `[B, E]` embeddings as the `[B, E, 1, 1]` activation the flow's layers take.
pub fn embedding_as_activation(embedding: Tensor<2>) -> Tensor<4> {
    let [batch, dims] = embedding.dims();
    embedding.reshape([batch, dims, 1, 1])
}

/// See [`FlowModel::diagnostics`].
#[derive(Debug, Clone)]
pub struct Diagnostics {
    /// The flow's input (the logit of the dequantised image), `[B, C, H, W]`.
    pub input: Tensor<4>,
    /// The latent z in the input's layout, `[B, C, H, W]`.
    pub latent: Tensor<4>,
    /// The first coupling's network input and shift (in its own layout: squeezed for Glow).
    pub first_coupling: Option<coupling::CouplingTrace>,
}

/// The inverse of [`squeeze`]: `[B, 4C, H, W] -> [B, C, 2H, 2W]`.
pub fn unsqueeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c4, h, w] = x.dims();
    x.reshape([b, c4 / 4, 2, 2, h, w])
        .permute([0, 1, 4, 2, 5, 3])
        .reshape([b, c4 / 4, h * 2, w * 2])
}

/// The paper's squeeze: `[B, C, H, W] -> [B, 4C, H/2, W/2]`, output channel `4c + 2dy + dx`.
pub fn squeeze(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / 2, 2, w / 2, 2])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * 4, h / 2, w / 2])
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn unsqueeze_inverts_squeeze() {
        let device = Device::flex();
        let values: Vec<f32> = (0..2 * 3 * 4 * 6).map(|v| v as f32).collect();
        let x: Tensor<4> =
            Tensor::from_data(TensorData::new(values.clone(), [2, 3, 4, 6]), &device);
        let squeezed = squeeze(x);
        assert_eq!(squeezed.dims(), [2, 12, 2, 3]);
        let back = unsqueeze(squeezed)
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        assert_eq!(back, values);
    }
}
