//! RealNVP's affine coupling as ONNX nodes: `(s_raw, t) = net(conditioning part)`,
//! `s = scale * tanh(s_raw)`, `y = (x + t) exp(s)` on the changed part, log-det `sum s`.

use flowgate_shared::validate::coupling_net_input;
use flowgate_shared::{Coupling, Dims, Error, Location, Mask};

use crate::graph::{Graph, int};
use crate::net::{Activation, NetPlace, emit_net};
use crate::weights::{per_channel, values};
use crate::{ExportError, Int8Weights};

/// Emits `coupling` on `x`; returns its output and its log-determinant per frame, `[N]`.
/// `place.scope` prefixes the names of its values.
pub(crate) fn emit_coupling(
    graph: &mut Graph,
    coupling: &Coupling<'_>,
    x: Activation,
    place: NetPlace<'_>,
    int8: Int8Weights,
) -> Result<(Activation, String), ExportError> {
    let net_input = coupling_net_input(coupling.mask, x.dims).map_err(|reason| {
        ExportError::Model(Error::Invalid {
            at: Location::Flow { layer: place.layer },
            reason,
        })
    })?;
    let scope = place.scope;
    let net_scope = format!("{scope}.net");
    let parts = Parts {
        coupling,
        net: NetPlace {
            layer: place.layer,
            scope: &net_scope,
        },
        net_input,
        scale: per_channel(graph, &format!("{scope}.scale"), &values(&coupling.scale)),
        scope,
        int8,
    };
    match coupling.mask {
        Mask::ChannelWise { reverse } => channel_wise(graph, &parts, x, reverse),
        mask => spatial(graph, &parts, x, mask),
    }
}

/// What both kinds of mask need.
struct Parts<'c, 's> {
    coupling: &'c Coupling<'c>,
    net: NetPlace<'s>,
    /// The shape the network reads.
    net_input: Dims,
    /// `scale` as a `[1, Cn, 1, 1]` constant.
    scale: String,
    scope: &'s str,
    int8: Int8Weights,
}

/// The network reads one half of the channels and changes the other; `reverse` reads the
/// lower half.
fn channel_wise(
    graph: &mut Graph,
    parts: &Parts<'_, '_>,
    x: Activation,
    reverse: bool,
) -> Result<(Activation, String), ExportError> {
    let (scope, half) = (parts.scope, parts.net_input.channels);
    let lower = graph.slice_channels(&x.name, 0, half, &format!("{scope}.lower"));
    let upper = graph.slice_channels(&x.name, half, x.dims.channels, &format!("{scope}.upper"));
    let (read, changed) = if reverse {
        (lower, upper)
    } else {
        (upper, lower)
    };
    let read = Activation {
        name: read,
        dims: parts.net_input,
    };
    let st = emit_net(
        graph,
        &parts.coupling.net,
        read.clone(),
        parts.net,
        parts.int8,
    )?;
    let (s, t) = split_st(graph, &st.name, half, &parts.scale, scope);
    let changed = affine(graph, &changed, &s, &t, scope);
    let log_det = graph.sum_per_frame(&s, &format!("{scope}.log_det"));
    let halves = if reverse {
        [read.name.as_str(), changed.as_str()]
    } else {
        [changed.as_str(), read.name.as_str()]
    };
    let name = graph.op(
        "Concat",
        &halves,
        vec![int("axis", 1)],
        &format!("{scope}.out"),
    );
    Ok((Activation { name, dims: x.dims }, log_det))
}

/// Checkerboard, horizontal and quadrant masks, as constant planes: the network sees `x`
/// times the read mask; `s` and `t` are multiplied by the write mask, so elsewhere `s = 0`
/// and `t = 0` and `(x + t) exp(s)` is `x` itself.
fn spatial(
    graph: &mut Graph,
    parts: &Parts<'_, '_>,
    x: Activation,
    mask: Mask,
) -> Result<(Activation, String), ExportError> {
    let scope = parts.scope;
    let Dims { height, width, .. } = x.dims;
    let mut plane = |wanted: bool, hint: &str| -> String {
        let values: Vec<f32> = (0..height * width)
            .map(|pixel| {
                let role = mask.spatial_role(pixel / width, pixel % width, height, width);
                if role == Some(wanted) { 1.0 } else { 0.0 }
            })
            .collect();
        let dims = [1, 1, i64::from(height), i64::from(width)];
        graph.f32_constant(&format!("{scope}.{hint}"), &dims, &values)
    };
    let read_plane = plane(true, "read_mask");
    let write_plane = plane(false, "write_mask");
    let read = graph.op(
        "Mul",
        &[&x.name, &read_plane],
        vec![],
        &format!("{scope}.read"),
    );
    let read = Activation {
        name: read,
        dims: parts.net_input,
    };
    let st = emit_net(graph, &parts.coupling.net, read, parts.net, parts.int8)?;
    let (s, t) = split_st(
        graph,
        &st.name,
        parts.net_input.channels,
        &parts.scale,
        scope,
    );
    // tanh(s_raw) * scale, the runtime's f32 product, times 1 or 0.
    let s = graph.op(
        "Mul",
        &[&s, &write_plane],
        vec![],
        &format!("{scope}.s_masked"),
    );
    let t = graph.op(
        "Mul",
        &[&t, &write_plane],
        vec![],
        &format!("{scope}.t_masked"),
    );
    let name = affine(graph, &x.name, &s, &t, scope);
    let log_det = graph.sum_per_frame(&s, &format!("{scope}.log_det"));
    Ok((Activation { name, dims: x.dims }, log_det))
}

/// `s = tanh(s_raw) * scale` and `t` from the network's output `[N, 2 half, H, W]`.
fn split_st(graph: &mut Graph, st: &str, half: u32, scale: &str, scope: &str) -> (String, String) {
    let s_raw = graph.slice_channels(st, 0, half, &format!("{scope}.s_raw"));
    let t = graph.slice_channels(st, half, 2 * half, &format!("{scope}.t"));
    let tanh = graph.op("Tanh", &[&s_raw], vec![], &format!("{scope}.tanh"));
    let s = graph.op("Mul", &[&tanh, scale], vec![], &format!("{scope}.s"));
    (s, t)
}

/// `(x + t) exp(s)`.
fn affine(graph: &mut Graph, x: &str, s: &str, t: &str, scope: &str) -> String {
    let shifted = graph.op("Add", &[x, t], vec![], &format!("{scope}.shifted"));
    let factor = graph.op("Exp", &[s], vec![], &format!("{scope}.exp_s"));
    graph.op("Mul", &[&shifted, &factor], vec![], &format!("{scope}.out"))
}
