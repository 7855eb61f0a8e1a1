//! The writer's lock (DESIGN.md §2): a second writer waits briefly, then is
//! told who holds the lock (exit 4); a lock left by a killed process is free;
//! a writer killed while holding it changes nothing.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;

use common::text;

const DEFAULT_ENC_FINGERPRINT: &str = "BF85-76AA-883D-FC91";

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("keyturn")
}

fn keyturn(home: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_remove("KEYTURN_HOME")
        .env_remove("KEYTURN_TEST_PANIC")
        .env_remove("KEYTURN_CRASH_AT")
        .env_remove("KEYTURN_TEST_HOLD_LOCK_MS")
        .env_remove("KEYTURN_LOCK_WAIT_MS")
        .arg("--home")
        .arg(home);
    cmd
}

/// A new key's text form and fingerprint, from `generate`.
fn generate(home: &Path) -> (String, String) {
    let out = keyturn(home).args(["generate", "encryption"]).output().expect("keyturn runs");
    assert_eq!(out.status.code(), Some(0), "generate: {}", text(&out.stderr));
    let key = text(&out.stdout).trim_end().to_string();
    let stderr = text(&out.stderr);
    let fingerprint = stderr
        .split("fingerprint ")
        .nth(1)
        .and_then(|rest| rest.get(..19))
        .unwrap_or_else(|| panic!("generate names the fingerprint: {stderr}"))
        .to_string();
    (key, fingerprint)
}

fn import(home: &Path, key: &str, wait_ms: u64) -> Output {
    keyturn(home)
        .args(["import", "encryption"])
        .env("KEYTURN_LOCK_WAIT_MS", wait_ms.to_string())
        .write_stdin(format!("{key}\n"))
        .output()
        .expect("keyturn runs")
}

fn status_json(home: &Path) -> serde_json::Value {
    let out = keyturn(home).args(["status", "--json"]).output().expect("keyturn runs");
    assert_eq!(out.status.code(), Some(0), "status --json loads the store: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn retired(status: &serde_json::Value) -> Vec<String> {
    status["keys"]["encryption"]["retired"]
        .as_array()
        .expect("retired is a list")
        .iter()
        .map(|r| r["fingerprint"].as_str().expect("fingerprint").to_string())
        .collect()
}

/// Kills the holder if the test fails before it does, so no 30-second
/// process outlives a failed test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn second_writer_is_told_who_holds_the_lock_and_a_killed_holder_frees_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let (key_a, fp_a) = generate(&home);
    let (key_b, _) = generate(&home);
    let (key_c, fp_c) = generate(&home);
    let out = import(&home, &key_a, 3000);
    assert_eq!(out.status.code(), Some(0), "first import: {}", text(&out.stderr));
    let keys_before = fs::read(home.join("keys.toml")).expect("keys.toml");

    // The holder: takes the lock, then sleeps 30 s holding it.
    let mut child = StdCommand::new(bin())
        .env_remove("KEYTURN_HOME")
        .env_remove("KEYTURN_CRASH_AT")
        .env_remove("KEYTURN_TEST_PANIC")
        .env("KEYTURN_TEST_HOLD_LOCK_MS", "30000")
        .arg("--home")
        .arg(&home)
        .args(["import", "encryption"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the holder");
    let mut stdin = child.stdin.take().expect("holder's stdin");
    stdin.write_all(format!("{key_b}\n").as_bytes()).expect("write the key");
    drop(stdin);
    let pid = child.id();
    let mut holder = KillOnDrop(child);

    let note = format!("pid {pid} ");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = fs::read_to_string(home.join("keyturn.lock")).unwrap_or_default();
        if held.contains(&note) {
            break;
        }
        if let Some(status) = holder.0.try_wait().expect("poll the holder") {
            panic!("the holder exited ({status}) before taking the lock");
        }
        assert!(Instant::now() < deadline, "the holder did not take the lock within 10 s; lock note: {held:?}");
        std::thread::sleep(Duration::from_millis(20));
    }

    // A second writer waits 300 ms, then is told who holds the lock.
    let started = Instant::now();
    let busy = import(&home, &key_c, 300);
    let waited = started.elapsed();
    let stderr = text(&busy.stderr);
    assert_eq!(busy.status.code(), Some(4), "a second writer is busy (exit 4): {stderr}");
    assert!(stderr.contains(&format!("pid {pid}")), "the message names the holder's pid {pid}: {stderr}");
    assert!(waited >= Duration::from_millis(300), "the second writer waited before giving up ({waited:?})");
    assert!(holder.0.try_wait().expect("poll").is_none(), "the holder still holds the lock");

    // kill -9 the holder: nothing it meant to write was written.
    holder.0.kill().expect("SIGKILL the holder");
    let status = holder.0.wait().expect("reap the holder");
    assert_eq!(status.code(), None, "the holder died of a signal, not an exit: {status}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL");
    }
    assert_eq!(fs::read(home.join("keys.toml")).expect("keys.toml"), keys_before, "the killed holder changed nothing");
    let after_kill = status_json(&home);
    assert_eq!(after_kill["keys"]["encryption"]["loaded"], "custom");
    assert_eq!(after_kill["keys"]["encryption"]["fingerprint"], fp_a.as_str(), "key A is still active");
    assert!(retired(&after_kill).is_empty(), "no key was retired: {after_kill}");
    let leftovers: Vec<String> = fs::read_dir(&home)
        .expect("ls home")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "the holder wrote nothing, not even a temporary file: {leftovers:?}");

    // The OS freed the lock with the process: a third writer gets it at once.
    let third = import(&home, &key_c, 2000);
    assert_eq!(third.status.code(), Some(0), "the lock of a killed holder is free: {}", text(&third.stderr));
    let done = status_json(&home);
    assert_eq!(done["keys"]["encryption"]["fingerprint"], fp_c.as_str(), "key C is active");
    assert_eq!(retired(&done), vec![fp_a.clone()], "key A is retired");
    assert_ne!(fp_a, DEFAULT_ENC_FINGERPRINT);
    let note = fs::read_to_string(home.join("keyturn.lock")).expect("lock note");
    assert!(!note.contains(&format!("pid {pid} ")), "the new writer replaced the dead holder's note: {note}");
}
