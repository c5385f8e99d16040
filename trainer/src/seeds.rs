//! The trainer's random streams. Every random draw of a run (initial weights, batch order,
//! dequantisation noise, mutations, perturbations) comes from a generator of its own, seeded
//! from the config's seed, the draw's purpose and its index (the step, the epoch), never from
//! burn's process-wide generator. So the same seed gives the same model whatever else runs in
//! the process, and a resumed run draws exactly what the uninterrupted run drew at each step.
//!
//! The generators are rand's `StdRng`, whose stream is fixed by the rand version in
//! Cargo.lock (rand does not promise it across versions).

use rand::SeedableRng;
use rand::rngs::StdRng;

/// What a stream is for; each has its own generators, so drawing more for one purpose never
/// shifts another's draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The model's initial parameters.
    Init,
    /// The order of the training images, per epoch.
    BatchOrder,
    /// Dequantisation noise, per step.
    Dequantization,
    /// `data.mutation_rate`'s replaced levels, per step.
    Mutation,
    /// Distillation's perturbed copies of the training batch, per step.
    Perturbation,
    /// Distillation's perturbed copies of the held-out images (drawn once).
    HeldOutPerturbation,
    /// The extractor pretraining's batch order, per epoch.
    ExtractorBatchOrder,
    /// The extractor pretraining's dequantisation noise, per step.
    ExtractorDequantization,
    /// Where the detail branch's training patches are taken, per frame.
    DetailPatches,
    /// `data.paste_objects`' synthetic training images (drawn once).
    PastedObjects,
    /// `data.exposure_jitter`'s shifted copies (drawn once).
    ExposureJitter,
}

impl Stream {
    fn tag(self) -> u64 {
        match self {
            Stream::Init => 1,
            Stream::BatchOrder => 2,
            Stream::Dequantization => 3,
            Stream::Mutation => 4,
            Stream::Perturbation => 5,
            Stream::HeldOutPerturbation => 6,
            Stream::ExtractorBatchOrder => 7,
            Stream::ExtractorDequantization => 8,
            Stream::DetailPatches => 9,
            Stream::PastedObjects => 10,
            Stream::ExposureJitter => 11,
        }
    }
}

/// The generator of `stream`'s draw number `index` (a step or an epoch) under `seed`.
pub fn generator(seed: u64, stream: Stream, index: u64) -> StdRng {
    StdRng::seed_from_u64(seed_of(seed, stream, index))
}

/// The seed of [`generator`]: the three mixed by SplitMix64's finaliser, so that nearby
/// seeds, streams and indices give unrelated generators.
pub fn seed_of(seed: u64, stream: Stream, index: u64) -> u64 {
    let mut state = mix(seed);
    state = mix(state ^ stream.tag());
    mix(state ^ index)
}

fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_seeds_and_indices_give_different_generators_and_repeat_themselves() {
        let first = |seed, stream, index| generator(seed, stream, index).random::<u64>();
        let base = first(3, Stream::Dequantization, 7);
        assert_eq!(base, first(3, Stream::Dequantization, 7));
        assert_ne!(base, first(4, Stream::Dequantization, 7));
        assert_ne!(base, first(3, Stream::Mutation, 7));
        assert_ne!(base, first(3, Stream::Dequantization, 8));
    }
}
