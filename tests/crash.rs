//! Fault injection (DESIGN.md §2, "Every write is crash-safe"): an import
//! and a reset are aborted, as by `kill -9`, at each of their crash points in
//! turn (`KEYTURN_CRASH_AT=N`, debug builds). After every crash the store
//! still loads with either the old or the new key, no file is torn, and the
//! same command run again finishes the change with nothing lost.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests

mod common;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sha2::{Digest, Sha256};

use common::{copy_dir, text};

const DEFAULT_COM_FINGERPRINT: &str = "565A-7B86-D266-00B6";
/// No command has anywhere near this many crash points.
const MAX_POINTS: u32 = 64;

fn keyturn(home: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("keyturn"));
    cmd.env_remove("KEYTURN_HOME")
        .env_remove("KEYTURN_TEST_PANIC")
        .env_remove("KEYTURN_CRASH_AT")
        .env_remove("KEYTURN_TEST_HOLD_LOCK_MS")
        .env_remove("KEYTURN_LOCK_WAIT_MS")
        .arg("--home")
        .arg(home);
    cmd
}

fn run(home: &Path, args: &[&str], stdin: &str) -> Output {
    keyturn(home).args(args).write_stdin(stdin.to_string()).output().expect("keyturn runs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A key's 32 bytes, from its text form `kt1:xxx:` + base64(key || checksum).
fn raw_of(key_text: &str) -> Vec<u8> {
    let body = STANDARD_NO_PAD.decode(&key_text[8..]).expect("key body is base64");
    body[..32].to_vec()
}

/// The built-in default communication key's bytes (src/keys.rs,
/// `Key::default_for`): SHA-256 of a fixed label and the kind's tag.
fn default_com_raw() -> Vec<u8> {
    Sha256::new().chain_update(b"keyturn built-in default key v1\0").chain_update(b"com").finalize().to_vec()
}

fn generate(home: &Path, kind: &str) -> (String, String) {
    let out = run(home, &["generate", kind], "");
    assert_eq!(out.status.code(), Some(0), "generate: {}", text(&out.stderr));
    let stderr = text(&out.stderr);
    let fingerprint = stderr
        .split("fingerprint ")
        .nth(1)
        .and_then(|rest| rest.get(..19))
        .unwrap_or_else(|| panic!("generate names the fingerprint: {stderr}"))
        .to_string();
    (text(&out.stdout).trim_end().to_string(), fingerprint)
}

fn status_json(home: &Path) -> serde_json::Value {
    let out = run(home, &["status", "--json"], "");
    assert_eq!(out.status.code(), Some(0), "status --json loads the store: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --json is JSON")
}

fn active(status: &serde_json::Value, kind: &str) -> String {
    status["keys"][kind]["fingerprint"].as_str().expect("fingerprint").to_string()
}

fn retired(status: &serde_json::Value, kind: &str) -> Vec<String> {
    status["keys"][kind]["retired"]
        .as_array()
        .expect("retired is a list")
        .iter()
        .map(|r| r["fingerprint"].as_str().expect("fingerprint").to_string())
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Temporary files left by a crash, anywhere in the home.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".keyturn-")) {
            found.push(path);
        }
    }
    found
}

/// A home with custom keys of both kinds, each published, and a token
/// sealed under the encryption key.
struct Fixture {
    _dir: tempfile::TempDir,
    home: PathBuf,
    enc_a: (String, String),
    enc_b: (String, String),
    com_c: (String, String),
    token: String,
    value: String,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("pub")).expect("mkdir home/pub");
    let config = "# crash test\n\
        [[publish]]\nkind = \"encryption\"\npath = \"pub/enc.key\"\nencoding = \"text\"\n\n\
        [[publish]]\nkind = \"communication\"\npath = \"pub/com.key\"\nencoding = \"hex\"\n";
    fs::write(home.join("keyturn.toml"), config).expect("write keyturn.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(home.join("keyturn.toml"), fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let enc_a = generate(&home, "encryption");
    let enc_b = generate(&home, "encryption");
    let com_c = generate(&home, "communication");
    for (kind, key) in [("encryption", &enc_a.0), ("communication", &com_c.0)] {
        let out = run(&home, &["import", kind], &format!("{key}\n"));
        assert_eq!(out.status.code(), Some(0), "import {kind}: {}", text(&out.stderr));
    }
    let value = "Password=crash-test secret; value".to_string();
    let out = run(&home, &["encrypt"], &format!("{value}\n"));
    assert_eq!(out.status.code(), Some(0), "encrypt: {}", text(&out.stderr));
    let token = text(&out.stdout).trim_end().to_string();
    Fixture { _dir: dir, home, enc_a, enc_b, com_c, token, value }
}

/// One command under test: what it changes, from what to what.
struct Scenario<'a> {
    name: &'a str,
    args: &'a [&'a str],
    stdin: String,
    kind: &'a str,
    /// Fingerprints of the active key before and after.
    old_fp: String,
    new_fp: String,
    /// The published file's content before and after.
    published: &'a str,
    old_published: Vec<u8>,
    new_published: Vec<u8>,
    /// The other kind, which must not move.
    other_kind: &'a str,
    other_fp: String,
}

fn decrypts(home: &Path, fx: &Fixture, when: &str) {
    let out = run(home, &["decrypt"], &format!("{}\n", fx.token));
    assert_eq!(out.status.code(), Some(0), "{when}: the token sealed under A decrypts: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), fx.value, "{when}: the token opens to its value");
}

/// Checks a home that a run of the scenario may have left half-way: the
/// store loads with the old or the new key and nothing is torn. Returns the
/// number of temporary files left over.
fn check_consistent(home: &Path, fx: &Fixture, sc: &Scenario, keys_before: &[u8], when: &str) -> usize {
    let status = status_json(home);
    let fp = active(&status, sc.kind);
    assert!(fp == sc.old_fp || fp == sc.new_fp, "{when}: the active {} key is {fp}, neither old nor new", sc.kind);
    assert_eq!(active(&status, sc.other_kind), sc.other_fp, "{when}: the {} key did not move", sc.other_kind);
    let keys = fs::read(home.join("keys.toml")).expect("keys.toml");
    if keys != keys_before {
        // A new keys file is whole: the store loaded it, and it says the new key.
        assert_eq!(fp, sc.new_fp, "{when}: keys.toml changed but the old key is active");
        assert!(keys.ends_with(b"# end of file\n"), "{when}: keys.toml ends with its end line");
    }
    #[cfg(unix)]
    assert_eq!(mode(&home.join("keys.toml")), 0o600, "{when}: keys.toml stays owner-only");
    let published = fs::read(home.join(sc.published)).expect("published file");
    assert!(
        published == sc.old_published || published == sc.new_published,
        "{when}: {} holds neither the old nor the new key ({} bytes)",
        sc.published,
        published.len()
    );
    let audit = fs::read_to_string(home.join("audit.log")).expect("audit.log");
    for line in audit.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("{when}: audit.log has a torn line ({e}): {line}"));
    }
    let temps = temp_files(home);
    #[cfg(unix)]
    for temp in &temps {
        // A leftover may hold key material: it must be owner-only.
        assert_eq!(mode(temp), 0o600, "{when}: leftover {} is owner-only", temp.display());
    }
    decrypts(home, fx, when);
    temps.len()
}

/// Runs the scenario with a crash at each point in turn; returns how many
/// crash points it has.
fn sweep(fx: &Fixture, sc: &Scenario) -> u32 {
    let keys_before = fs::read(fx.home.join("keys.toml")).expect("keys.toml");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let mut leftovers = 0;
    for n in 1..=MAX_POINTS {
        let copy = scratch.path().join(format!("home-{n}"));
        copy_dir(&fx.home, &copy);
        let when = format!("{} crashed at point {n}", sc.name);
        let out = keyturn(&copy)
            .args(sc.args)
            .env("KEYTURN_CRASH_AT", n.to_string())
            // Keeps any core file out of the test's working directory.
            .current_dir(scratch.path())
            .write_stdin(sc.stdin.clone())
            .output()
            .expect("keyturn runs");
        let stderr = text(&out.stderr);
        if out.status.code() == Some(0) {
            // Fewer than n points: this run went through; check its result.
            assert!(!stderr.contains("crash injected"), "{}: exit 0 after a crash message: {stderr}", sc.name);
            let points = n - 1;
            check_consistent(&copy, fx, sc, &keys_before, &format!("{} without a crash", sc.name));
            check_finished(&copy, fx, sc, &format!("{} without a crash", sc.name));
            eprintln!(
                "{}: {points} crash points, each crashed, checked and rerun; {leftovers} leftover temporary files",
                sc.name
            );
            return points;
        }
        assert_eq!(out.status.code(), None, "{when}: expected an abort, got {:?}: {stderr}", out.status);
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(out.status.signal(), Some(6), "{when}: aborted (SIGABRT): {stderr}");
        }
        assert!(stderr.contains(&format!("crash injected at point {n} ")), "{when}: the crash point said so: {stderr}");
        leftovers += check_consistent(&copy, fx, sc, &keys_before, &when);

        // Running the same command again finishes the change.
        let rerun = keyturn(&copy).args(sc.args).write_stdin(sc.stdin.clone()).output().expect("keyturn runs");
        assert_eq!(rerun.status.code(), Some(0), "{when}, rerun: {}", text(&rerun.stderr));
        check_consistent(&copy, fx, sc, &keys_before, &format!("{when}, after the rerun"));
        check_finished(&copy, fx, sc, &format!("{when}, after the rerun"));
        fs::remove_dir_all(&copy).expect("remove the copy");
    }
    panic!("{}: still crashing at point {MAX_POINTS}", sc.name);
}

/// The change is complete: new key active and published, nothing lost.
fn check_finished(home: &Path, fx: &Fixture, sc: &Scenario, when: &str) {
    let status = status_json(home);
    assert_eq!(active(&status, sc.kind), sc.new_fp, "{when}: the new {} key is active", sc.kind);
    assert_eq!(
        fs::read(home.join(sc.published)).expect("published"),
        sc.new_published,
        "{when}: {} holds the new key",
        sc.published
    );
    #[cfg(unix)]
    assert_eq!(mode(&home.join(sc.published)), 0o600, "{when}: the published key is owner-only");
    if sc.kind == "encryption" {
        assert_eq!(retired(&status, "encryption"), vec![fx.enc_a.1.clone()], "{when}: A is retired, once");
    } else {
        assert_eq!(status["keys"]["communication"]["loaded"], "default", "{when}: the default is loaded");
        assert!(retired(&status, "communication").is_empty(), "{when}: no communication key is kept");
        assert_eq!(retired(&status, "encryption"), Vec::<String>::new(), "{when}: the encryption ring did not change");
    }
    decrypts(home, fx, when);
}

#[test]
fn import_encryption_survives_a_crash_at_every_point() {
    let fx = fixture();
    let text_file = |key: &str| format!("{key}\n").into_bytes();
    let sc = Scenario {
        name: "import encryption",
        args: &["import", "encryption"],
        stdin: format!("{}\n", fx.enc_b.0),
        kind: "encryption",
        old_fp: fx.enc_a.1.clone(),
        new_fp: fx.enc_b.1.clone(),
        published: "pub/enc.key",
        old_published: text_file(&fx.enc_a.0),
        new_published: text_file(&fx.enc_b.0),
        other_kind: "communication",
        other_fp: fx.com_c.1.clone(),
    };
    assert_eq!(fs::read(fx.home.join(sc.published)).expect("published"), sc.old_published, "fixture publishes A");
    let points = sweep(&fx, &sc);
    assert!(points >= 3, "import has at least 3 crash points (temp written, renamed, keys written); found {points}");
}

#[test]
fn reset_communication_survives_a_crash_at_every_point() {
    let fx = fixture();
    let hex_file = |raw: &[u8]| format!("{}\n", hex(raw)).into_bytes();
    let sc = Scenario {
        name: "reset communication",
        args: &["reset", "communication"],
        stdin: String::new(),
        kind: "communication",
        old_fp: fx.com_c.1.clone(),
        new_fp: DEFAULT_COM_FINGERPRINT.to_string(),
        published: "pub/com.key",
        old_published: hex_file(&raw_of(&fx.com_c.0)),
        new_published: hex_file(&default_com_raw()),
        other_kind: "encryption",
        other_fp: fx.enc_a.1.clone(),
    };
    assert_eq!(fs::read(fx.home.join(sc.published)).expect("published"), sc.old_published, "fixture publishes C");
    let points = sweep(&fx, &sc);
    assert!(points >= 3, "reset has at least 3 crash points (temp written, renamed, keys written); found {points}");
}

/// A copy of the fixture's home after `args` crashed at the crash point
/// whose label is `label`.
fn crashed_at(fx: &Fixture, scratch: &Path, args: &[&str], stdin: &str, label: &str) -> PathBuf {
    for n in 1..=MAX_POINTS {
        let copy = scratch.join(format!("home-{n}"));
        copy_dir(&fx.home, &copy);
        let out = keyturn(&copy)
            .args(args)
            .env("KEYTURN_CRASH_AT", n.to_string())
            .current_dir(scratch)
            .write_stdin(stdin.to_string())
            .output()
            .expect("keyturn runs");
        assert_ne!(out.status.code(), Some(0), "{args:?} never reached the crash point ({label})");
        if text(&out.stderr).contains(&format!("({label})")) {
            return copy;
        }
    }
    panic!("{args:?} never reached the crash point ({label})");
}

/// The audit log must record a key change even when the run that made it
/// crashed before its audit line; the rerun only says "already active".
#[test]
fn audit_log_records_a_change_interrupted_by_a_crash() {
    let fx = fixture();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let home =
        crashed_at(&fx, scratch.path(), &["import", "encryption"], &format!("{}\n", fx.enc_b.0), "keys file written");
    let rerun = run(&home, &["import", "encryption"], &format!("{}\n", fx.enc_b.0));
    assert_eq!(rerun.status.code(), Some(0), "rerun: {}", text(&rerun.stderr));
    let audit = fs::read_to_string(home.join("audit.log")).expect("audit.log");
    let recorded = audit.lines().any(|line| {
        let v: serde_json::Value = serde_json::from_str(line).expect("audit line is JSON");
        v["kind"] == "encryption" && v["old"] == fx.enc_a.1.as_str() && v["new"] == fx.enc_b.1.as_str()
    });
    assert!(recorded, "no audit line records the change {} -> {}:\n{audit}", fx.enc_a.1, fx.enc_b.1);
}

/// A rerun that finds the key already active but rewrites a published file
/// has changed what components read at start-up: it must say to restart
/// them, not only "nothing changed".
#[test]
fn rerun_that_republishes_says_to_restart_components() {
    let fx = fixture();
    let scratch = tempfile::tempdir().expect("scratch dir");
    let home =
        crashed_at(&fx, scratch.path(), &["import", "encryption"], &format!("{}\n", fx.enc_b.0), "keys file written");
    let rerun = run(&home, &["import", "encryption"], &format!("{}\n", fx.enc_b.0));
    let stderr = text(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "rerun: {stderr}");
    assert!(stderr.contains("enc.key: written."), "the rerun republished the key: {stderr}");
    assert!(stderr.to_lowercase().contains("restart"), "the rerun says components must restart: {stderr}");
}
