//! The gate's input size: 32 pixels wide, as the committed camera gate, and as tall as the
//! camera's aspect ratio says, rounded to a height the recipes' flows can take (a RealNVP's
//! squeezes need a height divisible by 2 per squeeze; a Glow's, 2 per scale).

use super::error::{FitError, FitResult};
use super::recipe::Recipes;
use crate::flows::FlowModel;

/// The gate's input width.
pub const GATE_WIDTH: usize = 32;

/// Frames are extracted at this multiple of the gate's input (as run.sh extracts 128x96 for
/// a 32x24 gate): small files, and the gate's area-average resize still sees 4x4 blocks.
pub const EXTRACTION_SCALE: usize = 4;

/// The tallest input fit considers (a portrait camera at 9:16 asks for 57).
const MAX_HEIGHT: usize = 4 * GATE_WIDTH;

/// The chosen input size and why.
#[derive(Debug, Clone, PartialEq)]
pub struct GateSize {
    /// Width.
    pub width: usize,
    /// Height.
    pub height: usize,
    /// The camera's frame size it was chosen from.
    pub camera: (u32, u32),
    /// The height the aspect ratio alone asks for.
    pub ideal_height: f64,
}

impl GateSize {
    /// The size frames are extracted at.
    pub fn extraction(&self) -> (u32, u32) {
        (
            (self.width * EXTRACTION_SCALE) as u32,
            (self.height * EXTRACTION_SCALE) as u32,
        )
    }
}

impl std::fmt::Display for GateSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (camera_width, camera_height) = self.camera;
        write!(
            f,
            "{}x{} gray (camera frames {camera_width}x{camera_height}: {}x{:.1} at width {}",
            self.width, self.height, self.width, self.ideal_height, self.width
        )?;
        if (self.ideal_height - self.height as f64).abs() > 0.01 {
            write!(f, ", rounded to a height the flows' squeezes take")?;
        }
        write!(f, ")")
    }
}

/// The height nearest the camera's aspect ratio at which both recipes build (their
/// layer-by-layer shape checks are the trainer's own, so every constraint is the real one).
pub fn choose(camera: (u32, u32), recipes: &Recipes) -> FitResult<GateSize> {
    let (camera_width, camera_height) = camera;
    let ideal_height =
        GATE_WIDTH as f64 * f64::from(camera_height) / f64::from(camera_width.max(1));
    let mut candidates: Vec<usize> = (2..=MAX_HEIGHT).collect();
    // Nearest first; between two equally near, the taller keeps more of the picture.
    candidates.sort_by(|a, b| {
        let distance = |h: &usize| (*h as f64 - ideal_height).abs();
        distance(a).total_cmp(&distance(b)).then(b.cmp(a))
    });
    let device = burn::prelude::Device::flex();
    let mut reason = String::from("no candidate height");
    for height in candidates {
        let builds = [&recipes.teacher, &recipes.student]
            .iter()
            .try_for_each(|recipe| {
                let mut model = recipe.model.clone();
                model.channels = 1;
                model.width = GATE_WIDTH;
                model.height = height;
                FlowModel::new(&model, 0, &device)
                    .map(|_| ())
                    .map_err(|e| format!("{} at {GATE_WIDTH}x{height}: {e}", recipe.name))
            });
        match builds {
            Ok(()) => {
                return Ok(GateSize {
                    width: GATE_WIDTH,
                    height,
                    camera,
                    ideal_height,
                });
            }
            Err(problem) => reason = problem,
        }
    }
    Err(FitError::NoInputSize {
        width: GATE_WIDTH,
        camera_width,
        camera_height,
        reason,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn heights_follow_the_aspect_ratio_within_the_squeezes() {
        let recipes = Recipes::load(None, None).unwrap();
        let size = |w, h| {
            let chosen = choose((w, h), &recipes).unwrap();
            (chosen.width, chosen.height)
        };
        assert_eq!(size(768, 576), (32, 24));
        assert_eq!(size(640, 480), (32, 24));
        // 16:9 asks for 18: even, so one squeeze takes it.
        assert_eq!(size(1920, 1080), (32, 18));
        // 2.39:1 asks for 13.4: odd 13 cannot be squeezed, 14 can.
        assert_eq!(size(1920, 803), (32, 14));
        let chosen = choose((1920, 803), &recipes).unwrap();
        assert!(chosen.to_string().contains("rounded"), "{chosen}");
        assert_eq!(chosen.extraction(), (128, 56));
    }
}
