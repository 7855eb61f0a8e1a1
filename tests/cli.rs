//! Integration tests that pin keyturn's command-line behaviour: every
//! command's stdout, stderr and exit code, the refusals of bad key text and of
//! bad store files, published key files and file modes (DESIGN.md sections 1,
//! 2, 3 and 6).
//!
//! Every run gets a fresh home through `--home`, with `KEYTURN_HOME` and the
//! debug-only test hooks removed from its environment. Key text is built here
//! from the documented format (not with keyturn's own code), so the tests also
//! freeze the format.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use common::{CLEARED_ENV, keyturn, set_mode, write_mode};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const DEFAULT_ENC_FP: &str = "BF85-76AA-883D-FC91";
const DEFAULT_COM_FP: &str = "565A-7B86-D266-00B6";
const DEFAULT_WARNING: &str =
    "data under the default key is readable by anyone who has keyturn; generate and import a custom key";
const RESTART: &str =
    "Components read the key when they start: restart them. Every other machine must import the same key.\n";

/// What one run printed and how it ended.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    fn stdout_str(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }

    /// Exit 0, nothing on stderr, and stdout returned.
    fn ok_quiet(&self) -> &str {
        assert_eq!((self.code, self.stderr.as_str()), (0, ""), "{self:?}");
        self.stdout_str()
    }

    /// Exit `code`, nothing on stdout, and one `keyturn: error:` line on
    /// stderr that contains `phrase`.
    fn error_line(&self, code: i32, phrase: &str) {
        assert_eq!(self.code, code, "{self:?}");
        assert!(self.stdout.is_empty(), "nothing on stdout when refused: {self:?}");
        assert!(self.stderr.starts_with("keyturn: error: "), "{self:?}");
        assert!(self.stderr.ends_with('\n') && self.stderr.matches('\n').count() == 1, "one line: {self:?}");
        assert!(self.stderr.contains(phrase), "stderr should contain {phrase:?}: {self:?}");
    }
}

fn run(cmd: &mut Command) -> Out {
    let output = cmd.output().expect("keyturn runs");
    Out {
        code: output.status.code().expect("keyturn exits rather than being killed"),
        stdout: output.stdout,
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// Runs keyturn on `home` with `args` and `stdin`.
fn kt(home: &Path, args: &[&str], stdin: impl Into<Vec<u8>>) -> Out {
    run(keyturn(home).args(args).write_stdin(stdin.into()))
}

/// A fresh temporary directory and, inside it, a home that does not exist yet.
fn fresh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let home = tmp.path().join("home");
    (tmp, home)
}

/// A deterministic key: 32 bytes, not all the same, not a default key.
fn raw_key(seed: u8) -> [u8; 32] {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = seed.wrapping_mul(101).wrapping_add((i as u8).wrapping_mul(7)).wrapping_add(3);
    }
    raw
}

/// The documented text form: `kt1:<tag>:` + standard base64 (no padding) of
/// key || SHA-256("keyturn key text v1\0" || tag || key)[..4]. Any number of
/// key bytes, so wrong lengths can be built too.
fn text_of(tag: &str, key: &[u8]) -> String {
    let digest = Sha256::new().chain_update(b"keyturn key text v1\0").chain_update(tag).chain_update(key).finalize();
    let mut body = key.to_vec();
    body.extend_from_slice(&digest[..4]);
    format!("kt1:{tag}:{}", STANDARD_NO_PAD.encode(body))
}

/// The documented fingerprint: HMAC-SHA256 keyed with the key over
/// "keyturn fingerprint v1\0" || tag, first 8 bytes, as XXXX-XXXX-XXXX-XXXX.
fn fingerprint_of(tag: &str, key: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"keyturn fingerprint v1\0");
    mac.update(tag.as_bytes());
    let tag = mac.finalize().into_bytes();
    tag[..8].chunks(2).map(|p| format!("{:02X}{:02X}", p[0], p[1])).collect::<Vec<_>>().join("-")
}

/// The built-in default key of a kind, as keyturn derives it.
fn default_key(tag: &str) -> [u8; 32] {
    Sha256::new().chain_update(b"keyturn built-in default key v1\0").chain_update(tag).finalize().into()
}

/// The 32 bytes a key text carries (the text must be well formed).
fn key_bytes(text: &str) -> Vec<u8> {
    let body = STANDARD_NO_PAD.decode(&text[8..]).expect("canonical base64 body");
    assert_eq!(body.len(), 36);
    body[..32].to_vec()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("file exists").permissions().mode() & 0o777
}

/// One entry of a directory tree, as compared before and after a run.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir(u32),
    File { mode: u32, inode: u64, bytes: Vec<u8> },
    Link(PathBuf),
}

/// Every entry under `dir` (recursively, links not followed).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Entry> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        for entry in fs::read_dir(dir).expect("list directory") {
            let path = entry.expect("directory entry").path();
            let meta = fs::symlink_metadata(&path).expect("stat");
            let rel = path.strip_prefix(root).expect("under root").to_path_buf();
            let value = if meta.file_type().is_symlink() {
                Entry::Link(fs::read_link(&path).expect("read link"))
            } else if meta.is_dir() {
                walk(&path, root, out);
                Entry::Dir(meta.permissions().mode() & 0o777)
            } else {
                Entry::File {
                    mode: meta.permissions().mode() & 0o777,
                    inode: meta.ino(),
                    bytes: fs::read(&path).expect("read file"),
                }
            };
            out.insert(rel, value);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// Imports `text` as a key of `kind` and checks it was a change.
fn import_ok(home: &Path, kind: &str, text: &str) {
    let out = kt(home, &["import", kind], format!("{text}\n"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.starts_with("Key imported successfully."), "{out:?}");
}

fn status_json(home: &Path) -> serde_json::Value {
    let out = kt(home, &["status", "--json"], "");
    serde_json::from_str(out.ok_quiet()).expect("status --json prints JSON")
}

fn is_fingerprint(s: &str) -> bool {
    s.len() == 19
        && s.split('-').count() == 4
        && s.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)))
}

// ---------------------------------------------------------------------------
// The format helpers themselves, against keyturn's known answers
// ---------------------------------------------------------------------------

#[test]
fn helpers_match_the_documented_known_answers() {
    let sample: Vec<u8> = (0u8..32).collect();
    assert_eq!(text_of("enc", &sample), "kt1:enc:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh//qdwW");
    assert_eq!(text_of("com", &sample), "kt1:com:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8pXE3J");
    assert_eq!(fingerprint_of("enc", &sample), "6030-2EF6-9E95-EFD4");
    assert_eq!(fingerprint_of("com", &sample), "4783-8108-A193-1646");
    assert_eq!(fingerprint_of("enc", &default_key("enc")), DEFAULT_ENC_FP);
    assert_eq!(fingerprint_of("com", &default_key("com")), DEFAULT_COM_FP);
}

// ---------------------------------------------------------------------------
// 1. Every command
// ---------------------------------------------------------------------------

#[test]
fn version_prints_name_and_version() {
    let (_tmp, home) = fresh();
    let out = kt(&home, &["--version"], "");
    assert_eq!(out.ok_quiet(), "keyturn 0.1.0\n");
    let out = kt(&home, &["--help"], "");
    assert!(out.ok_quiet().contains("Usage: keyturn [OPTIONS] [COMMAND]"), "{out:?}");
    assert!(!home.exists(), "--version touches no store");
}

#[test]
fn no_command_is_a_usage_error() {
    let (_tmp, home) = fresh();
    // Without a terminal the wizard cannot run: it says so instead.
    kt(&home, &[], "").error_line(2, "the wizard needs a terminal");
}

#[test]
fn unknown_subcommand_and_unknown_kind_are_usage_errors() {
    let (_tmp, home) = fresh();
    let out = kt(&home, &["bogus"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    assert!(out.stderr.starts_with("error: unrecognized subcommand 'bogus'\n"), "{out:?}");
    assert!(out.stderr.contains("Usage: keyturn"), "{out:?}");

    for args in [&["generate", "signing"][..], &["import"], &["fingerprint", "keys"], &["encrypt", "--nope"]] {
        let out = kt(&home, args, "");
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty() && out.stderr.starts_with("error: "), "{args:?}: {out:?}");
    }
    assert!(!home.exists(), "a usage error touches no store");
}

#[test]
fn status_on_a_fresh_home_shows_the_default_keys_and_writes_nothing() {
    let (_tmp, home) = fresh();
    let out = kt(&home, &["status"], "");
    let warning = format!("                   Warning: {DEFAULT_WARNING}.\n");
    let expected = format!(
        "keyturn 0.1.0, home {} (a user store, not machine-wide: services reading the machine's store do not see it)\n\
         Encryption key:    Default Key Loaded.  {DEFAULT_ENC_FP}\n{warning}\
         Communication key: Default Key Loaded.  {DEFAULT_COM_FP}\n{warning}\
         Rotation:          none open\n",
        home.display()
    );
    assert_eq!(out.ok_quiet(), expected);
    assert!(!home.exists(), "status creates nothing");
}

#[test]
fn status_json_on_a_fresh_home_has_the_documented_shape() {
    let (_tmp, home) = fresh();
    let mut doc = status_json(&home);
    // The machine's clock and name, for the fleet view's skew and rows.
    let time = doc["time"].as_str().expect("a time").to_string();
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert!(doc["machine"].as_str().is_some_and(|m| !m.is_empty()));
    let object = doc.as_object_mut().expect("an object");
    object.remove("time");
    object.remove("machine");
    let expected = serde_json::json!({
        "keyturn": "0.1.0",
        "home": home.display().to_string(),
        "machine_wide": false,
        "keys": {
            "encryption": {
                "loaded": "default", "fingerprint": DEFAULT_ENC_FP,
                "imported": null, "age_seconds": null, "retired": [],
            },
            "communication": {
                "loaded": "default", "fingerprint": DEFAULT_COM_FP,
                "imported": null, "age_seconds": null, "retired": [],
            },
        },
        "rotation": null,
    });
    assert_eq!(doc, expected);
    assert!(!home.exists(), "status --json creates nothing");
}

#[test]
fn status_after_imports_shows_custom_keys_and_the_retired_one() {
    let (_tmp, home) = fresh();
    let (a, b, c) = (raw_key(1), raw_key(2), raw_key(3));
    import_ok(&home, "encryption", &text_of("enc", &a));
    import_ok(&home, "encryption", &text_of("enc", &b));
    import_ok(&home, "communication", &text_of("com", &c));

    let doc = status_json(&home);
    let top: Vec<&String> = doc.as_object().expect("an object").keys().collect();
    assert_eq!(top, ["home", "keys", "keyturn", "machine", "machine_wide", "rotation", "time"]);
    assert_eq!(doc["keyturn"], "0.1.0");
    assert_eq!(doc["machine_wide"], false);
    assert_eq!(doc["rotation"], serde_json::Value::Null);
    for (kind, fp, retired) in [
        ("encryption", fingerprint_of("enc", &b), vec![fingerprint_of("enc", &a)]),
        ("communication", fingerprint_of("com", &c), vec![]),
    ] {
        let k = &doc["keys"][kind];
        let fields: Vec<&String> = k.as_object().expect("an object").keys().collect();
        assert_eq!(fields, ["age_seconds", "fingerprint", "imported", "loaded", "retired"], "{kind}");
        assert_eq!(k["loaded"], "custom", "{kind}");
        assert_eq!(k["fingerprint"], fp.as_str(), "{kind}");
        assert!(is_fingerprint(&fp));
        let imported = k["imported"].as_str().expect("imported is a time");
        assert!(imported.len() == 20 && imported.ends_with('Z') && imported.as_bytes()[10] == b'T', "{imported}");
        // Checked exactly in status_json_age_is_never_negative.
        let age = k["age_seconds"].as_i64().expect("age_seconds is an integer");
        assert!((0..600).contains(&age), "{age}");
        let listed: Vec<&str> = k["retired"]
            .as_array()
            .expect("retired is a list")
            .iter()
            .map(|r| {
                let when = r["retired"].as_str().expect("retired time");
                assert!(when.ends_with('Z'), "{when}");
                r["fingerprint"].as_str().expect("retired fingerprint")
            })
            .collect();
        assert_eq!(listed, retired, "{kind}");
    }

    let out = kt(&home, &["status"], "");
    let text = out.ok_quiet();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    assert!(
        lines[1]
            .starts_with(&format!("Encryption key:    Custom Key Loaded.   {}  imported ", fingerprint_of("enc", &b)))
    );
    assert!(lines[1].ends_with(" UTC (today)"), "{text}");
    assert_eq!(lines[2], format!("                   Retired, kept to read older data: {}", fingerprint_of("enc", &a)));
    assert!(
        lines[3]
            .starts_with(&format!("Communication key: Custom Key Loaded.   {}  imported ", fingerprint_of("com", &c)))
    );
    assert_eq!(lines[4], "Rotation:          none open");
    assert!(!text.contains("Warning"), "no default-key warning once both keys are custom: {text}");
}

/// The import time is never in the future: an earlier build rounded it to the
/// nearest second, so an import in the second half of a second showed
/// `age_seconds: -1`. The test waits (yielding, under a second) for the clock
/// to be in the second half of a second, so such rounding shows every time.
#[test]
fn status_json_age_is_never_negative() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let (_tmp, home) = fresh();
    let since_epoch = || SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970");
    let start = since_epoch();
    while !(550..850).contains(&since_epoch().subsec_millis()) {
        assert!(since_epoch() - start < std::time::Duration::from_secs(2), "the clock moves");
        std::thread::yield_now();
    }
    import_ok(&home, "encryption", &text_of("enc", &raw_key(1)));
    let finished = since_epoch().as_secs();
    let doc = status_json(&home);
    let imported: jiff::Timestamp =
        doc["keys"]["encryption"]["imported"].as_str().expect("a time").parse().expect("RFC 3339");
    assert!(imported.as_second() as u64 <= finished, "imported {imported} is after the import finished ({finished})");
    let age = doc["keys"]["encryption"]["age_seconds"].as_i64().expect("an integer");
    assert!(age >= 0, "age_seconds {age}");
}

#[test]
fn home_comes_from_the_flag_before_keyturn_home() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let (flag_home, env_home) = (tmp.path().join("flag"), tmp.path().join("env"));
    import_ok(&env_home, "communication", &text_of("com", &raw_key(4)));

    let mut by_env = Command::cargo_bin("keyturn").expect("binary");
    by_env.env("KEYTURN_HOME", &env_home).args(["fingerprint", "communication"]);
    assert_eq!(run(&mut by_env).ok_quiet(), format!("{}\n", fingerprint_of("com", &raw_key(4))));

    let mut both = Command::cargo_bin("keyturn").expect("binary");
    both.env("KEYTURN_HOME", &env_home).arg("--home").arg(&flag_home).args(["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(run(&mut both).ok_quiet()).expect("JSON");
    assert_eq!(doc["home"], flag_home.display().to_string());
    assert_eq!(doc["keys"]["communication"]["loaded"], "default");
}

#[test]
fn generate_prints_exactly_one_key_line_and_imports_nothing() {
    let (_tmp, home) = fresh();
    for (kind, tag) in [("encryption", "enc"), ("communication", "com"), ("enc", "enc"), ("comm", "com")] {
        let first = kt(&home, &["generate", kind], "");
        let second = kt(&home, &["generate", kind], "");
        for out in [&first, &second] {
            assert_eq!(out.code, 0, "{out:?}");
            let stdout = out.stdout_str();
            let prefix = format!("kt1:{tag}:");
            assert_eq!(stdout.len(), prefix.len() + 48 + 1, "{stdout:?}");
            assert!(stdout.starts_with(&prefix) && stdout.ends_with('\n'), "{stdout:?}");
            assert_eq!(stdout.matches('\n').count(), 1);
            let body = &stdout[8..56];
            assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'), "{body}");
            let line = stdout.trim_end();
            let key = key_bytes(line);
            assert_eq!(text_of(tag, &key), line, "the checksum is the documented one");
            let long_kind = if tag == "enc" { "encryption" } else { "communication" };
            assert_eq!(
                out.stderr,
                format!(
                    "Key generated successfully. Ready to import (fingerprint {}): keyturn import {long_kind} < FILE. \
                     Keep it as secret as the data it protects.\n",
                    fingerprint_of(tag, &key)
                )
            );
            assert!(!out.stderr.contains(body), "the key is on stdout only");
        }
        assert_ne!(first.stdout, second.stdout, "every key is new");
    }
    assert!(!home.exists(), "generate imports nothing and creates no store");
}

#[test]
fn show_and_fingerprint_of_the_default_keys() {
    let (_tmp, home) = fresh();
    for (kind, fp) in [("encryption", DEFAULT_ENC_FP), ("communication", DEFAULT_COM_FP)] {
        let out = kt(&home, &["fingerprint", kind], "");
        assert_eq!((out.code, out.stdout_str()), (0, format!("{fp}\n").as_str()));
        assert_eq!(out.stderr, format!("This is the built-in default {kind} key: {DEFAULT_WARNING}.\n"));

        let out = kt(&home, &["show", kind], "");
        out.error_line(1, "which cannot be shown or copied");
        assert_eq!(
            out.stderr,
            format!(
                "keyturn: error: the {kind} key is the built-in default, which cannot be shown or copied; \
                 generate and import a custom key\n"
            )
        );
    }
    assert!(!home.exists());
}

#[test]
fn import_from_stdin_then_show_and_fingerprint() {
    let (_tmp, home) = fresh();
    for (kind, tag, default_fp, seed) in
        [("encryption", "enc", DEFAULT_ENC_FP, 5), ("communication", "com", DEFAULT_COM_FP, 6)]
    {
        let key = raw_key(seed);
        let text = text_of(tag, &key);
        let fp = fingerprint_of(tag, &key);
        // A console-wrapped paste with surrounding blank lines and padding.
        let pasted = format!("\n  {}  \r\n   {}\n\n", &text[..30], &text[30..]);
        let out = kt(&home, &["import", kind], pasted);
        let retired_line = if tag == "enc" {
            format!("The replaced key {default_fp} is kept as retired, so data sealed under it stays readable.\n")
        } else {
            String::new()
        };
        assert_eq!(
            (out.code, out.stdout_str(), out.stderr.as_str()),
            (
                0,
                "",
                format!(
                    "Key imported successfully. The {kind} key is now {fp} (was {default_fp}).\n{retired_line}{RESTART}"
                )
                .as_str()
            )
        );

        let out = kt(&home, &["show", kind], "");
        assert_eq!(out.code, 0, "{out:?}");
        assert_eq!(out.stdout_str(), format!("{text}\n"), "stdout is exactly the key line");
        assert_eq!(
            out.stderr,
            format!(
                "The next line is the secret {kind} key ({fp}). Anyone who sees it can use it: clear the screen when done.\n"
            )
        );

        assert_eq!(kt(&home, &["fingerprint", kind], "").ok_quiet(), format!("{fp}\n"));
    }
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("keys.toml")), 0o600);
    assert_eq!(mode(&home.join("audit.log")), 0o600);
    let audit = fs::read_to_string(home.join("audit.log")).expect("audit log");
    let mut changed = Vec::new();
    for line in audit.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
        assert_eq!(entry["event"], "import", "{line}");
        assert!(!line.contains("kt1:"), "the audit log holds no key: {line}");
        if entry["outcome"] == "changed" {
            changed.push((entry["kind"].clone(), entry["new"].clone()));
        }
    }
    assert_eq!(
        changed,
        [
            (serde_json::json!("encryption"), serde_json::json!(fingerprint_of("enc", &raw_key(5)))),
            (serde_json::json!("communication"), serde_json::json!(fingerprint_of("com", &raw_key(6)))),
        ],
        "{audit}"
    );
}

#[test]
fn import_from_a_file_in_utf8_and_in_utf16le_with_bom_and_crlf() {
    let (tmp, home) = fresh();
    let enc = text_of("enc", &raw_key(7));
    let utf8 = tmp.path().join("enc.txt");
    fs::write(&utf8, format!("{enc}\n")).expect("write key file");
    let out = kt(&home, &["import", "encryption", "--file", utf8.to_str().expect("UTF-8 path")], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.starts_with("Key imported successfully."), "{out:?}");
    assert_eq!(kt(&home, &["show", "encryption"], "").stdout_str(), format!("{enc}\n"));

    // What PowerShell 5.1's `Out-File`/`>` writes: UTF-16LE, a BOM, CRLF.
    let com = text_of("com", &raw_key(8));
    let mut utf16 = vec![0xFF, 0xFE];
    for unit in format!("{com}\r\n").encode_utf16() {
        utf16.extend_from_slice(&unit.to_le_bytes());
    }
    let ps = tmp.path().join("com.txt");
    fs::write(&ps, utf16).expect("write key file");
    // stdin holds a different (wrong-kind) text: --file wins over stdin.
    let out = kt(&home, &["import", "communication", "--file", ps.to_str().expect("UTF-8 path")], enc.clone());
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key imported successfully. The communication key is now {} (was {DEFAULT_COM_FP}).\n{RESTART}",
                fingerprint_of("com", &raw_key(8))
            )
            .as_str()
        )
    );
    assert_eq!(kt(&home, &["show", "communication"], "").stdout_str(), format!("{com}\n"));

    // UTF-8 with a byte-order mark (Notepad, PowerShell 7 with -Encoding utf8BOM).
    let bom = tmp.path().join("bom.txt");
    fs::write(&bom, [&[0xEF, 0xBB, 0xBF][..], text_of("enc", &raw_key(9)).as_bytes(), b"\r\n"].concat())
        .expect("write");
    let out = kt(&home, &["import", "encryption", "--file", bom.to_str().expect("UTF-8 path")], "");
    assert_eq!(out.code, 0, "{out:?}");

    let missing = tmp.path().join("no-such-file");
    let out = kt(&home, &["import", "encryption", "--file", missing.to_str().expect("UTF-8 path")], "");
    out.error_line(1, &format!("cannot open {}", missing.display()));
}

#[test]
fn a_key_on_the_command_line_is_refused_and_not_echoed() {
    let (_tmp, home) = fresh();
    let text = text_of("enc", &raw_key(10));
    let expected = "keyturn: error: a key was given on the command line, where other users see it in the process list; \
                    pass it on standard input or with --file, and generate a new key: this one may have leaked\n";
    for args in [
        vec!["import", "encryption", text.as_str()],
        vec!["import", "encryption", "--file", text.as_str()],
        vec!["encrypt", text.as_str()],
    ] {
        let out = kt(&home, &args, "");
        assert_eq!((out.code, out.stdout_str(), out.stderr.as_str()), (2, "", expected), "{args:?}");
        assert!(!out.stderr.contains(&text[8..]), "the key is not repeated");
    }

    // Without its prefix (the body alone, or the key in hex) it is not
    // recognised as a key, but clap's usage error must not repeat it either.
    let hex: String = raw_key(10).iter().map(|b| format!("{b:02x}")).collect();
    for secret in [&text[8..], hex.as_str()] {
        for args in [vec!["import", "encryption", secret], vec!["generate", "encryption", secret]] {
            let out = kt(&home, &args, "");
            assert_eq!(out.code, 2, "{args:?}: {out:?}");
            assert!(out.stdout.is_empty() && out.stderr.starts_with("error: "), "{args:?}: {out:?}");
            assert!(!out.stderr.contains(secret), "{args:?}: the argument is withheld: {out:?}");
            assert!(!out.stderr.contains(&secret[..12]), "{args:?}: not even in part: {out:?}");
        }
    }
    assert!(!home.exists(), "nothing imported");
}

/// The key in padded standard base64 (what a `[[publish]]` file with
/// `encoding = "base64"` holds) passed as an argument: clap's usage error
/// repeats it. src/cli.rs `withhold_secret_looking` takes the text after the
/// first `=` as an option's value, so for `...WnaSrsrnAx84=` it checks the
/// empty string after the padding and withholds nothing.
#[test]
fn a_padded_base64_key_on_the_command_line_is_not_echoed() {
    let (_tmp, home) = fresh();
    let secret = STANDARD.encode(raw_key(10));
    assert!(secret.ends_with('='));
    for args in [vec!["import", "encryption", secret.as_str()], vec!["show", "communication", secret.as_str()]] {
        let out = kt(&home, &args, "");
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert!(!out.stderr.contains(&secret[..20]), "{args:?}: the argument is withheld: {out:?}");
    }
}

#[test]
fn reset_communication_goes_back_to_the_default() {
    let (_tmp, home) = fresh();
    let com = raw_key(11);
    import_ok(&home, "communication", &text_of("com", &com));
    let out = kt(&home, &["reset", "communication"], "");
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key reset to the default successfully. The communication key is now {DEFAULT_COM_FP} (was {}).\n\
                 {RESTART}Warning: {DEFAULT_WARNING}.\n",
                fingerprint_of("com", &com)
            )
            .as_str()
        )
    );
    assert_eq!(kt(&home, &["fingerprint", "communication"], "").stdout_str(), format!("{DEFAULT_COM_FP}\n"));
    kt(&home, &["show", "communication"], "").error_line(1, "cannot be shown");
    let keys = fs::read_to_string(home.join("keys.toml")).expect("keys file");
    assert!(!keys.contains("kt1:com:"), "a replaced communication key is not kept: {keys}");
    assert_eq!(status_json(&home)["keys"]["communication"]["loaded"], "default");

    // Again: already the default, nothing changes.
    let before = snapshot(&home);
    let out = kt(&home, &["reset", "comm"], "");
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (0, "", format!("The communication key {DEFAULT_COM_FP} is already active; nothing changed.\n").as_str())
    );
    let after = snapshot(&home);
    assert_eq!(before.get(Path::new("keys.toml")), after.get(Path::new("keys.toml")));
}

#[test]
fn reset_encryption_is_a_usage_error() {
    let (_tmp, home) = fresh();
    import_ok(&home, "encryption", &text_of("enc", &raw_key(12)));
    let before = snapshot(&home);
    let out = kt(&home, &["reset", "encryption"], "");
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            2,
            "",
            "keyturn: error: the encryption key has no reset (as in the original): data sealed under a custom key \
             would become unreadable; import a new key instead\n"
        )
    );
    assert_eq!(snapshot(&home), before);
}

#[test]
fn importing_the_active_key_again_changes_nothing() {
    let (_tmp, home) = fresh();
    let key = raw_key(13);
    let text = text_of("enc", &key);
    import_ok(&home, "encryption", &text);
    let keys_before = fs::read(home.join("keys.toml")).expect("keys file");
    let inode_before = fs::metadata(home.join("keys.toml")).expect("stat").ino();

    let out = kt(&home, &["import", "encryption"], format!("{text}\n"));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!("The encryption key {} is already active; nothing changed.\n", fingerprint_of("enc", &key))
                .as_str()
        )
    );
    assert_eq!(fs::read(home.join("keys.toml")).expect("keys file"), keys_before, "byte for byte");
    assert_eq!(fs::metadata(home.join("keys.toml")).expect("stat").ino(), inode_before, "not even rewritten");
    assert!(status_json(&home)["keys"]["encryption"]["retired"].as_array().expect("list").is_empty());
}

fn token_shape(token: &str, key_id: &str) {
    let rest = token.strip_prefix("ktsec:1:").expect("token prefix");
    let (id, body) = rest.split_once(':').expect("key id");
    assert_eq!(id, key_id);
    assert!(!body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{token}");
}

fn key_id(fp: &str) -> String {
    fp.replace('-', "").to_lowercase()
}

/// Encrypts `value` (with `extra` flags) and returns the token line.
fn encrypt(home: &Path, extra: &[&str], value: &[u8]) -> String {
    let out = kt(home, &[&["encrypt"], extra].concat(), value.to_vec());
    assert_eq!(out.code, 0, "{out:?}");
    let stdout = out.stdout_str();
    assert!(stdout.ends_with('\n') && stdout.matches('\n').count() == 1, "one token line: {stdout:?}");
    stdout.trim_end_matches('\n').to_string()
}

fn decrypt(home: &Path, token: &str) -> Vec<u8> {
    let out = kt(home, &["decrypt"], format!("{token}\n"));
    assert_eq!((out.code, out.stderr.as_str()), (0, ""), "{out:?}");
    out.stdout
}

#[test]
fn encrypt_under_the_default_key_warns_on_stderr() {
    let (_tmp, home) = fresh();
    let out = kt(&home, &["encrypt"], "secret\n");
    assert_eq!(out.code, 0, "{out:?}");
    token_shape(out.stdout_str().trim_end_matches('\n'), &key_id(DEFAULT_ENC_FP));
    assert!(out.stdout_str().ends_with('\n'));
    assert_eq!(
        out.stderr,
        "Warning: sealed under the built-in default encryption key, which anyone with keyturn has; import a custom key.\n"
    );
    assert_eq!(decrypt(&home, out.stdout_str().trim_end()), b"secret");
    assert!(!home.exists(), "encrypt and decrypt write nothing");
}

#[test]
fn encrypt_drops_one_line_ending_and_raw_keeps_every_byte() {
    let (_tmp, home) = fresh();
    let key = raw_key(14);
    import_ok(&home, "encryption", &text_of("enc", &key));
    let id = key_id(&fingerprint_of("enc", &key));

    let cases: [(&[u8], &[u8]); 7] = [
        (b"secret\n", b"secret"),
        (b"secret\r\n", b"secret"),
        (b"secret", b"secret"),
        (b"secret\n\n", b"secret\n"),
        (b"secret\r\n\r\n", b"secret\r\n"),
        (b"\n", b""),
        (b"", b""),
    ];
    for (input, value) in cases {
        let out = kt(&home, &["encrypt"], input.to_vec());
        assert_eq!((out.code, out.stderr.as_str()), (0, ""), "custom key: no warning: {out:?}");
        let token = out.stdout_str().trim_end_matches('\n');
        token_shape(token, &id);
        assert_eq!(decrypt(&home, token), value, "{input:?}");
    }

    let mut binary: Vec<u8> = (0..=255u8).collect();
    binary.extend_from_slice(b"\r\n");
    for raw in [&b"secret\r\n"[..], b"secret\n", b"  spaced  \n\n", &binary] {
        let token = encrypt(&home, &["--raw"], raw);
        token_shape(&token, &id);
        assert_eq!(decrypt(&home, &token), raw, "--raw keeps every byte");
    }

    // Binary without --raw: only the final CRLF goes.
    let token = encrypt(&home, &[], &binary);
    assert_eq!(decrypt(&home, &token), &binary[..256]);

    // Two encryptions of the same value differ (fresh nonce).
    assert_ne!(encrypt(&home, &[], b"same"), encrypt(&home, &[], b"same"));

    // A value over 1 MiB is not a password or a connection string.
    let out = kt(&home, &["encrypt", "--raw"], vec![b'x'; 1024 * 1024 + 1]);
    out.error_line(1, "standard input is over 1024 KiB: refused unread");
    let token = encrypt(&home, &["--raw"], &[b'x'; 40_000]);
    assert_eq!(decrypt(&home, &token), vec![b'x'; 40_000]);
}

/// `encrypt` takes values up to 1 MiB (src/cli/tokens.rs `MAX_VALUE`) but
/// `decrypt` reads at most 64 KiB of token (src/cli/input.rs `token()` with
/// `keys::MAX_INPUT`), so a value over about 48 KiB is sealed into a token
/// that keyturn then refuses to open ("standard input is over 64 KiB").
#[test]
fn every_token_that_encrypt_makes_can_be_decrypted() {
    let (_tmp, home) = fresh();
    import_ok(&home, "encryption", &text_of("enc", &raw_key(19)));
    let value = vec![b'v'; 1024 * 1024];
    let token = encrypt(&home, &["--raw"], &value);
    assert_eq!(decrypt(&home, &token), value);
}

#[test]
fn decrypt_failures_are_three_distinct_errors() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let (here, there) = (tmp.path().join("here"), tmp.path().join("there"));
    import_ok(&here, "encryption", &text_of("enc", &raw_key(15)));
    let there_fp = fingerprint_of("enc", &raw_key(16));
    import_ok(&there, "encryption", &text_of("enc", &raw_key(16)));
    let here_fp = fingerprint_of("enc", &raw_key(15));
    let token = encrypt(&here, &[], b"the value");

    // Malformed.
    for bad in ["not a token", "", "ktsec:1:zz", "ktsec:2:0011223344556677:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let out = kt(&here, &["decrypt"], bad);
        out.error_line(1, "cannot decrypt: not a valid token: ");
    }
    let out = kt(&here, &["decrypt"], "not a token\n");
    assert_eq!(out.stderr, "keyturn: error: cannot decrypt: not a valid token: it does not start with ktsec:\n");

    // From another home: unknown key id.
    let out = kt(&there, &["decrypt"], format!("{token}\n"));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            1,
            "",
            format!(
                "keyturn: error: cannot decrypt: sealed under key {here_fp}, which is not in this machine's keyring; \
                 import that key or re-enter the value\n"
            )
            .as_str()
        )
    );
    assert!(!out.stderr.contains(&there_fp));

    // Tampered: one character in the middle of the body changed.
    let mut bytes = token.clone().into_bytes();
    let i = 26 + (bytes.len() - 26) / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("ASCII");
    let out = kt(&here, &["decrypt"], format!("{tampered}\n"));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            1,
            "",
            format!(
                "keyturn: error: cannot decrypt: the token was altered or damaged: it does not authenticate under key \
                 {here_fp}; re-enter the value\n"
            )
            .as_str()
        )
    );

    // And the untouched token still opens, surrounded by whitespace.
    let out = kt(&here, &["decrypt"], format!("  {token}\r\n"));
    assert_eq!((out.code, out.stdout.as_slice(), out.stderr.as_str()), (0, &b"the value"[..], ""));
}

#[test]
fn a_replaced_encryption_key_stays_in_the_keyring() {
    let (_tmp, home) = fresh();
    let under_default = encrypt(&home, &[], b"from before any import");
    let (first, second) = (raw_key(17), raw_key(18));
    import_ok(&home, "encryption", &text_of("enc", &first));
    let under_first = encrypt(&home, &[], b"sealed under the first key");
    token_shape(&under_first, &key_id(&fingerprint_of("enc", &first)));

    let out = kt(&home, &["import", "encryption"], text_of("enc", &second));
    let (fp1, fp2) = (fingerprint_of("enc", &first), fingerprint_of("enc", &second));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key imported successfully. The encryption key is now {fp2} (was {fp1}).\n\
                 The replaced key {fp1} is kept as retired, so data sealed under it stays readable.\n{RESTART}"
            )
            .as_str()
        )
    );

    assert_eq!(decrypt(&home, &under_first), b"sealed under the first key");
    assert_eq!(decrypt(&home, &under_default), b"from before any import");
    token_shape(&encrypt(&home, &[], b"new"), &key_id(&fp2));

    let doc = status_json(&home);
    let enc = &doc["keys"]["encryption"];
    assert_eq!(enc["fingerprint"], fp2.as_str());
    let retired = enc["retired"].as_array().expect("list");
    assert_eq!(retired.len(), 1, "{doc}");
    assert_eq!(retired[0]["fingerprint"], fp1.as_str());
    let keys = fs::read_to_string(home.join("keys.toml")).expect("keys file");
    assert!(keys.contains("status = \"retired\""), "{keys}");

    // Re-importing the retired key makes it active again; the other is retired.
    import_ok(&home, "encryption", &text_of("enc", &first));
    let doc = status_json(&home);
    assert_eq!(doc["keys"]["encryption"]["fingerprint"], fp1.as_str());
    let retired: Vec<&str> = doc["keys"]["encryption"]["retired"]
        .as_array()
        .expect("list")
        .iter()
        .map(|r| r["fingerprint"].as_str().expect("fingerprint"))
        .collect();
    assert_eq!(retired, [fp2.as_str()]);
    assert_eq!(decrypt(&home, &under_first), b"sealed under the first key");
}

// ---------------------------------------------------------------------------
// 2. Import refusal matrix
// ---------------------------------------------------------------------------

#[test]
fn import_refusal_matrix() {
    let (tmp, home) = fresh();
    let active = text_of("enc", &raw_key(20));
    import_ok(&home, "encryption", &active);
    import_ok(&home, "communication", &text_of("com", &raw_key(21)));

    let good = text_of("enc", &raw_key(22));
    let body = &good[8..];
    let swap = |s: &str, at: usize, c: char| -> String {
        let mut chars: Vec<char> = s.chars().collect();
        chars[at] = c;
        chars.into_iter().collect()
    };
    let changed_char = if good.as_bytes()[20] == b'A' { 'B' } else { 'A' };
    // A 47-character body whose last character has its two unused bits set.
    let trailing = format!("kt1:enc:{}B", &body[..46]);
    let too_short = format!("kt1:enc:{}", STANDARD_NO_PAD.encode([7u8; 33]));
    let too_long = format!("kt1:enc:{}", STANDARD_NO_PAD.encode([7u8; 40]));
    let big = "A".repeat(64 * 1024 + 1);

    // (case, input, class, phrase): cases of one class share a message;
    // every class's phrase appears in no other class's message.
    let cases: Vec<(&str, Vec<u8>, &str, String)> = vec![
        ("empty", b"".to_vec(), "empty", "no key was given: the input is empty".into()),
        ("whitespace only", b" \r\n\t \n\n".to_vec(), "empty", "no key was given: the input is empty".into()),
        ("too short", too_short.clone().into(), "short", "the key is truncated: its body decodes to 33 bytes, a key has 36".into()),
        ("truncated paste", good[..40].into(), "short", "the key is truncated: its body decodes to 24 bytes, a key has 36".into()),
        ("too long", too_long.into(), "long", "the key is too long: its body decodes to 40 bytes, a key has 36".into()),
        ("two keys pasted", format!("{good}\n{good}").into(), "several", "the input holds more than one key".into()),
        ("stray padding", format!("{good}=").into(), "padding", "stray '=' padding".into()),
        ("padding inside", swap(&good, 40, '=').into(), "padding", "stray '=' padding".into()),
        ("url-safe '-'", swap(&good, 30, '-').into(), "urlsafe", "mixes base64 alphabets".into()),
        ("url-safe '_'", swap(&good, 12, '_').into(), "urlsafe", "mixes base64 alphabets".into()),
        ("trailing bits", trailing.into(), "bits", "last character has trailing bits set".into()),
        ("checksum", swap(&good, 20, changed_char).into(), "checksum", "the key's checksum does not match".into()),
        (
            "wrong kind",
            text_of("com", &raw_key(22)).into(),
            "kind",
            "this is a communication key, not an encryption key".into(),
        ),
        (
            "pem",
            b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n".to_vec(),
            "pem",
            "this is a PEM block".into(),
        ),
        (
            "jwt",
            b"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c\n"
                .to_vec(),
            "jwt",
            "this is a JSON Web Token".into(),
        ),
        ("random text", b"correct horse battery staple\n".to_vec(), "text", "this is text that is not a keyturn key".into()),
        ("all zero", text_of("enc", &[0u8; 32]).into(), "weak", "all one repeated byte".into()),
        ("repeated byte", text_of("enc", &[0x5Au8; 32]).into(), "weak", "all one repeated byte".into()),
        ("default key", text_of("enc", &default_key("enc")).into(), "default", "the built-in default encryption key".into()),
        ("a token", b"ktsec:1:0011223344556677:AAAA\n".to_vec(), "token", "a keyturn token".into()),
        ("space inside", swap(&good, 25, ' ').into(), "char", "a character that base64 does not use at position 26".into()),
        ("newer format", format!("kt2:enc:{body}").into(), "newer", "a newer text format".into()),
        ("binary", vec![0xC3, 0x28, 0xFF, 0x00], "binary", "binary data, not text".into()),
        ("over 64 KiB", big.into(), "big", "standard input is over 64 KiB: refused unread".into()),
    ];

    let before = snapshot(&home);
    assert!(before.contains_key(Path::new("keys.toml")) && before.contains_key(Path::new("audit.log")));
    let mut seen: Vec<(&str, &str, String)> = Vec::new();
    for (case, input, class, phrase) in &cases {
        let out = kt(&home, &["import", "encryption"], input.clone());
        out.error_line(1, phrase);
        // Parse errors say which key was not imported; input-level ones say what was read.
        if !matches!(*class, "big" | "binary") {
            assert!(out.stderr.starts_with("keyturn: error: the encryption key was not imported: "), "{case}: {out:?}");
        }
        if input.len() > 20 && input.len() < 100 {
            let secretish = String::from_utf8_lossy(&input[8..20]).to_string();
            assert!(!out.stderr.contains(&secretish), "{case}: the input is not repeated: {out:?}");
        }
        assert_eq!(snapshot(&home), before, "{case}: the home is unchanged");
        seen.push((case, class, out.stderr));
    }
    for (case, class, stderr) in &seen {
        for (_, _, other_class, phrase) in &cases {
            if class != other_class {
                assert!(
                    !stderr.contains(phrase.as_str()),
                    "{case} ({class}) must not read like {other_class}: {stderr}"
                );
            }
        }
    }

    // The same refusals through --file, e.g. an oversized file.
    let file = tmp.path().join("big.txt");
    fs::write(&file, "A".repeat(64 * 1024 + 1)).expect("write");
    let out = kt(&home, &["import", "encryption", "--file", file.to_str().expect("UTF-8 path")], "");
    out.error_line(1, &format!("the key file {} is over 64 KiB: refused unread", file.display()));
    assert_eq!(snapshot(&home), before);
    // An endless file is read only up to the limit.
    let out = kt(&home, &["import", "encryption", "--file", "/dev/zero"], "");
    out.error_line(1, "the key file /dev/zero is over 64 KiB: refused unread");
    assert_eq!(snapshot(&home), before);

    // The communication side refuses an encryption key too.
    let out = kt(&home, &["import", "communication"], good.clone());
    out.error_line(1, "this is an encryption key, not a communication key");
    assert_eq!(snapshot(&home), before);
    assert_eq!(kt(&home, &["show", "encryption"], "").stdout_str(), format!("{active}\n"));
}

/// A paste that lost its last character is a truncated paste (DESIGN.md 1:
/// the error says "which of these it is"). A 47-character body can only come
/// from a cut paste, and its last character usually has unused bits set, so
/// the canonical-base64 refusal must say "truncated" too (an earlier build
/// only called it damaged).
#[test]
fn a_paste_missing_its_last_character_is_called_truncated() {
    let (_tmp, home) = fresh();
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let value = |c: u8| ALPHABET.iter().position(|&a| a == c).expect("a base64 character");
    // The 47th body character (text index 54) ends a 3-character group whose
    // two low bits are unused; pick a key where they are not zero.
    let text = (0..=255u8)
        .map(|seed| text_of("enc", &raw_key(seed)))
        .find(|t| value(t.as_bytes()[54]) & 3 != 0)
        .map(|t| t[..55].to_string())
        .expect("some key whose 47th body character has trailing bits");
    let out = kt(&home, &["import", "encryption"], text);
    out.error_line(1, "the key is truncated");
    assert!(!home.exists(), "nothing written");
}

// ---------------------------------------------------------------------------
// 3. Store loader refusal matrix
// ---------------------------------------------------------------------------

fn entry(kind: &str, status: &str, key: &[u8; 32], extra: &str) -> String {
    let tag = &kind[..3];
    format!(
        "\n[[keys]]\nkind = \"{kind}\"\nstatus = \"{status}\"\nfingerprint = \"{}\"\ncreated = \"2026-01-02T03:04:05Z\"\n{extra}key = \"{}\"\n",
        fingerprint_of(tag, key),
        text_of(tag, key)
    )
}

#[test]
fn a_valid_hand_written_keys_file_is_read() {
    let (_tmp, home) = fresh();
    fs::create_dir(&home).expect("mkdir");
    let text = format!(
        "format = 1\n{}{}{}# end of file\n",
        entry("encryption", "active", &raw_key(30), ""),
        entry("encryption", "retired", &raw_key(31), "retired = \"2026-01-03T00:00:00Z\"\n"),
        entry("communication", "active", &raw_key(32), "")
    );
    write_mode(&home.join("keys.toml"), &text, 0o600);
    let doc = status_json(&home);
    assert_eq!(doc["keys"]["encryption"]["fingerprint"], fingerprint_of("enc", &raw_key(30)));
    assert_eq!(doc["keys"]["encryption"]["imported"], "2026-01-02T03:04:05Z");
    assert_eq!(doc["keys"]["encryption"]["retired"][0]["fingerprint"], fingerprint_of("enc", &raw_key(31)));
    assert_eq!(doc["keys"]["encryption"]["retired"][0]["retired"], "2026-01-03T00:00:00Z");
    assert_eq!(doc["keys"]["communication"]["fingerprint"], fingerprint_of("com", &raw_key(32)));
}

#[test]
fn store_loader_refusal_matrix() {
    let good_entry = entry("encryption", "active", &raw_key(33), "");
    let valid = format!("format = 1\n{good_entry}");
    let mut wrong_fp = valid.replace(&fingerprint_of("enc", &raw_key(33)), &fingerprint_of("enc", &raw_key(34)));
    wrong_fp.push('\n');
    let missing_created = valid.replace("created = \"2026-01-02T03:04:05Z\"\n", "");
    assert_ne!(missing_created, valid);

    type Setup = Box<dyn Fn(&Path) -> PathBuf>;
    // Each case's file ends as keyturn writes it, with its end line, so
    // that the case is refused for what it shows, not for a missing end.
    let keys_file = |bytes: Vec<u8>| -> Setup {
        Box::new(move |home: &Path| {
            let path = home.join("keys.toml");
            let mut bytes = bytes.clone();
            if !bytes.is_empty() {
                bytes.extend_from_slice(b"\n# end of file\n");
            }
            write_mode(&path, &bytes, 0o600);
            path
        })
    };
    let bare_file = |bytes: Vec<u8>| -> Setup {
        Box::new(move |home: &Path| {
            let path = home.join("keys.toml");
            write_mode(&path, &bytes, 0o600);
            path
        })
    };
    let cases: Vec<(&str, Setup, &str)> = vec![
        ("invalid TOML", keys_file(b"format = 1\n[[keys]\nkind = \"encryption\"\n".to_vec()), "keys.toml line 2: "),
        (
            "UTF-8 byte-order mark",
            keys_file([&[0xEF, 0xBB, 0xBF][..], valid.as_bytes()].concat()),
            "starts with a byte-order mark",
        ),
        (
            "unknown top-level field",
            keys_file(format!("format = 1\ncolour = \"red\"\n{good_entry}").into()),
            "unknown field `colour`",
        ),
        (
            "unknown field in a key entry",
            keys_file(format!("format = 1\n{}", entry("encryption", "active", &raw_key(33), "note = \"x\"\n")).into()),
            "key entry 1: unknown field `note`",
        ),
        (
            "unknown format version",
            keys_file(valid.replace("format = 1", "format = 2").into()),
            "format version 2 is not one this keyturn reads",
        ),
        ("missing field", keys_file(missing_created.into()), "key entry 1: missing field `created`"),
        ("missing format", keys_file(valid.replace("format = 1\n", "").into()), "missing field `format`"),
        ("fingerprint mismatch", keys_file(wrong_fp.into()), "does not match its encryption key"),
        (
            "two active encryption keys",
            keys_file(format!("{valid}{}", entry("encryption", "active", &raw_key(35), "")).into()),
            "is inconsistent: two active encryption keys",
        ),
        ("empty (truncated) file", keys_file(Vec::new()), "is empty (truncated?)"),
        ("cut mid-entry", keys_file(valid.as_bytes()[..valid.len() - 20].to_vec()), "will not replace it"),
        (
            "cut between two entries",
            bare_file(format!("{valid}{}", entry("communication", "active", &raw_key(36), "")).into_bytes()),
            "is truncated: its last line is not `# end of file`",
        ),
        (
            "a symbolic link",
            Box::new(|home: &Path| {
                let target = home.join("elsewhere.toml");
                write_mode(
                    &target,
                    format!("format = 1\n{}# end of file\n", entry("encryption", "active", &raw_key(33), "")),
                    0o600,
                );
                let path = home.join("keys.toml");
                std::os::unix::fs::symlink(&target, &path).expect("symlink");
                path
            }),
            "is a symbolic link",
        ),
        (
            "a directory",
            Box::new(|home: &Path| {
                let path = home.join("keys.toml");
                fs::create_dir(&path).expect("mkdir");
                path
            }),
            "is not a regular file",
        ),
        (
            "readable by others (0644)",
            Box::new(move |home: &Path| {
                let path = home.join("keys.toml");
                write_mode(
                    &path,
                    format!("format = 1\n{}# end of file\n", entry("encryption", "active", &raw_key(33), "")),
                    0o644,
                );
                path
            }),
            "chmod 600",
        ),
        (
            "readable by the group (0640)",
            Box::new(move |home: &Path| {
                let path = home.join("keys.toml");
                write_mode(
                    &path,
                    format!("format = 1\n{}# end of file\n", entry("encryption", "active", &raw_key(33), "")),
                    0o640,
                );
                path
            }),
            "chmod 600",
        ),
        (
            "keyturn.toml writable by others (0666)",
            Box::new(move |home: &Path| {
                write_mode(
                    &home.join("keys.toml"),
                    format!("format = 1\n{}# end of file\n", entry("encryption", "active", &raw_key(33), "")),
                    0o600,
                );
                let path = home.join("keyturn.toml");
                write_mode(&path, "# no publishing\n", 0o666);
                path
            }),
            "chmod go-w",
        ),
        (
            "keyturn.toml writable by the group (0664)",
            Box::new(|home: &Path| {
                let path = home.join("keyturn.toml");
                write_mode(&path, "", 0o664);
                path
            }),
            "chmod go-w",
        ),
    ];

    for (case, setup, phrase) in cases {
        let (_tmp, home) = fresh();
        fs::create_dir(&home).expect("mkdir home");
        set_mode(&home, 0o700);
        let path = setup(&home);
        let before = snapshot(&home);

        let out = kt(&home, &["status"], "");
        out.error_line(1, phrase);
        assert!(out.stderr.contains(&path.display().to_string()), "{case}: names the file: {out:?}");
        if phrase.starts_with("chmod") {
            assert!(
                out.stderr.contains(&format!("{phrase} '{}'", path.display())),
                "{case}: says how to fix it: {out:?}"
            );
        }
        assert_eq!(snapshot(&home), before, "{case}: status changes nothing");

        for args in
            [&["status", "--json"][..], &["fingerprint", "encryption"], &["encrypt"], &["reset", "communication"]]
        {
            let other = kt(&home, args, "x");
            assert_eq!((other.code, other.stderr.as_str()), (1, out.stderr.as_str()), "{case}: {args:?}");
        }
        let import = kt(&home, &["import", "encryption"], text_of("enc", &raw_key(36)));
        assert_eq!((import.code, import.stdout_str(), import.stderr.as_str()), (1, "", out.stderr.as_str()), "{case}");
        assert_eq!(snapshot(&home), before, "{case}: an import does not replace it");
    }
}

#[test]
fn a_home_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let home = tmp.path().join("home");
    fs::write(&home, "not a directory").expect("write");
    let out = kt(&home, &["import", "encryption"], text_of("enc", &raw_key(37)));
    out.error_line(1, "is not a directory");
    assert_eq!(fs::read(&home).expect("read"), b"not a directory");
}

// ---------------------------------------------------------------------------
// 4. Published files
// ---------------------------------------------------------------------------

const ENCODINGS: [&str; 4] = ["text", "base64", "hex", "raw"];

fn publish_config() -> String {
    let mut config = String::from("# The operator's comment: services read these at start-up.\n");
    for (kind, tag) in [("encryption", "enc"), ("communication", "com")] {
        for encoding in ENCODINGS {
            config.push_str(&format!(
                "\n[[publish]]\nkind = \"{kind}\"   # {tag}\npath = \"pub/{tag}.{encoding}\"\nencoding = \"{encoding}\"\n"
            ));
        }
    }
    config
}

fn rendered(tag: &str, key: &[u8], encoding: &str) -> Vec<u8> {
    match encoding {
        "text" => format!("{}\n", text_of(tag, key)).into_bytes(),
        "base64" => format!("{}\n", STANDARD.encode(key)).into_bytes(),
        "hex" => format!("{}\n", key.iter().map(|b| format!("{b:02x}")).collect::<String>()).into_bytes(),
        "raw" => key.to_vec(),
        _ => unreachable!("unknown encoding {encoding}"),
    }
}

fn published_lines(home: &Path, tag: &str, state: &str) -> String {
    ENCODINGS
        .iter()
        .map(|e| format!("Published {}: {state}.\n", home.join(format!("pub/{tag}.{e}")).display()))
        .collect()
}

#[test]
fn published_files_hold_the_key_in_every_encoding() {
    let (_tmp, home) = fresh();
    fs::create_dir_all(home.join("pub")).expect("mkdir");
    set_mode(&home, 0o700);
    write_mode(&home.join("keyturn.toml"), publish_config(), 0o644);
    let (enc, com) = (raw_key(40), raw_key(41));
    let (enc_fp, com_fp) = (fingerprint_of("enc", &enc), fingerprint_of("com", &com));

    let out = kt(&home, &["import", "encryption"], text_of("enc", &enc));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key imported successfully. The encryption key is now {enc_fp} (was {DEFAULT_ENC_FP}).\n\
                 The replaced key {DEFAULT_ENC_FP} is kept as retired, so data sealed under it stays readable.\n{}{RESTART}",
                published_lines(&home, "enc", "written")
            )
            .as_str()
        )
    );
    let out = kt(&home, &["import", "communication"], text_of("com", &com));
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key imported successfully. The communication key is now {com_fp} (was {DEFAULT_COM_FP}).\n{}{RESTART}",
                published_lines(&home, "com", "written")
            )
            .as_str()
        )
    );
    for (tag, key) in [("enc", &enc), ("com", &com)] {
        for encoding in ENCODINGS {
            let path = home.join(format!("pub/{tag}.{encoding}"));
            assert_eq!(fs::read(&path).expect("published"), rendered(tag, key, encoding), "{}", path.display());
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(rendered("enc", &enc, "raw").len(), 32);
    assert_eq!(rendered("enc", &enc, "hex").len(), 65);
    assert_eq!(rendered("enc", &enc, "base64").len(), 45);
    assert_eq!(fs::read_to_string(home.join("keyturn.toml")).expect("config"), publish_config(), "config untouched");

    // Importing the active key again repairs a damaged or loosened published file.
    let loosened = home.join("pub/enc.hex");
    set_mode(&loosened, 0o644);
    fs::remove_file(home.join("pub/enc.raw")).expect("rm");
    let out = kt(&home, &["import", "encryption"], text_of("enc", &enc));
    let states = ["already current", "already current", "written", "written"];
    let lines: String = ENCODINGS
        .iter()
        .zip(states)
        .map(|(e, s)| format!("Published {}: {s}.\n", home.join(format!("pub/enc.{e}")).display()))
        .collect();
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (0, format!("The encryption key {enc_fp} is already active; nothing changed.\n{lines}{RESTART}").as_str())
    );
    assert_eq!(mode(&loosened), 0o600);
    assert_eq!(fs::read(home.join("pub/enc.raw")).expect("republished"), enc.to_vec());

    // Reset: the communication files hold the default key; the encryption ones are untouched.
    let enc_before: Vec<_> = ENCODINGS
        .iter()
        .map(|e| {
            let p = home.join(format!("pub/enc.{e}"));
            (fs::read(&p).expect("read"), fs::metadata(&p).expect("stat").ino())
        })
        .collect();
    let out = kt(&home, &["reset", "communication"], "");
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            0,
            "",
            format!(
                "Key reset to the default successfully. The communication key is now {DEFAULT_COM_FP} (was {com_fp}).\n{}\
                 {RESTART}Warning: {DEFAULT_WARNING}.\n",
                published_lines(&home, "com", "written")
            )
            .as_str()
        )
    );
    let default_com = default_key("com");
    for encoding in ENCODINGS {
        let path = home.join(format!("pub/com.{encoding}"));
        assert_eq!(fs::read(&path).expect("published"), rendered("com", &default_com, encoding), "{}", path.display());
        assert_eq!(mode(&path), 0o600);
    }
    let enc_after: Vec<_> = ENCODINGS
        .iter()
        .map(|e| {
            let p = home.join(format!("pub/enc.{e}"));
            (fs::read(&p).expect("read"), fs::metadata(&p).expect("stat").ino())
        })
        .collect();
    assert_eq!(enc_before, enc_after, "the encryption files are not rewritten by a communication reset");
    let leftovers: Vec<_> = fs::read_dir(home.join("pub"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left: {leftovers:?}");
}

#[test]
fn a_publish_path_in_a_missing_directory_fails_the_import_and_changes_nothing() {
    let (_tmp, home) = fresh();
    let first = text_of("enc", &raw_key(42));
    import_ok(&home, "encryption", &first);
    write_mode(
        &home.join("keyturn.toml"),
        "[[publish]]\nkind = \"encryption\"\npath = \"missing/dir/enc.key\"\nencoding = \"raw\"\n",
        0o600,
    );
    let before = snapshot(&home);
    let out = kt(&home, &["import", "encryption"], text_of("enc", &raw_key(43)));
    let target = home.join("missing/dir/enc.key");
    assert_eq!(
        (out.code, out.stdout_str(), out.stderr.as_str()),
        (
            1,
            "",
            format!(
                "keyturn: error: the encryption key was not imported: {}: cannot publish here: the directory {} does \
                 not exist; create it or fix the [[publish]] path in keyturn.toml\n",
                target.display(),
                home.join("missing/dir").display()
            )
            .as_str()
        )
    );
    let after = snapshot(&home);
    for file in ["keys.toml", "audit.log", "keyturn.toml"] {
        assert_eq!(before.get(Path::new(file)), after.get(Path::new(file)), "{file} unchanged");
    }
    assert!(!home.join("missing").exists());
    assert_eq!(kt(&home, &["show", "encryption"], "").stdout_str(), format!("{first}\n"));

    // On a fresh home the keys file is not even created.
    let (_tmp2, fresh_home) = fresh();
    fs::create_dir(&fresh_home).expect("mkdir");
    write_mode(
        &fresh_home.join("keyturn.toml"),
        "[[publish]]\nkind = \"communication\"\npath = \"nowhere/com.key\"\n",
        0o644,
    );
    let out = kt(&fresh_home, &["import", "communication"], text_of("com", &raw_key(44)));
    out.error_line(1, "does not exist");
    assert!(!fresh_home.join("keys.toml").exists());
}

/// A `[[publish]]` path that names one of the store's own files (a typo, or
/// `path = "keys.toml"`) makes the import overwrite that file with the bare
/// key: the keys file, retired keys included, is destroyed (the next command
/// refuses it as "not UTF-8 text"), against DESIGN.md 2 ("never overwritten").
/// `publish::check_targets` (src/store/publish.rs) only checks that the
/// directory exists and the path is not a directory.
#[test]
fn a_publish_path_naming_a_store_file_is_refused() {
    for (target, encoding) in [("keys.toml", "raw"), ("keyturn.toml", "text"), ("./pub/../keys.toml", "hex")] {
        let (_tmp, home) = fresh();
        import_ok(&home, "encryption", &text_of("enc", &raw_key(45)));
        import_ok(&home, "encryption", &text_of("enc", &raw_key(46)));
        fs::create_dir(home.join("pub")).expect("mkdir");
        write_mode(
            &home.join("keyturn.toml"),
            format!("[[publish]]\nkind = \"encryption\"\npath = \"{target}\"\nencoding = \"{encoding}\"\n"),
            0o600,
        );
        let keys_before = fs::read(home.join("keys.toml")).expect("keys file");
        let config_before = fs::read(home.join("keyturn.toml")).expect("config");
        let out = kt(&home, &["import", "encryption"], text_of("enc", &raw_key(47)));
        assert_eq!(fs::read(home.join("keys.toml")).expect("keys file"), keys_before, "{target}: keys.toml kept");
        assert_eq!(fs::read(home.join("keyturn.toml")).expect("config"), config_before, "{target}: config kept");
        out.error_line(1, target.rsplit('/').next().expect("a name"));
    }
}

// ---------------------------------------------------------------------------
// 5. Permissions whatever the umask
// ---------------------------------------------------------------------------

/// keyturn run by `sh` after `umask 000`.
fn under_umask_000(home: &Path, args: &[&str], stdin: String) -> Out {
    let bin = assert_cmd::cargo::cargo_bin("keyturn");
    let mut cmd = Command::new("sh");
    for var in CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.args(["-c", "umask 000; exec \"$0\" \"$@\""]).arg(bin).arg("--home").arg(home).args(args).write_stdin(stdin);
    run(&mut cmd)
}

#[test]
fn files_are_owner_only_under_umask_000() {
    let (_tmp, home) = fresh();
    // Sanity: the wrapper really clears the umask.
    let mut probe = Command::new("sh");
    probe.args(["-c", "umask 000; umask"]);
    assert_eq!(run(&mut probe).stdout_str().trim(), "0000");

    let out = under_umask_000(&home, &["import", "encryption"], text_of("enc", &raw_key(50)));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(mode(&home), 0o700, "the home keyturn created");
    assert_eq!(mode(&home.join("keys.toml")), 0o600);
    assert_eq!(mode(&home.join("audit.log")), 0o600);

    fs::create_dir(home.join("pub")).expect("mkdir");
    write_mode(&home.join("keyturn.toml"), publish_config(), 0o644);
    let out = under_umask_000(&home, &["import", "communication"], text_of("com", &raw_key(51)));
    assert_eq!(out.code, 0, "{out:?}");
    let out = under_umask_000(&home, &["import", "encryption"], text_of("enc", &raw_key(52)));
    assert_eq!(out.code, 0, "{out:?}");
    for tag in ["enc", "com"] {
        for encoding in ENCODINGS {
            assert_eq!(mode(&home.join(format!("pub/{tag}.{encoding}"))), 0o600, "{tag}.{encoding}");
        }
    }
    let out = under_umask_000(&home, &["reset", "communication"], String::new());
    assert_eq!(out.code, 0, "{out:?}");
    for encoding in ENCODINGS {
        assert_eq!(mode(&home.join(format!("pub/com.{encoding}"))), 0o600, "com.{encoding} after reset");
    }
    assert_eq!(mode(&home.join("keys.toml")), 0o600);
    assert_eq!(mode(&home.join("audit.log")), 0o600);
    assert_eq!(mode(&home), 0o700);
    // Every file keyturn wrote is owner-only, except the lock file, which holds
    // no secret (see the_lock_file_is_not_writable_by_others_under_umask_000).
    for (path, entry) in snapshot(&home) {
        if let Entry::File { mode, .. } = entry
            && path != Path::new("keyturn.lock")
            && path != Path::new("keyturn.toml")
        {
            assert_eq!(mode & 0o077, 0, "{}: {mode:o}", path.display());
        }
    }
}

/// DESIGN.md 2: a key file "that others can read is refused"; a keyturn.toml
/// "that others can write is refused too". A file owned by another user is
/// both, whatever its mode (an earlier build checked only the mode bits).
/// Changing a file's owner needs root: skipped otherwise.
#[test]
fn store_files_owned_by_another_user_are_refused() {
    let (_tmp, home) = fresh();
    import_ok(&home, "encryption", &text_of("enc", &raw_key(60)));
    let keys = home.join("keys.toml");
    let me = fs::metadata(&keys).expect("stat").uid();
    let other = if me == 65534 { 65533 } else { 65534 };
    if std::os::unix::fs::chown(&keys, Some(other), None).is_err() {
        eprintln!("skipped: changing a file's owner needs root");
        return;
    }
    let before = snapshot(&home);
    let out = kt(&home, &["status"], "");
    out.error_line(1, &format!("{} is owned by another user (uid {other}", keys.display()));
    let import = kt(&home, &["import", "encryption"], text_of("enc", &raw_key(62)));
    assert_eq!((import.code, import.stderr.as_str()), (1, out.stderr.as_str()));
    assert_eq!(snapshot(&home), before);

    std::os::unix::fs::chown(&keys, Some(me), None).expect("chown back");
    let config = home.join("keyturn.toml");
    write_mode(&config, "", 0o644);
    std::os::unix::fs::chown(&config, Some(other), None).expect("chown");
    kt(&home, &["status"], "").error_line(1, &format!("{} is owned by another user (uid {other}", config.display()));
    std::os::unix::fs::chown(&config, Some(me), None).expect("chown back");
    assert_eq!(kt(&home, &["status"], "").code, 0);
}

/// The lock file holds no secret, but nobody else may write the "held by"
/// note the next writer reports, even under umask 000 (an earlier build
/// created it 0666 there).
#[test]
fn the_lock_file_is_not_writable_by_others_under_umask_000() {
    let (_tmp, home) = fresh();
    let out = under_umask_000(&home, &["import", "encryption"], text_of("enc", &raw_key(61)));
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(mode(&home.join("keyturn.lock")) & 0o022, 0, "mode {:o}", mode(&home.join("keyturn.lock")));
}

// ---------------------------------------------------------------------------
// Issue 13: help, completions, the man page, the CLI's own words
// ---------------------------------------------------------------------------

#[test]
fn help_has_examples_exit_codes_and_the_environment() {
    let (_tmp, home) = fresh();
    for args in [&["--help"][..], &["rotation", "start", "--help"], &["machines", "status", "--help"]] {
        let out = kt(&home, args, "");
        let help = out.ok_quiet();
        for needed in
            ["Examples:", "Exit codes:", "  3  not finished", "KEYTURN_HOME", "NO_COLOR", "KEYTURN_LOCK_WAIT_MS"]
        {
            assert!(help.contains(needed), "keyturn {args:?}: {needed} missing:\n{help}");
        }
    }
}

#[test]
fn completions_for_four_shells_and_a_man_page() {
    let (_tmp, home) = fresh();
    for (shell, marker) in [
        ("bash", "_keyturn()"),
        ("zsh", "#compdef keyturn"),
        ("fish", "complete -c keyturn"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let script = kt(&home, &["completions", shell], "").ok_quiet().to_string();
        assert!(script.contains(marker), "{shell}: {marker} missing");
        assert!(script.contains("rotation"), "{shell}: the subcommands are completed");
    }
    kt(&home, &["completions", "tcsh"], "").code.eq(&2).then_some(()).expect("an unknown shell is wrong usage");
    let man = kt(&home, &["man"], "").ok_quiet().to_string();
    assert!(man.contains(".TH keyturn 1") && man.contains("rotation"), "{man}");
    assert!(!home.exists(), "help, completions and man touch no store");
}

#[test]
fn rotation_words_are_the_labels_and_the_operator_has_a_name() {
    let (_tmp, home) = fresh();
    let plan = kt(&home, &["rotation", "plan", "encryption", "--setup", "single"], "");
    assert!(plan.stdout_str().contains("(single machine, first custom key)"), "{plan:?}");
    let start = kt(&home, &["rotation", "start", "communication", "--setup", "single", "--generate"], "");
    assert_eq!(start.code, 0, "{start:?}");
    assert!(start.stderr.contains("single machine, import: started"), "{start:?}");
    assert!(!start.stderr.contains("open started"), "{start:?}");
    let audit = fs::read_to_string(home.join("audit.log")).expect("audit log");
    assert!(!audit.contains("\"operator\":\"uid "), "a user name, not a uid, where the system knows it: {audit}");
}
