//! Helpers shared by the integration tests (`mod common;` in each file).
//! Not every test binary uses every helper.
#![allow(dead_code)]

use std::fs;
#[cfg(unix)]
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

/// Variables that would change what keyturn does (the debug-only hooks) or
/// make every error slow (a backtrace captured per error).
pub const CLEARED_ENV: [&str; 8] = [
    "KEYTURN_HOME",
    "KEYTURN_TEST_HOLD_AT",
    "KEYTURN_TEST_PANIC",
    "KEYTURN_CRASH_AT",
    "KEYTURN_TEST_HOLD_LOCK_MS",
    "KEYTURN_LOCK_WAIT_MS",
    "RUST_BACKTRACE",
    "RUST_LIB_BACKTRACE",
];

pub fn keyturn_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("keyturn")
}

/// keyturn on `home`, with nothing inherited that could change what it does.
pub fn keyturn(home: &Path) -> Command {
    let mut cmd = Command::new(keyturn_bin());
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--home").arg(home);
    cmd
}

/// Runs keyturn on `home` with `args` and `stdin`.
pub fn run(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    keyturn(home).args(args).write_stdin(stdin.to_vec()).output().expect("keyturn runs")
}

/// Runs keyturn and insists on exit `code`; returns the output.
#[track_caller]
pub fn exits(home: &Path, args: &[&str], stdin: &[u8], code: i32) -> Output {
    let out = run(home, args, stdin);
    assert_eq!(
        out.status.code(),
        Some(code),
        "keyturn --home {} {args:?}: expected exit {code}\nstdout: {}\nstderr: {}",
        home.display(),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `s` as a TOML string.
pub fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `argv` as a TOML array of strings.
pub fn toml_argv(argv: &[&str]) -> String {
    format!("[{}]", argv.iter().map(|a| toml_str(a)).collect::<Vec<_>>().join(", "))
}

/// Every token in `content`.
pub fn tokens_in(content: &str) -> Vec<String> {
    content
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':'))
        .filter(|w| w.starts_with("ktsec:"))
        .map(String::from)
        .collect()
}

#[cfg(unix)]
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Windows has no mode bits: only whether the owner may write is kept (the
/// read-only attribute).
#[cfg(not(unix))]
pub fn set_mode(path: &Path, mode: u32) {
    let mut permissions = fs::metadata(path).expect("metadata").permissions();
    permissions.set_readonly(mode & 0o200 == 0);
    fs::set_permissions(path, permissions).expect("set read-only");
}

pub fn write_mode(path: &Path, bytes: impl AsRef<[u8]>, mode: u32) {
    fs::write(path, bytes).expect("write file");
    set_mode(path, mode);
}

/// A copy of the tree `from` at `to` (which must not exist), directories
/// with their permissions.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir(to).expect("mkdir copy");
    fs::set_permissions(to, fs::metadata(from).expect("metadata").permissions()).expect("chmod copy");
    for entry in fs::read_dir(from).expect("ls") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            // fs::copy keeps the permission bits.
            fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// Step `id` of a `rotation status --json`.
pub fn step<'v>(rotation: &'v Value, id: &str) -> &'v Value {
    rotation["steps"]
        .as_array()
        .expect("steps is a list")
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step {id} in {rotation:#}"))
}

/// A step's state and evidence.
pub fn state(rotation: &Value, id: &str) -> (String, String) {
    let s = step(rotation, id);
    (s["state"].as_str().expect("state").to_string(), s["evidence"].as_str().unwrap_or_default().to_string())
}

/// Asserts a step's state, and that its evidence contains each of `phrases`.
#[track_caller]
pub fn assert_step(rotation: &Value, id: &str, want: &str, phrases: &[&str]) {
    let (got, evidence) = state(rotation, id);
    assert_eq!(got, want, "step {id}: {evidence}");
    for phrase in phrases {
        assert!(evidence.contains(phrase), "step {id} ({got}): evidence {evidence:?} lacks {phrase:?}");
    }
}
