//! Canary test: a custom encryption key and a custom communication key go
//! through every command, including the ones that fail and a forced panic,
//! and no output, log, lock note or other file in the home may carry either
//! key in any form it could plausibly be written in (DESIGN.md §1, §7: "The
//! key never appears in logs, panic messages, debug output, the audit log").
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests

mod common;

#[cfg(target_os = "linux")]
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};
#[cfg(target_os = "linux")]
use std::thread::JoinHandle;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

use assert_cmd::Command;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use common::{contains, text};
#[cfg(target_os = "linux")]
use common::{path_str, tokens_in, toml_argv, toml_str};

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

// ---------------------------------------------------------------------------
// Rotations, single and multiple machines, with every process's argument list
// and environment sampled meanwhile
// ---------------------------------------------------------------------------

/// Any one keyturn command here ends well within this; a hung one fails.
#[cfg(target_os = "linux")]
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// What a needle is a form of. A place may be exempt from one kind: the
/// stdout of `generate` and `show` from keys, `decrypt`'s from values.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Canary {
    /// A canary key, in any of its forms.
    Key,
    /// The canary credential secret.
    Secret,
    /// A canary value sealed in a project's token.
    Value,
}

/// Bytes searched for, named for the report.
#[cfg(target_os = "linux")]
struct Needle {
    canary: Canary,
    name: String,
    finder: memchr::memmem::Finder<'static>,
}

#[cfg(target_os = "linux")]
impl Needle {
    fn new(canary: Canary, name: String, bytes: &[u8]) -> Needle {
        assert!(!bytes.is_empty(), "an empty needle: {name}");
        Needle { canary, name, finder: memchr::memmem::Finder::new(bytes).into_owned() }
    }
}

/// Bytes searched in, named for the report.
#[cfg(target_os = "linux")]
struct Place {
    name: String,
    bytes: Vec<u8>,
    exempt: Option<Canary>,
}

/// Every hit of every needle in every place, one line each: which form in
/// which place.
#[cfg(target_os = "linux")]
fn hits(places: &[Place], needles: &[Needle]) -> Vec<String> {
    let mut found = Vec::new();
    for place in places {
        for needle in needles.iter().filter(|n| Some(n.canary) != place.exempt) {
            if needle.finder.find(&place.bytes).is_some() {
                found.push(format!("{} found in {}", needle.name, place.name));
            }
        }
    }
    found
}

/// A secret string's forms: as is, hex and base64.
#[cfg(target_os = "linux")]
fn string_forms(canary: Canary, label: &str, value: &str) -> Vec<Needle> {
    let hex: String = value.bytes().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    });
    vec![
        Needle::new(canary, format!("{label} in clear"), value.as_bytes()),
        Needle::new(canary, format!("{label} in lowercase hex"), hex.as_bytes()),
        Needle::new(canary, format!("{label} in uppercase hex"), hex.to_uppercase().as_bytes()),
        Needle::new(canary, format!("{label} in standard base64"), STANDARD_NO_PAD.encode(value).as_bytes()),
        Needle::new(canary, format!("{label} in URL-safe base64"), URL_SAFE_NO_PAD.encode(value).as_bytes()),
    ]
}

/// Every form of each canary key (named by its label).
#[cfg(target_os = "linux")]
fn key_needles(keys: &[(&str, &str)]) -> Vec<Needle> {
    let mut needles = Vec::new();
    for (label, key) in keys {
        for (name, bytes) in forms(&format!("canary key {label}"), key) {
            needles.push(Needle::new(Canary::Key, name, &bytes));
        }
    }
    needles
}

/// Every file under each of `dirs` (named relative to `root`), but the keys
/// files and the files under `root/published`, which hold keys by design.
#[cfg(target_os = "linux")]
fn files_of(root: &Path, dirs: &[&Path], published: &str) -> Vec<Place> {
    let mut places = Vec::new();
    for dir in dirs.iter().filter(|d| d.exists()) {
        let mut paths = Vec::new();
        files_under(dir, &mut paths);
        for path in paths {
            let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            if path.file_name().is_some_and(|n| n == "keys.toml") || rel.starts_with(published) {
                continue;
            }
            places.push(Place { name: format!("file {rel}"), bytes: fs::read(&path).expect("read"), exempt: None });
        }
    }
    places
}

/// One process as the sampler read it, kept when first seen and whenever
/// its argument list or environment changed (an exec).
#[cfg(target_os = "linux")]
struct Sample {
    pid: u32,
    /// The command the test was running when it was read.
    during: String,
    cmdline: Vec<u8>,
    environ: Vec<u8>,
}

#[cfg(target_os = "linux")]
#[derive(Default)]
struct Sampled {
    /// Sweeps over the whole process table.
    sweeps: usize,
    /// Reads of one process's argument list and environment.
    reads: usize,
    samples: Vec<Sample>,
}

/// A thread that reads every process's `/proc/<pid>/cmdline` and `environ`
/// every 2 ms and keeps each distinct reading, with the command the test was
/// running at the time (`during`).
#[cfg(target_os = "linux")]
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Sampled>>,
}

#[cfg(target_os = "linux")]
impl Sampler {
    fn start(during: Arc<Mutex<String>>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut sampled = Sampled::default();
            let mut last: HashMap<u32, (Vec<u8>, Vec<u8>)> = HashMap::new();
            loop {
                let stopping = flag.load(Ordering::SeqCst);
                let label = during.lock().map(|d| d.clone()).unwrap_or_default();
                if let Ok(entries) = fs::read_dir("/proc") {
                    for pid in entries.flatten().filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok()) {
                        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
                        if cmdline.is_empty() && environ.is_empty() {
                            continue; // gone, or a kernel thread
                        }
                        sampled.reads += 1;
                        if last.get(&pid).is_some_and(|(c, e)| *c == cmdline && *e == environ) {
                            continue;
                        }
                        last.insert(pid, (cmdline.clone(), environ.clone()));
                        sampled.samples.push(Sample { pid, during: label.clone(), cmdline, environ });
                    }
                }
                sampled.sweeps += 1;
                if stopping {
                    return sampled;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Sampler { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> Sampled {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().expect("the sampler runs").join().expect("the sampler does not panic")
    }
}

#[cfg(target_os = "linux")]
impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A NUL-separated argument list as one line.
#[cfg(target_os = "linux")]
fn argv_line(cmdline: &[u8]) -> String {
    text(cmdline).replace('\0', " ").trim().to_string()
}

/// The keyturn commands run, each output kept for the search.
#[cfg(target_os = "linux")]
struct Session {
    /// What the sampler tags its samples with.
    during: Arc<Mutex<String>>,
    places: Vec<Place>,
    commands: Vec<String>,
}

#[cfg(target_os = "linux")]
impl Session {
    fn set_during(&self, label: &str) {
        if let Ok(mut during) = self.during.lock() {
            label.clone_into(&mut during);
        }
    }

    /// Runs keyturn on `home` with `env` added, keeps both outputs and
    /// checks the exit code (`None`: any).
    fn exec(&mut self, home: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)], want: Option<i32>) -> Output {
        let name = home.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let label = format!("keyturn --home {name} {}", args.join(" "));
        let mut cmd = keyturn(home);
        cmd.env_remove("RUST_BACKTRACE").env_remove("RUST_LIB_BACKTRACE").env_remove("KEYTURN_LOCK_WAIT_MS");
        for (var, value) in env {
            cmd.env(var, value);
        }
        self.set_during(&label);
        let out = cmd.args(args).write_stdin(stdin.to_vec()).timeout(COMMAND_TIMEOUT).output().expect("keyturn runs");
        self.set_during("");
        if let Some(want) = want {
            assert_eq!(
                code(&out),
                Some(want),
                "`{label}`: expected exit {want}\nstdout: {}\nstderr: {}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        // The operator asked for the key there.
        let exempt = match args.first().copied() {
            Some("generate" | "show") => Some(Canary::Key),
            Some("decrypt") => Some(Canary::Value),
            _ => None,
        };
        self.places.push(Place { name: format!("stdout of `{label}`"), bytes: out.stdout.clone(), exempt });
        self.places.push(Place { name: format!("stderr of `{label}`"), bytes: out.stderr.clone(), exempt: None });
        self.commands.push(label);
        out
    }

    fn exits(&mut self, home: &Path, args: &[&str], stdin: &[u8], want: i32) -> Output {
        self.exec(home, args, stdin, &[], Some(want))
    }

    fn ok(&mut self, home: &Path, args: &[&str]) -> Output {
        self.exits(home, args, b"", 0)
    }

    fn json(&mut self, home: &Path, args: &[&str], want: i32) -> serde_json::Value {
        let out = self.exits(home, args, b"", want);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} prints JSON ({e}): {}", text(&out.stdout)))
    }

    /// `KEYTURN_TEST_PANIC=1 keyturn status`: in a debug build (the test's
    /// profile is the binary's) a panic with the loaded store in its message.
    fn forced_panic(&mut self, home: &Path, env: &[(&str, &str)]) {
        let env = [&[("KEYTURN_TEST_PANIC", "1")], env].concat();
        if cfg!(debug_assertions) {
            let out = self.exec(home, &["status"], b"", &env, Some(101));
            assert!(text(&out.stderr).contains("forced test panic"), "the panic hook ran: {}", text(&out.stderr));
        } else {
            self.exec(home, &["status"], b"", &env, Some(0));
        }
    }

    /// A new key of `kind`, written to `file` (outside every home).
    fn generate(&mut self, scratch: &Path, kind: &str, file: &Path) -> String {
        let out = self.exits(scratch, &["generate", kind], b"", 0);
        fs::write(file, &out.stdout).expect("write the key file");
        let key = text(&out.stdout).trim_end().to_string();
        assert!(key.starts_with("kt1:"), "generate printed a key");
        key
    }

    fn fingerprint(&mut self, home: &Path, kind: &str) -> String {
        text(&self.ok(home, &["fingerprint", kind]).stdout).trim().to_string()
    }

    /// `rotation run --wait 1` until the rotation is finished; at each step
    /// that needs a person `act` checks it off (or skips it). Returns every
    /// `rotation status --json` seen, the last one finished.
    fn drive(&mut self, home: &Path, act: &mut dyn FnMut(&mut Session, &str)) -> Vec<serde_json::Value> {
        let mut seen = Vec::new();
        for _ in 0..20 {
            let out = self.exec(home, &["rotation", "run", "--wait", "1"], b"", &[], None);
            let r = self.json(home, &["rotation", "status", "--json"], 0);
            let finished = r["status"] == "finished";
            let current = r["current"].as_str().map(String::from);
            seen.push(r);
            match (code(&out), current) {
                (Some(0), _) if finished => return seen,
                (Some(3), Some(step)) => {
                    act(self, &step);
                    let r = self.json(home, &["rotation", "status", "--json"], 0);
                    let finished = r["status"] == "finished";
                    seen.push(r);
                    if finished {
                        return seen;
                    }
                }
                (other, _) => {
                    panic!("rotation run: exit {other:?}\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr))
                }
            }
        }
        panic!("the rotation on {} did not finish in 20 runs: {:#?}", home.display(), seen.last());
    }
}

/// Every step's state and evidence in a `rotation status --json`.
#[cfg(target_os = "linux")]
fn steps_of(r: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    r["steps"]
        .as_array()
        .expect("steps is a list")
        .iter()
        .map(|s| {
            let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (field("id"), (field("state"), field("evidence")))
        })
        .collect()
}

/// A stand-in Execution client: a copy of `sleep` under a name of its own,
/// restarted by a script that stops it by its process id and starts a new
/// one. Stopped by its id when dropped.
#[cfg(target_os = "linux")]
struct StandIn {
    name: String,
    pidfile: PathBuf,
    start: PathBuf,
    restart: PathBuf,
}

#[cfg(target_os = "linux")]
impl StandIn {
    fn new(dir: &Path) -> StandIn {
        let name = format!("kt-lk-{}", std::process::id() % 100_000);
        let dir = dir.join("standin");
        fs::create_dir_all(&dir).expect("mkdir standin");
        let bin = dir.join(&name);
        fs::copy("/bin/sleep", &bin).expect("copy /bin/sleep");
        let pidfile = dir.join("pid");
        let start = dir.join("start.sh");
        fs::write(
            &start,
            format!("'{}' 300 </dev/null >/dev/null 2>&1 &\necho $! > '{}'\n", bin.display(), pidfile.display()),
        )
        .expect("write start.sh");
        let restart = dir.join("restart.sh");
        fs::write(&restart, format!("kill \"$(cat '{}')\"\nexec sh '{}'\n", pidfile.display(), start.display()))
            .expect("write restart.sh");
        StandIn { name, pidfile, start, restart }
    }

    fn launch(&self) {
        let out = std::process::Command::new("sh").arg(&self.start).output().expect("sh runs");
        assert!(out.status.success(), "the stand-in starts: {}", text(&out.stderr));
    }

    fn pid(&self) -> Option<i32> {
        fs::read_to_string(&self.pidfile).ok()?.trim().parse().ok()
    }
}

#[cfg(target_os = "linux")]
impl Drop for StandIn {
    fn drop(&mut self) {
        if let Some(pid) = self.pid().and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// Empty component tables: their restart steps are skipped as not
/// configured here (instead of the Windows defaults).
#[cfg(target_os = "linux")]
const UNCONFIGURED: &str = "[components.scheduling]\n[components.storage]\n[components.execution]\n[components.app]\n";

/// Canary keys and a canary credential secret through a single-machine
/// encryption rotation, a single-machine communication rotation and a
/// multiple-machines communication rotation (two machines reached by a
/// local command, one whose command fails, one whose command is missing),
/// a direct `rotation join`, the fleet and credential reports, an upgrade,
/// purges, a background `copy` and forced panics. Meanwhile a thread samples
/// every process's argument list and environment. Then every output (but
/// the key that `generate` and `show` print and the value `decrypt` prints),
/// every file of every home (but `keys.toml` and the published key files),
/// the project files and every sample are searched for every form of every
/// canary: zero hits is the only pass.
#[cfg(target_os = "linux")]
#[test]
fn no_canary_anywhere_after_rotations_single_and_multi() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let bin = assert_cmd::cargo::cargo_bin("keyturn");
    let bin_str = path_str(&bin).to_string();
    let [first, m1, m2, m3, scratch, keys, project, m3_project] =
        ["first", "m1", "m2", "m3", "scratch", "keys", "project", "m3-project"].map(|n| root.join(n));
    for d in [&first, &m1, &m2, &m3, &keys, &project, &m3_project] {
        fs::create_dir_all(d).expect("mkdir");
    }
    fs::create_dir_all(first.join("pub")).expect("mkdir pub");
    let standin = StandIn::new(root);

    // The first machine: Scheduling server with SMTP (so the SMTP credential
    // step applies), every key published in every encoding, a project, the
    // stand-in as its Execution client, a connect step whose command fails,
    // and a roster of two reachable machines and two that are not.
    let encodings = ["text", "base64", "hex", "raw"];
    let mut config = String::from(
        "# leak scan: the first machine\n[machine]\nroles = [\"scheduling\", \"execution\"]\nsmtp = true\n",
    );
    for kind in ["encryption", "communication"] {
        for encoding in encodings {
            let _ = write!(
                config,
                "\n[[publish]]\nkind = \"{kind}\"\npath = \"pub/{}.{encoding}\"\nencoding = \"{encoding}\"\n",
                &kind[..3]
            );
        }
    }
    let pub_text = |kind: &str| path_str(&first.join(format!("pub/{kind}.text"))).to_string();
    let check = "\"$0\" fingerprint encryption --file \"$1\" 2>/dev/null; \
                 \"$0\" fingerprint communication --file \"$2\" 2>/dev/null; true";
    let _ = write!(
        config,
        "\n[[projects]]\npath = {}\n\n[components.scheduling]\n[components.storage]\n[components.app]\n\
         [components.execution]\nprocess = {}\nrestart = {}\ncheck = {}\n\n[steps.connect]\ncommand = [\"false\"]\n",
        toml_str(path_str(&project)),
        toml_str(&standin.name),
        toml_argv(&["sh", path_str(&standin.restart)]),
        toml_argv(&["sh", "-c", check, &bin_str, &pub_text("enc"), &pub_text("com")]),
    );
    let missing = root.join("no-such-keyturn");
    // The machines reached run keyturn through a wrapper (as ssh or sudo
    // would), which also makes each join hold its lock a moment (debug
    // builds), so the sampler is sure to see it.
    let hold = "KEYTURN_TEST_HOLD_LOCK_MS=100";
    for (name, command) in [
        ("m1", vec!["env", hold, bin_str.as_str(), "--home", path_str(&m1)]),
        ("m2", vec!["env", hold, bin_str.as_str(), "--home", path_str(&m2)]),
        ("bad", vec!["false"]),
        ("gone", vec![path_str(&missing)]),
    ] {
        let _ = write!(
            config,
            "\n[[machines]]\nname = \"{name}\"\nroles = [\"execution\"]\ncommand = {}\n",
            toml_argv(&command)
        );
    }
    fs::write(first.join("keyturn.toml"), &config).expect("write keyturn.toml");
    for home in [&m1, &m2] {
        fs::write(home.join("keyturn.toml"), format!("# a roster machine\n{UNCONFIGURED}"))
            .expect("write keyturn.toml");
    }
    fs::write(
        m3.join("keyturn.toml"),
        format!("# joins directly\n{UNCONFIGURED}\n[[projects]]\npath = {}\n", toml_str(path_str(&m3_project))),
    )
    .expect("write keyturn.toml");

    let during = Arc::new(Mutex::new(String::new()));
    let sampler = Sampler::start(Arc::clone(&during));
    let mut s = Session { during, places: Vec::new(), commands: Vec::new() };

    // The sampler's own check: a process with a decoy in its argument list
    // and one in its environment, which it must catch.
    let decoy = format!("DECOY-{:016x}", rand::random::<u64>());
    let (decoy_arg, decoy_env) = (format!("{decoy}-ARGV"), format!("{decoy}-ENVIRON"));
    let status = std::process::Command::new("sh")
        .args(["-c", "sleep 0.3", &decoy_arg])
        .env("LEAK_SCAN_DECOY", &decoy_env)
        .status()
        .expect("sh runs");
    assert!(status.success());

    // The canaries, new on every run.
    let enc1_file = keys.join("enc1.key");
    let enc1 = s.generate(&scratch, "encryption", &enc1_file);
    let enc2 = s.generate(&scratch, "encryption", &keys.join("enc2.key"));
    let com1_file = keys.join("com1.key");
    let com1 = s.generate(&scratch, "communication", &com1_file);
    let com2 = s.generate(&scratch, "communication", &keys.join("com2.key"));
    let tag = format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>());
    let secret = format!("CANARY-SECRET-{tag}");
    let values: Vec<String> =
        ["login", "db", "mail", "m3"].iter().map(|what| format!("CANARY-VALUE-{what}-{}", &tag[..20])).collect();

    // The credentials, and a project of tokens, under the default key.
    for name in ["git", "smtp"] {
        s.exits(&first, &["credentials", "set", name, "--user", "qa"], format!("{secret}\n").as_bytes(), 0);
    }
    let encrypt = |s: &mut Session, home: &Path, value: &str| -> String {
        let token = text(&s.exits(home, &["encrypt"], format!("{value}\n").as_bytes(), 0).stdout).trim().to_string();
        assert!(token.starts_with("ktsec:1:"), "encrypt printed a token: {token}");
        token
    };
    let toks: Vec<String> = values[..3].iter().map(|v| encrypt(&mut s, &first, v)).collect();
    fs::create_dir_all(project.join("tests")).expect("mkdir tests");
    fs::write(
        project.join("settings.json"),
        format!("{{\n  \"login\": \"{}\",\n  \"db\": \"{}\"\n}}\n", toks[0], toks[1]),
    )
    .expect("write settings.json");
    fs::write(project.join("tests/mail.tstest"), format!("<step password=\"{}\" />\n", toks[2]))
        .expect("write mail.tstest");
    fs::write(project.join("README.md"), "no tokens here\n").expect("write README.md");
    s.ok(&first, &["projects", "add", path_str(&project)]);
    s.ok(&first, &["projects", "list"]);
    s.ok(&first, &["config", "check"]);
    s.ok(&first, &["machines", "list"]);
    s.ok(&first, &["status", "--json"]);
    standin.launch();

    // 1. A single-machine encryption rotation: first custom key, from a file.
    s.ok(&first, &["rotation", "plan", "encryption", "--setup", "single"]);
    let mut damaged = enc1.clone().into_bytes();
    damaged[20] = if damaged[20] == b'A' { b'B' } else { b'A' };
    let damaged = String::from_utf8(damaged).expect("ASCII");
    let damaged_file = keys.join("damaged.key");
    fs::write(&damaged_file, format!("{damaged}\n")).expect("write the damaged key");
    s.exits(
        &first,
        &["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&damaged_file)],
        b"",
        1,
    );
    s.exits(&first, &["rotation", "start", "communication", "--setup", "single"], format!("{enc1}\n").as_bytes(), 1);
    s.ok(&first, &["rotation", "start", "encryption", "--setup", "single", "--file", path_str(&enc1_file)]);
    s.exits(&first, &["import", "encryption"], format!("{enc2}\n").as_bytes(), 1);
    let enc1_fp = s.fingerprint(&first, "encryption");
    let seen = s.drive(&first, &mut |s, step| {
        s.ok(&first, &["rotation", "confirm", step]);
    });
    let steps = steps_of(seen.last().expect("a status"));
    for (id, state, evidence) in [
        ("restart-execution", "done", format!("reports {enc1_fp}")),
        ("credential-git", "done", "reads under the new key".to_string()),
        ("credential-smtp", "done", "reads under the new key".to_string()),
        ("upgrade-projects", "done", "3 tokens in 1 projects are under the new key".to_string()),
    ] {
        let (got, text) = &steps[id];
        assert!(got == state && text.contains(&evidence), "step {id}: {got}: {text}");
    }

    // Between rotations: the copy (in the background: it waits 30 s), reports,
    // a plain import that retires the first key, a refused purge, an upgrade,
    // a purge, and a forced panic with a retired key in the ring.
    let copy = match std::process::Command::new("setsid").arg("--version").output() {
        Ok(out) if out.status.success() => {
            // No controlling terminal and no display: the OSC 52 sequence
            // goes to stderr, never to the terminal running the tests or to
            // the desktop's clipboard.
            let mut cmd = std::process::Command::new("setsid");
            cmd.arg(&bin).arg("--home").arg(&first).args(["copy", "encryption"]);
            for var in [
                "DISPLAY",
                "WAYLAND_DISPLAY",
                "KEYTURN_HOME",
                "KEYTURN_TEST_PANIC",
                "KEYTURN_CRASH_AT",
                "KEYTURN_TEST_HOLD_LOCK_MS",
                "RUST_BACKTRACE",
            ] {
                cmd.env_remove(var);
            }
            Some(
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("keyturn copy starts"),
            )
        }
        _ => {
            eprintln!("leak scan: no setsid here; `keyturn copy` is not run");
            None
        }
    };
    s.json(&first, &["status", "--json"], 0);
    s.json(&first, &["credentials", "list", "--json"], 0);
    s.ok(&first, &["fingerprint", "encryption", "--file", path_str(&first.join("pub/enc.hex")), "--encoding", "hex"]);
    let out = s.exits(
        &first,
        &["decrypt"],
        format!("{}\n", tokens_in(&fs::read_to_string(project.join("settings.json")).expect("read"))[0]).as_bytes(),
        0,
    );
    assert_eq!(text(&out.stdout), values[0], "sanity: the project's tokens hold the canary values");
    let out = s.ok(&first, &["show", "encryption"]);
    assert_eq!(text(&out.stdout).trim_end(), enc1, "sanity: show prints the key");
    s.json(&first, &["upgrade", "--dry-run", "--json"], 0);
    s.exits(&first, &["import", "encryption"], format!("{enc2}\n").as_bytes(), 0);
    let out = s.exits(&first, &["keys", "purge"], b"", 1);
    assert!(
        text(&out.stderr).contains("settings.json"),
        "purge names the files still under the key: {}",
        text(&out.stderr)
    );
    s.forced_panic(&first, &[("RUST_BACKTRACE", "1")]);
    let report = s.json(&first, &["upgrade", "--json"], 0);
    assert_eq!(report["projects"][0]["upgraded"], 3, "{report:#}");
    s.ok(&first, &["keys", "purge"]);
    s.json(&first, &["credentials", "list", "--json"], 0);

    // 2. A single-machine communication rotation, from a file; the connect
    // step's command fails and is skipped.
    s.ok(&first, &["rotation", "start", "communication", "--setup", "single", "--file", path_str(&com1_file)]);
    let com1_fp = s.fingerprint(&first, "communication");
    let seen = s.drive(&first, &mut |s, step| {
        if step == "connect" {
            s.ok(&first, &["rotation", "skip", step, "--reason", "connected by hand"]);
        } else {
            s.ok(&first, &["rotation", "confirm", step]);
        }
    });
    assert!(
        seen.iter().any(|r| steps_of(r)["connect"].0 == "failed"),
        "the connect step's command failed: {:#?}",
        seen.last()
    );
    assert!(steps_of(seen.last().expect("a status"))["restart-execution"].1.contains(&com1_fp));

    // 3. A multiple-machines communication rotation, the key on standard
    // input: m1 and m2 join through their command, `bad` fails (confirmed
    // by the fingerprint shown there, after a wrong one), `gone` cannot run
    // (skipped), connect fails (skipped).
    s.ok(&first, &["rotation", "plan", "communication", "--setup", "multi"]);
    s.exits(&first, &["rotation", "start", "communication", "--setup", "multi"], format!("{com2}\n").as_bytes(), 0);
    let com2_fp = s.fingerprint(&first, "communication");
    let seen = s.drive(&first, &mut |s, step| match step {
        "distribute" => {
            s.ok(&first, &["show", "communication"]);
            s.ok(&first, &["rotation", "confirm", step]);
        }
        "machine-bad" => {
            s.json(&first, &["machines", "status", "--json"], 3);
            s.exits(&first, &["rotation", "confirm", step, "--fingerprint", &com1_fp], b"", 1);
            s.ok(&first, &["rotation", "confirm", step, "--fingerprint", &com2_fp]);
        }
        "machine-gone" | "connect" => {
            s.ok(&first, &["rotation", "skip", step, "--reason", "done by hand"]);
        }
        other => panic!("unexpected step needing a person: {other}"),
    });
    let waited: Vec<(String, String)> =
        seen.iter().flat_map(|r| steps_of(r).into_iter().map(|(id, (state, _))| (id, state))).collect();
    for id in ["machine-bad", "machine-gone"] {
        assert!(waited.contains(&(id.to_string(), "waiting".to_string())), "{id} waited");
    }
    let steps = steps_of(seen.last().expect("a status"));
    for name in ["m1", "m2"] {
        let (state, evidence) = &steps[&format!("machine-{name}")];
        assert!(
            state == "done" && evidence.contains(&format!("{name} reports {com2_fp}")),
            "{name}: {state}: {evidence}"
        );
    }
    s.json(&first, &["machines", "status", "--json"], 3);
    for home in [&m1, &m2] {
        let status = s.json(home, &["status", "--json"], 0);
        assert_eq!(status["keys"]["communication"]["fingerprint"], com2_fp.as_str(), "{status:#}");
    }

    // 4. A join run directly, the key on standard input: a project and a
    // credential under the default key there; the project is not a Git work
    // tree, so getting its latest version needs a person (exit 3). Then the
    // same again, a key of the wrong kind, and a communication reset.
    s.exits(&m3, &["credentials", "set", "smtp", "--user", "qa"], format!("{secret}\n").as_bytes(), 0);
    let m3_token = encrypt(&mut s, &m3, &values[3]);
    fs::write(m3_project.join("app.config"), format!("<add key=\"db\" value=\"{m3_token}\" />\n"))
        .expect("write app.config");
    let join =
        s.exits(&m3, &["rotation", "join", "encryption", "--json", "--wait", "1"], format!("{enc1}\n").as_bytes(), 3);
    let report: serde_json::Value = serde_json::from_slice(&join.stdout).expect("the join report is JSON");
    assert_eq!(report["fingerprints"]["encryption"], enc1_fp.as_str(), "{report:#}");
    s.exits(&m3, &["rotation", "join", "encryption", "--json", "--wait", "1"], format!("{enc1}\n").as_bytes(), 3);
    s.exits(&m3, &["rotation", "join", "encryption", "--json"], format!("{com1}\n").as_bytes(), 1);
    s.exits(&m3, &["rotation", "join", "encryption", "--json"], format!("{damaged}\n").as_bytes(), 1);
    s.ok(&m3, &["rotation", "join", "communication", "--reset", "--json", "--wait", "1"]);
    s.json(&m3, &["credentials", "list", "--json"], 0);
    s.json(&m3, &["upgrade", "--json"], 0);
    s.ok(&m3, &["keys", "purge"]);
    s.json(&m3, &["status", "--json"], 0);

    // The end state, and forced panics on two machines.
    s.json(&first, &["status", "--json"], 0);
    s.json(&first, &["rotation", "status", "--json"], 0);
    s.ok(&first, &["keys", "purge"]);
    for home in [&first, &m3] {
        s.forced_panic(home, &[]);
    }
    // The copy waits out its 30 s: its argument list and environment were
    // sampled while the commands above ran, and cannot change since.
    let sampled = sampler.finish();
    let foreground = started.elapsed();
    let mut copies = 0;
    if let Some(child) = copy {
        let copy_argv = format!("{bin_str}\0--home\0{}\0copy\0encryption\0", first.display());
        assert!(
            sampled.samples.iter().any(|p| p.cmdline == copy_argv.as_bytes()),
            "the sampler saw `keyturn copy` running"
        );
        let out = child.wait_with_output().expect("keyturn copy ends");
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), Some(0), "keyturn copy: {stderr}");
        assert!(stderr.contains("clipboard"), "keyturn copy said where the key went: {stderr}");
        // The OSC 52 sequences are the copy the operator asked for; the rest
        // of stderr is searched.
        let mut rest = stderr.clone();
        while let Some(at) = rest.find("\x1b]52;") {
            let end = rest[at..].find('\x07').map_or(rest.len(), |e| at + e + 1);
            rest.replace_range(at..end, "");
        }
        s.places.push(Place { name: "stdout of `keyturn copy encryption`".into(), bytes: out.stdout, exempt: None });
        s.places.push(Place {
            name: "stderr of `keyturn copy encryption` (OSC 52 removed)".into(),
            bytes: rest.into_bytes(),
            exempt: None,
        });
        copies = 1;
    }
    let outputs = s.places.len();

    // Sanity: the canaries are where they must be, so the search looks for
    // the right bytes.
    let mut needles = key_needles(&[("enc1", &enc1), ("enc2", &enc2), ("com1", &com1), ("com2", &com2)]);
    needles.extend(string_forms(Canary::Secret, "canary credential secret", &secret));
    for (i, value) in values.iter().enumerate() {
        needles.push(Needle::new(Canary::Value, format!("canary project value {i}"), value.as_bytes()));
    }
    let keys_file = |home: &Path| Place {
        name: format!("{}/keys.toml", home.display()),
        bytes: fs::read(home.join("keys.toml")).expect("keys.toml"),
        exempt: None,
    };
    for (home, want) in [(&first, ["enc2", "com2"].as_slice()), (&m1, &["com2"]), (&m2, &["com2"]), (&m3, &["enc1"])] {
        let found = hits(&[keys_file(home)], &needles);
        for label in want {
            let line = format!("canary key {label} text form found in");
            assert!(found.iter().any(|h| h.starts_with(&line)), "sanity: {label} is in {}: {found:?}", home.display());
        }
    }
    let form = |key: &str, name: &str| -> Vec<u8> {
        forms("k", key).into_iter().find(|(n, _)| n == &format!("k {name}")).map(|(_, b)| b).expect("form")
    };
    for (kind, key) in [("enc", &enc2), ("com", &com2)] {
        let published = |e: &str| fs::read(first.join(format!("pub/{kind}.{e}"))).expect("a published file");
        assert_eq!(published("text"), format!("{key}\n").into_bytes(), "sanity: pub/{kind}.text");
        assert_eq!(published("raw"), form(key, "raw 32 bytes"), "sanity: pub/{kind}.raw");
        assert_eq!(published("hex"), [form(key, "lowercase hex"), b"\n".to_vec()].concat(), "sanity: pub/{kind}.hex");
        let b64 = format!("{}\n", STANDARD.encode(form(key, "raw 32 bytes")));
        assert_eq!(published("base64"), b64.into_bytes(), "sanity: pub/{kind}.base64");
    }
    // The projects hold tokens only, and they still open.
    for (dir, want) in [(&project, 3), (&m3_project, 1)] {
        let mut files = Vec::new();
        files_under(dir, &mut files);
        let found: Vec<String> =
            files.iter().flat_map(|f| tokens_in(&fs::read_to_string(f).expect("a project file"))).collect();
        assert_eq!(found.len(), want, "tokens in {}: {found:?}", dir.display());
    }
    let credentials = fs::read_to_string(first.join("credentials.toml")).expect("credentials.toml");
    assert_eq!(tokens_in(&credentials).len(), 2, "both secrets are sealed: {credentials}");

    // Every file of every home (but the keys file and the published key
    // files) and of the projects.
    let home_files = files_of(root, &[&first, &m1, &m2, &m3, &scratch, &project, &m3_project], "first/pub/");
    let files = home_files.len();
    let names: BTreeSet<String> = home_files.iter().map(|p| p.name["file ".len()..].to_string()).collect();
    s.places.extend(home_files);
    for must in [
        "first/audit.log",
        "first/rotation.json",
        "first/keyturn.toml",
        "first/keyturn.lock",
        "first/credentials.toml",
        "m1/audit.log",
        "m2/keyturn.lock",
        "m3/credentials.toml",
        "project/settings.json",
    ] {
        assert!(names.contains(must), "{must} was searched: {names:?}");
    }
    let archived = names.iter().filter(|n| n.starts_with("first/rotations/")).count();
    assert!(archived >= 2, "the two closed rotations were archived and searched: {names:?}");

    // Every argument list and environment sampled.
    let keyturn_prefix = format!("{bin_str}\0");
    let mut keyturn_samples = 0;
    let mut during_commands = BTreeSet::new();
    let mut roster_joins = BTreeSet::new();
    let mut sample_places = Vec::new();
    for sample in &sampled.samples {
        let line = argv_line(&sample.cmdline);
        if sample.cmdline.starts_with(keyturn_prefix.as_bytes()) {
            keyturn_samples += 1;
            if !sample.during.is_empty() {
                during_commands.insert(sample.during.clone());
            }
            for home in [&m1, &m2] {
                if contains(&sample.cmdline, format!("{}\0rotation\0join\0", home.display()).as_bytes()) {
                    roster_joins.insert(sample.pid);
                }
            }
        }
        let during =
            if sample.during.is_empty() { "between commands".into() } else { format!("during `{}`", sample.during) };
        sample_places.push(Place {
            name: format!("the argument list of pid {} ({line}) {during}", sample.pid),
            bytes: sample.cmdline.clone(),
            exempt: None,
        });
        sample_places.push(Place {
            name: format!("the environment of pid {} ({line}) {during}", sample.pid),
            bytes: sample.environ.clone(),
            exempt: None,
        });
    }
    // It cannot pass for having looked at nothing: it caught the decoys,
    // keyturn processes and the joins the first machine ran on m1 and m2.
    let decoys = hits(
        &sample_places,
        &[
            Needle::new(Canary::Key, "decoy argument".into(), decoy_arg.as_bytes()),
            Needle::new(Canary::Key, "decoy variable".into(), decoy_env.as_bytes()),
        ],
    );
    assert!(
        decoys.iter().any(|h| h.starts_with("decoy argument found in the argument list"))
            && decoys.iter().any(|h| h.starts_with("decoy variable found in the environment")),
        "the sampler caught the decoy process: {decoys:?}"
    );
    assert!(
        keyturn_samples >= 10 && !roster_joins.is_empty(),
        "the sampler saw the run: {} sweeps, {keyturn_samples} keyturn samples, {} roster joins",
        sampled.sweeps,
        roster_joins.len()
    );
    let samples = sample_places.len() / 2;
    s.places.extend(sample_places);

    let found = hits(&s.places, &needles);
    eprintln!(
        "leak scan: {} commands in {:.1} s (then {:.1} s for the copy's countdown); searched {outputs} outputs \
         ({copies} of a background copy), {files} files and {samples} distinct argument lists and environments \
         ({} reads in {} sweeps; {keyturn_samples} of keyturn processes, seen during {} of the commands; {} roster \
         joins) for {} needles: {} hits",
        s.commands.len(),
        foreground.as_secs_f64(),
        (started.elapsed() - foreground).as_secs_f64(),
        sampled.reads,
        sampled.sweeps,
        during_commands.len(),
        roster_joins.len(),
        needles.len(),
        found.len(),
    );
    assert!(found.is_empty(), "canaries leaked:\n{}", found.join("\n"));
}

/// A roster machine whose command runs what comes on its standard input as
/// shell commands (`sh -s` here; `ssh HOST sh -s` or PowerShell's `-Command -`
/// configured without keyturn alike) fails quoting the key it was sent; one
/// that prints its input back exits 0 with the key as its answer. Either
/// answer is no join report, and keyturn must not copy the key from it into
/// the machine step's evidence, the audit log or its own output.
#[cfg(target_os = "linux")]
#[test]
fn a_roster_command_that_repeats_the_key_leaks_it_nowhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let first = root.join("first");
    fs::create_dir_all(&first).expect("mkdir");
    let mut config = format!("# a roster that repeats its input\n{UNCONFIGURED}");
    for (name, command) in [("shell", ["sh", "-s"].as_slice()), ("parrot", &["sh", "-c", "cat"])] {
        let _ = write!(
            config,
            "\n[[machines]]\nname = \"{name}\"\nroles = [\"execution\"]\ncommand = {}\n",
            toml_argv(command)
        );
    }
    fs::write(first.join("keyturn.toml"), config).expect("write keyturn.toml");
    let mut s = Session { during: Arc::new(Mutex::new(String::new())), places: Vec::new(), commands: Vec::new() };
    let key = s.generate(root, "communication", &root.join("com.key"));
    s.exits(&first, &["rotation", "start", "communication", "--setup", "multi"], format!("{key}\n").as_bytes(), 0);
    let seen = s.drive(&first, &mut |s, step| {
        if step.starts_with("machine-") {
            s.json(&first, &["machines", "status", "--json"], 3);
            s.ok(&first, &["rotation", "status"]);
            s.ok(&first, &["rotation", "skip", step, "--reason", "done by hand"]);
        } else {
            s.ok(&first, &["rotation", "confirm", step]);
        }
    });
    for name in ["shell", "parrot"] {
        assert!(
            seen.iter().any(|r| steps_of(r)[&format!("machine-{name}")].0 == "waiting"),
            "{name} is no join: {:#?}",
            seen.last()
        );
    }
    s.places.extend(files_of(root, &[&first], "first/pub/"));
    let found = hits(&s.places, &key_needles(&[("com", &key)]));
    assert!(found.is_empty(), "the key leaked:\n{}", found.join("\n"));
}
