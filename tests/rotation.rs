//! Rotations (DESIGN.md sections 4 and 6, issue 4), driven only through the
//! `keyturn` binary and its `rotation` commands:
//!
//! - whole single-machine rotations of both kinds with real processes
//!   standing in for the Test Studio components: a copy of `sleep` under a
//!   name of its own, started by a script that loads the published key file,
//!   and a `check` command (`keyturn fingerprint --file`) that prints the
//!   fingerprint of the key it loaded; the restart steps are checked off from
//!   what the process table and the check command show;
//! - restarts that end waiting: the process does not come back, comes back
//!   with the old key, or is never restarted;
//! - a kill (`KEYTURN_CRASH_AT=N`, debug builds) at every crash point of a
//!   whole rotation, each resumed and finished: the end state and the
//!   rotation's audit lines equal an uninterrupted run's;
//! - the transition table through the CLI (refusals leave `rotation.json`
//!   byte for byte), multiple machines checked off by fingerprint,
//!   configured step commands, abort, and `config check`.
//!
//! Bugs found in `src/` while these were written each have a test of their
//! own; the kill sweeps compare every killed-and-resumed drive with an
//! uninterrupted one exactly.
//!
//! Every run gets its own home through `--home`, with `KEYTURN_HOME`, the
//! debug-only hooks and the backtrace variables removed from its
//! environment. Every stand-in has a process name of its own, and a guard
//! kills it when its test ends, passed or failed.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests
#![cfg(unix)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{
    assert_step, copy_dir, exits, keyturn, keyturn_bin, path_str, step, text, tokens_in, toml_argv, toml_str,
};

// ---------------------------------------------------------------------------
// Running keyturn
// ---------------------------------------------------------------------------

const DEFAULT_COM_FP: &str = "565A-7B86-D266-00B6";
const DEFAULT_ENC_FP: &str = "BF85-76AA-883D-FC91";
/// No command has anywhere near this many crash points.
const MAX_POINTS: u32 = 64;
/// How long a restart step may wait where it is expected to succeed: far
/// more than a stand-in needs, so a loaded machine does not fail a test.
const WAIT_OK: &str = "20";
/// How long a restart step waits where it is expected to end waiting.
const WAIT_SHORT: &str = "2";

fn ok(home: &Path, args: &[&str]) -> Output {
    exits(home, args, b"", 0)
}

// ---------------------------------------------------------------------------
// Keys, status, audit
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Key {
    /// A file holding the key's text (outside any home).
    file: PathBuf,
    fp: String,
}

/// A new key of `kind`, written to `dir/name`.
fn generate(dir: &Path, kind: &str, name: &str) -> Key {
    let scratch = dir.join(".generate-home");
    let out = exits(&scratch, &["generate", kind], b"", 0);
    let stderr = text(&out.stderr);
    let fp = stderr
        .split("fingerprint ")
        .nth(1)
        .and_then(|rest| rest.get(..19))
        .unwrap_or_else(|| panic!("generate names the fingerprint: {stderr}"))
        .to_string();
    let file = dir.join(name);
    fs::write(&file, &out.stdout).expect("write key file");
    Key { file, fp }
}

fn status_json(home: &Path) -> Value {
    serde_json::from_slice(&ok(home, &["status", "--json"]).stdout).expect("status --json is JSON")
}

fn active_fp(home: &Path, kind: &str) -> String {
    status_json(home)["keys"][kind]["fingerprint"].as_str().expect("fingerprint").to_string()
}

/// `rotation status --json`.
fn rotation(home: &Path) -> Value {
    let out = ok(home, &["rotation", "status", "--json"]);
    serde_json::from_slice(&out.stdout).expect("rotation status --json is JSON")
}

fn step_ids(rotation: &Value) -> Vec<String> {
    rotation["steps"].as_array().expect("steps").iter().map(|s| s["id"].as_str().expect("id").to_string()).collect()
}

/// The pids in "(pid 12 -> 34)", "(pid 12)", "(pid 12, 13)" replaced by N,
/// so runs can be compared.
fn normalise(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find("(pid ") {
        let end = rest[at..].find(')').map_or(rest.len(), |e| at + e);
        out.push_str(&rest[..at]);
        let mut in_digits = false;
        for c in rest[at..end].chars() {
            if c.is_ascii_digit() {
                if !in_digits {
                    out.push('N');
                }
                in_digits = true;
            } else {
                out.push(c);
                in_digits = false;
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The rotation's steps as (id, state, evidence), pids normalised.
fn end_state(rotation: &Value) -> Vec<(String, String, String)> {
    rotation["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["id"].as_str().expect("id").to_string(),
                s["state"].as_str().expect("state").to_string(),
                normalise(s["evidence"].as_str().unwrap_or_default()),
            )
        })
        .collect()
}

/// Every audit line, parsed (each must be whole JSON).
fn audit(home: &Path) -> Vec<Value> {
    let log = fs::read_to_string(home.join("audit.log")).unwrap_or_default();
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("audit.log has a torn line ({e}): {line}")))
        .collect()
}

/// The audit lines of rotation `id`: (seq, step, outcome), pids normalised.
fn rotation_audit(home: &Path, id: &str) -> Vec<(u64, String, String)> {
    audit(home)
        .iter()
        .filter(|l| l["event"] == "rotation" && l["rotation"] == id)
        .map(|l| {
            (
                l["seq"].as_u64().expect("seq"),
                l["step"].as_str().unwrap_or("-").to_string(),
                normalise(l["outcome"].as_str().expect("outcome")),
            )
        })
        .collect()
}

/// Checks the rotation's audit lines: numbered 1, 2, 3... with no gap and
/// no repeat, each naming the kind and both fingerprints, no key text.
#[track_caller]
fn assert_audit_complete(home: &Path, rotation: &Value) -> Vec<(u64, String, String)> {
    let id = rotation["id"].as_str().expect("id");
    let lines = rotation_audit(home, id);
    let seqs: Vec<u64> = lines.iter().map(|l| l.0).collect();
    assert_eq!(seqs, (1..=lines.len() as u64).collect::<Vec<_>>(), "audit seqs of {id}: {lines:#?}");
    for l in audit(home).iter().filter(|l| l["rotation"] == id) {
        assert_eq!(l["kind"], rotation["kind"], "{l}");
        assert_eq!(l["old"], rotation["old_fingerprint"], "{l}");
        assert_eq!(l["new"], rotation["new_fingerprint"], "{l}");
    }
    let log = fs::read_to_string(home.join("audit.log")).expect("audit.log");
    assert!(!log.contains("kt1:"), "no key text in the audit log");
    lines
}

/// Runs a command that must be refused with exit `code` and a message
/// containing each of `phrases`, leaving `rotation.json` byte for byte.
#[track_caller]
fn refused(home: &Path, args: &[&str], code: i32, phrases: &[&str]) {
    let before = fs::read(home.join("rotation.json")).ok();
    let out = exits(home, args, b"", code);
    let stderr = text(&out.stderr);
    for phrase in phrases {
        assert!(stderr.contains(phrase), "keyturn {args:?}: stderr lacks {phrase:?}: {stderr}");
    }
    assert_eq!(fs::read(home.join("rotation.json")).ok(), before, "keyturn {args:?} changed rotation.json");
}

// ---------------------------------------------------------------------------
// Stand-in components
// ---------------------------------------------------------------------------

/// A real process standing in for a component: a copy of `sleep` under a
/// name of its own, started by a script that loads the published key file
/// (as the real services read their key at start), with scripts to restart
/// it, to only kill it, and to restart it without re-reading the key. Killed
/// when dropped.
struct StandIn {
    name: String,
    kind: &'static str,
    loaded: PathBuf,
    start: PathBuf,
    restart: PathBuf,
    kill: PathBuf,
    stale: PathBuf,
}

impl StandIn {
    /// A stand-in in `dir` for a component reading the `kind` key published
    /// (base64) at `published`. `tag` (at most 4 characters) makes the name
    /// unique to the test.
    fn new(dir: &Path, tag: &str, kind: &'static str, published: &Path) -> StandIn {
        assert!(tag.len() <= 4, "process names are at most 15 bytes");
        let name = format!("kt-{tag}-{}", std::process::id() % 100_000);
        let dir = dir.join(&name);
        fs::create_dir_all(dir.join("bin")).expect("mkdir stand-in");
        let bin = dir.join("bin").join(&name);
        fs::copy("/bin/sleep", &bin).expect("copy /bin/sleep");
        let loaded = dir.join("loaded.key");
        let script = |file: &str, body: String| {
            let path = dir.join(file);
            fs::write(&path, format!("#!/bin/sh\n{body}")).expect("write script");
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod script");
            path
        };
        // The process is started through a shell of another name that stays
        // its parent and reaps it at once when it is killed, so no zombie of
        // the stand-in's name lingers.
        let start = script(
            "start.sh",
            format!(
                "[ \"$1\" = stale ] || cp -f '{published}' '{loaded}' 2>/dev/null || rm -f '{loaded}'\n\
                 setsid nohup sh -c '\"{bin}\" 300; true' </dev/null >/dev/null 2>&1 &\n\
                 i=0; while ! pgrep -x '{name}' >/dev/null; do i=$((i+1)); [ $i -gt 1000 ] && exit 1; sleep 0.01; done\n",
                published = path_str(published),
                loaded = path_str(&loaded),
                bin = path_str(&bin),
            ),
        );
        let kill = script(
            "kill.sh",
            format!(
                "pkill -x '{name}'\n\
                 i=0; while pgrep -x '{name}' >/dev/null; do i=$((i+1)); [ $i -gt 1000 ] && exit 1; sleep 0.01; done\n"
            ),
        );
        let restart = script("restart.sh", format!("'{}' && exec '{}'\n", path_str(&kill), path_str(&start)));
        let stale = script("stale.sh", format!("'{}' && exec '{}' stale\n", path_str(&kill), path_str(&start)));
        StandIn { name, kind, loaded, start, restart, kill, stale }
    }

    /// Runs one of its scripts, insisting on success.
    fn script(path: &Path, args: &[&str]) {
        let mut tries = 0;
        let out = loop {
            match std::process::Command::new(path).args(args).output() {
                // A script just written can be busy for a moment while
                // another test thread forks (ETXTBSY).
                Err(e) if e.raw_os_error() == Some(26) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => break other.expect("script runs"),
            }
        };
        assert!(out.status.success(), "{}: {}", path.display(), text(&out.stderr));
    }

    /// Starts it (loading the published key) and returns its pid.
    fn launch(&self) -> u32 {
        StandIn::script(&self.start, &[]);
        self.pid()
    }

    fn stop(&self) {
        StandIn::script(&self.kill, &[]);
    }

    fn pids(&self) -> Vec<u32> {
        let out = std::process::Command::new("pgrep").arg("-x").arg(&self.name).output().expect("pgrep runs");
        text(&out.stdout).lines().map(|l| l.trim().parse().expect("pgrep prints pids")).collect()
    }

    /// Its one process.
    fn pid(&self) -> u32 {
        let pids = self.pids();
        assert_eq!(pids.len(), 1, "{} runs once: {pids:?}", self.name);
        pids[0]
    }

    /// What the `check` command prints: the fingerprint of the key loaded.
    fn check_argv(&self) -> Vec<String> {
        [keyturn_bin().to_str().expect("UTF-8 path"), "fingerprint", self.kind, "--file"]
            .into_iter()
            .map(String::from)
            .chain([path_str(&self.loaded).to_string(), "--encoding".into(), "base64".into()])
            .collect()
    }

    /// The fingerprint of the key it loaded at start.
    fn loaded_fp(&self) -> String {
        let out = std::process::Command::new(keyturn_bin())
            .args(self.check_argv().iter().skip(1))
            .env_remove("RUST_BACKTRACE")
            .output()
            .expect("keyturn runs");
        assert!(out.status.success(), "fingerprint of the loaded key: {}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    }

    /// `[components.<id>]` finding it by process name, with `restart` and
    /// `start` scripts (if any) and its check command.
    fn component(&self, id: &str, restart: Option<&Path>, start: Option<&Path>) -> String {
        let argv = self.check_argv();
        let check = toml_argv(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        let mut s = format!("[components.{id}]\nprocess = {}\ncheck = {check}\n", toml_str(&self.name));
        if let Some(r) = restart {
            s.push_str(&format!("restart = {}\n", toml_argv(&[path_str(r)])));
        }
        if let Some(st) = start {
            s.push_str(&format!("start = {}\n", toml_argv(&[path_str(st)])));
        }
        s
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill").args(["-KILL", "-x", &self.name]).output();
    }
}

/// The components that are not configured: empty tables, so their restart
/// steps are skipped as not configured (instead of the Windows defaults).
fn unconfigured(ids: &[&str]) -> String {
    ids.iter().map(|id| format!("[components.{id}]\n")).collect()
}

fn publish(kind: &str, path: &Path) -> String {
    format!("[[publish]]\nkind = \"{kind}\"\npath = {}\nencoding = \"base64\"\n\n", toml_str(path_str(path)))
}

// ---------------------------------------------------------------------------
// A communication rig: a home, its published key and a Scheduling stand-in
// ---------------------------------------------------------------------------

struct Rig {
    // Dropped first: the stand-in is killed before its directory goes.
    svc: StandIn,
    _dir: tempfile::TempDir,
    root: PathBuf,
    home: PathBuf,
    published: PathBuf,
}

/// A home, not configured yet, whose communication key is to be published
/// (base64) at `published`, and a stand-in reading it, not started yet.
fn comm_rig(tag: &str) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().to_path_buf();
    let home = root.join("home");
    fs::create_dir_all(&home).expect("mkdir home");
    let published = root.join("comm.key");
    let svc = StandIn::new(&root, tag, "communication", &published);
    Rig { _dir: dir, root, home, published, svc }
}

impl Rig {
    fn configure(&self, body: &str) {
        fs::write(self.home.join("keyturn.toml"), format!("{}{body}", publish("communication", &self.published)))
            .expect("write keyturn.toml");
    }

    /// Publishes the default communication key (a reset of the active
    /// default only writes the published file).
    fn publish_default(&self) {
        ok(&self.home, &["reset", "communication"]);
        assert!(self.published.exists(), "the default key is published");
    }

    /// The Scheduling stand-in restarted by `restart` (and started by
    /// `start`), the other components not configured.
    fn scheduling(&self, restart: Option<&Path>, start: Option<&Path>) {
        self.configure(&format!(
            "{}{}",
            self.svc.component("scheduling", restart, start),
            unconfigured(&["storage", "execution", "app"])
        ));
    }
}

fn start_comm(home: &Path, key: &Key) -> Value {
    let out = exits(
        home,
        &["rotation", "start", "communication", "--setup", "single", "--file", path_str(&key.file)],
        b"",
        0,
    );
    assert!(text(&out.stderr).contains("started; the key is imported"), "{}", text(&out.stderr));
    rotation(home)
}

// ---------------------------------------------------------------------------
// 1. Whole single-machine rotations
// ---------------------------------------------------------------------------

#[test]
fn communication_rotation_import_then_reset_with_a_restarted_scheduling_service() {
    let rig = comm_rig("csch");
    rig.scheduling(Some(&rig.svc.restart), None);
    rig.publish_default();
    let pid_a = rig.svc.launch();
    assert_eq!(rig.svc.loaded_fp(), DEFAULT_COM_FP, "the stand-in loaded the default key");
    let key = generate(&rig.root, "communication", "new.key");

    // The plan changes nothing.
    let plan = ok(&rig.home, &["rotation", "plan", "communication", "--setup", "single"]);
    let plan = text(&plan.stdout);
    for id in ["import", "restart-scheduling", "restart-storage", "restart-execution", "restart-app", "connect"] {
        assert!(plan.contains(id), "plan lists {id}: {plan}");
    }
    assert!(plan.contains("not configured here"), "plan says why steps are skipped: {plan}");
    assert!(!rig.home.join("rotation.json").exists(), "plan changes nothing");
    assert_eq!(active_fp(&rig.home, "communication"), DEFAULT_COM_FP);

    // Start: the import is the first step, done.
    let r = start_comm(&rig.home, &key);
    assert_eq!(
        (r["kind"].as_str(), r["setup"].as_str(), r["variant"].as_str()),
        (Some("communication"), Some("single"), Some("import"))
    );
    assert_eq!(r["status"], "open");
    let mut fields: Vec<&str> = r.as_object().expect("an object").keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "current",
            "id",
            "kind",
            "machine",
            "new_fingerprint",
            "old_fingerprint",
            "operator",
            "revision",
            "setup",
            "started",
            "status",
            "steps",
            "variant",
            "window"
        ],
        "the documented shape of rotation status --json"
    );
    assert!(r["window"].is_null(), "no machine, no disagreement window: {r:#}");
    for s in r["steps"].as_array().expect("steps") {
        let mut fields: Vec<&str> = s.as_object().expect("an object").keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(fields, ["evidence", "id", "kind", "seed_steps", "state", "title"], "{s}");
    }
    assert_eq!(r["old_fingerprint"], DEFAULT_COM_FP);
    assert_eq!(r["new_fingerprint"], key.fp.as_str());
    assert_eq!(
        step_ids(&r),
        ["import", "restart-scheduling", "restart-storage", "restart-execution", "restart-app", "connect"]
    );
    assert_step(
        &r,
        "import",
        "done",
        &[&format!("{} is active (was {DEFAULT_COM_FP}); 1 key files published", key.fp)],
    );
    assert_eq!(step(&r, "import")["seed_steps"], serde_json::json!([1, 2, 3]));
    assert_eq!(step(&r, "import")["kind"], "automatic");
    assert_step(&r, "restart-scheduling", "pending", &[]);
    assert_eq!(step(&r, "restart-scheduling")["kind"], "restart");
    for id in ["restart-storage", "restart-execution", "restart-app"] {
        assert_step(&r, id, "skipped", &["not configured here"]);
    }
    assert_eq!(r["current"], "restart-scheduling");
    assert_eq!(active_fp(&rig.home, "communication"), key.fp);
    assert_eq!(rig.svc.pid(), pid_a, "starting does not restart anything yet");

    // While it is open a plain import (or reset) is refused, clearly.
    let other = generate(&rig.root, "communication", "other.key");
    let out = exits(&rig.home, &["import", "communication", "--file", path_str(&other.file)], b"", 1);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("rotation") && stderr.contains("is open here") && stderr.contains("keyturn rotation abort"),
        "the refusal names the open rotation: {stderr}"
    );
    exits(&rig.home, &["reset", "communication"], b"", 1);
    assert_eq!(active_fp(&rig.home, "communication"), key.fp, "the refused import changed nothing");
    let st = status_json(&rig.home);
    assert_eq!(st["rotation"]["id"], r["id"], "keyturn status shows the open rotation: {st}");
    assert_eq!(st["rotation"]["current"], "restart-scheduling");

    // Run: the service is restarted and reports the new key; the manual
    // step needs a person (exit 3).
    let out = exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    assert!(text(&out.stderr).contains("step `connect` needs a person"), "{}", text(&out.stderr));
    let pid_b = rig.svc.pid();
    assert_ne!(pid_a, pid_b);
    let r = rotation(&rig.home);
    assert_step(
        &r,
        "restart-scheduling",
        "done",
        &[&format!("restarted (pid {pid_a} -> {pid_b}); reports {}", key.fp)],
    );
    assert_step(&r, "connect", "waiting", &["keyturn rotation confirm connect"]);
    assert_eq!(rig.svc.loaded_fp(), key.fp);

    ok(&rig.home, &["rotation", "confirm", "connect"]);
    let r = rotation(&rig.home);
    assert_eq!(r["status"], "finished");
    assert_eq!(r["current"], Value::Null);
    assert_step(&r, "connect", "done", &["confirmed by the operator"]);
    assert_eq!(status_json(&rig.home)["rotation"], Value::Null, "no rotation open after the finish");
    let lines = assert_audit_complete(&rig.home, &r);
    assert_eq!(lines.first().map(|l| l.2.as_str()), Some("started: communication key, single setup, import"));
    assert_eq!(lines.last().map(|l| l.2.as_str()), Some("finished: every step done or skipped"));
    assert!(lines.iter().any(|l| l.1 == "restart-scheduling" && l.2.starts_with("done: restarted (pid N -> N)")));

    // A plain import works again once it is finished... (the same key: a no-op)
    exits(&rig.home, &["import", "communication", "--file", path_str(&key.file)], b"", 0);

    // ...and the reset variant runs the same way, back to the default.
    let first_id = r["id"].as_str().expect("id").to_string();
    let out = exits(&rig.home, &["rotation", "start", "communication", "--setup", "single", "--reset"], b"", 0);
    assert!(text(&out.stderr).contains("reset to default"), "{}", text(&out.stderr));
    let r = rotation(&rig.home);
    assert_eq!(r["variant"], "reset");
    assert_eq!(
        (r["old_fingerprint"].as_str(), r["new_fingerprint"].as_str()),
        (Some(key.fp.as_str()), Some(DEFAULT_COM_FP))
    );
    assert_step(&r, "import", "done", &[&format!("{DEFAULT_COM_FP} is active (was {})", key.fp)]);
    assert!(
        rig.home.join("rotations").join(format!("{}.json", first_id.replace(':', "-"))).exists(),
        "the finished rotation is archived"
    );
    exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let pid_c = rig.svc.pid();
    let r = rotation(&rig.home);
    assert_step(
        &r,
        "restart-scheduling",
        "done",
        &[&format!("restarted (pid {pid_b} -> {pid_c}); reports {DEFAULT_COM_FP}")],
    );
    ok(&rig.home, &["rotation", "confirm", "connect"]);
    let r = rotation(&rig.home);
    assert_eq!(r["status"], "finished");
    assert_eq!(active_fp(&rig.home, "communication"), DEFAULT_COM_FP);
    assert_eq!(rig.svc.loaded_fp(), DEFAULT_COM_FP);
    assert_audit_complete(&rig.home, &r);
}

/// Runs git in `dir`, insisting on success; returns its output.
fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

/// A clone of `root/upstream.git` at `root/name`, with a committer.
fn git_clone(root: &Path, name: &str) -> PathBuf {
    git(root, &["clone", "-q", "upstream.git", name]);
    let work = root.join(name);
    git(&work, &["config", "user.name", "Rotation Test"]);
    git(&work, &["config", "user.email", "rotation@example.com"]);
    git(&work, &["config", "pull.ff", "only"]);
    work
}

/// A Git work tree `root/work` with a bare upstream `root/upstream.git`,
/// holding `files`, committed and pushed.
fn git_project(root: &Path, files: &[(&str, String)]) -> PathBuf {
    git(root, &["-c", "init.defaultBranch=main", "init", "-q", "--bare", "upstream.git"]);
    let work = git_clone(root, "work");
    for (rel, content) in files {
        let path = work.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write project file");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "project"]);
    git(&work, &["push", "-q", "origin", "HEAD"]);
    work
}

fn encrypt(home: &Path, value: &str) -> String {
    let out = exits(home, &["encrypt"], format!("{value}\n").as_bytes(), 0);
    text(&out.stdout).trim_end().to_string()
}

fn decrypt(home: &Path, token: &str) -> String {
    text(&exits(home, &["decrypt"], format!("{token}\n").as_bytes(), 0).stdout)
}

#[test]
fn encryption_rotations_first_custom_then_regenerated_with_execution_client_project_and_git_credential() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let home = root.join("home");
    fs::create_dir_all(&home).expect("mkdir home");
    let published = root.join("enc.key");
    let exec = StandIn::new(root, "eexe", "encryption", &published);
    let app_name = format!("kt-eapp-{}", std::process::id() % 100_000);
    fs::write(
        home.join("keyturn.toml"),
        format!(
            "{}{}[components.app]\nprocess = {}\n\n{}",
            publish("encryption", &published),
            exec.component("execution", Some(&exec.restart), None),
            toml_str(&app_name),
            unconfigured(&["scheduling", "storage"])
        ),
    )
    .expect("write keyturn.toml");

    // A project under the default key, in a Git work tree with an upstream.
    let values = ["Password=step one", "Server=db;Password=conn", "hunter2"];
    let toks: Vec<String> = values.iter().map(|v| encrypt(&home, v)).collect();
    let work = git_project(
        root,
        &[
            ("settings.json", format!("{{\n  \"login\": \"{}\",\n  \"db\": \"{}\"\n}}\n", toks[0], toks[1])),
            ("tests/login.tstest", format!("<step password=\"{}\" />\n", toks[2])),
            ("README.md", "no tokens here\n".to_string()),
        ],
    );
    ok(&home, &["projects", "add", path_str(&work)]);
    exits(&home, &["credentials", "set", "git", "--user", "u"], b"git-secret\n", 0);
    let pid_a = exec.launch();

    let plan = text(&ok(&home, &["rotation", "plan", "encryption", "--setup", "single"]).stdout);
    assert!(plan.contains("(single machine, first custom key)"), "the labels, not internal names: {plan}");
    assert!(!plan.contains("FirstCustom") && !plan.contains("Single setup"), "{plan}");

    // --- First custom key (from the default).
    let key_a = generate(root, "encryption", "a.key");
    let out = exits(
        &home,
        &["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&key_a.file)],
        b"",
        0,
    );
    assert!(text(&out.stderr).contains("first custom key"), "{}", text(&out.stderr));
    let r = rotation(&home);
    assert_eq!(r["variant"], "first-custom");
    assert_eq!(
        step_ids(&r),
        [
            "import",
            "restart-execution",
            "restart-app",
            "credential-git",
            "credential-bug-tracker",
            "credential-smtp",
            "upgrade-projects",
            "continue"
        ]
    );
    assert_step(
        &r,
        "import",
        "done",
        &[&format!(
            "{} is active (was {DEFAULT_ENC_FP}); 1 credentials read under it; 1 key files published",
            key_a.fp
        )],
    );
    let other = generate(root, "encryption", "other.key");
    let refusal = exits(&home, &["import", "encryption", "--file", path_str(&other.file)], b"", 1);
    assert!(text(&refusal.stderr).contains("rotation of the encryption key"), "{}", text(&refusal.stderr));
    assert!(text(&refusal.stderr).contains("is open here"), "{}", text(&refusal.stderr));

    exits(&home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let pid_b = exec.pid();
    let r = rotation(&home);
    assert_step(
        &r,
        "restart-execution",
        "done",
        &[&format!("restarted (pid {pid_a} -> {pid_b}); reports {}", key_a.fp)],
    );
    assert_step(&r, "restart-app", "done", &["not running, nothing to restart"]);
    assert_step(&r, "credential-git", "done", &["the git credential reads under the new key"]);
    assert_step(&r, "credential-bug-tracker", "skipped", &["no bug tracker"]);
    assert_step(&r, "credential-smtp", "skipped", &["not the Scheduling server"]);
    assert_step(&r, "upgrade-projects", "done", &["3 tokens in 1 projects are under the new key"]);
    assert_step(&r, "continue", "waiting", &["keyturn rotation confirm continue"]);
    assert_eq!(exec.loaded_fp(), key_a.fp);
    ok(&home, &["rotation", "confirm", "continue"]);
    let r = rotation(&home);
    assert_eq!(r["status"], "finished");
    assert_audit_complete(&home, &r);
    let check_project = |home: &Path, key: &Key| {
        let id = key.fp.replace('-', "").to_ascii_lowercase();
        let mut found = Vec::new();
        for rel in ["settings.json", "tests/login.tstest"] {
            found.extend(tokens_in(&fs::read_to_string(work.join(rel)).expect("project file")));
        }
        assert_eq!(found.len(), 3, "{found:?}");
        for (token, value) in found.iter().zip(values) {
            assert!(token.starts_with(&format!("ktsec:1:{id}:")), "{token} is under {}", key.fp);
            assert_eq!(decrypt(home, token), value);
        }
    };
    check_project(&home, &key_a);

    // --- A re-generated custom key.
    let key_b = generate(root, "encryption", "b.key");
    exits(&home, &["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&key_b.file)], b"", 0);
    let r = rotation(&home);
    assert_eq!(r["variant"], "regenerated");
    assert_step(
        &r,
        "import",
        "done",
        &[&format!("{} is active (was {}); 1 credentials read under it", key_b.fp, key_a.fp)],
    );
    exits(&home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let pid_c = exec.pid();
    let r = rotation(&home);
    assert_step(
        &r,
        "restart-execution",
        "done",
        &[&format!("restarted (pid {pid_b} -> {pid_c}); reports {}", key_b.fp)],
    );
    assert_step(&r, "restart-app", "done", &["not running, nothing to restart"]);
    assert_step(&r, "credential-git", "done", &["reads under the new key"]);
    assert_step(&r, "upgrade-projects", "done", &["3 tokens in 1 projects are under the new key"]);
    ok(&home, &["rotation", "confirm", "continue"]);
    let r = rotation(&home);
    assert_eq!(r["status"], "finished");
    assert_audit_complete(&home, &r);
    check_project(&home, &key_b);
    assert_eq!(exec.loaded_fp(), key_b.fp);
    let creds: Value = serde_json::from_slice(&ok(&home, &["credentials", "list", "--json"]).stdout).expect("JSON");
    assert!(creds.to_string().contains("git"), "{creds}");
}

// ---------------------------------------------------------------------------
// 2. Restarts that end waiting, and a configured start command
// ---------------------------------------------------------------------------

/// A communication rotation started with `component` configured as the
/// stand-in (restarted by `restart`, started by `start`), the stand-in
/// running; returns the rig, the new key and the stand-in's pid.
fn started_with(tag: &str, component: &str, restart: fn(&StandIn) -> Option<PathBuf>, start: bool) -> (Rig, Key, u32) {
    let rig = comm_rig(tag);
    let others: Vec<&str> =
        ["scheduling", "storage", "execution", "app"].into_iter().filter(|c| *c != component).collect();
    let restart = restart(&rig.svc);
    let start = start.then(|| rig.svc.start.clone());
    rig.configure(&format!(
        "{}{}",
        rig.svc.component(component, restart.as_deref(), start.as_deref()),
        unconfigured(&others)
    ));
    rig.publish_default();
    let pid = rig.svc.launch();
    let key = generate(&rig.root, "communication", "new.key");
    start_comm(&rig.home, &key);
    (rig, key, pid)
}

/// `rotation run --wait 2` stops at `id` waiting (exit 3, naming it).
#[track_caller]
fn run_stops_waiting_at(home: &Path, id: &str) -> Value {
    let out = exits(home, &["rotation", "run", "--wait", WAIT_SHORT], b"", 3);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("step `{id}` needs a person")), "{stderr}");
    let r = rotation(home);
    assert_eq!(r["current"], id);
    assert_eq!(r["status"], "open");
    r
}

#[test]
fn restart_that_does_not_bring_the_execution_client_back_waits_for_it_to_be_started() {
    let (rig, key, pid_a) = started_with("rkil", "execution", |s| Some(s.kill.clone()), false);
    let r = run_stops_waiting_at(&rig.home, "restart-execution");
    assert!(rig.svc.pids().is_empty(), "the restart command only killed it");
    assert_step(
        &r,
        "restart-execution",
        "waiting",
        &[
            &format!("stopped (pid {pid_a}) and not running again: start it."),
            "The Execution client may not come back by itself after an import.",
        ],
    );
    // Waiting again for the same thing records nothing new.
    let lines = rotation_audit(&rig.home, r["id"].as_str().expect("id"));
    run_stops_waiting_at(&rig.home, "restart-execution");
    assert_eq!(rotation_audit(&rig.home, r["id"].as_str().expect("id")), lines, "no new audit line for the same wait");

    // The operator starts it: the next run sees it back with the new key.
    let pid_b = rig.svc.launch();
    exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let r = rotation(&rig.home);
    assert_step(&r, "restart-execution", "done", &[&format!("restarted (pid {pid_a} -> {pid_b}); reports {}", key.fp)]);
    assert_eq!(r["current"], "connect");
}

#[test]
fn a_configured_start_command_brings_a_stopped_component_back() {
    let (rig, key, pid_a) = started_with("rsta", "scheduling", |s| Some(s.kill.clone()), true);
    exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let pid_b = rig.svc.pid();
    assert_ne!(pid_a, pid_b);
    let r = rotation(&rig.home);
    assert_step(
        &r,
        "restart-scheduling",
        "done",
        &[&format!("restarted (pid {pid_a} -> {pid_b}); reports {}", key.fp)],
    );
    assert_eq!(r["current"], "connect");
    assert_eq!(rig.svc.loaded_fp(), key.fp);
}

#[test]
fn a_component_back_with_the_old_key_waits() {
    let (rig, key, pid_a) = started_with("rold", "scheduling", |s| Some(s.stale.clone()), false);
    let r = run_stops_waiting_at(&rig.home, "restart-scheduling");
    let pid_b = rig.svc.pid();
    assert_ne!(pid_a, pid_b, "the stale restart did start a new process");
    assert_step(
        &r,
        "restart-scheduling",
        "waiting",
        &[&format!("restarted (pid {pid_a} -> {pid_b}) but reports the old key {DEFAULT_COM_FP}")],
    );
    // Restarted properly by hand, it reports the new key.
    StandIn::script(&rig.svc.restart, &[]);
    let pid_c = rig.svc.pid();
    exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let r = rotation(&rig.home);
    assert_step(
        &r,
        "restart-scheduling",
        "done",
        &[&format!("restarted (pid {pid_a} -> {pid_c}); reports {}", key.fp)],
    );
}

#[test]
fn a_component_never_restarted_waits_as_the_old_process() {
    let (rig, key, pid_a) = started_with("rnon", "scheduling", |_| None, false);
    let r = run_stops_waiting_at(&rig.home, "restart-scheduling");
    assert_eq!(rig.svc.pid(), pid_a, "nothing restarted it");
    assert_step(
        &r,
        "restart-scheduling",
        "waiting",
        &[&format!("still the old process (pid {pid_a}) after {WAIT_SHORT} s: restart it")],
    );
    // A restart step is checked off by evidence, never by confirming.
    refused(&rig.home, &["rotation", "confirm", "restart-scheduling"], 1, &["checked off by evidence"]);
    StandIn::script(&rig.svc.restart, &[]);
    let pid_b = rig.svc.pid();
    exits(&rig.home, &["rotation", "run", "--wait", WAIT_OK], b"", 3);
    let r = rotation(&rig.home);
    assert_step(
        &r,
        "restart-scheduling",
        "done",
        &[&format!("restarted (pid {pid_a} -> {pid_b}); reports {}", key.fp)],
    );
}

// ---------------------------------------------------------------------------
// 3. A kill at every crash point of a whole rotation
// ---------------------------------------------------------------------------

/// Temporary files a crash left in `dir`.
fn temp_files(dir: &Path) -> usize {
    fs::read_dir(dir)
        .expect("ls")
        .filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().starts_with(".keyturn-")))
        .count()
}

/// How a drive of the rotation ended: its steps and its audit lines, pids
/// normalised.
#[derive(Debug, PartialEq, Eq)]
struct Ending {
    steps: Vec<(String, String, String)>,
    audit: Vec<(u64, String, String)>,
}

/// A whole single-machine rotation as an operator drives it: start, run
/// (the restart is checked, the automatic steps done, the last manual step
/// needs a person), confirm. Every drive starts from a copy of `template`
/// and a stand-in freshly started on the key published before.
struct Drive<'a> {
    kind: &'static str,
    svc: &'a StandIn,
    key: &'a Key,
    /// The manual step confirmed last.
    last: &'static str,
    published: PathBuf,
    /// The published file before the rotation, if any.
    published_before: Option<Vec<u8>>,
    template: PathBuf,
    scratch: PathBuf,
    /// More checks of a finished home.
    check: &'a dyn Fn(&Path, &str),
}

impl Drive<'_> {
    fn commands(&self) -> Vec<(Vec<String>, i32)> {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            (args(&["rotation", "start", self.kind, "--setup", "single", "--file", path_str(&self.key.file)]), 0),
            (args(&["rotation", "run", "--wait", WAIT_OK]), 3),
            (args(&["rotation", "confirm", self.last]), 0),
        ]
    }

    /// A fresh home and a fresh stand-in that loaded the key published before.
    fn fresh(&self, name: &str) -> PathBuf {
        self.svc.stop();
        match &self.published_before {
            Some(bytes) => fs::write(&self.published, bytes).expect("restore the published key"),
            None => {
                let _ = fs::remove_file(&self.published);
            }
        }
        let home = self.scratch.join(name);
        copy_dir(&self.template, &home);
        self.svc.launch();
        home
    }

    fn exec(&self, home: &Path, (args, code): &(Vec<String>, i32)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        exits(home, &args, b"", *code);
    }

    /// Checks a finished drive and returns how it ended.
    fn ending(&self, home: &Path, when: &str) -> Ending {
        let r = rotation(home);
        assert_eq!(r["status"], "finished", "{when}: {r:#}");
        assert_eq!(active_fp(home, self.kind), self.key.fp, "{when}");
        assert_eq!(self.svc.pids().len(), 1, "{when}: one stand-in runs");
        assert_eq!(self.svc.loaded_fp(), self.key.fp, "{when}: the stand-in loaded the new key");
        (self.check)(home, when);
        let audit = assert_audit_complete(home, &r);
        Ending { steps: end_state(&r), audit }
    }

    /// Runs the drive with command `k` crashed at point `n`, resumes and
    /// finishes. Returns how it ended, and whether command `k` crashed.
    fn crashed(&self, k: usize, n: u32) -> (Ending, bool) {
        let home = self.fresh(&format!("home-{k}-{n}"));
        let commands = self.commands();
        for c in &commands[..k] {
            self.exec(&home, c);
        }
        let (args, code) = &commands[k];
        let when = format!("{args:?} crashed at point {n}");
        let out = keyturn(&home)
            .args(args)
            .env("KEYTURN_CRASH_AT", n.to_string())
            // Keeps any core file out of the test's working directory.
            .current_dir(&self.scratch)
            .output()
            .expect("keyturn runs");
        let stderr = text(&out.stderr);
        if out.status.code() == Some(*code) && !stderr.contains("crash injected") {
            // Fewer than n points: the command went through.
            for c in &commands[k + 1..] {
                self.exec(&home, c);
            }
            return (self.ending(&home, &format!("{args:?} without a crash")), false);
        }
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(out.status.signal(), Some(6), "{when}: expected an abort, got {:?}: {stderr}", out.status);
        assert!(stderr.contains(&format!("crash injected at point {n} ")), "{when}: {stderr}");

        // `rotation status` shows where it stopped; the operator goes on.
        let r = rotation(&home);
        match k {
            // Killed before the rotation file was written: start again.
            0 if r.is_null() => self.exec(&home, &commands[0]),
            // Started: run goes on from there (with the key, in case the
            // import was cut short).
            0 => {
                assert_eq!(r["status"], "open", "{when}");
                let run = ["rotation", "run", "--wait", WAIT_OK, "--file", path_str(&self.key.file)];
                exits(&home, &run, b"", 3);
            }
            // The confirm was written before the kill: confirming again is
            // refused (and writes any audit line the kill cut).
            2 if r["status"] == "finished" => {
                let out = exits(&home, &commands[2].0.iter().map(String::as_str).collect::<Vec<_>>(), b"", 1);
                assert!(text(&out.stderr).contains("the rotation is finished"), "{when}: {}", text(&out.stderr));
            }
            _ => self.exec(&home, &commands[k]),
        }
        for c in &commands[k + 1..] {
            self.exec(&home, c);
        }
        (self.ending(&home, &when), true)
    }

    /// A kill at every crash point of every command in turn, each drive
    /// resumed and finished and compared with an uninterrupted one. Returns
    /// the number of crash points of each command.
    fn sweep(&self) -> [u32; 3] {
        let home = self.fresh("baseline");
        for c in &self.commands() {
            self.exec(&home, c);
        }
        let baseline = self.ending(&home, "uninterrupted");
        let mut points = [0; 3];
        for (k, count) in points.iter_mut().enumerate() {
            for n in 1..=MAX_POINTS {
                let (ending, crashed) = self.crashed(k, n);
                assert_eq!(
                    ending, baseline,
                    "command {k} crashed at point {n}: the end differs from an uninterrupted run"
                );
                if !crashed {
                    break;
                }
                assert!(n < MAX_POINTS, "command {k} still crashing at point {MAX_POINTS}");
                *count = n;
            }
        }
        let leftovers: usize =
            fs::read_dir(&self.scratch).expect("ls").map(|e| temp_files(&e.expect("entry").path())).sum();
        eprintln!(
            "{} rotation: kill points covered: {} (start {}, run {}, confirm {}); {leftovers} temporary files left over",
            self.kind,
            points.iter().sum::<u32>(),
            points[0],
            points[1],
            points[2]
        );
        points
    }
}

#[test]
fn a_kill_at_every_crash_point_of_a_communication_rotation_resumes_to_the_same_end() {
    let rig = comm_rig("kilc");
    rig.scheduling(Some(&rig.svc.restart), None);
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    let scratch = rig.root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let drive = Drive {
        kind: "communication",
        svc: &rig.svc,
        key: &key,
        last: "connect",
        published: rig.published.clone(),
        published_before: Some(fs::read(&rig.published).expect("published")),
        template: rig.home.clone(),
        scratch,
        check: &|_, _| {},
    };
    let points = drive.sweep();
    assert!(
        points[0] >= 6,
        "start writes the rotation, the key, the published file and the rotation again: {points:?}"
    );
    assert!(points[1] >= 4, "run writes the restart and the manual step's wait: {points:?}");
    assert!(points[2] >= 2, "confirm writes the rotation: {points:?}");
}

#[test]
fn a_kill_at_every_crash_point_of_an_encryption_rotation_resumes_to_the_same_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let template = root.join("template");
    fs::create_dir_all(template.join("project")).expect("mkdir project");
    let published = root.join("enc.key");
    let exec = StandIn::new(root, "kile", "encryption", &published);
    fs::write(
        template.join("keyturn.toml"),
        format!(
            "{}{}{}[[projects]]\npath = \"project\"\n",
            publish("encryption", &published),
            exec.component("execution", Some(&exec.restart), None),
            unconfigured(&["scheduling", "storage", "app"])
        ),
    )
    .expect("write keyturn.toml");
    let values = ["Password=step one", "Server=db;Password=conn", "hunter2"];
    let toks: Vec<String> = values.iter().map(|v| encrypt(&template, v)).collect();
    fs::write(template.join("project/a.json"), format!("{{\"a\": \"{}\", \"b\": \"{}\"}}\n", toks[0], toks[1]))
        .expect("write a.json");
    fs::write(template.join("project/b.tstest"), format!("<step password=\"{}\" />\n", toks[2])).expect("write b");
    exits(&template, &["credentials", "set", "git", "--user", "u"], b"git-secret\n", 0);
    let key = generate(root, "encryption", "new.key");
    let scratch = root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let id = key.fp.replace('-', "").to_ascii_lowercase();
    let check = |home: &Path, when: &str| {
        let mut found = Vec::new();
        for rel in ["project/a.json", "project/b.tstest"] {
            found.extend(tokens_in(&fs::read_to_string(home.join(rel)).expect("project file")));
        }
        assert_eq!(found.len(), 3, "{when}: {found:?}");
        for (token, value) in found.iter().zip(values) {
            assert!(token.starts_with(&format!("ktsec:1:{id}:")), "{when}: {token} is under the new key");
            assert_eq!(decrypt(home, token), value, "{when}");
        }
        let creds: Value = serde_json::from_slice(&ok(home, &["credentials", "list", "--json"]).stdout).expect("JSON");
        assert_eq!(creds["credentials"][0]["state"], "current", "{when}: {creds}");
    };
    let drive = Drive {
        kind: "encryption",
        svc: &exec,
        key: &key,
        last: "continue",
        published,
        published_before: None,
        template,
        scratch,
        check: &check,
    };
    let points = drive.sweep();
    assert!(points[0] >= 8, "start also re-encrypts the credential: {points:?}");
    assert!(points[1] >= 10, "run also upgrades two project files: {points:?}");
}

/// A rig whose components are all left unconfigured, so a rotation needs no
/// process: its restart steps are skipped.
fn quiet_rig(tag: &str, extra: &str) -> Rig {
    let rig = comm_rig(tag);
    rig.configure(&format!("{}{extra}", unconfigured(&["scheduling", "storage", "execution", "app"])));
    rig
}

/// Runs `args` with a crash at each point in turn until one is at the
/// point labelled `label` (its `nth` occurrence, from 1), on a fresh copy of
/// `home` each time; returns that copy.
fn crash_at_label(home: &Path, scratch: &Path, args: &[&str], label: &str, nth: usize) -> PathBuf {
    let mut seen = 0;
    for n in 1..=MAX_POINTS {
        let copy = scratch.join(format!("crash-{n}"));
        copy_dir(home, &copy);
        let out = keyturn(&copy)
            .args(args)
            .env("KEYTURN_CRASH_AT", n.to_string())
            .current_dir(scratch)
            .output()
            .expect("keyturn runs");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("crash injected"), "{args:?} never reached ({label}) #{nth}: {stderr}");
        if stderr.contains(&format!("({label})")) {
            seen += 1;
            if seen == nth {
                return copy;
            }
        }
    }
    panic!("{args:?} never reached ({label}) #{nth}");
}

/// The import step of a rotation finished after a kill must name the key it
/// replaced, as an uninterrupted one does.
#[test]
fn import_evidence_after_a_crash_names_the_key_it_replaced() {
    let rig = quiet_rig("bimp", "");
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    let scratch = rig.root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let start = ["rotation", "start", "communication", "--setup", "single", "--file", path_str(&key.file)];
    let home = crash_at_label(&rig.home, &scratch, &start, "keys file written", 1);
    let r = rotation(&home);
    assert_eq!(r["current"], "import", "the kill stopped it at the import");
    exits(&home, &["rotation", "run", "--file", path_str(&key.file)], b"", 3);
    let r = rotation(&home);
    assert_step(&r, "import", "done", &[&format!("{} is active (was {DEFAULT_COM_FP})", key.fp)]);
}

/// A kill after the final confirm's rotation file is written but before
/// its audit lines: the next rotation started must not lose them.
#[test]
fn audit_lines_of_a_rotation_closed_by_a_killed_command_survive_the_next_start() {
    let rig = quiet_rig("baud", "");
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    let first = start_comm(&rig.home, &key);
    exits(&rig.home, &["rotation", "run"], b"", 3);
    let scratch = rig.root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let home = crash_at_label(&rig.home, &scratch, &["rotation", "confirm", "connect"], "renamed", 1);
    assert_eq!(rotation(&home)["status"], "finished", "the confirm was written before the kill");
    exits(&home, &["rotation", "run"], b"", 1);
    ok(&home, &["rotation", "start", "communication", "--setup", "single", "--reset"]);
    let lines = assert_audit_complete(&home, &first);
    assert_eq!(
        lines.last().map(|l| l.2.as_str()),
        Some("finished: every step done or skipped"),
        "the first rotation's audit lines: {lines:#?}"
    );
}

/// The upgrade step's evidence after a kill in the middle of the upgrade
/// must report the rotation's upgrade as an uninterrupted run does.
#[test]
fn upgrade_evidence_after_a_crash_counts_the_whole_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("project")).expect("mkdir project");
    fs::write(
        home.join("keyturn.toml"),
        format!("{}[[projects]]\npath = \"project\"\n", unconfigured(&["scheduling", "storage", "execution", "app"])),
    )
    .expect("write keyturn.toml");
    let toks: Vec<String> = ["one", "two", "three"].iter().map(|v| encrypt(&home, v)).collect();
    fs::write(home.join("project/a.json"), format!("[\"{}\", \"{}\"]\n", toks[0], toks[1])).expect("write");
    fs::write(home.join("project/b.json"), format!("[\"{}\"]\n", toks[2])).expect("write");
    let key = generate(dir.path(), "encryption", "new.key");
    ok(&home, &["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&key.file)]);
    // The first rename of the run is the first project file's.
    let scratch = dir.path().join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let home = crash_at_label(&home, &scratch, &["rotation", "run"], "renamed", 1);
    exits(&home, &["rotation", "run"], b"", 3);
    let r = rotation(&home);
    assert_step(&r, "upgrade-projects", "done", &["3 tokens in 1 projects are under the new key"]);
}

/// `rotation run` without the key after an import cut short: the runner
/// has a waiting state for it, which the CLI never reaches off a terminal.
#[test]
fn run_without_the_key_after_an_import_cut_short_says_which_key_it_needs() {
    let rig = quiet_rig("bkey", "");
    let key = generate(&rig.root, "communication", "new.key");
    let scratch = rig.root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let start = ["rotation", "start", "communication", "--setup", "single", "--file", path_str(&key.file)];
    let home = crash_at_label(&rig.home, &scratch, &start, "renamed", 1);
    let out = exits(&home, &["rotation", "run"], b"", 3);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("the key was not imported before the interruption"), "{stderr}");
    assert!(stderr.contains(&key.fp), "names the key's fingerprint: {stderr}");
}

// ---------------------------------------------------------------------------
// 4. The transition table through the CLI
// ---------------------------------------------------------------------------

#[test]
fn refused_transitions_exit_1_and_leave_the_rotation_file_byte_for_byte() {
    // Scheduling is configured by a process name that does not run.
    let rig = comm_rig("tabl");
    rig.scheduling(None, None);
    rig.publish_default();
    let home = &rig.home;
    let key = generate(&rig.root, "communication", "new.key");
    let other = generate(&rig.root, "communication", "other.key");
    let enc = generate(&rig.root, "encryption", "enc.key");

    // Nothing open yet.
    refused(home, &["rotation", "confirm", "connect"], 1, &["no rotation is open here"]);
    refused(home, &["rotation", "run"], 1, &["no rotation is open here"]);
    refused(home, &["rotation", "abort"], 1, &["no rotation is open here"]);
    assert_eq!(rotation(home), Value::Null);
    // Wrong usage: the encryption key has no reset (exit 2).
    let enc_reset = ["rotation", "start", "encryption", "--setup", "single", "--reset"];
    refused(home, &enc_reset, 2, &["the encryption key has no reset"]);
    let enc_start = ["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&enc.file)];
    // Multiple machines need a roster: refused at plan and start.
    for args in [
        &["rotation", "plan", "communication", "--setup", "multi"][..],
        &["rotation", "start", "communication", "--setup", "multi", "--file", path_str(&key.file)],
        &["rotation", "plan", "encryption", "--setup", "multi"],
    ] {
        refused(home, args, 1, &["a multiple-machines rotation needs at least one [[machines]] entry in keyturn.toml"]);
    }
    assert!(!home.join("rotation.json").exists(), "nothing was started");
    assert_eq!(active_fp(home, "communication"), DEFAULT_COM_FP, "nothing was imported");

    let r = start_comm(home, &key);
    assert_eq!(r["current"], "restart-scheduling");
    // One rotation per home at a time, of either kind.
    let again = ["rotation", "start", "communication", "--setup", "single", "--file", path_str(&other.file)];
    refused(home, &again, 1, &["is open here"]);
    refused(home, &["rotation", "start", "communication", "--setup", "single", "--reset"], 1, &["is open here"]);
    refused(home, &enc_start, 1, &["is open here"]);
    assert_eq!(active_fp(home, "communication"), key.fp);
    assert_eq!(active_fp(home, "encryption"), DEFAULT_ENC_FP);

    // Steps that are not current, closed, unknown, or not confirmable.
    refused(
        home,
        &["rotation", "confirm", "connect"],
        1,
        &["step `connect` is not the current step; the current step is `restart-scheduling`"],
    );
    refused(home, &["rotation", "skip", "connect", "--reason", "later"], 1, &["not the current step"]);
    refused(
        home,
        &["rotation", "confirm", "restart-scheduling"],
        1,
        &["is checked off by evidence, not by confirming"],
    );
    refused(home, &["rotation", "confirm", "restart-storage"], 1, &["step `restart-storage` is already skipped"]);
    refused(home, &["rotation", "confirm", "import"], 1, &["step `import` is already done"]);
    refused(home, &["rotation", "skip", "import", "--reason", "no"], 1, &["step `import` is already done"]);
    refused(home, &["rotation", "confirm", "no-such-step"], 1, &["there is no step `no-such-step`"]);
    refused(
        home,
        &["rotation", "confirm", "restart-scheduling", "--fingerprint", &key.fp],
        1,
        &["is not another machine's step"],
    );
    refused(home, &["rotation", "confirm", "restart-scheduling", "--fingerprint", "12-34"], 2, &["not a fingerprint"]);
    // A skip needs a reason: clap requires --reason, and an empty one is refused.
    refused(home, &["rotation", "skip", "restart-scheduling"], 2, &["--reason"]);
    refused(home, &["rotation", "skip", "restart-scheduling", "--reason", ""], 1, &["a skip needs a reason"]);
    refused(home, &["rotation", "skip", "restart-scheduling", "--reason", "   "], 1, &["a skip needs a reason"]);

    // A skip with a reason is a transition, recorded with the reason.
    ok(home, &["rotation", "skip", "restart-scheduling", "--reason", "the scheduler runs elsewhere"]);
    let r = rotation(home);
    assert_step(&r, "restart-scheduling", "skipped", &["the scheduler runs elsewhere"]);
    exits(home, &["rotation", "run"], b"", 3);
    ok(home, &["rotation", "confirm", "connect"]);
    let r = rotation(home);
    assert_eq!(r["status"], "finished");
    let lines = assert_audit_complete(home, &r);
    assert!(lines.contains(&(
        2,
        "import".into(),
        format!("done: {} is active (was {DEFAULT_COM_FP}); 1 key files published", key.fp)
    )));
    assert!(
        lines.contains(&(3, "restart-scheduling".into(), "skipped: the scheduler runs elsewhere".into())),
        "{lines:#?}"
    );

    // Nothing moves a finished rotation.
    for args in [
        &["rotation", "confirm", "connect"][..],
        &["rotation", "skip", "connect", "--reason", "x"],
        &["rotation", "abort"],
        &["rotation", "abort", "--reason", "x"],
    ] {
        refused(home, args, 1, &["the rotation is finished; start a new one"]);
    }
    refused(home, &["rotation", "run"], 1, &["no rotation is open here"]);

    // Nor an aborted one.
    ok(home, &again);
    ok(home, &["rotation", "abort", "--reason", "wrong key"]);
    for args in [
        &["rotation", "confirm", "restart-scheduling"][..],
        &["rotation", "skip", "restart-scheduling", "--reason", "x"],
        &["rotation", "abort"],
    ] {
        refused(home, args, 1, &["the rotation is aborted; start a new one"]);
    }
    refused(home, &["rotation", "run"], 1, &["no rotation is open here"]);
}

/// A rotation cut short before its import: the import is current, cannot
/// be skipped or confirmed, and `run` needs the key again.
#[test]
fn an_import_cut_short_is_current_and_cannot_be_skipped() {
    let rig = quiet_rig("tcut", "");
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    let other = generate(&rig.root, "communication", "other.key");
    let scratch = rig.root.join("scratch");
    fs::create_dir(&scratch).expect("mkdir scratch");
    let start = ["rotation", "start", "communication", "--setup", "single", "--file", path_str(&key.file)];
    // The first rename is the rotation file's: saved, nothing imported.
    let home = &crash_at_label(&rig.home, &scratch, &start, "renamed", 1);
    let r = rotation(home);
    assert_eq!((r["status"].as_str(), r["current"].as_str()), (Some("open"), Some("import")), "{r:#}");
    assert_step(&r, "import", "pending", &[]);
    assert_eq!(active_fp(home, "communication"), DEFAULT_COM_FP);
    refused(home, &["rotation", "skip", "import", "--reason", "later"], 1, &["the import cannot be skipped"]);
    refused(home, &["rotation", "confirm", "import"], 1, &["checked off by evidence"]);
    // Another key than the rotation's is refused.
    refused(home, &["rotation", "run", "--file", path_str(&other.file)], 1, &["this rotation imports", &key.fp]);
    assert_eq!(active_fp(home, "communication"), DEFAULT_COM_FP);
    // The rotation's key finishes the import.
    exits(home, &["rotation", "run", "--file", path_str(&key.file)], b"", 3);
    let r = rotation(home);
    assert_step(&r, "import", "done", &[&format!("{} is active (was {DEFAULT_COM_FP})", key.fp)]);
    assert_eq!(active_fp(home, "communication"), key.fp);
}

// ---------------------------------------------------------------------------
// 5. Multiple machines
// ---------------------------------------------------------------------------

/// A roster entry. Its command fails at once, so the machine is unreachable
/// and checked off by hand: by the fingerprint the operator types.
fn machine(name: &str, role: &str) -> String {
    format!("[[machines]]\nname = \"{name}\"\nroles = [\"{role}\"]\ncommand = [\"false\"]\n\n")
}

#[test]
fn multiple_machines_in_the_originals_order_checked_off_by_fingerprint() {
    let rig = comm_rig("mult");
    let home = &rig.home;
    let components = unconfigured(&["scheduling", "storage", "execution", "app"]);
    // The roster in the reverse of the original's order.
    rig.configure(&format!(
        "{components}{}{}{}",
        machine("proj-01", "project"),
        machine("exec-01", "execution"),
        machine("sched-01", "scheduling")
    ));
    let plan = text(&ok(home, &["rotation", "plan", "communication", "--setup", "multi"]).stdout);
    let at = |id: &str| plan.find(id).unwrap_or_else(|| panic!("plan lists {id}: {plan}"));
    assert!(at("restart-scheduling") < at("distribute"), "{plan}");
    assert!(at("distribute") < at("machine-sched-01"), "{plan}");
    assert!(at("machine-sched-01") < at("machine-exec-01"), "{plan}");
    assert!(at("machine-exec-01") < at("machine-proj-01"), "{plan}");
    assert!(at("machine-proj-01") < at("connect"), "{plan}");

    rig.configure(&format!("{components}{}{}", machine("proj-01", "project"), machine("exec-01", "execution")));
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    let out =
        exits(home, &["rotation", "start", "communication", "--setup", "multi", "--file", path_str(&key.file)], b"", 0);
    assert!(text(&out.stderr).contains("keyturn show communication"), "{}", text(&out.stderr));
    let r = rotation(home);
    assert_eq!(r["setup"], "multi");
    assert_eq!(
        step_ids(&r),
        [
            "import",
            "restart-scheduling",
            "restart-storage",
            "restart-execution",
            "distribute",
            "machine-exec-01",
            "machine-proj-01",
            "connect"
        ]
    );
    assert_eq!(step(&r, "machine-exec-01")["kind"], "per-machine");
    assert_eq!(step(&r, "machine-exec-01")["seed_steps"], serde_json::json!([7, 8, 9, 10, 11]));
    assert_eq!(step(&r, "machine-proj-01")["seed_steps"], serde_json::json!([12]));
    assert_eq!(step(&r, "connect")["seed_steps"], serde_json::json!([13]));

    exits(home, &["rotation", "run"], b"", 3);
    assert_step(&rotation(home), "distribute", "waiting", &["keyturn rotation confirm distribute"]);
    ok(home, &["rotation", "confirm", "distribute"]);
    exits(home, &["rotation", "run"], b"", 3);
    let r = rotation(home);
    assert_step(
        &r,
        "machine-exec-01",
        "waiting",
        &["exec-01", "run `keyturn fingerprint communication` there and type what it shows"],
    );

    // A machine step is checked off by the fingerprint that machine shows.
    // Without one: the exact line to type, not `rotation run` (issue 13).
    refused(
        home,
        &["rotation", "confirm", "machine-exec-01"],
        2,
        &["keyturn rotation confirm machine-exec-01 --fingerprint FP", "keyturn fingerprint communication"],
    );
    refused(
        home,
        &["rotation", "confirm", "machine-exec-01", "--fingerprint", DEFAULT_COM_FP],
        1,
        &[&format!("exec-01 shows {DEFAULT_COM_FP}, not the new key {}", key.fp)],
    );
    // Steps after the machines wait for them. (Machine steps of one block
    // may be checked off in any order: one dead machine holds back no other.)
    refused(home, &["rotation", "confirm", "connect"], 1, &["not the current step"]);
    let lower = key.fp.to_ascii_lowercase();
    ok(home, &["rotation", "confirm", "machine-exec-01", "--fingerprint", &lower]);
    let bare = lower.replace('-', "");
    ok(home, &["rotation", "confirm", "machine-proj-01", "--fingerprint", &bare]);
    let r = rotation(home);
    assert_step(&r, "machine-exec-01", "done", &[&format!("exec-01 shows {} (typed by the operator)", key.fp)]);
    assert_step(&r, "machine-proj-01", "done", &[&format!("proj-01 shows {} (typed by the operator)", key.fp)]);
    assert_eq!(r["current"], "connect");
    ok(home, &["rotation", "confirm", "connect"]);
    let r = rotation(home);
    assert_eq!(r["status"], "finished");
    assert_audit_complete(home, &r);
}

/// An encryption rotation over several machines: the push and get-latest
/// steps are checked with git, the credential is re-entered, the machine is
/// checked off by its fingerprint.
#[test]
fn encryption_multi_machine_rotation_checks_push_and_get_latest_with_git() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let home = root.join("home");
    fs::create_dir_all(&home).expect("mkdir home");
    fs::write(
        home.join("keyturn.toml"),
        format!(
            "[machine]\nroles = [\"execution\"]\n\n{}{}",
            unconfigured(&["scheduling", "storage", "execution", "app"]),
            machine("exec-01", "execution")
        ),
    )
    .expect("write keyturn.toml");
    let toks: Vec<String> = ["one", "two", "three"].iter().map(|v| encrypt(&home, v)).collect();
    let work = git_project(
        root,
        &[
            ("a.json", format!("[\"{}\", \"{}\"]\n", toks[0], toks[1])),
            ("tests/b.tstest", format!("<step password=\"{}\" />\n", toks[2])),
        ],
    );
    ok(&home, &["projects", "add", path_str(&work)]);
    let key = generate(root, "encryption", "new.key");
    ok(&home, &["rotation", "start", "encryption", "--setup", "multi", "--file", path_str(&key.file)]);
    let r = rotation(&home);
    assert_eq!((r["variant"].as_str(), r["setup"].as_str()), (Some("first-custom"), Some("multi")));
    assert_eq!(
        step_ids(&r),
        [
            "import",
            "restart-execution",
            "restart-app",
            "credential-git",
            "credential-bug-tracker",
            "credential-smtp",
            "upgrade-projects",
            "push",
            "distribute",
            "machine-exec-01",
            "get-latest",
            "upload-storage"
        ]
    );

    // The project is a Git work tree, but no Git credential is stored: enter it.
    run_stops_waiting_at(&home, "credential-git");
    assert_step(&rotation(&home), "credential-git", "waiting", &["no git credential is stored here"]);
    exits(&home, &["credentials", "set", "git", "--user", "u"], b"git-secret\n", 0);
    // The upgrade leaves the work tree changed: push it.
    let r = run_stops_waiting_at(&home, "push");
    assert_step(&r, "credential-git", "done", &["the git credential reads under the new key"]);
    assert_step(&r, "upgrade-projects", "done", &["3 tokens in 1 projects are under the new key"]);
    assert_step(&r, "push", "waiting", &["uncommitted changes: commit and push them"]);
    refused(&home, &["rotation", "confirm", "push"], 1, &["checked off by evidence"]);
    git(&work, &["commit", "-q", "-am", "re-encrypted under the new key"]);
    assert_step(&run_stops_waiting_at(&home, "push"), "push", "waiting", &["1 commits not pushed: push them"]);
    git(&work, &["push", "-q"]);
    let r = run_stops_waiting_at(&home, "distribute");
    assert_step(&r, "push", "done", &["git: 1 projects clean and pushed"]);
    ok(&home, &["rotation", "confirm", "distribute"]);
    run_stops_waiting_at(&home, "machine-exec-01");
    refused(
        &home,
        &["rotation", "confirm", "machine-exec-01", "--fingerprint", DEFAULT_ENC_FP],
        1,
        &[&format!("exec-01 shows {DEFAULT_ENC_FP}, not the new key {}", key.fp)],
    );
    ok(&home, &["rotation", "confirm", "machine-exec-01", "--fingerprint", &key.fp]);

    // Someone pushed meanwhile: get the latest version.
    let other = git_clone(root, "other");
    fs::write(other.join("notes.txt"), "more\n").expect("write");
    git(&other, &["add", "-A"]);
    git(&other, &["commit", "-q", "-m", "more"]);
    git(&other, &["push", "-q"]);
    let r = run_stops_waiting_at(&home, "get-latest");
    assert_step(&r, "get-latest", "waiting", &["1 commits behind the upstream: pull them"]);
    git(&work, &["pull", "-q"]);
    let r = run_stops_waiting_at(&home, "upload-storage");
    assert_step(&r, "get-latest", "done", &["git: 1 projects clean and got the latest version"]);
    assert_step(&r, "upload-storage", "waiting", &["keyturn rotation confirm upload-storage"]);
    ok(&home, &["rotation", "confirm", "upload-storage"]);
    let r = rotation(&home);
    assert_eq!(r["status"], "finished");
    assert_audit_complete(&home, &r);
}

// ---------------------------------------------------------------------------
// 6. Configured step commands
// ---------------------------------------------------------------------------

#[test]
fn a_configured_command_carries_out_a_manual_step() {
    let rig = quiet_rig("scmd", "[steps.connect]\ncommand = [\"sh\", \"-c\", \"echo uploaded\"]\n");
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    start_comm(&rig.home, &key);
    let out = exits(&rig.home, &["rotation", "run"], b"", 0);
    assert!(text(&out.stderr).contains("The rotation is finished"), "{}", text(&out.stderr));
    let r = rotation(&rig.home);
    assert_eq!(r["status"], "finished");
    assert_step(&r, "connect", "done", &["`sh -c echo uploaded` exited 0: uploaded"]);
    assert_audit_complete(&rig.home, &r);
}

#[test]
fn a_failing_step_command_leaves_the_step_failed_and_run_retries_it() {
    let failing = "[steps.connect]\ncommand = [\"sh\", \"-c\", \"echo no route to storage >&2; exit 4\"]\n";
    let rig = quiet_rig("sfai", failing);
    rig.publish_default();
    let key = generate(&rig.root, "communication", "new.key");
    start_comm(&rig.home, &key);
    let out = exits(&rig.home, &["rotation", "run"], b"", 3);
    assert!(text(&out.stderr).contains("step `connect` needs a person"), "{}", text(&out.stderr));
    let r = rotation(&rig.home);
    assert_eq!(r["status"], "open");
    assert_step(&r, "connect", "failed", &["failed (exit 4): no route to storage"]);
    // Its command decides, not the operator.
    refused(&rig.home, &["rotation", "confirm", "connect"], 1, &["checked off by evidence"]);
    // Once the command works, running again retries the step.
    rig.configure(&format!(
        "{}[steps.connect]\ncommand = [\"true\"]\n",
        unconfigured(&["scheduling", "storage", "execution", "app"])
    ));
    exits(&rig.home, &["rotation", "run"], b"", 0);
    let r = rotation(&rig.home);
    assert_step(&r, "connect", "done", &["`true` exited 0"]);
    let lines = assert_audit_complete(&rig.home, &r);
    let connect: Vec<&str> = lines.iter().filter(|l| l.1 == "connect").map(|l| l.2.as_str()).collect();
    assert_eq!(connect.len(), 2, "{connect:?}");
    assert!(connect[0].starts_with("failed: "), "{connect:?}");
    assert!(connect[1].starts_with("done: "), "{connect:?}");
}

// ---------------------------------------------------------------------------
// 7. Abort
// ---------------------------------------------------------------------------

#[test]
fn abort_is_recorded_keeps_the_key_and_allows_a_new_rotation() {
    let rig = quiet_rig("abrt", "");
    rig.publish_default();
    let home = &rig.home;
    let key = generate(&rig.root, "communication", "new.key");
    assert_eq!(status_json(home)["rotation"], Value::Null);
    let r = start_comm(home, &key);
    let st = status_json(home);
    assert_eq!(st["rotation"]["id"], r["id"], "{st}");
    assert_eq!(st["rotation"]["kind"], "communication");
    assert_eq!(st["rotation"]["current"], "connect");
    let published = fs::read(&rig.published).expect("published");

    let out = ok(home, &["rotation", "abort", "--reason", "wrong maintenance window"]);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not rolled back") && stderr.contains(&key.fp), "{stderr}");
    let r = rotation(home);
    assert_eq!(r["status"], "aborted");
    assert_eq!(status_json(home)["rotation"], Value::Null);
    assert_eq!(active_fp(home, "communication"), key.fp, "the key is not rolled back");
    assert_eq!(fs::read(&rig.published).expect("published"), published, "nor the published file");
    let lines = assert_audit_complete(home, &r);
    assert_eq!(
        lines.last(),
        Some(&(
            lines.len() as u64,
            "-".to_string(),
            "aborted: wrong maintenance window; the key was not rolled back".into()
        ))
    );

    // A plain import works again, and so does a new rotation.
    let other = generate(&rig.root, "communication", "other.key");
    exits(home, &["import", "communication", "--file", path_str(&other.file)], b"", 0);
    let again = start_comm(home, &key);
    assert_ne!(again["id"], r["id"]);
    assert_eq!(again["old_fingerprint"], other.fp.as_str());
    assert!(home.join("rotations").join(format!("{}.json", r["id"].as_str().expect("id"))).exists());
    ok(home, &["rotation", "abort"]);
    let lines = assert_audit_complete(home, &rotation(home));
    assert_eq!(lines.last().map(|l| l.2.as_str()), Some("aborted: no reason given; the key was not rolled back"));
}

// ---------------------------------------------------------------------------
// 8. config check
// ---------------------------------------------------------------------------

#[test]
fn config_check_says_what_each_part_does_and_refuses_an_invalid_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    fs::create_dir_all(project.join(".git")).expect("mkdir project/.git");
    fs::create_dir_all(&home).expect("mkdir home");
    let config = format!(
        "[machine]\nroles = [\"scheduling\"]\nsmtp = true\n\n\
         [[publish]]\nkind = \"communication\"\npath = \"pub/comm.key\"\nencoding = \"base64\"\n\n\
         [[projects]]\npath = {}\nbug_tracker = true\n\n\
         [components.scheduling]\nprocess = \"kt-sched\"\nrestart = [\"/bin/true\"]\n\
         check = [\"keyturn\", \"fingerprint\", \"communication\"]\n\n\
         [components.storage]\n\n\
         [steps.upload-storage]\ncommand = [\"sh\", \"-c\", \"echo uploaded\"]\n\n\
         [[machines]]\nname = \"exec-01\"\nroles = [\"execution\"]\n",
        toml_str(path_str(&project))
    );
    fs::write(home.join("keyturn.toml"), &config).expect("write keyturn.toml");
    let out = ok(&home, &["config", "check"]);
    let said = text(&out.stdout);
    for phrase in [
        &format!("{} is valid.", home.join("keyturn.toml").display()),
        "This machine: roles [scheduling]; SMTP settings configured.",
        &format!("Publish: the communication key is written to {}", home.join("pub/comm.key").display()),
        &format!("Project: {}: Git work tree: push/pull checked with git, bug tracker; upgraded", project.display()),
        "Component scheduling (Scheduling service): process `kt-sched`; restart: /bin/true; check: keyturn fingerprint communication.",
        "Component storage (Storage service): not configured (its restart steps are skipped).",
        // Left out: the default, a Windows name to check on the installation.
        "Component app (Test Studio app): process `Telerik.TestStudio.Desktop.exe`.",
        "Step upload-storage: runs `sh -c echo uploaded` and is done when it exits 0.",
        "Machine exec-01 [execution]: reached with `ssh -o BatchMode=yes exec-01 keyturn`.",
        "check them against this installation",
    ] {
        assert!(said.contains(phrase), "config check says {phrase:?}:\n{said}");
    }
    assert!(!home.join("rotation.json").exists() && !home.join("keys.toml").exists(), "config check changes nothing");

    // An unknown field is refused, naming the file.
    fs::write(home.join("keyturn.toml"), config.replace("smtp = true", "smtp = true\ncolour = \"red\""))
        .expect("write");
    let out = exits(&home, &["config", "check"], b"", 1);
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&home.join("keyturn.toml").display().to_string()), "names the file: {stderr}");
    assert!(stderr.contains("colour"), "names the field: {stderr}");
    assert!(out.stdout.is_empty(), "says nothing is valid: {}", text(&out.stdout));
}
