//! The way back (issue 11): `rotation start <kind> --rollback` makes the
//! previous key active again through the same checklist, on one machine and
//! across a roster, and every token sealed under either key still opens.

mod common;

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use common::{exits, keyturn_bin, path_str, run, text, toml_argv, toml_str};

fn fingerprint(home: &Path, kind: &str) -> String {
    text(&exits(home, &["fingerprint", kind], b"", 0).stdout).trim().to_string()
}

fn encrypt(home: &Path, value: &str) -> String {
    text(&exits(home, &["encrypt"], format!("{value}\n").as_bytes(), 0).stdout).trim_end().to_string()
}

#[track_caller]
fn assert_opens(home: &Path, token: &str, value: &str) {
    let out = exits(home, &["decrypt"], format!("{token}\n").as_bytes(), 0);
    assert_eq!(text(&out.stdout), value);
}

/// Drives the open rotation to its end: runs it, and confirms (or skips,
/// with a reason) each step that stops it.
fn finish(home: &Path) -> Value {
    for _ in 0..40 {
        let out = run(home, &["rotation", "run", "--wait", "1"], b"");
        let status: Value =
            serde_json::from_slice(&exits(home, &["rotation", "status", "--json"], b"", 0).stdout).expect("json");
        if status["status"] != "open" {
            assert_eq!(status["status"], "finished", "{status:#}");
            return status;
        }
        assert_eq!(out.status.code(), Some(3), "the run stops for a person: {}", text(&out.stderr));
        let current = status["current"].as_str().expect("a current step").to_string();
        let step = common::step(&status, &current);
        assert!(!current.starts_with("machine-"), "a machine step stopped the run: {step:#}");
        if run(home, &["rotation", "confirm", &current], b"").status.code() == Some(0) {
            continue;
        }
        exits(home, &["rotation", "skip", &current, "--reason", "not in this test"], b"", 0);
    }
    panic!("the rotation did not finish");
}

fn start(home: &Path, kind: &str, setup: &str, extra: &[&str]) -> Output {
    let mut args = vec!["rotation", "start", kind, "--setup", setup];
    args.extend_from_slice(extra);
    exits(home, &args, b"", 0)
}

fn audit(home: &Path) -> Vec<Value> {
    fs::read_to_string(home.join("audit.log"))
        .expect("audit.log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn an_encryption_rollback_on_one_machine_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    // Nothing to roll back to on a fresh home.
    let out = exits(&home, &["rotation", "start", "encryption", "--setup", "single", "--rollback"], b"", 1);
    assert!(text(&out.stderr).contains("no previous encryption key"), "{}", text(&out.stderr));

    start(&home, "encryption", "single", &["--generate"]);
    finish(&home);
    let a = fingerprint(&home, "encryption");
    let under_a = encrypt(&home, "sealed under A");
    // The first custom key replaced the default: no rollback to the default.
    let out = exits(&home, &["rotation", "start", "encryption", "--setup", "single", "--rollback"], b"", 1);
    assert!(text(&out.stderr).contains("has no reset"), "{}", text(&out.stderr));

    start(&home, "encryption", "single", &["--generate"]);
    finish(&home);
    let b = fingerprint(&home, "encryption");
    let under_b = encrypt(&home, "sealed under B");
    assert_ne!(a, b);

    let out = start(&home, "encryption", "single", &["--rollback"]);
    assert!(
        text(&out.stderr).contains(&format!("rollback to the previous key {a} (from {b})")),
        "{}",
        text(&out.stderr)
    );
    let status = finish(&home);
    assert_eq!(status["steps"][0]["id"], "import", "{status:#}");
    assert_eq!(fingerprint(&home, "encryption"), a, "A is active again");
    let keys: Value = serde_json::from_slice(&exits(&home, &["status", "--json"], b"", 0).stdout).expect("json");
    let retired: Vec<&str> = keys["keys"]["encryption"]["retired"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["fingerprint"].as_str())
        .collect();
    assert!(retired.contains(&b.as_str()), "B stays in the ring as retired: {retired:?}");
    assert_opens(&home, &under_a, "sealed under A");
    assert_opens(&home, &under_b, "sealed under B");
    assert_opens(&home, &encrypt(&home, "sealed after the rollback"), "sealed after the rollback");
    let lines = audit(&home);
    assert!(
        lines.iter().any(|l| l["event"] == "rollback" && l["old"] == b.as_str() && l["new"] == a.as_str()),
        "the audit log records the rollback as such"
    );

    // Rolled back again: to B, the key the rollback replaced.
    start(&home, "encryption", "single", &["--rollback"]);
    finish(&home);
    assert_eq!(fingerprint(&home, "encryption"), b);
    assert_opens(&home, &under_a, "sealed under A");
    assert_opens(&home, &under_b, "sealed under B");
}

#[test]
fn a_communication_rollback_goes_to_the_previous_custom_key_or_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let default = fingerprint(&home, "communication");
    start(&home, "communication", "single", &["--generate"]);
    finish(&home);
    let c1 = fingerprint(&home, "communication");
    start(&home, "communication", "single", &["--generate"]);
    finish(&home);
    let c2 = fingerprint(&home, "communication");
    start(&home, "communication", "single", &["--rollback"]);
    finish(&home);
    assert_eq!(fingerprint(&home, "communication"), c1, "back to the previous custom key");
    // An aborted rotation rolls back too.
    start(&home, "communication", "single", &["--generate"]);
    exits(&home, &["rotation", "abort", "--reason", "wrong key"], b"", 0);
    start(&home, "communication", "single", &["--rollback"]);
    finish(&home);
    assert_eq!(fingerprint(&home, "communication"), c1, "back from the aborted rotation's key");
    assert_ne!(c1, c2);

    // From the first custom key: back to the default.
    let fresh = dir.path().join("fresh");
    start(&fresh, "communication", "single", &["--generate"]);
    finish(&fresh);
    start(&fresh, "communication", "single", &["--rollback"]);
    finish(&fresh);
    assert_eq!(fingerprint(&fresh, "communication"), default);
}

#[test]
fn an_encryption_rollback_across_machines_reaches_every_member_through_join() {
    let dir = tempfile::tempdir().expect("tempdir");
    let members = [dir.path().join("m1"), dir.path().join("m2")];
    let first = dir.path().join("first");
    fs::create_dir_all(&first).expect("mkdir");
    let bin = keyturn_bin();
    let mut config =
        String::from("[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n\n");
    for (i, member) in members.iter().enumerate() {
        let command = [path_str(&bin), "--home", path_str(member)];
        config.push_str(&format!(
            "[[machines]]\nname = {}\nroles = [\"execution\"]\ncommand = {}\n\n",
            toml_str(&format!("m{}", i + 1)),
            toml_argv(&command)
        ));
    }
    fs::write(first.join("keyturn.toml"), config).expect("write keyturn.toml");

    let mut tokens = Vec::new();
    for round in ["A", "B"] {
        start(&first, "encryption", "multi", &["--generate"]);
        finish(&first);
        let fp = fingerprint(&first, "encryption");
        for member in &members {
            assert_eq!(fingerprint(member, "encryption"), fp, "round {round}: the member joined");
            tokens.push((encrypt(member, round), round));
        }
        tokens.push((encrypt(&first, round), round));
    }
    let b = fingerprint(&first, "encryption");
    start(&first, "encryption", "multi", &["--rollback"]);
    let status = finish(&first);
    let a = fingerprint(&first, "encryption");
    assert_ne!(a, b);
    for step in status["steps"].as_array().expect("steps") {
        if step["id"].as_str().is_some_and(|id| id.starts_with("machine-")) {
            assert_eq!(step["state"], "done", "{step:#}");
        }
    }
    for home in members.iter().chain([&first]) {
        assert_eq!(fingerprint(home, "encryption"), a, "{} is back on A", home.display());
        for (token, value) in &tokens {
            assert_opens(home, token, value);
        }
    }
    assert!(audit(&first).iter().any(|l| l["event"] == "rollback"), "the rollback is in the audit log");
}

/// The wizard's Rollback, on the Rotation tab of a finished rotation: the
/// previous key is active again and both keys' tokens open.
#[test]
fn the_wizards_rollback_button_goes_back_to_the_previous_key() {
    use keyturn::keys::KeyKind;
    use keyturn::store::Store;
    use keyturn::store::home::Home;
    use keyturn::system::clipboard::FakeClipboard;
    use keyturn::tui::app::{App, Options, RotationControl};
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    fs::create_dir_all(&home).expect("mkdir");
    fs::write(
        home.join("keyturn.toml"),
        "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n",
    )
    .expect("write keyturn.toml");
    let mut tokens = Vec::new();
    for round in ["A", "B"] {
        start(&home, "encryption", "single", &["--generate"]);
        finish(&home);
        tokens.push((encrypt(&home, round), round));
    }
    let b = fingerprint(&home, "encryption");
    let home_ref = Home { dir: home.clone(), machine_wide: false };
    let mut app = App::new(
        home_ref.clone(),
        Box::new(FakeClipboard::default()),
        Options { background: false, wait: std::time::Duration::from_secs(5) },
    );
    let press = |app: &mut App, code: KeyCode| app.key(KeyEvent::new(code, KeyModifiers::NONE));
    press(&mut app, KeyCode::Char('3'));
    for _ in 0..RotationControl::ORDER.len() {
        if app.rotation_focus == RotationControl::Rollback {
            break;
        }
        press(&mut app, KeyCode::Tab);
    }
    assert_eq!(app.rotation_focus, RotationControl::Rollback, "Tab reaches Rollback on a finished rotation");
    press(&mut app, KeyCode::Enter);
    let rotation = app.rotation.as_ref().expect("a rotation");
    assert!(rotation.rollback, "the wizard started a rollback: {}", app.status);
    assert_eq!(rotation.old_fingerprint.to_string(), b);
    assert!(app.status.contains("is active again") || app.status.contains("needs you"), "{}", app.status);
    let store = Store::open(home_ref).expect("opens");
    assert_eq!(store.active_key(KeyKind::Encryption).fingerprint(), rotation.new_fingerprint);
    assert_ne!(rotation.new_fingerprint.to_string(), b);
    for (token, value) in &tokens {
        assert_opens(&home, token, value);
    }
}
