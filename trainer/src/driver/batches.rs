//! The batches of a run: which images each step takes, and the step's random draws.

use burn::prelude::*;
use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::ImageSet;
use crate::seeds::{self, Stream};

/// Which images each step takes: every epoch is a seeded permutation of the images, so step
/// `s` takes the same images whether or not the run was resumed before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrder {
    /// The run's seed.
    pub seed: u64,
    /// The stream the permutations come from.
    pub stream: Stream,
    /// Images to draw from.
    pub count: usize,
    /// Images per step.
    pub batch: usize,
}

impl BatchOrder {
    /// The images of step `step`. An epoch is `count / batch` whole batches (at least one);
    /// a batch larger than the set repeats images.
    pub fn indices(&self, step: usize) -> Vec<usize> {
        let per_epoch = (self.count / self.batch.max(1)).max(1);
        let (epoch, position) = (step / per_epoch, step % per_epoch);
        let mut order: Vec<usize> = (0..self.count).collect();
        order.shuffle(&mut seeds::generator(self.seed, self.stream, epoch as u64));
        order
            .into_iter()
            .cycle()
            .skip(position * self.batch)
            .take(self.batch)
            .collect()
    }
}

/// Where a run's batches come from.
#[derive(Debug, Clone, Copy)]
pub struct BatchSource<'a> {
    /// The training images.
    pub images: &'a ImageSet,
    /// The order they are taken in.
    pub order: BatchOrder,
    /// The stream of the dequantisation noise.
    pub noise: Stream,
    /// `data.mutation_rate`: levels replaced at random (from [`Stream::Mutation`]).
    pub mutation_rate: Option<f64>,
}

impl BatchSource<'_> {
    /// Step `step`'s batch on `device`.
    pub fn batch(&self, step: usize, device: &Device) -> Batch {
        let indices = self.order.indices(step);
        let seed = self.order.seed;
        let levels = match self.mutation_rate {
            Some(rate) => {
                let mut rng = seeds::generator(seed, Stream::Mutation, step as u64);
                self.images.mutated_batch(&indices, device, rate, &mut rng)
            }
            None => self.images.batch(&indices, device),
        };
        Batch {
            step,
            indices,
            levels,
            noise: seeds::generator(seed, self.noise, step as u64),
        }
    }
}

/// One step's training batch.
#[derive(Debug)]
pub struct Batch {
    /// The step (0-based).
    pub step: usize,
    /// The training images it holds, in order.
    pub indices: Vec<usize>,
    /// Their levels, `[B, C, H, W]`, on the training device.
    pub levels: Tensor<4>,
    noise: StdRng,
}

impl Batch {
    /// The batch cut into `devices.len()` consecutive shards, shard `i` on `devices[i]` (a
    /// data-parallel step). The first shard holds the step's generator: hand it on with
    /// [`Batch::continue_noise_from`] as the shards are used in order, so that they draw what
    /// the whole batch would have drawn.
    pub fn into_shards(mut self, devices: &[Device]) -> Vec<Batch> {
        let total = self.indices.len();
        let parts = devices.len().max(1);
        let mut shards = Vec::with_capacity(parts);
        let mut start = 0;
        for (part, device) in devices.iter().enumerate() {
            // The first `total % parts` shards take one image more.
            let len = total / parts + usize::from(part < total % parts);
            shards.push(Batch {
                step: self.step,
                indices: self.indices[start..start + len].to_vec(),
                levels: self.levels.clone().narrow(0, start, len).to_device(device),
                // Replaced by the step's generator before the shard draws (placeholder).
                noise: std::mem::replace(&mut self.noise, StdRng::seed_from_u64(0)),
            });
            start += len;
        }
        shards
    }

    /// Takes over the step's generator where `previous` (the shard before this one) left it.
    pub fn continue_noise_from(&mut self, previous: &mut Batch) {
        std::mem::swap(&mut self.noise, &mut previous.noise);
    }

    /// Dequantisation noise for the batch's levels: see [`Batch::noise_like`].
    pub fn dequantization_noise(&mut self) -> Tensor<4> {
        let (shape, device) = (self.levels.dims(), self.levels.device());
        self.noise(shape, &device)
    }

    /// Dequantisation noise for `levels`-shaped inputs, uniform in `[0, 1)`, from the step's
    /// own generator: the same draws at this step in every run with this seed.
    pub fn noise_like(&mut self, levels: &Tensor<4>) -> Tensor<4> {
        self.noise(levels.dims(), &levels.device())
    }

    fn noise(&mut self, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let count = shape.iter().product::<usize>();
        let values: Vec<f32> = (0..count).map(|_| self.noise.random::<f32>()).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(count: usize, batch: usize) -> BatchOrder {
        BatchOrder {
            seed: 3,
            stream: Stream::BatchOrder,
            count,
            batch,
        }
    }

    #[test]
    fn an_epoch_takes_every_image_once_and_epochs_differ() {
        let order = order(12, 4);
        let mut epoch: Vec<usize> = (0..3).flat_map(|step| order.indices(step)).collect();
        let next: Vec<usize> = (3..6).flat_map(|step| order.indices(step)).collect();
        assert_ne!(epoch, next);
        epoch.sort_unstable();
        assert_eq!(epoch, (0..12).collect::<Vec<_>>());
        assert_eq!(order.indices(4), order.indices(4));
    }

    #[test]
    fn a_batch_larger_than_the_set_repeats_images() {
        let indices = order(3, 5).indices(0);
        assert_eq!(indices.len(), 5);
        assert!(indices.iter().all(|&i| i < 3));
    }

    #[test]
    fn shards_cover_the_batch_in_order_and_draw_what_the_batch_draws() {
        let device = Device::flex();
        let images = ImageSet {
            pixels: (0..7 * 4).map(|v| v as u8).collect(),
            count: 7,
            shape: [1, 2, 2],
        };
        let source = BatchSource {
            images: &images,
            order: order(7, 7),
            noise: Stream::Dequantization,
            mutation_rate: None,
        };
        let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        let mut whole = source.batch(2, &device);
        let whole_levels = values(whole.levels.clone());
        let whole_noise = values(whole.dequantization_noise());
        let mut shards = source
            .batch(2, &device)
            .into_shards(&[device.clone(), device.clone()]);
        assert_eq!(shards[0].indices.len(), 4);
        assert_eq!(shards[1].indices.len(), 3);
        let (mut levels, mut noise) = (Vec::new(), Vec::new());
        for i in 0..shards.len() {
            if i > 0 {
                let (done, rest) = shards.split_at_mut(i);
                rest[0].continue_noise_from(&mut done[i - 1]);
            }
            levels.extend(values(shards[i].levels.clone()));
            noise.extend(values(shards[i].dequantization_noise()));
        }
        assert_eq!(levels, whole_levels);
        assert_eq!(noise, whole_noise);
    }

    #[test]
    fn noise_is_the_steps_own() {
        let device = Device::flex();
        let images = ImageSet {
            pixels: vec![0; 8 * 4],
            count: 8,
            shape: [1, 2, 2],
        };
        let source = BatchSource {
            images: &images,
            order: order(8, 2),
            noise: Stream::Dequantization,
            mutation_rate: None,
        };
        let draw = |step| {
            let mut batch = source.batch(step, &device);
            batch
                .dequantization_noise()
                .into_data()
                .try_to_vec::<f32>()
                .expect("f32")
        };
        let noise = draw(5);
        assert_eq!(noise.len(), 8);
        assert!(noise.iter().all(|u| (0.0..1.0).contains(u)));
        assert_eq!(noise, draw(5));
        assert_ne!(noise, draw(6));
    }
}
