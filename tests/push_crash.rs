//! A fleet push killed part way resumes to the same end (issue 12): a
//! roster of 50 machines reached through a local command (each machine a
//! home of its own), the push (`rotation run` joining all of them, their
//! answers committed in batches) aborted as by `kill -9` at each of several
//! crash points in turn (debug builds: `KEYTURN_CRASH_AT=N`), then run
//! again. Every run ends where an uninterrupted push ends: every machine
//! step done, every machine on the new key, the disagreement window over
//! all 50, and an audit log with each transition once.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests
#![cfg(unix)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use common::{keyturn, keyturn_bin, path_str, text, toml_argv};

const MACHINES: usize = 50;
/// Crash points tried: the first batch's (answers applied, the temporary
/// written, renamed, audited) and later batches'.
const POINTS: [u32; 10] = [1, 2, 3, 4, 5, 6, 7, 9, 13, 21];

/// Components without a service or process: the restart steps are skipped.
const UNCONFIGURED: &str = "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n";

fn run(home: &Path, args: &[&str], crash_at: Option<u32>) -> Output {
    let mut command = keyturn(home);
    command.args(args).write_stdin("");
    if let Some(n) = crash_at {
        command.env("KEYTURN_CRASH_AT", n.to_string());
    }
    command.output().expect("keyturn runs")
}

fn exits(home: &Path, args: &[&str], code: i32) -> Output {
    let out = run(home, args, None);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", text(&out.stderr));
    out
}

/// A first machine with a roster of 50, its rotation started and at the push.
fn fleet(dir: &Path) -> std::path::PathBuf {
    let first = dir.join("first");
    fs::create_dir_all(&first).expect("mkdir");
    let mut config = format!("{UNCONFIGURED}\n");
    let bin = keyturn_bin();
    for i in 0..MACHINES {
        let home = dir.join(format!("m{i:02}"));
        fs::create_dir_all(&home).expect("mkdir");
        fs::write(home.join("keyturn.toml"), UNCONFIGURED).expect("config");
        // The machines' own keyturn must not inherit the crash point.
        let argv = ["env", "-u", "KEYTURN_CRASH_AT", path_str(&bin), "--home", path_str(&home)];
        config.push_str(&format!(
            "[[machines]]\nname = \"m{i:02}\"\nroles = [\"execution\"]\ncommand = {}\n\n",
            toml_argv(&argv)
        ));
    }
    fs::write(first.join("keyturn.toml"), config).expect("config");
    exits(&first, &["rotation", "start", "communication", "--setup", "multi", "--generate"], 0);
    exits(&first, &["rotation", "run", "--wait", "1"], 3);
    exits(&first, &["rotation", "confirm", "distribute"], 0);
    first
}

fn rotation(home: &Path) -> Value {
    serde_json::from_slice(&exits(home, &["rotation", "status", "--json"], 0).stdout).expect("json")
}

fn fingerprint(home: &Path) -> String {
    text(&exits(home, &["fingerprint", "communication"], 0).stdout).trim().to_string()
}

/// The end of a push: each step's state, and the window's machine count.
fn end(dir: &Path, first: &Path) -> (Vec<(String, String)>, Value) {
    let r = rotation(first);
    let new = fingerprint(first);
    for i in 0..MACHINES {
        assert_eq!(fingerprint(&dir.join(format!("m{i:02}"))), new, "m{i:02} is on the new key");
    }
    // Each transition is in the audit log once, numbered without a gap.
    let audit = fs::read_to_string(first.join("audit.log")).expect("audit log");
    let seqs: Vec<u64> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["rotation"] == r["id"])
        .filter_map(|l| l["seq"].as_u64())
        .collect();
    let unique: BTreeSet<u64> = seqs.iter().copied().collect();
    assert_eq!(seqs.len(), unique.len(), "no audit line twice");
    assert_eq!(unique.into_iter().collect::<Vec<_>>(), (1..=seqs.len() as u64).collect::<Vec<_>>());
    let states = r["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["id"].as_str().unwrap_or("").to_string(), s["state"].as_str().unwrap_or("").to_string()))
        .collect();
    (states, r["window"]["machines"].clone())
}

#[test]
fn a_push_killed_at_several_points_resumes_to_the_same_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = dir.path().join("whole");
    let first = fleet(&whole);
    exits(&first, &["rotation", "run", "--wait", "1"], 3);
    let expected = end(&whole, &first);
    assert_eq!(expected.1, MACHINES, "the window spans every machine");
    assert_eq!(expected.0.iter().filter(|(id, s)| id.starts_with("machine-") && s == "done").count(), MACHINES);

    let mut crashed = 0;
    for n in POINTS {
        let scenario = dir.path().join(format!("crash-{n}"));
        let first = fleet(&scenario);
        let out = run(&first, &["rotation", "run", "--wait", "1", "--parallel", "8"], Some(n));
        let stderr = text(&out.stderr);
        if stderr.contains("crash injected") {
            crashed += 1;
            assert_eq!(out.status.code(), None, "point {n}: killed");
            // Whatever was written before the crash reads.
            rotation(&first);
        } else {
            assert_eq!(out.status.code(), Some(3), "point {n} not reached; the push ends at connect: {stderr}");
        }
        exits(&first, &["rotation", "run", "--wait", "1"], 3);
        assert_eq!(end(&scenario, &first), expected, "point {n}: the resumed push ends as an uninterrupted one");
        fs::remove_dir_all(&scenario).expect("clean");
    }
    assert!(crashed >= 6, "the push was killed at {crashed} points only");
}
