//! The flow's layers as ONNX nodes, and the log-likelihood they add up to.
//!
//! Each layer maps the activation `[N, C, H, W]` as the runtime's `flow::log_density` does
//! one frame. Log-determinants that depend on the frame become `[N]` values; those that do
//! not (actnorm, 1x1 convolutions, the prior's normalisers) are summed at export in f64 and
//! enter the graph as one constant.

use flowgate_shared::{ActNorm, Dims, Error, FlowLayer, InvertibleConv1x1, Model};

use crate::coupling::emit_coupling;
use crate::graph::{Graph, ints};
use crate::net::{Activation, NetPlace, emit_net};
use crate::weights::{per_channel, values, weight};
use crate::{ExportError, Int8Weights};

/// `ln(2 pi) / 2`: the standard normal's log-normaliser per dimension.
const HALF_LN_TWO_PI: f64 = 0.918_938_533_204_672_8;

/// The parts of the log-likelihood collected while the layers are emitted.
#[derive(Debug, Default)]
pub(crate) struct LogDensity {
    /// `[N]` values added as they are.
    pub per_frame: Vec<String>,
    /// `[N]` sums of squares of what left the flow; each adds `-1/2` times itself.
    pub squares: Vec<String>,
    /// Everything that does not depend on the frame.
    pub constant: f64,
}

impl LogDensity {
    /// The standard normal prior over `x`, `dims` elements per frame.
    fn add_prior(&mut self, graph: &mut Graph, x: &Activation, hint: &str) {
        self.squares
            .push(graph.sum_squares_per_frame(&x.name, hint));
        self.constant -= x.dims.elements() as f64 * HALF_LN_TWO_PI;
    }
}

/// Emits every layer of `model.flow` on `input` (the preprocessed levels) and the prior
/// over what remains; returns the log-density's parts.
pub(crate) fn emit_flow(
    graph: &mut Graph,
    model: &Model<'_>,
    input: Activation,
    int8: Int8Weights,
    scope: &str,
) -> Result<LogDensity, ExportError> {
    let mut density = LogDensity::default();
    let mut x = input;
    for (index, layer) in model.flow.iter().enumerate() {
        let layer = layer.map_err(|error| ExportError::Model(Error::Payload(error)))?;
        let index = index as u32;
        let scope = format!("{scope}flow.{index}");
        x = match &layer {
            FlowLayer::Coupling(coupling) => {
                let place = NetPlace {
                    layer: index,
                    scope: &scope,
                };
                let (y, log_det) = emit_coupling(graph, coupling, x, place, int8)?;
                density.per_frame.push(log_det);
                y
            }
            FlowLayer::Squeeze => squeeze(graph, &x, &scope),
            FlowLayer::Unsqueeze => unsqueeze(graph, &x, &scope),
            FlowLayer::ActNorm(actnorm) => actnorm_layer(graph, actnorm, &x, &scope, &mut density),
            FlowLayer::InvertibleConv1x1(conv) => {
                invertible_conv(graph, conv, &x, &scope, &mut density, int8)
            }
            FlowLayer::FactorOut { keep_channels } => {
                factor_out(graph, &x, *keep_channels, &scope, &mut density)
            }
            FlowLayer::Embed(embed) => {
                let place = NetPlace {
                    layer: index,
                    scope: &format!("{scope}.extractor"),
                };
                emit_net(graph, &embed.net, x, place, int8)?
            }
        };
    }
    density.add_prior(graph, &x, &format!("{scope}prior_squares"));
    Ok(density)
}

/// Multi-scale factor-out: channels `keep..C` leave under the standard normal prior.
fn factor_out(
    graph: &mut Graph,
    x: &Activation,
    keep: u32,
    scope: &str,
    density: &mut LogDensity,
) -> Activation {
    let Dims {
        channels,
        height,
        width,
    } = x.dims;
    let leaving = Activation {
        name: graph.slice_channels(&x.name, keep, channels, &format!("{scope}.factored_out")),
        dims: Dims::new(channels - keep, height, width),
    };
    density.add_prior(graph, &leaving, &format!("{scope}.prior_squares"));
    Activation {
        name: graph.slice_channels(&x.name, 0, keep, &format!("{scope}.kept")),
        dims: Dims::new(keep, height, width),
    }
}

/// The paper's squeeze: channel `4c + 2dy + dx` of the result holds channel `c` at pixel
/// `(2i + dy, 2j + dx)`. As a view of [N, C, H/2, 2, W/2, 2] (n, c, i, dy, j, dx), that is
/// the order (n, c, dy, dx, i, j).
fn squeeze(graph: &mut Graph, x: &Activation, scope: &str) -> Activation {
    let Dims {
        channels,
        height,
        width,
    } = x.dims;
    let (h, w) = (height / 2, width / 2);
    let split =
        graph.reshape_per_frame(&x.name, &[channels, h, 2, w, 2], &format!("{scope}.split"));
    let moved = graph.op(
        "Transpose",
        &[&split],
        vec![ints("perm", &[0, 1, 3, 5, 2, 4])],
        &format!("{scope}.transposed"),
    );
    let dims = Dims::new(channels * 4, h, w);
    Activation {
        name: graph.reshape_per_frame(&moved, &[dims.channels, h, w], &format!("{scope}.out")),
        dims,
    }
}

/// The inverse of [`squeeze`]: (n, c, dy, dx, i, j) back to (n, c, i, dy, j, dx).
fn unsqueeze(graph: &mut Graph, x: &Activation, scope: &str) -> Activation {
    let Dims {
        channels,
        height,
        width,
    } = x.dims;
    let c = channels / 4;
    let split = graph.reshape_per_frame(
        &x.name,
        &[c, 2, 2, height, width],
        &format!("{scope}.split"),
    );
    let moved = graph.op(
        "Transpose",
        &[&split],
        vec![ints("perm", &[0, 1, 4, 2, 5, 3])],
        &format!("{scope}.transposed"),
    );
    let dims = Dims::new(c, height * 2, width * 2);
    Activation {
        name: graph.reshape_per_frame(
            &moved,
            &[c, dims.height, dims.width],
            &format!("{scope}.out"),
        ),
        dims,
    }
}

/// Glow's actnorm: `(x + bias) exp(log_scale)`, with the runtime's `expf` applied at export.
fn actnorm_layer(
    graph: &mut Graph,
    actnorm: &ActNorm<'_>,
    x: &Activation,
    scope: &str,
    density: &mut LogDensity,
) -> Activation {
    let log_scale = values(&actnorm.log_scale);
    let scale: Vec<f32> = log_scale.iter().map(|&ls| libm::expf(ls)).collect();
    let bias = per_channel(graph, &format!("{scope}.bias"), &values(&actnorm.bias));
    let scale = per_channel(graph, &format!("{scope}.scale"), &scale);
    let shifted = graph.op(
        "Add",
        &[&x.name, &bias],
        vec![],
        &format!("{scope}.shifted"),
    );
    let name = graph.op("Mul", &[&shifted, &scale], vec![], &format!("{scope}.out"));
    let sum_log_scale: f64 = log_scale.iter().map(|&ls| f64::from(ls)).sum();
    density.constant += sum_log_scale * x.dims.pixels() as f64;
    Activation { name, dims: x.dims }
}

/// Glow's invertible 1x1 convolution, as a 1x1 Conv without bias.
fn invertible_conv(
    graph: &mut Graph,
    conv: &InvertibleConv1x1<'_>,
    x: &Activation,
    scope: &str,
    density: &mut LogDensity,
    int8: Int8Weights,
) -> Activation {
    let c = i64::from(x.dims.channels);
    let w = weight(
        graph,
        &format!("{scope}.weight"),
        &conv.weight,
        &[c, c, 1, 1],
        int8,
    );
    let name = graph.op("Conv", &[&x.name, &w], vec![], &format!("{scope}.out"));
    density.constant += f64::from(conv.log_abs_det) * x.dims.pixels() as f64;
    Activation { name, dims: x.dims }
}
