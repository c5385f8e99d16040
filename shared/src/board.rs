//! Board deployment configs.
//!
//! Every edge board flowgate deploys to has one TOML file, `firmware-configs/<name>.toml`, that
//! says what the board is, which Rust target the runtime is built for, what the model sees and
//! may cost per frame, how the rejection threshold is calibrated, and how much memory the gate
//! may take next to the downstream model. The tools read these files through this module, which
//! checks them against the schema ([`BoardConfig`]) and the validation rules documented on each
//! field; `firmware-configs/README.md` documents the format for humans.
//!
//! Every error ([`BoardConfigError`]) names the file and the field, e.g.
//! `firmware-configs/jetson-nano.toml: field 'threshold.target_false_reject_rate': must be in
//! (0, 0.5), got 0.7 (line 17)`.

use core::fmt;
use core::ops::Range;
use std::borrow::ToOwned;
use std::format;
use std::io;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};

/// Largest accepted model input height or width, in pixels.
pub const MAX_INPUT_SIDE: u32 = 4096;

/// Largest accepted memory budget, in KiB (1 GiB): anything above is a typo, not a budget.
pub const MAX_BUDGET_KIB: u32 = 1024 * 1024;

/// Largest accepted `threshold.max_bits_per_dim`: a uniform model over 8-bit pixels scores
/// exactly 8 bits per dimension, so a threshold above 8 would accept frames that even a
/// model knowing nothing finds likely.
pub const MAX_BITS_PER_DIM: f64 = 8.0;

/// One board's deployment config: the contents of one `firmware-configs/<name>.toml`.
///
/// Build it with [`BoardConfig::load`], [`BoardConfig::load_all`] or
/// [`BoardConfig::from_toml_str`], which also validate it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// `[board]`: which board this is.
    pub board: BoardInfo,
    /// `[target]`: what the runtime is compiled for.
    pub target: TargetSpec,
    /// `[model]`: the model's input and per-frame compute budget.
    pub model: ModelSpec,
    /// `[threshold]`: how the accept/reject threshold is set.
    pub threshold: ThresholdPolicy,
    /// `[memory]`: how much memory the gate may use on this board.
    pub memory: MemoryBudget,
    /// `[notes]`: optional free text for humans; never interpreted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<Notes>,
}

/// `[board]`: the board's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardInfo {
    /// Short id: lowercase ASCII letters, digits and `-`, at most 64 characters, not starting
    /// or ending with `-`. Must equal the file stem when loaded from a file.
    pub name: String,
    /// One line for humans: SoC, cores, clock, OS (non-empty).
    pub description: String,
}

/// `[target]`: the Rust compilation target for the runtime on this board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// The Rust target triple (one of [`TargetTriple::ALL`]).
    pub triple: TargetTriple,
    /// The `-C target-cpu` name of the board's cores, if the build should tune for them
    /// (one of [`TargetTriple::known_cpus`]); absent means the triple's generic CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    /// Rust `target-feature` names every unit of this board guarantees (enabled with
    /// `-C target-feature=+...`). Each must be a feature of the triple's architecture (see
    /// [`TargetTriple::known_cpu_features`]) and appear once. May be empty.
    pub cpu_features: Vec<String>,
}

impl TargetSpec {
    /// The `rustc` flags that build for exactly this target spec, e.g.
    /// `["-C", "target-cpu=cortex-a72", "-C", "target-feature=+neon,+crc"]`
    /// (empty when there is neither a CPU nor a feature).
    pub fn rustflags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(cpu) = &self.cpu {
            flags.push("-C".to_owned());
            flags.push(format!("target-cpu={cpu}"));
        }
        if !self.cpu_features.is_empty() {
            let list: Vec<String> = self.cpu_features.iter().map(|f| format!("+{f}")).collect();
            flags.push("-C".to_owned());
            flags.push(format!("target-feature={}", list.join(",")));
        }
        flags
    }
}

/// The Rust target triples a board may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TargetTriple {
    /// 64-bit Arm Linux (64-bit Raspberry Pi OS, Jetson Linux / JetPack).
    #[serde(rename = "aarch64-unknown-linux-gnu")]
    Aarch64UnknownLinuxGnu,
    /// 32-bit Armv7-A Linux, hard float (32-bit Raspberry Pi OS).
    #[serde(rename = "armv7-unknown-linux-gnueabihf")]
    Armv7UnknownLinuxGnueabihf,
    /// 64-bit x86 Linux (development hosts, x86 edge boxes).
    #[serde(rename = "x86_64-unknown-linux-gnu")]
    X86_64UnknownLinuxGnu,
    /// Bare-metal Cortex-M4F / M7F with hardware float (the `no_std` runtime alone).
    #[serde(rename = "thumbv7em-none-eabihf")]
    Thumbv7emNoneEabihf,
}

/// The CPU architecture family of a [`TargetTriple`] (Rust's `target_arch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `target_arch = "aarch64"`.
    Aarch64,
    /// `target_arch = "arm"` (A-profile Armv7 and M-profile Thumb targets alike).
    Arm,
    /// `target_arch = "x86_64"`.
    X86_64,
}

impl Arch {
    /// Rust's `target_arch` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Aarch64 => "aarch64",
            Arch::Arm => "arm",
            Arch::X86_64 => "x86_64",
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rust target features of `aarch64` targets (rustc's list, less `crt-static` and
/// `outline-atomics`, which are not CPU capabilities).
#[rustfmt::skip]
const AARCH64_FEATURES: &[&str] = &[
    "aes", "bf16", "bti", "crc", "cssc", "dit", "dotprod", "dpb", "dpb2", "ecv", "f32mm", "f64mm",
    "faminmax", "fcma", "fhm", "flagm", "flagm2", "fp16", "fp8", "fp8dot2", "fp8dot4", "fp8fma",
    "frintts", "hbc", "i8mm", "jsconv", "lor", "lse", "lse128", "lse2", "lut", "mops", "mte",
    "neon", "paca", "pacg", "pan", "pauth-lr", "pmuv3", "rand", "ras", "rcpc", "rcpc2", "rcpc3",
    "rdm", "sb", "sha2", "sha3", "sm4", "sme", "sme-b16b16", "sme-f16f16", "sme-f64f64",
    "sme-f8f16", "sme-f8f32", "sme-fa64", "sme-i16i64", "sme-lutv2", "sme2", "sme2p1", "spe",
    "ssbs", "ssve-fp8dot2", "ssve-fp8dot4", "ssve-fp8fma", "sve", "sve-b16b16", "sve2", "sve2-aes",
    "sve2-bitperm", "sve2-sha3", "sve2-sm4", "sve2p1", "v8.1a", "v8.2a", "v8.3a", "v8.4a", "v8.5a",
    "v8.6a", "v8.7a", "v8.8a", "v8.9a", "v9.1a", "v9.2a", "v9.3a", "v9.4a", "v9.5a", "v9a", "vh",
    "wfxt",
];

/// Rust target features of A-profile `arm` targets (rustc's list, less `crt-static`, the
/// ABI-changing `soft-float`, and the profile markers `mclass` / `rclass`).
#[rustfmt::skip]
const ARM_A_FEATURES: &[&str] = &[
    "aclass", "aes", "crc", "d32", "dotprod", "dsp", "fp-armv8", "fp16", "fpregs", "i8mm", "neon",
    "sha2", "thumb-mode", "thumb2", "trustzone", "v5te", "v6", "v6k", "v6t2", "v7", "v8", "vfp2",
    "vfp3", "vfp4", "virtualization",
];

/// Rust target features of M-profile (Cortex-M) `arm` targets: no NEON, no A-profile crypto,
/// no double-register VFP.
#[rustfmt::skip]
const ARM_M_FEATURES: &[&str] = &[
    "dsp", "fpregs", "mclass", "thumb-mode", "thumb2", "v5te", "v6", "v6k", "v6t2", "v7",
];

/// Rust target features of `x86_64` targets (rustc's list, less `crt-static`).
#[rustfmt::skip]
const X86_64_FEATURES: &[&str] = &[
    "adx", "aes", "amx-avx512", "amx-bf16", "amx-complex", "amx-fp16", "amx-fp8", "amx-int8",
    "amx-movrs", "amx-tf32", "amx-tile", "apxf", "avx", "avx10.1", "avx10.2", "avx2", "avx512bf16",
    "avx512bitalg", "avx512bw", "avx512cd", "avx512dq", "avx512f", "avx512fp16", "avx512ifma",
    "avx512vbmi", "avx512vbmi2", "avx512vl", "avx512vnni", "avx512vp2intersect", "avx512vpopcntdq",
    "avxifma", "avxneconvert", "avxvnni", "avxvnniint16", "avxvnniint8", "bmi1", "bmi2",
    "cmpxchg16b", "ermsb", "f16c", "fma", "fxsr", "gfni", "kl", "lahfsahf", "lzcnt", "movbe",
    "movrs", "pclmulqdq", "popcnt", "prfchw", "rdrand", "rdseed", "rtm", "sha", "sha512", "sm3",
    "sm4", "sse", "sse2", "sse3", "sse4.1", "sse4.2", "sse4a", "ssse3", "tbm", "vaes", "vpclmulqdq",
    "widekl", "x87", "xop", "xsave", "xsavec", "xsaveopt", "xsaves",
];

/// `-C target-cpu` names accepted on `aarch64` targets.
#[rustfmt::skip]
const AARCH64_CPUS: &[&str] = &[
    "generic", "carmel", "cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "cortex-a73",
    "cortex-a75", "cortex-a76", "cortex-a76ae", "cortex-a77", "cortex-a78", "cortex-a78ae",
    "cortex-a78c", "neoverse-n1",
];

/// `-C target-cpu` names accepted on A-profile `arm` targets.
#[rustfmt::skip]
const ARM_A_CPUS: &[&str] = &[
    "generic", "cortex-a7", "cortex-a8", "cortex-a9", "cortex-a15", "cortex-a53", "cortex-a55",
    "cortex-a57", "cortex-a72", "cortex-a73", "cortex-a75", "cortex-a76", "cortex-a76ae",
    "cortex-a77", "cortex-a78", "cortex-a78ae", "cortex-a78c",
];

/// `-C target-cpu` names accepted on M-profile `arm` targets.
const ARM_M_CPUS: &[&str] = &["cortex-m4", "cortex-m7"];

/// `-C target-cpu` names accepted on `x86_64` targets.
const X86_64_CPUS: &[&str] = &["x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"];

impl TargetTriple {
    /// Every accepted triple.
    pub const ALL: [TargetTriple; 4] = [
        TargetTriple::Aarch64UnknownLinuxGnu,
        TargetTriple::Armv7UnknownLinuxGnueabihf,
        TargetTriple::X86_64UnknownLinuxGnu,
        TargetTriple::Thumbv7emNoneEabihf,
    ];

    /// The triple as `rustc --target` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetTriple::Aarch64UnknownLinuxGnu => "aarch64-unknown-linux-gnu",
            TargetTriple::Armv7UnknownLinuxGnueabihf => "armv7-unknown-linux-gnueabihf",
            TargetTriple::X86_64UnknownLinuxGnu => "x86_64-unknown-linux-gnu",
            TargetTriple::Thumbv7emNoneEabihf => "thumbv7em-none-eabihf",
        }
    }

    /// The triple's architecture family.
    pub fn arch(self) -> Arch {
        match self {
            TargetTriple::Aarch64UnknownLinuxGnu => Arch::Aarch64,
            TargetTriple::Armv7UnknownLinuxGnueabihf | TargetTriple::Thumbv7emNoneEabihf => {
                Arch::Arm
            }
            TargetTriple::X86_64UnknownLinuxGnu => Arch::X86_64,
        }
    }

    /// Whether the target has an operating system and `std` (false for bare metal).
    pub fn has_std(self) -> bool {
        !matches!(self, TargetTriple::Thumbv7emNoneEabihf)
    }

    /// The Rust target-feature names a board on this triple may list in
    /// `target.cpu_features`.
    pub fn known_cpu_features(self) -> &'static [&'static str] {
        match self {
            TargetTriple::Aarch64UnknownLinuxGnu => AARCH64_FEATURES,
            TargetTriple::Armv7UnknownLinuxGnueabihf => ARM_A_FEATURES,
            TargetTriple::X86_64UnknownLinuxGnu => X86_64_FEATURES,
            TargetTriple::Thumbv7emNoneEabihf => ARM_M_FEATURES,
        }
    }

    /// The `-C target-cpu` names a board on this triple may give in `target.cpu`.
    pub fn known_cpus(self) -> &'static [&'static str] {
        match self {
            TargetTriple::Aarch64UnknownLinuxGnu => AARCH64_CPUS,
            TargetTriple::Armv7UnknownLinuxGnueabihf => ARM_A_CPUS,
            TargetTriple::X86_64UnknownLinuxGnu => X86_64_CPUS,
            TargetTriple::Thumbv7emNoneEabihf => ARM_M_CPUS,
        }
    }
}

impl fmt::Display for TargetTriple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[model]`: what the gate's model takes in and may cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Input channels: 1 (gray) or 3 (RGB).
    pub channels: u32,
    /// Input height in pixels, 1..=[`MAX_INPUT_SIDE`].
    pub height: u32,
    /// Input width in pixels, 1..=[`MAX_INPUT_SIDE`].
    pub width: u32,
    /// Most multiply-accumulates one frame's log-likelihood may cost on this board; at least
    /// one per input value (`channels * height * width`).
    pub max_macs_per_frame: u64,
    /// How the model's weights are stored on this board.
    pub weights: WeightFormat,
}

impl ModelSpec {
    /// Values in one input frame: `channels * height * width`.
    pub fn input_len(&self) -> u64 {
        u64::from(self.channels) * u64::from(self.height) * u64::from(self.width)
    }
}

/// How a model's weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightFormat {
    /// `"f32"`: 32-bit floats.
    F32,
    /// `"int8"`: 8-bit integers with one f32 scale per output channel.
    Int8,
}

impl WeightFormat {
    /// The format's name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            WeightFormat::F32 => "f32",
            WeightFormat::Int8 => "int8",
        }
    }

    /// Bytes per stored weight (scales not counted).
    pub fn bytes_per_weight(self) -> usize {
        match self {
            WeightFormat::F32 => 4,
            WeightFormat::Int8 => 1,
        }
    }
}

/// `[threshold]`: how the log-likelihood threshold below which frames are rejected is set.
/// The TOML table names the variant with `policy = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawThreshold", into = "RawThreshold")]
pub enum ThresholdPolicy {
    /// `policy = "false_reject_rate"`: the threshold is calibrated on held-out
    /// in-distribution frames so that this fraction of them would be rejected (the threshold
    /// is that quantile of their log-likelihoods).
    FalseRejectRate {
        /// Fraction of in-distribution frames the gate may reject, in (0, 0.5).
        target_false_reject_rate: f64,
    },
    /// `policy = "fixed_bits_per_dim"`: reject every frame whose negative log-likelihood,
    /// in bits per input value, exceeds a fixed bound; no calibration.
    FixedBitsPerDim {
        /// The bound, in bits per dimension, in (0, [`MAX_BITS_PER_DIM`]].
        max_bits_per_dim: f64,
    },
}

impl ThresholdPolicy {
    /// The policy's name in the config file (`policy = "..."`).
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdPolicy::FalseRejectRate { .. } => PolicyKind::FalseRejectRate.as_str(),
            ThresholdPolicy::FixedBitsPerDim { .. } => PolicyKind::FixedBitsPerDim.as_str(),
        }
    }
}

/// The `[threshold]` table as written; [`ThresholdPolicy`] converts from it so that type
/// errors keep their exact position (serde's internally tagged enums lose it).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThreshold {
    policy: PolicyKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target_false_reject_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_bits_per_dim: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum PolicyKind {
    FalseRejectRate,
    FixedBitsPerDim,
}

impl PolicyKind {
    fn as_str(self) -> &'static str {
        match self {
            PolicyKind::FalseRejectRate => "false_reject_rate",
            PolicyKind::FixedBitsPerDim => "fixed_bits_per_dim",
        }
    }
}

impl TryFrom<RawThreshold> for ThresholdPolicy {
    type Error = String;

    fn try_from(raw: RawThreshold) -> Result<Self, String> {
        let (needed, value, other, other_value) = match raw.policy {
            PolicyKind::FalseRejectRate => (
                "target_false_reject_rate",
                raw.target_false_reject_rate,
                "max_bits_per_dim",
                raw.max_bits_per_dim,
            ),
            PolicyKind::FixedBitsPerDim => (
                "max_bits_per_dim",
                raw.max_bits_per_dim,
                "target_false_reject_rate",
                raw.target_false_reject_rate,
            ),
        };
        let policy = raw.policy.as_str();
        let Some(value) = value else {
            return Err(format!(
                "missing field `{needed}`, required by policy \"{policy}\""
            ));
        };
        if other_value.is_some() {
            return Err(format!(
                "unknown field `{other}`: not used by policy \"{policy}\" (which takes `{needed}`)"
            ));
        }
        Ok(match raw.policy {
            PolicyKind::FalseRejectRate => ThresholdPolicy::FalseRejectRate {
                target_false_reject_rate: value,
            },
            PolicyKind::FixedBitsPerDim => ThresholdPolicy::FixedBitsPerDim {
                max_bits_per_dim: value,
            },
        })
    }
}

impl From<ThresholdPolicy> for RawThreshold {
    fn from(policy: ThresholdPolicy) -> Self {
        match policy {
            ThresholdPolicy::FalseRejectRate {
                target_false_reject_rate,
            } => RawThreshold {
                policy: PolicyKind::FalseRejectRate,
                target_false_reject_rate: Some(target_false_reject_rate),
                max_bits_per_dim: None,
            },
            ThresholdPolicy::FixedBitsPerDim { max_bits_per_dim } => RawThreshold {
                policy: PolicyKind::FixedBitsPerDim,
                target_false_reject_rate: None,
                max_bits_per_dim: Some(max_bits_per_dim),
            },
        }
    }
}

/// `[memory]`: the gate's memory budget on this board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryBudget {
    /// KiB the model blob and the inference scratch together may take, 1..=[`MAX_BUDGET_KIB`];
    /// must at least hold one input frame as f32.
    pub budget_kib: u32,
}

impl MemoryBudget {
    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.budget_kib) * 1024
    }
}

/// `[notes]`: optional free text for humans; each field, when present, must not be blank.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notes {
    /// How the model deployed to this board was made: data, training, calibration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Deployment remarks: OS image, clocks, cooling, what else runs on the board.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
}

impl BoardConfig {
    /// Parses and validates a config from TOML text. `source_name` (usually the file's path)
    /// names the text in errors. The board name is not compared with any file name; see
    /// [`BoardConfig::load`].
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<BoardConfig, BoardConfigError> {
        parse(text, source_name, None)
    }

    /// Reads, parses and validates the config file at `path`; also checks that `board.name`
    /// equals the file stem. Errors name the file as `path` displays.
    pub fn load(path: impl AsRef<Path>) -> Result<BoardConfig, BoardConfigError> {
        let path = path.as_ref();
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|err| BoardConfigError::io(&source, "cannot read file", err))?;
        let stem = path
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        parse(&text, &source, Some(&stem))
    }

    /// Loads every `*.toml` file directly in `dir` (not recursing) with [`BoardConfig::load`],
    /// sorted by board name. Stops at the first invalid file. An empty directory gives an
    /// empty list.
    pub fn load_all(
        dir: impl AsRef<Path>,
    ) -> Result<Vec<(PathBuf, BoardConfig)>, BoardConfigError> {
        let dir = dir.as_ref();
        let source = dir.display().to_string();
        let list_error = |err| BoardConfigError::io(&source, "cannot list directory", err);
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(list_error)? {
            let path = entry.map_err(list_error)?.path();
            if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
                paths.push(path);
            }
        }
        let mut boards = Vec::with_capacity(paths.len());
        for path in paths {
            let config = BoardConfig::load(&path)?;
            boards.push((path, config));
        }
        boards.sort_by(|(_, a), (_, b)| a.board.name.cmp(&b.board.name));
        Ok(boards)
    }

    /// Checks every validation rule (those of `load` except the file-stem check); for
    /// configs built in code. `source_name` names the config in the error.
    pub fn validate(&self, source_name: &str) -> Result<(), BoardConfigError> {
        self.check(None)
            .map_err(|problem| problem.into_error(source_name, None))
    }

    /// Whether a model blob of `model_bytes` plus `scratch_bytes` of inference scratch fit in
    /// `memory.budget_kib`.
    pub fn fits(&self, model_bytes: usize, scratch_bytes: usize) -> Result<(), MemoryBudgetError> {
        let total = model_bytes as u128 + scratch_bytes as u128;
        if total <= u128::from(self.memory.bytes()) {
            Ok(())
        } else {
            Err(MemoryBudgetError {
                board: self.board.name.clone(),
                budget_kib: self.memory.budget_kib,
                model_bytes,
                scratch_bytes,
            })
        }
    }

    /// Every validation rule, in file order; the first broken one is returned.
    fn check(&self, expected_name: Option<&str>) -> Result<(), Problem> {
        let name = &self.board.name;
        if !is_valid_name(name) {
            return Err(Problem::at(
                &["board", "name"],
                format!(
                    "must be 1 to 64 lowercase ASCII letters, digits or '-', not starting or \
                     ending with '-', got {name:?}"
                ),
            ));
        }
        if let Some(stem) = expected_name
            && stem != name
        {
            return Err(Problem::at(
                &["board", "name"],
                format!("must equal the file name stem {stem:?}, got {name:?}"),
            ));
        }
        if self.board.description.trim().is_empty() {
            return Err(Problem::at(
                &["board", "description"],
                "must not be empty".into(),
            ));
        }

        let triple = self.target.triple;
        if let Some(cpu) = &self.target.cpu
            && !triple.known_cpus().contains(&cpu.as_str())
        {
            return Err(Problem::at(
                &["target", "cpu"],
                format!(
                    "unknown CPU {cpu:?} for {triple}; known: {}",
                    triple.known_cpus().join(", ")
                ),
            ));
        }
        for (index, feature) in self.target.cpu_features.iter().enumerate() {
            let at = |message| Problem {
                path: std::vec![
                    Seg::Key("target".into()),
                    Seg::Key("cpu_features".into()),
                    Seg::Index(index),
                ],
                message,
            };
            if let Some(reason) = feature_problem(triple, feature) {
                return Err(at(reason));
            }
            if self
                .target
                .cpu_features
                .iter()
                .take(index)
                .any(|f| f == feature)
            {
                return Err(at(format!("{feature:?} is listed twice")));
            }
        }

        let model = &self.model;
        if !matches!(model.channels, 1 | 3) {
            return Err(Problem::at(
                &["model", "channels"],
                format!("must be 1 (gray) or 3 (RGB), got {}", model.channels),
            ));
        }
        for (field, value) in [("height", model.height), ("width", model.width)] {
            if !(1..=MAX_INPUT_SIDE).contains(&value) {
                return Err(Problem::at(
                    &["model", field],
                    format!("must be in 1..={MAX_INPUT_SIDE}, got {value}"),
                ));
            }
        }
        if model.max_macs_per_frame < model.input_len() {
            return Err(Problem::at(
                &["model", "max_macs_per_frame"],
                format!(
                    "must be at least one per input value ({}x{}x{} = {}), got {}",
                    model.channels,
                    model.height,
                    model.width,
                    model.input_len(),
                    model.max_macs_per_frame
                ),
            ));
        }

        match self.threshold {
            ThresholdPolicy::FalseRejectRate {
                target_false_reject_rate: rate,
            } => {
                if !(rate > 0.0 && rate < 0.5) {
                    return Err(Problem::at(
                        &["threshold", "target_false_reject_rate"],
                        format!("must be in (0, 0.5), got {rate}"),
                    ));
                }
            }
            ThresholdPolicy::FixedBitsPerDim {
                max_bits_per_dim: bits,
            } => {
                if !(bits > 0.0 && bits <= MAX_BITS_PER_DIM) {
                    return Err(Problem::at(
                        &["threshold", "max_bits_per_dim"],
                        format!("must be in (0, {MAX_BITS_PER_DIM}], got {bits}"),
                    ));
                }
            }
        }

        let budget = self.memory.budget_kib;
        if !(1..=MAX_BUDGET_KIB).contains(&budget) {
            return Err(Problem::at(
                &["memory", "budget_kib"],
                format!("must be in 1..={MAX_BUDGET_KIB} (1 GiB), got {budget}"),
            ));
        }
        let frame_bytes = model.input_len() * 4;
        if self.memory.bytes() < frame_bytes {
            return Err(Problem::at(
                &["memory", "budget_kib"],
                format!(
                    "{budget} KiB cannot hold one {}x{}x{} input frame as f32 ({frame_bytes} bytes)",
                    model.channels, model.height, model.width
                ),
            ));
        }

        if let Some(notes) = &self.notes {
            for (field, text) in [("model", &notes.model), ("board", &notes.board)] {
                if text.as_ref().is_some_and(|text| text.trim().is_empty()) {
                    return Err(Problem::at(
                        &["notes", field],
                        "must not be blank (leave it out instead)".into(),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Why `feature` may not be listed for `triple`, if it may not.
fn feature_problem(triple: TargetTriple, feature: &str) -> Option<String> {
    if triple.known_cpu_features().contains(&feature) {
        return None;
    }
    let arch = triple.arch();
    if arch == Arch::Arm && ARM_A_FEATURES.contains(&feature) {
        return Some(format!(
            "{feature:?} is not available on {triple} (Cortex-M cores have no NEON, \
             A-profile crypto or 32 double registers)"
        ));
    }
    let owners: Vec<&str> = [
        (Arch::Aarch64, AARCH64_FEATURES),
        (Arch::Arm, ARM_A_FEATURES),
        (Arch::X86_64, X86_64_FEATURES),
    ]
    .into_iter()
    .filter(|(other, list)| *other != arch && list.contains(&feature))
    .map(|(other, _)| other.as_str())
    .collect();
    Some(if owners.is_empty() {
        format!("{feature:?} is not a known Rust target feature of {arch} ({triple})")
    } else {
        format!(
            "{feature:?} is a target feature of {}, not of {arch} ({triple})",
            owners.join(" and ")
        )
    })
}

/// `board.name` rule: 1 to 64 of `[a-z0-9-]`, not starting or ending with `-`.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Why loading a board config failed: always names the source (file) and, except for I/O
/// errors, the field, as a dotted key path with array indices (`target.cpu_features[1]`).
///
/// Displays as `<source>: field '<field>': <message>`, followed by ` (line N)` when the
/// position is known; I/O errors display as `<source>: <message>: <io error>`.
#[derive(Debug)]
pub struct BoardConfigError {
    source_name: String,
    field: Option<String>,
    line: Option<usize>,
    kind: BoardConfigErrorKind,
    message: String,
    io: Option<io::Error>,
}

/// What kind of problem a [`BoardConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BoardConfigErrorKind {
    /// The file or directory could not be read.
    Io,
    /// The text is not valid TOML (including a key defined twice).
    Syntax,
    /// Valid TOML that does not fit the schema: unknown or missing field, wrong type,
    /// unknown enum value (`triple`, `weights`, `policy`).
    Schema,
    /// The schema fits but a value breaks a validation rule (range, consistency, name).
    Invalid,
}

impl BoardConfigError {
    /// The file (or the `source_name` given to [`BoardConfig::from_toml_str`]).
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The offending field as a dotted key path, e.g. `threshold.target_false_reject_rate`
    /// or `target.cpu_features[1]`; `None` only for I/O errors. For syntax errors it is the
    /// key on (or above) the broken line, or `(document)` when there is none.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> BoardConfigErrorKind {
        self.kind
    }

    /// The problem, without source, field or line.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn io(source: &str, message: &str, err: io::Error) -> Self {
        BoardConfigError {
            source_name: source.to_owned(),
            field: None,
            line: None,
            kind: BoardConfigErrorKind::Io,
            message: message.to_owned(),
            io: Some(err),
        }
    }
}

impl fmt::Display for BoardConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source_name)?;
        if let Some(field) = &self.field {
            write!(f, "field '{field}': ")?;
        }
        f.write_str(&self.message)?;
        if let Some(err) = &self.io {
            write!(f, ": {err}")?;
        }
        if let Some(line) = self.line {
            write!(f, " (line {line})")?;
        }
        Ok(())
    }
}

impl std::error::Error for BoardConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.io.as_ref().map(|err| err as _)
    }
}

/// A model blob and its scratch do not fit a board's memory budget
/// (from [`BoardConfig::fits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryBudgetError {
    /// The board's name.
    pub board: String,
    /// The board's `memory.budget_kib`.
    pub budget_kib: u32,
    /// Size of the model blob asked about, in bytes.
    pub model_bytes: usize,
    /// Size of the inference scratch asked about, in bytes.
    pub scratch_bytes: usize,
}

impl fmt::Display for MemoryBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total = self.model_bytes as u128 + self.scratch_bytes as u128;
        let budget = u128::from(self.budget_kib) * 1024;
        write!(
            f,
            "board '{}': field 'memory.budget_kib': model blob {} B + scratch {} B = {total} B \
             exceeds the budget of {} KiB ({budget} B) by {} B",
            self.board,
            self.model_bytes,
            self.scratch_bytes,
            self.budget_kib,
            total - budget
        )
    }
}

impl std::error::Error for MemoryBudgetError {}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Renders a path as `a.b[2].c`; keys that are not bare TOML keys are quoted.
fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                let bare = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if bare {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Seg::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    if out.is_empty() {
        out.push_str("(document)");
    }
    out
}

/// A broken validation rule: where, and why.
#[derive(Debug)]
struct Problem {
    path: Vec<Seg>,
    message: String,
}

impl Problem {
    fn at(keys: &[&str], message: String) -> Self {
        Problem {
            path: keys.iter().map(|key| Seg::Key((*key).to_owned())).collect(),
            message,
        }
    }

    fn into_error(self, source: &str, line: Option<usize>) -> BoardConfigError {
        BoardConfigError {
            source_name: source.to_owned(),
            field: Some(render_path(&self.path)),
            line,
            kind: BoardConfigErrorKind::Invalid,
            message: self.message,
            io: None,
        }
    }
}

/// Parses, decodes and validates; `expected_name` is the file stem `board.name` must equal.
fn parse(
    text: &str,
    source: &str,
    expected_name: Option<&str>,
) -> Result<BoardConfig, BoardConfigError> {
    let config: BoardConfig =
        toml::from_str(text).map_err(|err| decode_error(text, source, &err))?;
    if let Err(problem) = config.check(expected_name) {
        let line = DeTable::parse(text)
            .ok()
            .and_then(|tree| span_of(tree.get_ref(), &problem.path))
            .map(|span| line_of(text, span.start));
        return Err(problem.into_error(source, line));
    }
    Ok(config)
}

/// Turns a `toml` error into one that names the field.
fn decode_error(text: &str, source: &str, err: &toml::de::Error) -> BoardConfigError {
    let message = err.message().trim().to_owned();
    let span = err.span();
    let (kind, field, line) = match DeTable::parse(text) {
        // Not TOML at all: there is no tree to find the key in, so read it off the lines.
        Err(_) => {
            let offset = span.map_or(0, |span| span.start);
            (
                BoardConfigErrorKind::Syntax,
                field_from_lines(text, offset),
                Some(line_of(text, offset)),
            )
        }
        Ok(tree) => {
            let tree = tree.get_ref();
            let mut path = Vec::new();
            let missing = quoted_name(&message, "missing field `");
            let line = match &span {
                // A missing field is reported at the table that lacks it (the document
                // start, 0..0, for the top level).
                Some(span) if missing.is_some() => {
                    if !locate_exact(tree, span, &mut path) && !span.is_empty() {
                        locate(tree, span, &mut path);
                    }
                    (!path.is_empty()).then(|| line_of(text, span.start))
                }
                Some(span) => {
                    locate(tree, span, &mut path);
                    Some(line_of(text, span.start))
                }
                None => None,
            };
            // A missing field, or an unknown one reported at its table rather than its key
            // (as the threshold policies do), is not in the located path yet.
            let named = missing.or_else(|| quoted_name(&message, "unknown field `"));
            if let Some(name) = named
                && path.last() != Some(&Seg::Key(name.to_owned()))
            {
                path.push(Seg::Key(name.to_owned()));
            }
            (BoardConfigErrorKind::Schema, render_path(&path), line)
        }
    };
    BoardConfigError {
        source_name: source.to_owned(),
        field: Some(field),
        line,
        kind,
        message,
        io: None,
    }
}

/// The name in `` prefix`name` `` at the start of `message`.
fn quoted_name<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.find('`').map(|end| &rest[..end])
}

/// Whether `outer` contains `inner` (an empty `inner` is a position, inside or at the start).
fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    if inner.is_empty() {
        outer.start <= inner.start && inner.start < outer.end
    } else {
        outer.start <= inner.start && inner.end <= outer.end
    }
}

/// Extends `path` to the deepest key or value whose span contains `span`.
fn locate(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        if contains(&key.span(), span) {
            return true;
        }
        if locate_in_value(value.get_ref(), span, path) || contains(&value.span(), span) {
            return true;
        }
        path.pop();
    }
    false
}

fn locate_in_value(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    match value {
        DeValue::Table(table) => locate(table, span, path),
        DeValue::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Seg::Index(index));
                if locate_in_value(item.get_ref(), span, path) || contains(&item.span(), span) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// Extends `path` to the deepest value whose span is exactly `span` (a table header).
fn locate_exact(table: &DeTable<'_>, span: &Range<usize>, path: &mut Vec<Seg>) -> bool {
    for (key, value) in table.iter() {
        path.push(Seg::Key(key.get_ref().to_string()));
        if let DeValue::Table(inner) = value.get_ref()
            && locate_exact(inner, span, path)
        {
            return true;
        }
        if value.span() == *span {
            return true;
        }
        path.pop();
    }
    false
}

/// The span of the value at `path`, if the document has it.
fn span_of(table: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(first) = first else {
        return None;
    };
    let (_, mut value) = table.iter().find(|(key, _)| key.get_ref() == first)?;
    for seg in rest {
        value = match (seg, value.get_ref()) {
            (Seg::Key(key), DeValue::Table(inner)) => {
                inner.iter().find(|(k, _)| k.get_ref() == key)?.1
            }
            (Seg::Index(index), DeValue::Array(items)) => items.get(*index)?,
            _ => return None,
        };
    }
    Some(value.span())
}

/// The 1-based line holding byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    text.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

/// Best guess at the field a syntax error at byte `offset` is in: the key on the broken
/// line (or on the nearest line above, inside a multi-line value), under the nearest table
/// header above.
fn field_from_lines(text: &str, offset: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return "(document)".to_owned();
    }
    let last = (line_of(text, offset) - 1).min(lines.len() - 1);
    let mut key: Option<&str> = None;
    let mut header: Option<&str> = None;
    for line in lines.iter().take(last + 1).rev() {
        let line = line.trim();
        if line.starts_with('[') {
            let name = line.trim_start_matches('[');
            let name = name.split(']').next().unwrap_or(name);
            header = Some(name.trim());
            break;
        }
        if key.is_none()
            && let Some((candidate, _)) = line.split_once('=')
        {
            let candidate = candidate.trim();
            let key_like = !candidate.is_empty()
                && candidate.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '"' | '\'' | ' ')
                });
            if key_like {
                key = Some(candidate);
            }
        }
    }
    let parts: Vec<&str> = header
        .into_iter()
        .chain(key)
        .flat_map(|part| part.split('.'))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        "(document)".to_owned()
    } else {
        parts.join(".")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
[board]
name = "test-board"
description = "A test board"

[target]
triple = "aarch64-unknown-linux-gnu"
cpu = "cortex-a72"
cpu_features = ["neon", "crc"]

[model]
channels = 1
height = 28
width = 28
max_macs_per_frame = 20_000_000
weights = "int8"

[threshold]
policy = "false_reject_rate"
target_false_reject_rate = 0.01

[memory]
budget_kib = 2048

[notes]
model = "made in a test"
"#;

    const SOURCE: &str = "configs/test-board.toml";

    /// `VALID` with the first occurrence of `from` replaced by `to`.
    fn with(from: &str, to: &str) -> String {
        assert!(VALID.contains(from), "{from:?} not in VALID");
        VALID.replacen(from, to, 1)
    }

    fn fail(text: &str) -> BoardConfigError {
        match BoardConfig::from_toml_str(text, SOURCE) {
            Ok(config) => panic!("expected an error, got {config:?}"),
            Err(err) => err,
        }
    }

    /// Asserts `text` fails on `field` with `kind`, and that the message contains `needle`
    /// and the display names the source and the field.
    fn assert_err(text: &str, kind: BoardConfigErrorKind, field: &str, needle: &str) {
        let err = fail(text);
        let shown = err.to_string();
        assert_eq!(err.kind(), kind, "{shown}");
        assert_eq!(err.field(), Some(field), "{shown}");
        assert_eq!(err.source_name(), SOURCE);
        assert!(
            shown.starts_with(&format!("{SOURCE}: field '{field}': ")),
            "{shown}"
        );
        assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
    }

    fn invalid(text: &str, field: &str, needle: &str) {
        assert_err(text, BoardConfigErrorKind::Invalid, field, needle);
    }

    fn schema(text: &str, field: &str, needle: &str) {
        assert_err(text, BoardConfigErrorKind::Schema, field, needle);
    }

    #[test]
    fn valid_config_parses() {
        let config = BoardConfig::from_toml_str(VALID, SOURCE).unwrap();
        assert_eq!(config.board.name, "test-board");
        assert_eq!(config.target.triple, TargetTriple::Aarch64UnknownLinuxGnu);
        assert_eq!(config.target.triple.arch(), Arch::Aarch64);
        assert_eq!(config.model.input_len(), 784);
        assert_eq!(config.model.weights, WeightFormat::Int8);
        assert_eq!(
            config.threshold,
            ThresholdPolicy::FalseRejectRate {
                target_false_reject_rate: 0.01
            }
        );
        assert_eq!(config.threshold.name(), "false_reject_rate");
        assert_eq!(config.memory.bytes(), 2048 * 1024);
        assert_eq!(
            config.target.rustflags(),
            [
                "-C",
                "target-cpu=cortex-a72",
                "-C",
                "target-feature=+neon,+crc"
            ]
        );
        config.validate(SOURCE).unwrap();
    }

    #[test]
    fn round_trips_through_toml() {
        let config = BoardConfig::from_toml_str(VALID, SOURCE).unwrap();
        let text = toml::to_string(&config).unwrap();
        assert_eq!(BoardConfig::from_toml_str(&text, SOURCE).unwrap(), config);
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let text =
            with("cpu = \"cortex-a72\"\n", "").replace("[notes]\nmodel = \"made in a test\"\n", "");
        let config = BoardConfig::from_toml_str(&text, SOURCE).unwrap();
        assert_eq!(config.target.cpu, None);
        assert_eq!(config.notes, None);
    }

    #[test]
    fn fixed_bits_per_dim_policy() {
        let text = with(
            "policy = \"false_reject_rate\"\ntarget_false_reject_rate = 0.01",
            "policy = \"fixed_bits_per_dim\"\nmax_bits_per_dim = 5.5",
        );
        let config = BoardConfig::from_toml_str(&text, SOURCE).unwrap();
        assert_eq!(
            config.threshold,
            ThresholdPolicy::FixedBitsPerDim {
                max_bits_per_dim: 5.5
            }
        );
        let high = text.replace("= 5.5", "= 8.5");
        invalid(
            &high,
            "threshold.max_bits_per_dim",
            "must be in (0, 8], got 8.5",
        );
        let zero = text.replace("= 5.5", "= 0.0");
        invalid(&zero, "threshold.max_bits_per_dim", "got 0");
    }

    #[test]
    fn board_name_rule() {
        for bad in ["", "Pi4", "pi_4", "-pi", "pi-", "pi 4"] {
            let text = with("name = \"test-board\"", &format!("name = {bad:?}"));
            invalid(&text, "board.name", "lowercase ASCII");
        }
        let long = "a".repeat(65);
        invalid(
            &with("name = \"test-board\"", &format!("name = {long:?}")),
            "board.name",
            "1 to 64",
        );
    }

    #[test]
    fn description_must_not_be_empty() {
        invalid(
            &with("description = \"A test board\"", "description = \"  \""),
            "board.description",
            "must not be empty",
        );
    }

    #[test]
    fn accepts_every_known_triple() {
        for triple in TargetTriple::ALL {
            let text = with(
                "triple = \"aarch64-unknown-linux-gnu\"\ncpu = \"cortex-a72\"\ncpu_features = [\"neon\", \"crc\"]",
                &format!("triple = \"{triple}\"\ncpu_features = []"),
            );
            let config = BoardConfig::from_toml_str(&text, SOURCE).unwrap();
            assert_eq!(config.target.triple, triple);
        }
        assert!(TargetTriple::Armv7UnknownLinuxGnueabihf.has_std());
        assert!(!TargetTriple::Thumbv7emNoneEabihf.has_std());
    }

    #[test]
    fn rejects_unknown_triple() {
        let text = with("aarch64-unknown-linux-gnu", "riscv64gc-unknown-linux-gnu");
        schema(&text, "target.triple", "riscv64gc-unknown-linux-gnu");
        let shown = fail(&text).to_string();
        assert!(shown.contains("armv7-unknown-linux-gnueabihf"), "{shown}");
        assert_eq!(fail(&text).line(), Some(7));
    }

    #[test]
    fn cpu_must_match_the_triple() {
        invalid(
            &with("cpu = \"cortex-a72\"", "cpu = \"cortex-m4\""),
            "target.cpu",
            "unknown CPU \"cortex-m4\" for aarch64-unknown-linux-gnu",
        );
        let x86 = with("aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu")
            .replace("cortex-a72", "x86-64-v3")
            .replace("[\"neon\", \"crc\"]", "[\"avx2\", \"fma\"]");
        BoardConfig::from_toml_str(&x86, SOURCE).unwrap();
    }

    #[test]
    fn cpu_features_must_match_the_triple() {
        invalid(
            &with("[\"neon\", \"crc\"]", "[\"neon\", \"avx2\"]"),
            "target.cpu_features[1]",
            "\"avx2\" is a target feature of x86_64, not of aarch64",
        );
        let x86 = with("aarch64-unknown-linux-gnu", "x86_64-unknown-linux-gnu")
            .replace("cpu = \"cortex-a72\"\n", "");
        invalid(
            &x86,
            "target.cpu_features[0]",
            "\"neon\" is a target feature of aarch64 and arm, not of x86_64",
        );
        let armv7 = with("aarch64-unknown-linux-gnu", "armv7-unknown-linux-gnueabihf");
        BoardConfig::from_toml_str(&armv7, SOURCE).unwrap();
        let cortex_m = with("aarch64-unknown-linux-gnu", "thumbv7em-none-eabihf")
            .replace("cortex-a72", "cortex-m4");
        invalid(
            &cortex_m,
            "target.cpu_features[0]",
            "\"neon\" is not available on thumbv7em-none-eabihf",
        );
        invalid(
            &with("[\"neon\", \"crc\"]", "[\"neon\", \"warp-drive\"]"),
            "target.cpu_features[1]",
            "not a known Rust target feature of aarch64",
        );
        invalid(
            &with("[\"neon\", \"crc\"]", "[\"neon\", \"crc\", \"neon\"]"),
            "target.cpu_features[2]",
            "listed twice",
        );
        // Not a CPU capability, although rustc accepts it as a target feature.
        invalid(
            &with("[\"neon\", \"crc\"]", "[\"crt-static\"]"),
            "target.cpu_features[0]",
            "crt-static",
        );
    }

    #[test]
    fn channels_rule() {
        for bad in [0, 2, 4] {
            invalid(
                &with("channels = 1", &format!("channels = {bad}")),
                "model.channels",
                &format!("must be 1 (gray) or 3 (RGB), got {bad}"),
            );
        }
        BoardConfig::from_toml_str(&with("channels = 1", "channels = 3"), SOURCE).unwrap();
    }

    #[test]
    fn input_size_rule() {
        for (from, field) in [
            ("height = 28", "model.height"),
            ("width = 28", "model.width"),
        ] {
            let key = from.split(' ').next().unwrap();
            invalid(
                &with(from, &format!("{key} = 0")),
                field,
                "must be in 1..=4096, got 0",
            );
            invalid(&with(from, &format!("{key} = 4097")), field, "got 4097");
            // 4096 x 28 f32 still fits 2 MiB, so only the side rule is exercised.
            BoardConfig::from_toml_str(&with(from, &format!("{key} = 4096")), SOURCE).unwrap();
        }
    }

    #[test]
    fn macs_rule() {
        invalid(
            &with("max_macs_per_frame = 20_000_000", "max_macs_per_frame = 0"),
            "model.max_macs_per_frame",
            "at least one per input value (1x28x28 = 784), got 0",
        );
        BoardConfig::from_toml_str(
            &with(
                "max_macs_per_frame = 20_000_000",
                "max_macs_per_frame = 784",
            ),
            SOURCE,
        )
        .unwrap();
    }

    #[test]
    fn false_reject_rate_rule() {
        for bad in ["0.0", "0.5", "0.7", "-0.1", "nan", "inf", "1"] {
            let text = with(
                "target_false_reject_rate = 0.01",
                &format!("target_false_reject_rate = {bad}"),
            );
            invalid(
                &text,
                "threshold.target_false_reject_rate",
                "must be in (0, 0.5), got",
            );
        }
        let err = fail(&with(
            "target_false_reject_rate = 0.01",
            "target_false_reject_rate = 0.7",
        ));
        assert_eq!(
            err.to_string(),
            "configs/test-board.toml: field 'threshold.target_false_reject_rate': \
             must be in (0, 0.5), got 0.7 (line 20)"
        );
        assert_eq!(err.line(), Some(20));
    }

    #[test]
    fn threshold_policy_fields_must_match_the_policy() {
        schema(
            &with("target_false_reject_rate = 0.01", "max_bits_per_dim = 4.0"),
            "threshold.target_false_reject_rate",
            "missing field `target_false_reject_rate`",
        );
        schema(
            &with(
                "target_false_reject_rate = 0.01",
                "target_false_reject_rate = 0.01\nmax_bits_per_dim = 4.0",
            ),
            "threshold.max_bits_per_dim",
            "not used by policy \"false_reject_rate\"",
        );
        schema(
            &with("policy = \"false_reject_rate\"", "policy = \"percentile\""),
            "threshold.policy",
            "unknown variant `percentile`",
        );
        schema(
            &with("policy = \"false_reject_rate\"\n", ""),
            "threshold.policy",
            "missing field `policy`",
        );
        schema(
            &with(
                "target_false_reject_rate = 0.01",
                "target_false_reject_rate = \"1%\"",
            ),
            "threshold.target_false_reject_rate",
            "invalid type: string",
        );
    }

    #[test]
    fn memory_budget_rule() {
        invalid(
            &with("budget_kib = 2048", "budget_kib = 0"),
            "memory.budget_kib",
            "must be in 1..=1048576",
        );
        invalid(
            &with("budget_kib = 2048", "budget_kib = 2000000"),
            "memory.budget_kib",
            "got 2000000",
        );
        // 1x28x28 f32 = 3136 bytes: 3 KiB is too little, 4 KiB enough.
        invalid(
            &with("budget_kib = 2048", "budget_kib = 3"),
            "memory.budget_kib",
            "cannot hold one 1x28x28 input frame as f32 (3136 bytes)",
        );
        BoardConfig::from_toml_str(&with("budget_kib = 2048", "budget_kib = 4"), SOURCE).unwrap();
    }

    #[test]
    fn notes_must_not_be_blank() {
        invalid(
            &with("model = \"made in a test\"", "model = \"\""),
            "notes.model",
            "must not be blank",
        );
        schema(
            &with("model = \"made in a test\"", "author = \"me\""),
            "notes.author",
            "unknown field `author`",
        );
    }

    #[test]
    fn unknown_fields_are_named() {
        schema(
            &with("height = 28", "height = 28\ndepth = 3"),
            "model.depth",
            "unknown field `depth`",
        );
        schema(
            &format!("{VALID}\n[runtime]\nthreads = 2\n"),
            "runtime",
            "unknown field `runtime`",
        );
        // Top-level keys come before the first table header.
        let inline = format!(
            "memory = {{ budget_kib = 2048, swap = true }}\n{}",
            with("[memory]\nbudget_kib = 2048\n", "")
        );
        schema(&inline, "memory.swap", "unknown field `swap`");
    }

    #[test]
    fn missing_fields_are_named() {
        schema(
            &with("width = 28\n", ""),
            "model.width",
            "missing field `width`",
        );
        schema(
            &with("[memory]\nbudget_kib = 2048\n", ""),
            "memory",
            "missing field `memory`",
        );
        let inline = format!(
            "model = {{ channels = 1, height = 28, max_macs_per_frame = 784, weights = \"f32\" }}\n{}",
            with(
                "[model]\nchannels = 1\nheight = 28\nwidth = 28\nmax_macs_per_frame = 20_000_000\nweights = \"int8\"\n",
                ""
            )
        );
        schema(&inline, "model.width", "missing field `width`");
        schema(
            &with("cpu_features = [\"neon\", \"crc\"]\n", ""),
            "target.cpu_features",
            "missing field `cpu_features`",
        );
    }

    #[test]
    fn wrong_types_are_named() {
        schema(
            &with("height = 28", "height = \"28\""),
            "model.height",
            "invalid type: string \"28\", expected u32",
        );
        schema(
            &with("channels = 1", "channels = -1"),
            "model.channels",
            "expected u32",
        );
        schema(
            &with("[\"neon\", \"crc\"]", "[\"neon\", 3]"),
            "target.cpu_features[1]",
            "invalid type: integer `3`",
        );
        schema(
            &with("weights = \"int8\"", "weights = \"int4\""),
            "model.weights",
            "unknown variant `int4`",
        );
        let err = fail(&with("height = 28", "height = \"28\""));
        assert_eq!(err.line(), Some(13));
    }

    #[test]
    fn duplicate_keys_are_named() {
        let text = with("height = 28", "height = 28\nheight = 29");
        let err = fail(&text);
        assert_eq!(err.kind(), BoardConfigErrorKind::Syntax, "{err}");
        assert_eq!(err.field(), Some("model.height"), "{err}");
        assert_eq!(err.line(), Some(14));
    }

    #[test]
    fn syntax_errors_name_the_nearest_key() {
        let err = fail(&with(
            "description = \"A test board\"",
            "description = \"A test board",
        ));
        assert_eq!(err.kind(), BoardConfigErrorKind::Syntax, "{err}");
        assert_eq!(err.field(), Some("board.description"), "{err}");
        assert_eq!(err.line(), Some(4));
        assert!(
            err.to_string()
                .starts_with(&format!("{SOURCE}: field 'board.description': "))
        );

        let err = fail(&with("[model]", "[model"));
        assert_eq!(err.kind(), BoardConfigErrorKind::Syntax, "{err}");
        assert_eq!(err.field(), Some("model"), "{err}");

        let err = fail(&with("[\"neon\", \"crc\"]", "[\"neon\",\n  \"crc\",,\n]"));
        assert_eq!(err.field(), Some("target.cpu_features"), "{err}");

        let err = fail("= 3\n");
        assert_eq!(err.field(), Some("(document)"), "{err}");
    }

    #[test]
    fn name_must_match_file_stem() {
        let dir = std::env::temp_dir().join(format!("flowgate-board-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("test-board.toml");
        let bad = dir.join("other-board.toml");
        std::fs::write(&good, VALID).unwrap();
        assert_eq!(BoardConfig::load(&good).unwrap().board.name, "test-board");
        let boards = BoardConfig::load_all(&dir).unwrap();
        assert_eq!(boards.len(), 1);
        assert_eq!(boards[0].0, good);
        std::fs::write(&bad, VALID).unwrap();
        let err = BoardConfig::load(&bad).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.field(), Some("board.name"));
        assert!(
            shown.starts_with(&format!("{}: field 'board.name': ", bad.display())),
            "{shown}"
        );
        assert!(
            shown.contains("must equal the file name stem \"other-board\""),
            "{shown}"
        );
        assert!(BoardConfig::load_all(&dir).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn io_errors_name_the_file() {
        let missing = std::env::temp_dir().join("flowgate-no-such-dir/none.toml");
        let err = BoardConfig::load(&missing).unwrap_err();
        assert_eq!(err.kind(), BoardConfigErrorKind::Io);
        assert_eq!(err.field(), None);
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read file: ", missing.display()))
        );
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn fits_checks_the_budget() {
        let config = BoardConfig::from_toml_str(VALID, SOURCE).unwrap();
        let budget = 2048 * 1024;
        config.fits(budget - 1000, 1000).unwrap();
        config.fits(0, 0).unwrap();
        let err = config.fits(budget, 1).unwrap_err();
        assert_eq!(err.budget_kib, 2048);
        assert_eq!(
            err.to_string(),
            "board 'test-board': field 'memory.budget_kib': model blob 2097152 B + scratch 1 B \
             = 2097153 B exceeds the budget of 2048 KiB (2097152 B) by 1 B"
        );
        // No overflow on absurd sizes.
        assert!(config.fits(usize::MAX, usize::MAX).is_err());
    }

    #[test]
    fn field_paths_render() {
        let path = [
            Seg::Key("target".into()),
            Seg::Key("cpu_features".into()),
            Seg::Index(2),
        ];
        assert_eq!(render_path(&path), "target.cpu_features[2]");
        assert_eq!(render_path(&[Seg::Key("a.b".into())]), "\"a.b\"");
        assert_eq!(render_path(&[]), "(document)");
    }
}
