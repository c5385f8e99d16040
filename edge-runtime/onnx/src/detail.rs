//! A gate with a native-resolution detail branch ([`flowgate_shared::Detail`]) as one graph
//! over the full-size frame: the runtime's thumbnail (area averaging, rounded to levels),
//! the patches at their fixed positions, the patch model, and the combined score.
//!
//! The resize and the patch crop are in the graph because the branch's decision depends on
//! exactly which pixels each part reads; a caller that resized or cropped differently would
//! get scores the threshold was not calibrated for.

use flowgate_shared::{Detail, Error, Invalid, Location, ScoreKind, Standardise, patch_origin};

use crate::ExportError;
use crate::graph::{Graph, int, ints};

/// ITU-R BT.601 luma weights, as the runtime's `luma_bt601`.
const LUMA_WEIGHTS: [f32; 3] = [0.299, 0.587, 0.114];

/// Largest output pixel area (in the resize's units, [`Axis`]) the graph averages: the sums
/// of levels, plus half the area, stay below 2^23, so they are exact whatever order a runtime
/// adds them in, and so is [`round_half_up_mean`]'s rest. 3840x2160 into 32x24 is 10,800.
const MAX_AREA: u64 = 32_768;

/// `frame` (`[N, C, H, W]`, levels at the camera's size) at the model's `w x h` input, as
/// the runtime's `frame_levels` computes it: each output is the area-weighted mean of the
/// source pixels it covers, rounded half up to an integer level.
///
/// The sum is computed with integer weights (overlaps in units of `1/q`, where the grid
/// lines fall), so it is exact in f32; the rounded mean is [`round_half_up_mean`] of it,
/// with the output pixel's area `A` in the same units (at most [`MAX_AREA`]). An integer ratio (every output covers
/// `r_y x r_x` whole pixels) is a grouped convolution with a kernel of ones; any other ratio
/// two matrix products with banded weight matrices.
pub(crate) fn thumbnail(
    graph: &mut Graph,
    frame: &str,
    channels: u32,
    from: (u32, u32),
    to: (u32, u32),
) -> Result<String, ExportError> {
    let ((src_w, src_h), (out_w, out_h)) = (from, to);
    if (src_w, src_h) == (out_w, out_h) {
        return Ok(frame.to_owned());
    }
    if out_w == 0 || out_h == 0 || out_w > src_w || out_h > src_h {
        return Err(ExportError::DetailResize { from, to });
    }
    let (across, down) = (Axis::new(src_w, out_w), Axis::new(src_h, out_h));
    let area = across.area * down.area;
    if area > MAX_AREA {
        return Err(ExportError::DetailResize { from, to });
    }
    let sums = if across.whole && down.whole {
        let (ry, rx) = (i64::from(src_h / out_h), i64::from(src_w / out_w));
        let ones = vec![1.0f32; (ry * rx) as usize * channels as usize];
        let kernel = graph.f32_constant(
            "detail.thumbnail.ones",
            &[i64::from(channels), 1, ry, rx],
            &ones,
        );
        let attributes = vec![
            ints("kernel_shape", &[ry, rx]),
            ints("strides", &[ry, rx]),
            int("group", i64::from(channels)),
        ];
        graph.op(
            "Conv",
            &[frame, &kernel],
            attributes,
            "detail.thumbnail.sums",
        )
    } else {
        // [h, H] @ [N, C, H, W] -> [N, C, h, W], then @ [W, w] -> [N, C, h, w].
        let rows = graph.f32_constant(
            "detail.thumbnail.rows",
            &[i64::from(out_h), i64::from(src_h)],
            &down.weights(false),
        );
        let columns = graph.f32_constant(
            "detail.thumbnail.columns",
            &[i64::from(src_w), i64::from(out_w)],
            &across.weights(true),
        );
        let row_sums = graph.op(
            "MatMul",
            &[&rows, frame],
            vec![],
            "detail.thumbnail.rows_summed",
        );
        graph.op(
            "MatMul",
            &[&row_sums, &columns],
            vec![],
            "detail.thumbnail.sums",
        )
    };
    Ok(round_half_up_mean(graph, &sums, area, "detail.thumbnail"))
}

/// `floor((sums + area / 2) / area)`, the mean rounded half up, exactly, for integer `sums`
/// in a runtime that divides by multiplying with the rounded reciprocal (tract does) as in
/// one that divides: a first quotient may be one off where the exact one is an integer, so
/// the rest `sums + area / 2 - guess * area` (exact in f32: integers or half-integers below
/// 2^23) corrects it. Each quotient carries a quarter (a rest is an integer or a
/// half-integer) so that its rounding error, far below `1 / (4 area)`, never crosses an
/// integer.
fn round_half_up_mean(graph: &mut Graph, sums: &str, area: u64, hint: &str) -> String {
    let quarter = graph.f32_scalar(&format!("{hint}.quarter"), 4, 0.25);
    let half_area = graph.f32_scalar(&format!("{hint}.half_area"), 4, area as f32 / 2.0);
    let area = graph.f32_scalar(&format!("{hint}.area"), 4, area as f32);
    let floor_quotient = |graph: &mut Graph, x: &str, name: &str| -> String {
        let nudged = graph.op(
            "Add",
            &[x, &quarter],
            vec![],
            &format!("{hint}.{name}.nudged"),
        );
        let quotient = graph.op(
            "Div",
            &[&nudged, &area],
            vec![],
            &format!("{hint}.{name}.quotient"),
        );
        graph.op("Floor", &[&quotient], vec![], &format!("{hint}.{name}"))
    };
    let shifted = graph.op(
        "Add",
        &[sums, &half_area],
        vec![],
        &format!("{hint}.shifted"),
    );
    let guess = floor_quotient(graph, &shifted, "guess");
    let covered = graph.op("Mul", &[&guess, &area], vec![], &format!("{hint}.covered"));
    let rest = graph.op(
        "Sub",
        &[&shifted, &covered],
        vec![],
        &format!("{hint}.rest"),
    );
    let correction = floor_quotient(graph, &rest, "correction");
    graph.op(
        "Add",
        &[&guess, &correction],
        vec![],
        &format!("{hint}.levels"),
    )
}

/// One axis of the area-averaging resize, in units of `1 / q` source pixels, where `q` makes
/// every output cell's edges whole units.
struct Axis {
    source: u32,
    output: u32,
    /// Units per source pixel.
    q: u64,
    /// Units per output cell.
    area: u64,
    /// Every output cell covers whole source pixels.
    whole: bool,
}

impl Axis {
    fn new(source: u32, output: u32) -> Self {
        let divisor = gcd(u64::from(source), u64::from(output)).max(1);
        Axis {
            source,
            output,
            q: u64::from(output) / divisor,
            area: u64::from(source) / divisor,
            whole: output != 0 && source.is_multiple_of(output),
        }
    }

    /// The weight of source pixel `s` in output cell `o` (its overlap, in units), as an
    /// `[output, source]` matrix, or `[source, output]` when `transposed`.
    fn weights(&self, transposed: bool) -> Vec<f32> {
        let (source, output) = (u64::from(self.source), u64::from(self.output));
        let mut weights = vec![0f32; (source * output) as usize];
        for o in 0..output {
            // Cell o spans [o * area, (o + 1) * area) units; pixel s spans [s q, (s + 1) q).
            let (start, end) = (o * self.area, (o + 1) * self.area);
            for s in start / self.q..end.div_ceil(self.q).min(source) {
                let overlap = end.min((s + 1) * self.q) - start.max(s * self.q);
                let at = if transposed {
                    s * output + o
                } else {
                    o * source + s
                };
                weights[at as usize] = overlap as f32;
            }
        }
        weights
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The gray levels the patches read: `frame` itself for a gray model, else the BT.601 luma
/// of its R, G, B channels rounded half up (the runtime's `patch_levels`).
pub(crate) fn luma(graph: &mut Graph, frame: &str, channels: u32) -> String {
    if channels == 1 {
        return frame.to_owned();
    }
    let weights = graph.f32_constant("detail.luma.weights", &[1, 3, 1, 1], &LUMA_WEIGHTS);
    let luma = graph.op("Conv", &[frame, &weights], vec![], "detail.luma");
    let half = graph.f32_scalar("detail.luma.half", 4, 0.5);
    let shifted = graph.op("Add", &[&luma, &half], vec![], "detail.luma.shifted");
    graph.op("Floor", &[&shifted], vec![], "detail.luma.levels")
}

/// The branch's patches of `luma` (`[N, 1, H, W]`), as one batch `[N * P, 1, ph, pw]` in
/// frame-major, then row-major patch order (`patch_origin`'s indices).
pub(crate) fn patches(
    graph: &mut Graph,
    luma: &str,
    detail: &Detail<'_>,
    patch: (u32, u32),
) -> Result<String, ExportError> {
    let frame = (detail.frame_width, detail.frame_height);
    let grid = (detail.columns, detail.rows);
    let axes = graph.i64_list("detail.patch.axes", &[2, 3]);
    let mut crops = Vec::new();
    for index in 0..detail.patches() {
        // A validated branch's patches fit its frame; this is never an error in practice.
        let (x, y) =
            patch_origin(frame, grid, patch, index).ok_or(ExportError::Model(Error::Invalid {
                at: Location::Detail,
                reason: Invalid::PatchModel,
            }))?;
        let starts = graph.i64_list("detail.patch.start", &[i64::from(y), i64::from(x)]);
        let ends = graph.i64_list(
            "detail.patch.end",
            &[i64::from(y + patch.1), i64::from(x + patch.0)],
        );
        crops.push(graph.op(
            "Slice",
            &[luma, &starts, &ends, &axes],
            vec![],
            &format!("detail.patch.{index}"),
        ));
    }
    let crops: Vec<&str> = crops.iter().map(String::as_str).collect();
    let side_by_side = graph.op("Concat", &crops, vec![int("axis", 1)], "detail.patches");
    let shape = graph.i64_list(
        "detail.patch.batch_shape",
        &[-1, 1, i64::from(patch.1), i64::from(patch.0)],
    );
    Ok(graph.op(
        "Reshape",
        &[&side_by_side, &shape],
        vec![],
        "detail.patch_batch",
    ))
}

/// The patches' mean bits/dim per frame: `[N * P]` -> `[N]`, written into `output`.
pub(crate) fn mean_per_frame(graph: &mut Graph, patch_bits: &str, patches: u64, output: &str) {
    let shape = graph.i64_list("detail.per_frame_shape", &[-1, patches as i64]);
    let grouped = graph.op(
        "Reshape",
        &[patch_bits, &shape],
        vec![],
        "detail.bits_per_frame",
    );
    let axes = graph.i64_list("detail.patch_axis", &[1]);
    let sum = graph.op(
        "ReduceSum",
        &[&grouped, &axes],
        vec![int("keepdims", 0)],
        "detail.bits_sum",
    );
    let count = graph.f32_scalar("detail.patch_count", 1, patches as f32);
    graph.op_into("Div", &[&sum, &count], vec![], output);
}

/// The gate's OOD score, `max((s_frame - c_f) / s_f, |b_detail - c_d| / s_d)`, into
/// `output`; `s_frame` is the main flow's score from its `bits_per_dim`.
pub(crate) fn combined_score(
    graph: &mut Graph,
    detail: &Detail<'_>,
    score: ScoreKind,
    bits_per_dim: &str,
    detail_bits_per_dim: &str,
    output: &str,
) {
    let frame_score = match score {
        ScoreKind::BitsPerDim => bits_per_dim.to_owned(),
        ScoreKind::TypicalBitsPerDim { center } => {
            let center = graph.f32_scalar("score.center", 1, center);
            let off = graph.op("Sub", &[bits_per_dim, &center], vec![], "score.off_center");
            graph.op("Abs", &[&off], vec![], "score.frame")
        }
    };
    let standardise = |graph: &mut Graph, value: &str, part: Standardise, hint| {
        let center = graph.f32_scalar(&format!("{hint}.center"), 1, part.center);
        let spread = graph.f32_scalar(&format!("{hint}.spread"), 1, part.spread);
        let off = graph.op("Sub", &[value, &center], vec![], &format!("{hint}.off"));
        graph.op(
            "Div",
            &[&off, &spread],
            vec![],
            &format!("{hint}.standardised"),
        )
    };
    let frame = standardise(graph, &frame_score, detail.frame, "score.frame");
    let signed = standardise(graph, detail_bits_per_dim, detail.detail, "score.detail");
    let detail_part = graph.op("Abs", &[&signed], vec![], "score.detail_two_sided");
    graph.op_into("Max", &[&frame, &detail_part], vec![], output);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_overlaps_in_whole_units() {
        // 5 pixels into 2 cells: q = 2 units per pixel, 5 units per cell.
        let axis = Axis::new(5, 2);
        assert_eq!((axis.q, axis.area, axis.whole), (2, 5, false));
        assert_eq!(
            axis.weights(false),
            [2.0, 2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 2.0]
        );
        // Every pixel's units are spread over the cells: column sums are q.
        let transposed = axis.weights(true);
        for s in 0..5 {
            assert_eq!(transposed[s * 2] + transposed[s * 2 + 1], 2.0);
        }
        let whole = Axis::new(768, 32);
        assert_eq!((whole.q, whole.area, whole.whole), (1, 24, true));
    }
}
