//! What the run tests share.

/// The small RealNVP (2 scales, 4-channel s/t networks) on 256 Fashion-MNIST images, 32 of
/// them held out, that the determinism, concurrency and kill-and-resume tests train: a few
/// seconds per run. `data` and `train` are extra lines of those sections (the train section
/// has lr, clipping and batch; the steps, seed, checkpoints and validation are each test's).
pub fn small_realnvp_toml(name: &str, data: &str, train: &str) -> String {
    format!(
        r#"
name = "{name}"
[model]
channels = 1
height = 28
width = 28
[model.architecture]
kind = "real_nvp"
scales = 2
[model.st_net]
channels = 4
blocks = 1
[data]
dataset = "fashion-mnist"
validation = 32
limit = 256
{data}
[train]
lr = 5e-3
grad_clip = 100.0
batch = 16
{train}
"#
    )
}
