//! The logit preprocessing: levels (0..=255) to the flow's input, and its log-determinant.

use flowgate_shared::Preprocess;

use crate::graph::Graph;

/// The flow's input, and the preprocessing's share of the log-likelihood.
#[derive(Debug)]
pub(crate) struct Preprocessed {
    /// The flow's input, `[N, C, H, W]`.
    pub input: String,
    /// `-sum (ln p + ln (1 - p))` per frame, `[N]`.
    pub log_det_per_frame: String,
    /// The constant rest of the log-determinant: `D ln(1 - 2 alpha) - D ln 256`.
    pub log_det_constant: f64,
}

/// `y = ln p - ln(1 - p)` with `p = alpha + (1 - 2 alpha)(x + 1/2) / 256`, as the runtime's
/// `levels_to_flow_input`. `p` and `1 - p` are each one multiply-add of `x` with constants
/// computed in f64, so neither loses precision to the other's rounding.
pub(crate) fn emit(
    graph: &mut Graph,
    preprocess: Preprocess,
    levels: &str,
    dims: u64,
    scope: &str,
) -> Preprocessed {
    match preprocess {
        Preprocess::Logit { alpha } => {
            let alpha = f64::from(alpha);
            let slope = (1.0 - 2.0 * alpha) / 256.0;
            let offset = alpha + slope * 0.5;
            let p = multiply_add(
                graph,
                levels,
                slope,
                offset,
                &format!("{scope}preprocess.p"),
            );
            let q = multiply_add(
                graph,
                levels,
                -slope,
                1.0 - offset,
                &format!("{scope}preprocess.q"),
            );
            let ln_p = graph.op("Log", &[&p], vec![], &format!("{scope}preprocess.ln_p"));
            let ln_q = graph.op("Log", &[&q], vec![], &format!("{scope}preprocess.ln_q"));
            let input = graph.op(
                "Sub",
                &[&ln_p, &ln_q],
                vec![],
                &format!("{scope}preprocess.logit"),
            );
            let ln_pq = graph.op(
                "Add",
                &[&ln_p, &ln_q],
                vec![],
                &format!("{scope}preprocess.ln_pq"),
            );
            let sum = graph.sum_per_frame(&ln_pq, &format!("{scope}preprocess.sum_ln_pq"));
            let log_det_per_frame = graph.op(
                "Neg",
                &[&sum],
                vec![],
                &format!("{scope}preprocess.log_det"),
            );
            let dims = dims as f64;
            Preprocessed {
                input,
                log_det_per_frame,
                log_det_constant: dims * ((1.0 - 2.0 * alpha).ln() - 256f64.ln()),
            }
        }
    }
}

/// `x * slope + offset`, with the constants rounded to f32 once.
fn multiply_add(graph: &mut Graph, x: &str, slope: f64, offset: f64, hint: &str) -> String {
    let slope = graph.f32_scalar(&format!("{hint}.slope"), 4, slope as f32);
    let offset = graph.f32_scalar(&format!("{hint}.offset"), 4, offset as f32);
    let scaled = graph.op("Mul", &[x, &slope], vec![], &format!("{hint}.scaled"));
    graph.op("Add", &[&scaled, &offset], vec![], hint)
}
