//! A `flowgate train` killed (SIGKILL) mid-run leaves a run folder whose every file is
//! complete and loadable, and `--resume` from it finishes with the model an uninterrupted run
//! makes, byte for byte (the model file, which holds every weight and batch-norm statistic,
//! and the best weights' record).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use burn::optim::OptimizerRecord;
use flowgate_trainer::config::TrainConfig;
use flowgate_trainer::data;
use flowgate_trainer::training::{self, files};

const STEPS: usize = 40;

/// The run's config: checkpoints every 2 steps, so a kill soon after the first one leaves
/// most of the run to resume.
fn config_text() -> String {
    common::small_realnvp_toml(
        "killed",
        "",
        &format!("steps = {STEPS}\nseed = 11\ncheckpoint_every = 2\nvalidate_every = 3"),
    )
}

/// A fresh temporary folder, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn flowgate(config: &Path, out: &Path, resume: bool) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flowgate"));
    command
        .arg("train")
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(data::default_data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if resume {
        command.arg("--resume");
    }
    command
}

/// Runs flowgate to its end; returns what it said on stderr.
fn run_to_the_end(mut command: Command) -> String {
    let output = command.output().expect("flowgate starts");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "flowgate failed: {stderr}");
    stderr
}

/// Waits until the run has written its first checkpoint, then kills it; returns the
/// checkpoint step it had reached.
fn kill_after_the_first_checkpoint(mut child: Child, run: &Path) -> usize {
    let step_file = run.join(files::CHECKPOINT_STEP);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !step_file.exists() {
        if let Some(status) = child.try_wait().expect("polls") {
            panic!("flowgate ended ({status}) before its first checkpoint");
        }
        assert!(Instant::now() < deadline, "no checkpoint after 300 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaps");
    let text = std::fs::read_to_string(&step_file).expect("the step file");
    text.trim().parse().expect("the step file holds a step")
}

/// Every file of the run folder is complete and loads; hidden `.NAME.*.tmp` files (an atomic
/// write the kill interrupted) are not part of the folder's layout and are skipped.
fn assert_every_file_loads(run: &Path, config: &TrainConfig, step: usize) {
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(run).expect("lists the run") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with('.') && name.ends_with(".tmp") {
            eprintln!("an interrupted write: {name}");
            continue;
        }
        match name.as_str() {
            files::CONFIG => assert_eq!(&TrainConfig::load(&path).expect("loads"), config),
            // The lock holds no data; the kill released it (the resume below takes it).
            files::CHECKPOINT_STEP | files::LOCK => {}
            files::BEST => {
                let text = std::fs::read_to_string(&path).expect("reads");
                let (best_step, objective) = text.trim().split_once(' ').expect("two fields");
                best_step.parse::<usize>().expect("a step");
                assert!(objective.parse::<f64>().expect("a number").is_finite());
            }
            optim if optim.ends_with("-optim.bpk") => {
                OptimizerRecord::load(&path)
                    .unwrap_or_else(|e| panic!("{name} does not load: {e:?}"));
            }
            weights if weights.ends_with(".bpk") => {
                training::load_for_eval(config, &path)
                    .unwrap_or_else(|e| panic!("{name} does not load: {e}"));
            }
            other => panic!("unexpected file {other} in the run folder"),
        }
        checked.push(name);
    }
    for needed in [files::checkpoint_model(step), files::checkpoint_optim(step)] {
        assert!(
            checked.contains(&needed),
            "{needed} is missing: {checked:?}"
        );
    }
    assert!(
        !checked.iter().any(|name| name == files::MODEL),
        "the run finished before the kill"
    );
}

#[test]
fn a_killed_run_leaves_loadable_files_and_resumes_to_the_uninterrupted_model() {
    let scratch = Scratch(
        std::env::temp_dir().join(format!("flowgate-resume-after-kill-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).expect("a scratch folder");
    // One config file for both runs: its path is in the model file's provenance.
    let config_path = scratch.0.join("config.toml");
    let text = config_text();
    std::fs::write(&config_path, &text).expect("writes the config");
    let config = TrainConfig::from_toml(&text, "killed").expect("valid config");
    assert_eq!(config.train.steps, STEPS);

    let killed = scratch.0.join("killed");
    let child = flowgate(&config_path, &killed, false)
        .spawn()
        .expect("flowgate starts");
    let step = kill_after_the_first_checkpoint(child, &killed);
    eprintln!("killed after the checkpoint of step {step} of {STEPS}");
    assert!(step < STEPS);
    assert_every_file_loads(&killed, &config, step);

    let said = run_to_the_end(flowgate(&config_path, &killed, true));
    // It continued from the checkpoint: a fresh start would reach the same model too.
    let resumed_steps = format!("trained {} steps", STEPS - step);
    assert!(said.contains(&resumed_steps), "not resumed: {said}");
    let uninterrupted = scratch.0.join("uninterrupted");
    run_to_the_end(flowgate(&config_path, &uninterrupted, false));
    for file in [files::EXPORTED_MODEL, files::BEST, files::CHECKPOINT_STEP] {
        let resumed = std::fs::read(killed.join(file)).expect("the resumed run's file");
        let whole = std::fs::read(uninterrupted.join(file)).expect("the whole run's file");
        assert!(resumed == whole, "{file} of the resumed run differs");
    }
    // No interrupted write survives a completed run, and only the last checkpoint is kept.
    let names: Vec<String> = std::fs::read_dir(&killed)
        .expect("lists")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    assert!(names.contains(&files::checkpoint_model(STEPS)), "{names:?}");
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("checkpoint-"))
            .count(),
        3,
        "{names:?}"
    );
}
