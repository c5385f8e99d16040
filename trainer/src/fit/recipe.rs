//! The two trainings `fit` runs, as `scripts/run.sh` runs them: the teacher, a flow on
//! embeddings (configs/camera-embedding.toml), and the gate distilled from it
//! (configs/camera-realnvp.toml, LAMBDA 1). The configs are built in, so fit needs no file;
//! `--teacher-config` / `--student-config` replace them. Either way fit owns the fields that
//! depend on the camera: the dataset (the work folder's frames), the held-out frames and the
//! input size.

use std::path::Path;

use super::error::{FitError, FitResult};
use super::split::Split;
use crate::config::{DatasetSource, TrainConfig};
use crate::flows::Architecture;

/// The teacher's recipe, as committed in configs/.
const TEACHER_RECIPE: &str = include_str!("../../../configs/camera-embedding.toml");
/// The gate's recipe, as committed in configs/.
const STUDENT_RECIPE: &str = include_str!("../../../configs/camera-realnvp.toml");

/// The recipes before fit fills in the camera's fields.
#[derive(Debug, Clone)]
pub struct Recipes {
    /// The teacher's config.
    pub teacher: TrainConfig,
    /// The gate's (student's) config.
    pub student: TrainConfig,
}

impl Recipes {
    /// The built-in recipes, or the files given instead.
    pub fn load(teacher: Option<&Path>, student: Option<&Path>) -> FitResult<Self> {
        Ok(Recipes {
            teacher: load_one(teacher, TEACHER_RECIPE, "built-in camera-embedding")?,
            student: load_one(student, STUDENT_RECIPE, "built-in camera-realnvp")?,
        })
    }

    /// Both recipes with `data.paste_objects` set to `share` when given (checked with the
    /// camera's fields by [`Recipes::for_camera`]).
    pub fn with_pasted_objects(mut self, share: Option<f64>) -> Self {
        if let Some(share) = share {
            self.teacher.data.paste_objects = Some(share);
            self.student.data.paste_objects = Some(share);
        }
        self
    }

    /// Both recipes with `data.exposure_jitter` set to `levels` when given.
    pub fn with_exposure_jitter(mut self, levels: Option<f64>) -> Self {
        if let Some(levels) = levels {
            self.teacher.data.exposure_jitter = Some(levels);
            self.student.data.exposure_jitter = Some(levels);
        }
        self
    }

    /// Both recipes with the camera's fields set: input `width` x `height` gray, the frames
    /// of `frames_dir` as the dataset with `split`'s frames held out, and `steps` (when
    /// given) as both trainings' step count and as the cap of the extractor's pretraining.
    pub fn for_camera(
        &self,
        (width, height): (usize, usize),
        frames_dir: &Path,
        split: &Split,
        steps: Option<usize>,
    ) -> FitResult<Self> {
        let fill = |recipe: &TrainConfig| -> FitResult<TrainConfig> {
            let mut config = recipe.clone();
            config.model.channels = 1;
            config.model.width = width;
            config.model.height = height;
            config.data.dataset = DatasetSource::Folder(frames_dir.to_path_buf());
            config.data.validation = split.held_out();
            config.data.validation_blocks = split.blocks();
            config.data.validation_guard = split.guard();
            // Every frame but the held-out ones and their guards trains.
            config.data.limit = None;
            if let Some(steps) = steps {
                config.train.steps = steps;
                // A quick try with a few steps should not spend minutes pretraining the
                // teacher's extractor.
                if let Architecture::Embedding { extractor, .. } = &mut config.model.architecture {
                    extractor.steps = extractor.steps.min(steps);
                }
            }
            config
                .validate(&config.name.clone())
                .map_err(|e| recipe_error(&config.name, e))?;
            Ok(config)
        };
        Ok(Recipes {
            teacher: fill(&self.teacher)?,
            student: fill(&self.student)?,
        })
    }
}

fn load_one(path: Option<&Path>, built_in: &str, built_in_name: &str) -> FitResult<TrainConfig> {
    match path {
        Some(path) => TrainConfig::load(path).map_err(|e| recipe_error(&path.display(), e)),
        None => TrainConfig::from_toml(built_in, built_in_name)
            .map_err(|e| recipe_error(&built_in_name, e)),
    }
}

fn recipe_error(origin: &dyn std::fmt::Display, error: impl std::fmt::Display) -> FitError {
    FitError::Recipe {
        origin: origin.to_string(),
        message: error.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn built_in_recipes_load_and_take_the_camera_fields() {
        let recipes = Recipes::load(None, None).unwrap();
        assert_eq!(recipes.teacher.name, "camera-embedding");
        assert_eq!(recipes.student.name, "camera-realnvp");
        let split = Split::of(200, Path::new("in"), super::super::SplitKind::Spread).unwrap();
        let filled = recipes
            .for_camera((32, 18), Path::new("/tmp/frames"), &split, Some(7))
            .unwrap();
        for config in [&filled.teacher, &filled.student] {
            assert_eq!((config.model.width, config.model.height), (32, 18));
            // The trainings read the split fit reports.
            assert_eq!(crate::data::layout_of(config, 200), split.layout);
            assert_eq!(config.train.steps, 7);
        }
        let Architecture::Embedding { extractor, .. } = &filled.teacher.model.architecture else {
            panic!("the teacher is a flow on embeddings");
        };
        assert_eq!(extractor.steps, 7);
        assert_eq!(filled.teacher.data.paste_objects, None);
    }

    #[test]
    fn pasted_objects_reach_both_recipes_and_are_checked() {
        let split = Split::of(200, Path::new("in"), super::super::SplitKind::End).unwrap();
        let camera = |share| {
            Recipes::load(None, None)
                .unwrap()
                .with_pasted_objects(share)
                .for_camera((32, 18), Path::new("/tmp/frames"), &split, None)
        };
        let filled = camera(Some(1.5)).unwrap();
        assert_eq!(filled.teacher.data.paste_objects, Some(1.5));
        assert_eq!(filled.student.data.paste_objects, Some(1.5));
        let error = camera(Some(-1.0)).unwrap_err().to_string();
        assert!(error.contains("data.paste_objects"), "{error}");
        let jittered = Recipes::load(None, None)
            .unwrap()
            .with_exposure_jitter(Some(1.0))
            .for_camera((32, 18), Path::new("/tmp/frames"), &split, None)
            .unwrap();
        assert_eq!(jittered.teacher.data.exposure_jitter, Some(1.0));
        assert_eq!(jittered.student.data.exposure_jitter, Some(1.0));
    }
}
