//! Canary test: a custom encryption key and a custom communication key go
//! through every command, including the ones that fail and a forced panic,
//! and no output, log, lock note or other file in the home may carry either
//! key in any form it could plausibly be written in (DESIGN.md §1, §7: "The
//! key never appears in logs, panic messages, debug output, the audit log").

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

const DEFAULT_ENC_FINGERPRINT: &str = "BF85-76AA-883D-FC91";

fn keyturn(home: &Path) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("keyturn"));
    cmd.env_remove("KEYTURN_HOME")
        .env_remove("KEYTURN_TEST_PANIC")
        .env_remove("KEYTURN_CRASH_AT")
        .env_remove("KEYTURN_TEST_HOLD_LOCK_MS")
        .arg("--home")
        .arg(home);
    cmd
}

fn run(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    keyturn(home).args(args).write_stdin(stdin.to_vec()).output().expect("keyturn runs")
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// The forms one key can leak in, each with a name for the report.
fn forms(label: &str, key_text: &str) -> Vec<(String, Vec<u8>)> {
    let (prefix, body) = key_text.split_at(8);
    assert!(prefix == "kt1:enc:" || prefix == "kt1:com:", "unexpected key text prefix in {label}");
    let decoded = STANDARD_NO_PAD.decode(body).expect("the key body is base64");
    assert_eq!(decoded.len(), 36, "key body is 32 key bytes and 4 checksum bytes");
    let raw = &decoded[..32];
    let lower: String = raw.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    let mut whole: Vec<(&str, Vec<u8>)> = vec![
        ("text form", key_text.as_bytes().to_vec()),
        ("text body (base64 of key and checksum)", body.as_bytes().to_vec()),
        ("text body in URL-safe base64", URL_SAFE_NO_PAD.encode(&decoded).into_bytes()),
        ("raw 32 bytes", raw.to_vec()),
        ("lowercase hex", lower.clone().into_bytes()),
        ("uppercase hex", lower.to_uppercase().into_bytes()),
        // Without padding, so that both padded and unpadded writings match.
        ("standard base64", STANDARD_NO_PAD.encode(raw).into_bytes()),
        ("URL-safe base64", URL_SAFE_NO_PAD.encode(raw).into_bytes()),
    ];
    let mut all: Vec<(String, Vec<u8>)> = Vec::new();
    // Halves catch an echo of a damaged copy (one changed character leaves
    // one half intact) and a key cut across two writes.
    for (name, bytes) in whole.drain(..) {
        let half = bytes.len() / 2;
        all.push((format!("{label} {name} (first half)"), bytes[..half].to_vec()));
        all.push((format!("{label} {name} (second half)"), bytes[half..].to_vec()));
        all.push((format!("{label} {name}"), bytes));
    }
    // How Rust's derived Debug writes a byte array.
    all.push((format!("{label} Debug byte list"), format!("{raw:?}").into_bytes()));
    all.push((format!("{label} pretty Debug byte list"), format!("{raw:#?}").into_bytes()));
    all
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read the home") {
        let path = entry.expect("directory entry").path();
        let meta = fs::symlink_metadata(&path).expect("metadata");
        if meta.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn generate(home: &Path, kind: &str) -> String {
    let out = run(home, &["generate", kind], b"");
    assert_eq!(code(&out), Some(0), "generate {kind}: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let key = stdout.trim_end_matches('\n').to_string();
    assert!(key.starts_with("kt1:"), "generate printed a key: {key:?}");
    key
}

#[test]
fn no_key_in_any_output_log_or_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    fs::create_dir_all(home.join("pub")).expect("mkdir home/pub");
    let encodings = ["text", "base64", "hex", "raw"];
    let mut config = String::from("# canary test configuration\n");
    for kind in ["encryption", "communication"] {
        for encoding in encodings {
            let _ = write!(
                config,
                "\n[[publish]]\nkind = \"{kind}\"\npath = \"pub/{}.{encoding}\"\nencoding = \"{encoding}\"\n",
                &kind[..3]
            );
        }
    }
    fs::write(home.join("keyturn.toml"), &config).expect("write keyturn.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(home.join("keyturn.toml"), fs::Permissions::from_mode(0o644)).expect("chmod");
    }

    // Everything searched: (what produced it, bytes).
    let mut searched: Vec<(String, Vec<u8>)> = Vec::new();
    let mut record = |label: &str, out: &Output, with_stdout: bool| {
        searched.push((format!("stderr of `{label}`"), out.stderr.clone()));
        if with_stdout {
            searched.push((format!("stdout of `{label}`"), out.stdout.clone()));
        }
    };

    let enc = run(&home, &["generate", "encryption"], b"");
    assert_eq!(code(&enc), Some(0));
    record("generate encryption", &enc, false);
    let enc_key = text(&enc.stdout).trim_end().to_string();
    let com = run(&home, &["generate", "communication"], b"");
    assert_eq!(code(&com), Some(0));
    record("generate communication", &com, false);
    let com_key = text(&com.stdout).trim_end().to_string();
    assert!(enc_key.starts_with("kt1:enc:") && com_key.starts_with("kt1:com:"), "sanity: generate printed the keys");
    let other_enc_key = generate(&home, "encryption");

    let out = run(&home, &["import", "encryption"], format!("{enc_key}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "import encryption: {}", text(&out.stderr));
    record("import encryption", &out, true);
    let out = run(&home, &["import", "communication"], format!("{com_key}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "import communication: {}", text(&out.stderr));
    record("import communication", &out, true);

    // Sanity: the published files hold exactly the forms derived here, so
    // the search below looks for the right bytes.
    let enc_forms = forms("encryption key", &enc_key);
    let find = |forms: &[(String, Vec<u8>)], name: &str| -> Vec<u8> {
        forms.iter().find(|(n, _)| n.ends_with(name)).map(|(_, b)| b.clone()).expect("form")
    };
    let raw = find(&enc_forms, "raw 32 bytes");
    assert_eq!(fs::read(home.join("pub/enc.raw")).expect("pub/enc.raw"), raw);
    assert_eq!(fs::read(home.join("pub/enc.text")).expect("pub/enc.text"), format!("{enc_key}\n").into_bytes());
    let mut hex = find(&enc_forms, "lowercase hex");
    hex.push(b'\n');
    assert_eq!(fs::read(home.join("pub/enc.hex")).expect("pub/enc.hex"), hex);
    assert_eq!(
        fs::read(home.join("pub/enc.base64")).expect("pub/enc.base64"),
        format!("{}\n", STANDARD.encode(&raw)).into_bytes()
    );
    let com_raw = find(&forms("communication key", &com_key), "raw 32 bytes");
    assert_eq!(fs::read(home.join("pub/com.raw")).expect("pub/com.raw"), com_raw);

    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["fingerprint", "encryption"],
        vec!["fingerprint", "communication"],
    ] {
        let out = run(&home, &args, b"");
        assert_eq!(code(&out), Some(0), "{args:?}: {}", text(&out.stderr));
        record(&args.join(" "), &out, true);
    }

    for (kind, key) in [("encryption", &enc_key), ("communication", &com_key)] {
        let out = run(&home, &["show", kind], b"");
        assert_eq!(code(&out), Some(0), "show {kind}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{key}\n"), "sanity: show prints the key");
        record(&format!("show {kind}"), &out, false);
    }

    let secret_value = "canary value: Password=hunter2";
    let out = run(&home, &["encrypt"], format!("{secret_value}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "encrypt: {}", text(&out.stderr));
    record("encrypt", &out, true);
    let token = text(&out.stdout).trim_end().to_string();
    assert!(token.starts_with("ktsec:"), "encrypt printed a token: {token:?}");
    let out = run(&home, &["decrypt"], format!("{token}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "decrypt: {}", text(&out.stderr));
    assert_eq!(text(&out.stdout), secret_value);
    record("decrypt", &out, true);
    let out = run(&home, &["decrypt"], b"ktsec:1:0123456789abcdef:garbagegarbagegarbagegarbage\n");
    assert_eq!(code(&out), Some(1), "decrypt of garbage fails");
    record("decrypt of garbage", &out, true);
    let out = run(&home, &["decrypt"], b"this is not a token at all\n");
    assert_eq!(code(&out), Some(1), "decrypt of non-token fails");
    record("decrypt of a non-token", &out, true);

    // A copy with one character of the body changed.
    let mut damaged = enc_key.clone().into_bytes();
    damaged[20] = if damaged[20] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).expect("ascii");
    let out = run(&home, &["import", "encryption"], format!("{damaged}\n").as_bytes());
    assert_eq!(code(&out), Some(1), "a damaged key is refused: {}", text(&out.stderr));
    record("import of a damaged copy", &out, true);
    // A cut paste.
    let out = run(&home, &["import", "encryption"], format!("{}\n", &enc_key[..40]).as_bytes());
    assert_eq!(code(&out), Some(1), "a truncated key is refused: {}", text(&out.stderr));
    record("import of a truncated copy", &out, true);
    // Each key as the other kind.
    let out = run(&home, &["import", "communication"], format!("{enc_key}\n").as_bytes());
    assert_eq!(code(&out), Some(1), "wrong kind is refused: {}", text(&out.stderr));
    record("import encryption key as communication", &out, true);
    let out = run(&home, &["import", "encryption"], format!("{com_key}\n").as_bytes());
    assert_eq!(code(&out), Some(1), "wrong kind is refused: {}", text(&out.stderr));
    record("import communication key as encryption", &out, true);
    // The same key again: nothing changes, exit 0.
    let out = run(&home, &["import", "encryption"], format!("{enc_key}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "re-import succeeds: {}", text(&out.stderr));
    record("import of the same encryption key again", &out, true);
    // The key as an argument: refused without echoing it.
    let out = run(&home, &["import", "encryption", &enc_key], b"");
    assert_eq!(code(&out), Some(2), "a key in argv is refused: {}", text(&out.stderr));
    record("import with the key as an argument", &out, true);
    let out = run(&home, &["import", "encryption", "--file", &enc_key], b"");
    assert_eq!(code(&out), Some(2), "a key in argv is refused: {}", text(&out.stderr));
    record("import with the key as --file's value", &out, true);
    // Resets.
    let out = run(&home, &["reset", "encryption"], b"");
    assert_eq!(code(&out), Some(2), "reset encryption is refused: {}", text(&out.stderr));
    record("reset encryption", &out, true);
    let out = run(&home, &["reset", "communication"], b"");
    assert_eq!(code(&out), Some(0), "reset communication: {}", text(&out.stderr));
    record("reset communication", &out, true);
    let out = run(&home, &["show", "communication"], b"");
    assert_eq!(code(&out), Some(1), "show of the default key is refused");
    record("show communication (default, refused)", &out, true);

    // A second encryption import, so the first key is now a retired key in
    // the keyring and the panic below prints a ring with it.
    let out = run(&home, &["import", "encryption"], format!("{other_enc_key}\n").as_bytes());
    assert_eq!(code(&out), Some(0), "import of a second encryption key: {}", text(&out.stderr));
    record("import of a second encryption key", &out, true);
    let out = run(&home, &["status"], b"");
    assert_eq!(code(&out), Some(0));
    record("status with a retired key", &out, true);

    // A forced panic prints the loaded store and keyring.
    let out = keyturn(&home)
        .env("KEYTURN_TEST_PANIC", "1")
        .env("RUST_BACKTRACE", "full")
        .env("COLORBT_SHOW_HIDDEN", "1")
        .arg("status")
        .output()
        .expect("keyturn runs");
    assert_eq!(code(&out), Some(101), "forced panic exits as a panic: {}", text(&out.stderr));
    let panic_stderr = text(&out.stderr);
    assert!(panic_stderr.contains("forced test panic"), "the panic hook ran: {panic_stderr}");
    assert!(panic_stderr.contains(DEFAULT_ENC_FINGERPRINT), "the panic printed the keyring: {panic_stderr}");
    record("KEYTURN_TEST_PANIC=1 status", &out, true);

    // The files of the home, except the keys file and the published files,
    // which hold the key by design.
    let mut paths = Vec::new();
    files_under(&home, &mut paths);
    let mut names = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(&home).expect("under home").to_string_lossy().into_owned();
        let published = ["enc", "com"].iter().any(|k| encodings.iter().any(|e| rel == format!("pub/{k}.{e}")));
        if rel == "keys.toml" || published {
            continue;
        }
        names.push(rel.clone());
        searched.push((format!("file {rel} in the home"), fs::read(&path).expect("read home file")));
    }
    assert!(names.iter().any(|n| n == "audit.log"), "the audit log was searched: {names:?}");
    assert!(names.iter().any(|n| n == "keyturn.lock"), "the lock note was searched: {names:?}");

    let mut all_forms = forms("encryption key", &enc_key);
    all_forms.extend(forms("second encryption key", &other_enc_key));
    all_forms.extend(forms("communication key", &com_key));
    let mut hits = Vec::new();
    for (source, bytes) in &searched {
        for (form, needle) in &all_forms {
            if contains(bytes, needle) {
                hits.push(format!("{form} found in {source}"));
            }
        }
    }
    eprintln!(
        "canary: searched {} outputs and files for {} forms of 3 keys ({} needles)",
        searched.len(),
        all_forms.len() / 3,
        all_forms.len()
    );
    assert!(hits.is_empty(), "key material leaked:\n{}", hits.join("\n"));
}

/// A key body pasted without its `kt1:enc:` prefix (or a published hex or
/// base64 form) put on the command line is echoed by clap's "unexpected
/// argument" error, so it reaches stderr and any log that captures it.
#[test]
fn key_body_as_an_argument_is_not_echoed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let key = generate(&home, "encryption");
    let body = &key[8..];
    let raw = STANDARD_NO_PAD.decode(body).expect("base64");
    let hex: String = raw[..32].iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    for arg in [body.to_string(), hex] {
        let out = run(&home, &["import", "encryption", &arg], b"");
        assert_eq!(code(&out), Some(2));
        let stderr = text(&out.stderr);
        assert!(!stderr.contains(&arg[..20]), "the key was echoed: {stderr}");
    }
}
