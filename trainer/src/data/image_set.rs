//! Images in memory: one flat `u8` buffer plus their shape, and the tensors batches of them
//! become.

use burn::prelude::*;
use rand::{Rng, RngExt};

/// Images as one flat `u8` buffer plus their shape.
#[derive(Debug, Clone)]
pub struct ImageSet {
    /// `count * channels * height * width` levels, image-major, channel-major within.
    pub pixels: Vec<u8>,
    /// Images.
    pub count: usize,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
}

impl ImageSet {
    /// Levels per image.
    pub fn image_len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Levels of one image.
    pub fn image(&self, index: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[index * len..(index + 1) * len]
    }

    /// The images at `indices` as a `[B, C, H, W]` tensor of levels.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Tensor<4> {
        let mut values = Vec::with_capacity(indices.len() * self.image_len());
        for &index in indices {
            values.extend(self.image(index).iter().map(|&v| f32::from(v)));
        }
        self.tensor(values, indices.len(), device)
    }

    /// [`ImageSet::batch`] with each level replaced, with probability `rate`, by a uniform
    /// random level drawn from `rng`: the perturbed inputs a background model for likelihood
    /// ratios learns from (Ren et al. 2019).
    pub fn mutated_batch(
        &self,
        indices: &[usize],
        device: &Device,
        rate: f64,
        rng: &mut impl Rng,
    ) -> Tensor<4> {
        let mut values = Vec::with_capacity(indices.len() * self.image_len());
        for &index in indices {
            values.extend(self.image(index).iter().map(|&v| {
                if rng.random_bool(rate) {
                    f32::from(rng.random::<u8>())
                } else {
                    f32::from(v)
                }
            }));
        }
        self.tensor(values, indices.len(), device)
    }

    fn tensor(&self, values: Vec<f32>, count: usize, device: &Device) -> Tensor<4> {
        let [c, h, w] = self.shape;
        Tensor::from_data(TensorData::new(values, [count, c, h, w]), device)
    }

    /// Images `range` of this set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> ImageSet {
        let len = self.image_len();
        ImageSet {
            pixels: self.pixels[range.start * len..range.end * len].to_vec(),
            count: range.len(),
            shape: self.shape,
        }
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut pixels = Vec::with_capacity(indices.len() * self.image_len());
        for &index in indices {
            pixels.extend_from_slice(self.image(index));
        }
        ImageSet {
            pixels,
            count: indices.len(),
            shape: self.shape,
        }
    }
}
