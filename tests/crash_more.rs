//! Fault injection for the writes not covered elsewhere: storing a
//! credential, and another machine's join (a remote import). For every crash
//! point (debug builds: `KEYTURN_CRASH_AT=N` aborts like `kill -9` at the
//! N-th point), the store loads afterwards with nothing lost, and a rerun
//! ends where an uninterrupted run does.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use std::io::Write;

fn keyturn(home: &Path, args: &[&str], input: &str, crash_at: Option<u32>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keyturn"));
    command
        .arg("--home")
        .arg(home)
        .args(args)
        .env_remove("KEYTURN_HOME")
        .env_remove("RUST_BACKTRACE")
        .env_remove("KEYTURN_CRASH_AT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = crash_at {
        command.env("KEYTURN_CRASH_AT", n.to_string());
    }
    let mut child = command.spawn().expect("keyturn runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("input");
    child.wait_with_output().expect("keyturn ends")
}

fn ok(home: &Path, args: &[&str], input: &str) -> String {
    let out = keyturn(home, args, input, None);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn json(home: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&ok(home, args, "")).expect("json")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for entry in fs::read_dir(from).expect("ls") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// Runs `args` with a crash at every point in turn on a fresh copy of
/// `template`, calling `check` after each crash and after each rerun.
/// Returns the number of points.
fn sweep(template: &Path, scratch: &Path, args: &[&str], input: &str, check: &dyn Fn(&Path, &str)) -> u32 {
    for n in 1..100 {
        let home: PathBuf = scratch.join(format!("n{n}"));
        copy_dir(template, &home);
        let out = keyturn(&home, args, input, Some(n));
        let crashed = String::from_utf8_lossy(&out.stderr).contains("crash injected at point");
        if !crashed {
            assert!(out.status.success(), "{args:?} without a crash: {}", String::from_utf8_lossy(&out.stderr));
            check(&home, "uninterrupted");
            return n - 1;
        }
        check(&home, &format!("after a crash at point {n}"));
        let rerun = keyturn(&home, args, input, None);
        assert!(rerun.status.success(), "rerun after point {n}: {}", String::from_utf8_lossy(&rerun.stderr));
        check(&home, &format!("rerun after point {n}"));
    }
    panic!("{args:?} still crashing at point 99");
}

#[test]
fn storing_a_credential_survives_a_crash_at_every_point() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let template = tmp.path().join("template");
    let key = ok(&template, &["generate", "encryption"], "");
    ok(&template, &["import", "encryption"], &key);
    ok(&template, &["credentials", "set", "git", "--user", "old-user"], "old-secret\n");
    let check = |home: &Path, when: &str| {
        let list = json(home, &["credentials", "list", "--json"]);
        let git = &list["credentials"][0];
        assert_eq!(git["name"], "git", "{when}: {list}");
        assert_eq!(git["state"], "current", "{when}: the credential reads under the active key: {list}");
        assert!(["old-user", "new-user"].contains(&git["user"].as_str().unwrap_or_default()), "{when}: {list}");
        let text = fs::read_to_string(home.join("credentials.toml")).expect("credentials.toml");
        assert!(!text.contains("new-secret") && !text.contains("old-secret"), "{when}: a secret in clear");
    };
    let points =
        sweep(&template, tmp.path(), &["credentials", "set", "git", "--user", "new-user"], "new-secret\n", &check);
    eprintln!("credentials set: {points} crash points covered");
    assert!(points >= 2, "the credentials file's write has its points ({points})");
}

#[test]
fn a_remote_join_survives_a_crash_at_every_point() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let template = tmp.path().join("template");
    fs::create_dir_all(&template).expect("mkdir");
    // A machine with no components: the join imports and publishes.
    fs::write(
        template.join("keyturn.toml"),
        "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n\n[[publish]]\nkind = \"communication\"\npath = \"comm.key\"\nencoding = \"hex\"\n",
    )
    .expect("config");
    let old = ok(&template, &["generate", "communication"], "");
    ok(&template, &["import", "communication"], &old);
    let old_fp = ok(&template, &["fingerprint", "communication"], "").trim().to_string();
    let new = ok(&template, &["generate", "communication"], "");
    let scratch = tmp.path().join("fp");
    ok(&scratch, &["import", "communication"], &new);
    let new_fp = ok(&scratch, &["fingerprint", "communication"], "").trim().to_string();
    let check = |home: &Path, when: &str| {
        let status = json(home, &["status", "--json"]);
        let fp = status["keys"]["communication"]["fingerprint"].as_str().unwrap_or_default().to_string();
        assert!(fp == old_fp || fp == new_fp, "{when}: the key is {fp}, neither old nor new");
        if when.starts_with("rerun") || when == "uninterrupted" {
            assert_eq!(fp, new_fp, "{when}: the join ends on the new key");
            let published = fs::read_to_string(home.join("comm.key")).expect("published");
            let file = home.join("comm.key").display().to_string();
            let expected = ok(home, &["fingerprint", "communication", "--file", &file, "--encoding", "hex"], "");
            assert_eq!(
                expected.trim(),
                new_fp,
                "{when}: the published file holds the new key ({} bytes)",
                published.len()
            );
        }
    };
    let points = sweep(&template, tmp.path(), &["rotation", "join", "communication", "--json"], &new, &check);
    eprintln!("rotation join: {points} crash points covered");
    assert!(points >= 4, "the keys file and the published file each have their points ({points})");
}
