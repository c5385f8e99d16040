//! Every board config in `firmware-configs/` loads and validates, and broken copies of one
//! fail with errors that name the file and the field.

use std::path::{Path, PathBuf};

use flowgate_shared::board::{
    BoardConfig, BoardConfigError, BoardConfigErrorKind, ThresholdPolicy, WeightFormat,
};

/// The boards flowgate deploys to, sorted by name.
const BOARDS: [&str; 4] = [
    "jetson-nano",
    "jetson-orin-nano",
    "raspberry-pi-4",
    "raspberry-pi-5",
];

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-configs")
}

/// A scratch directory of this test's own, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("flowgate-boards-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `raspberry-pi-4.toml` with `from` replaced by `to` into a scratch directory and
/// loads it, expecting an error.
fn load_broken(test: &str, from: &str, to: &str) -> (PathBuf, BoardConfigError) {
    let original = std::fs::read_to_string(configs_dir().join("raspberry-pi-4.toml")).unwrap();
    assert!(
        original.contains(from),
        "{from:?} not in raspberry-pi-4.toml"
    );
    let scratch = Scratch::new(test);
    let path = scratch.0.join("raspberry-pi-4.toml");
    std::fs::write(&path, original.replacen(from, to, 1)).unwrap();
    let err = match BoardConfig::load(&path) {
        Ok(config) => panic!("broken copy loaded: {config:?}"),
        Err(err) => err,
    };
    (path, err)
}

/// Asserts the error names the file and the field, in the field and in the message.
fn assert_names(path: &Path, err: &BoardConfigError, field: &str) {
    let shown = err.to_string();
    assert_eq!(err.field(), Some(field), "{shown}");
    assert_eq!(err.source_name(), path.display().to_string(), "{shown}");
    let prefix = format!("{}: field '{field}': ", path.display());
    assert!(
        shown.starts_with(&prefix),
        "{shown:?} does not start with {prefix:?}"
    );
    assert!(err.line().is_some(), "{shown}");
}

#[test]
fn every_board_config_is_valid() {
    let boards = BoardConfig::load_all(configs_dir()).unwrap_or_else(|err| panic!("{err}"));
    let names: Vec<&str> = boards.iter().map(|(_, c)| c.board.name.as_str()).collect();
    assert_eq!(names, BOARDS);
    for (path, config) in &boards {
        assert_eq!(
            path.file_stem().unwrap().to_str(),
            Some(config.board.name.as_str())
        );
        // Every file here is loadable on its own, and validates when built in code.
        assert_eq!(&BoardConfig::load(path).unwrap(), config);
        config.validate(&path.display().to_string()).unwrap();
    }
}

#[test]
fn boards_carry_the_camera_or_the_fashion_mnist_gate() {
    for (path, config) in BoardConfig::load_all(configs_dir()).unwrap() {
        let model = &config.model;
        let at = path.display();
        // The Pi 4 carries the camera gate (models/camera-vtest.fgm, 32x24 gray), the others
        // the Fashion-MNIST one.
        let input = if config.board.name == "raspberry-pi-4" {
            (1, 24, 32)
        } else {
            (1, 28, 28)
        };
        assert_eq!((model.channels, model.height, model.width), input, "{at}");
        assert_eq!(model.weights, WeightFormat::Int8, "{at}");
        assert_eq!(
            config.threshold,
            ThresholdPolicy::FalseRejectRate {
                target_false_reject_rate: 0.01
            },
            "{at}"
        );
        // A gate sharing the board with a downstream model: 1 to 4 MiB.
        assert!(
            (1024..=4096).contains(&config.memory.budget_kib),
            "{at}: {}",
            config.memory.budget_kib
        );
        assert!(
            config.target.cpu_features.iter().any(|f| f == "neon"),
            "{at}"
        );
        let flags = config.target.rustflags();
        assert!(
            flags.iter().any(|f| f.starts_with("target-cpu=cortex-a")),
            "{at}: {flags:?}"
        );
        // A small gray int8 model of ~200k weights with ~100 KiB of scratch fits everywhere.
        config.fits(200 * 1024, 100 * 1024).unwrap();
        assert!(config.fits(config.memory.bytes() as usize, 1).is_err());
    }
}

#[test]
fn wrong_value_names_file_and_field() {
    let (path, err) = load_broken(
        "value",
        "target_false_reject_rate = 0.01",
        "target_false_reject_rate = 0.7",
    );
    assert_eq!(err.kind(), BoardConfigErrorKind::Invalid);
    assert_names(&path, &err, "threshold.target_false_reject_rate");
    assert!(
        err.to_string().contains("must be in (0, 0.5), got 0.7"),
        "{err}"
    );
}

#[test]
fn feature_of_another_arch_names_file_and_field() {
    let (path, err) = load_broken(
        "feature",
        r#"cpu_features = ["neon", "crc"]"#,
        r#"cpu_features = ["neon", "avx2"]"#,
    );
    assert_eq!(err.kind(), BoardConfigErrorKind::Invalid);
    assert_names(&path, &err, "target.cpu_features[1]");
    assert!(err.to_string().contains("x86_64"), "{err}");
}

#[test]
fn name_other_than_file_stem_names_file_and_field() {
    let (path, err) = load_broken(
        "name",
        r#"name = "raspberry-pi-4""#,
        r#"name = "raspberry-pi-5""#,
    );
    assert_eq!(err.kind(), BoardConfigErrorKind::Invalid);
    assert_names(&path, &err, "board.name");
}

#[test]
fn unknown_field_names_file_and_field() {
    let (path, err) = load_broken("unknown", "width = 32", "width = 32\ndepth = 3");
    assert_eq!(err.kind(), BoardConfigErrorKind::Schema);
    assert_names(&path, &err, "model.depth");
    assert!(err.to_string().contains("unknown field `depth`"), "{err}");
}

#[test]
fn unknown_triple_names_file_and_field() {
    let (path, err) = load_broken(
        "triple",
        r#"triple = "aarch64-unknown-linux-gnu""#,
        r#"triple = "aarch64-apple-darwin""#,
    );
    assert_eq!(err.kind(), BoardConfigErrorKind::Schema);
    assert_names(&path, &err, "target.triple");
}

#[test]
fn wrong_type_names_file_and_field() {
    let (path, err) = load_broken("type", "height = 24", "height = \"24\"");
    assert_eq!(err.kind(), BoardConfigErrorKind::Schema);
    assert_names(&path, &err, "model.height");
    assert!(err.to_string().contains("invalid type"), "{err}");
}

#[test]
fn missing_field_names_file_and_field() {
    let (path, err) = load_broken("missing", "budget_kib = 2048\n", "");
    assert_eq!(err.kind(), BoardConfigErrorKind::Schema);
    assert_names(&path, &err, "memory.budget_kib");
    assert!(
        err.to_string().contains("missing field `budget_kib`"),
        "{err}"
    );
}

#[test]
fn syntax_error_names_file_and_field() {
    let (path, err) = load_broken("syntax", "width = 32", "width = 32 32");
    assert_eq!(err.kind(), BoardConfigErrorKind::Syntax);
    assert_names(&path, &err, "model.width");
}
