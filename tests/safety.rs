//! No token lost, ever (issue 11): files the upgrade skips, UTF-16 files,
//! an upgrade racing an import and a purge, a link swapped in while an
//! upgrade runs. Tokens are sealed through the library (fast); every change
//! goes through the real binary.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))] // helpers of unix-only tests
#![cfg(unix)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};

use keyturn::keys::{Key, KeyKind};
use keyturn::project::text::{Encoding, tokens};
use keyturn::store::Store;
use keyturn::store::home::Home;
use keyturn::token::Keyring;
use serde_json::Value;

use common::{keyturn, path_str, run, text};

fn ok(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let out = run(home, args, stdin);
    assert_eq!(out.status.code(), Some(0), "keyturn {args:?}: {}", text(&out.stderr));
    out
}

/// keyturn on `home` as a plain process, to run beside another.
fn spawn_keyturn(home: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(common::keyturn_bin());
    for var in common::CLEARED_ENV {
        cmd.env_remove(var);
    }
    cmd.arg("--home").arg(home);
    cmd
}

fn new_key() -> Key {
    Key::generate(KeyKind::Encryption).expect("a key")
}

fn import(home: &Path, key: &Key) {
    ok(home, &["import", "encryption"], format!("{}\n", key.to_text().as_str()).as_bytes());
}

/// The store's keyring as it is on disk now.
fn ring(home: &Path) -> Keyring {
    Store::open(Home { dir: home.to_path_buf(), machine_wide: false }).expect("the store opens").keyring()
}

fn upgrade_json(home: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["upgrade", "--json"];
    all.extend_from_slice(args);
    let out = run(home, &all, b"");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), report, text(&out.stderr))
}

/// `text` in UTF-16 of `encoding`, with its byte-order mark.
fn utf16(text: &str, encoding: Encoding) -> Vec<u8> {
    let mut out = if encoding == Encoding::Utf16Le { vec![0xFF, 0xFE] } else { vec![0xFE, 0xFF] };
    for unit in text.encode_utf16() {
        out.extend(if encoding == Encoding::Utf16Le { unit.to_le_bytes() } else { unit.to_be_bytes() });
    }
    out
}

/// Every token in `bytes` (of `encoding`) opens under `ring` to the value
/// `values` says, and the bytes between the tokens are `expected`'s.
fn assert_same_outside_tokens(before: &[u8], after: &[u8], encoding: Encoding, ring: &Keyring, values: &[&str]) {
    let old = tokens(before, encoding);
    let new = tokens(after, encoding);
    assert_eq!(old.len(), new.len(), "as many tokens after as before");
    let mut at_old = 0;
    let mut at_new = 0;
    for ((o, n), value) in old.iter().zip(&new).zip(values) {
        assert_eq!(&before[at_old..o.bytes.start], &after[at_new..n.bytes.start], "bytes between tokens kept");
        let opened = ring.open(&n.text).unwrap_or_else(|e| panic!("{} opens: {e}", n.text));
        assert_eq!(opened.as_slice(), value.as_bytes());
        at_old = o.bytes.end;
        at_new = n.bytes.end;
    }
    assert_eq!(&before[at_old..], &after[at_new..], "bytes after the last token kept");
}

#[test]
fn utf16_files_are_upgraded_in_their_encoding_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    let a = new_key();
    import(&home, &a);
    let old = Keyring::new(&a, &[]);
    let values = ["pässwörd 🔑", "Server=db;Password=x;"];
    let mut files = Vec::new();
    for encoding in [Encoding::Utf16Le, Encoding::Utf16Be] {
        for eol in ["\n", "\r\n"] {
            let content = format!(
                "<?xml version=\"1.0\" encoding=\"utf-16\"?>{eol}<Test Name=\"Ünïcödé — 日本語 😀\">{eol}  <Step Value=\"{}\"/>{eol}  <Db cs=\"Password={};\"/>{eol}</Test>{eol}",
                old.seal(values[0].as_bytes()),
                old.seal(values[1].as_bytes()),
            );
            let name = format!("{encoding:?}-{}.tstest", if eol == "\n" { "lf" } else { "crlf" });
            let bytes = utf16(&content, encoding);
            fs::write(project.join(&name), &bytes).expect("write");
            files.push((name, encoding, bytes));
        }
    }
    import(&home, &new_key());
    let (code, report, stderr) = upgrade_json(&home, &[path_str(&project)]);
    assert_eq!(code, Some(0), "upgrade: {stderr}\n{report:#}");
    assert_eq!(report["projects"][0]["upgraded"], 8, "{report:#}");
    assert_eq!(report["projects"][0]["files_rewritten"], 4, "{report:#}");
    let ring = ring(&home);
    for (name, encoding, before) in &files {
        let after = fs::read(project.join(name)).expect("read");
        assert_eq!(&after[..2], &before[..2], "{name}: the byte-order mark kept");
        assert_ne!(&after, before, "{name}: rewritten");
        assert_same_outside_tokens(before, &after, *encoding, &ring, &values);
        for t in tokens(&after, *encoding) {
            assert_eq!(keyturn::token::ParsedToken::parse(&t.text).expect("parses").key_id(), ring.active().id());
        }
    }
    // A second run writes nothing.
    let (code, report, _) = upgrade_json(&home, &[path_str(&project)]);
    assert_eq!((code, &report["projects"][0]["upgraded"]), (Some(0), &Value::from(0)));
}

#[test]
fn skipped_files_holding_tokens_are_listed_exit_3_and_block_the_purge() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    let a = new_key();
    import(&home, &a);
    let old = Keyring::new(&a, &[]);
    let in_binary = old.seal(b"in a binary file");
    let mut binary = b"\x89PNG\0\0 pw=".to_vec();
    binary.extend_from_slice(in_binary.as_bytes());
    fs::write(project.join("recording.bin"), &binary).expect("write");
    // UTF-16 without a byte-order mark: NUL bytes, so not read as text.
    let in_wide = old.seal(b"in a UTF-16 file without a mark");
    let wide: Vec<u8> = format!("<a v=\"{in_wide}\"/>").encode_utf16().flat_map(u16::to_le_bytes).collect();
    fs::write(project.join("nobom.xml"), &wide).expect("write");
    ok(&home, &["projects", "add", path_str(&project)], b"");
    import(&home, &new_key());

    let out = run(&home, &["upgrade"], b"");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(3), "work remains: {stdout}{stderr}");
    for name in ["recording.bin", "nobom.xml"] {
        assert!(stdout.contains(&format!("{name}: skipped (binary")), "{name} listed: {stdout}");
    }
    assert!(stdout.contains("holds 1 tokens"), "{stdout}");
    assert!(stderr.contains("2 files that hold tokens were not upgraded"), "{stderr}");

    let out = run(&home, &["keys", "purge"], b"");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "purge refuses: {stderr}");
    assert!(stderr.contains("recording.bin (skipped") && stderr.contains("nobom.xml (skipped"), "{stderr}");
    for token in [&in_binary, &in_wide] {
        assert!(ring(&home).open(token).is_ok(), "the token in the skipped file still opens");
    }
}

/// The race of issue 11, defect 2: an import and a purge while an upgrade is
/// between its scan and its writes (and between reading the store and
/// taking the lock). Every token must still open afterwards.
#[test]
fn import_and_purge_racing_an_upgrade_lose_no_token() {
    let rounds: u64 = std::env::var("KEYTURN_RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    let a = new_key();
    import(&home, &a);
    let old = Keyring::new(&a, &[]);
    let mut values = Vec::new();
    for f in 0..8 {
        let mut content = String::from("<Test>\n");
        for t in 0..5 {
            let value = format!("value {f}.{t}");
            content.push_str(&format!("  <Step Value=\"{}\"/>\n", old.seal(value.as_bytes())));
            values.push(value);
        }
        content.push_str("</Test>\n");
        fs::write(project.join(format!("t{f}.xml")), content).expect("write");
    }
    ok(&home, &["projects", "add", path_str(&project)], b"");
    let mut lost = 0;
    for round in 0..rounds {
        import(&home, &new_key());
        // Pseudo-random windows, different in every round.
        let delay = (round * 7919) % 300;
        let mut upgrade = spawn_keyturn(&home)
            .args(["upgrade"])
            .env("KEYTURN_TEST_HOLD_AT", format!("store opened:{delay},upgrade scanned:{}", 300 - delay))
            .env("KEYTURN_LOCK_WAIT_MS", "60000")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("upgrade starts");
        std::thread::sleep(std::time::Duration::from_millis((round * 4099) % 250));
        let next = new_key();
        let import = keyturn(&home)
            .args(["import", "encryption"])
            .env("KEYTURN_LOCK_WAIT_MS", "60000")
            .write_stdin(format!("{}\n", next.to_text().as_str()))
            .output()
            .expect("import runs");
        assert_eq!(import.status.code(), Some(0), "round {round}: import: {}", text(&import.stderr));
        let purge =
            keyturn(&home).args(["keys", "purge"]).env("KEYTURN_LOCK_WAIT_MS", "60000").output().expect("purge");
        assert!(matches!(purge.status.code(), Some(0 | 1)), "round {round}: purge: {}", text(&purge.stderr));
        let status = upgrade.wait().expect("upgrade ends");
        assert!(matches!(status.code(), Some(0 | 3)), "round {round}: upgrade: {status:?}");
        // Every token opens under the store's ring now.
        let ring = ring(&home);
        let mut seen = 0;
        for f in 0..8 {
            let bytes = fs::read(project.join(format!("t{f}.xml"))).expect("read");
            for (t, found) in tokens(&bytes, Encoding::Utf8).into_iter().enumerate() {
                seen += 1;
                match ring.open(&found.text) {
                    Ok(value) if value.as_slice() == values[f * 5 + t].as_bytes() => {}
                    _ => lost += 1,
                }
            }
        }
        assert_eq!(seen, values.len(), "round {round}: every token is still in the project");
    }
    eprintln!("upgrade racing import and purge: {rounds} rounds, {lost} tokens lost");
    assert_eq!(lost, 0, "tokens lost in {rounds} rounds");
}

/// Issue 11, defect 3: a project file swapped for a link to a file outside
/// the project, again and again while upgrades run. Nothing outside is ever
/// read into the project or written.
#[test]
fn a_link_swapped_in_during_an_upgrade_never_pulls_an_outside_file_in() {
    let rounds: u64 = std::env::var("KEYTURN_RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    let stash = dir.path().join("stash");
    fs::create_dir_all(&project).expect("mkdir");
    fs::create_dir_all(&stash).expect("mkdir");
    let a = new_key();
    import(&home, &a);
    let old = Keyring::new(&a, &[]);
    let outside = dir.path().join("outside.xml");
    let outside_bytes = format!("OUTSIDE-MARKER <v=\"{}\"/>\n", old.seal(b"outside secret")).into_bytes();
    fs::write(&outside, &outside_bytes).expect("write outside");
    let names: Vec<String> = (0..6).map(|f| format!("f{f}.xml")).collect();
    let mut swaps = 0u64;
    let mut pulled_in = 0;
    for round in 0..rounds {
        for name in &names {
            fs::write(project.join(name), format!("<v=\"{}\"/>\n", old.seal(name.as_bytes()))).expect("write");
        }
        import(&home, &new_key());
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let swapper = scope.spawn(|| {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let name = &names[(n as usize) % names.len()];
                    let (real, kept, link) = (project.join(name), stash.join(name), dir.path().join("link.tmp"));
                    if fs::rename(&real, &kept).is_ok() {
                        let _ = fs::remove_file(&link);
                        symlink(&outside, &link).expect("symlink");
                        fs::rename(&link, &real).expect("swap the link in");
                        std::thread::sleep(std::time::Duration::from_micros(300));
                        fs::rename(&kept, &real).expect("swap the file back");
                        n += 1;
                    }
                }
                n
            });
            for _ in 0..3 {
                let out = keyturn(&home)
                    .args(["upgrade", path_str(&project)])
                    .env("KEYTURN_TEST_HOLD_AT", format!("upgrade scanned:{}", (round * 37) % 20))
                    .output()
                    .expect("upgrade runs");
                assert!(matches!(out.status.code(), Some(0 | 3)), "round {round}: {}", text(&out.stderr));
            }
            stop.store(true, Ordering::SeqCst);
            swaps += swapper.join().expect("swapper");
        });
        assert_eq!(fs::read(&outside).expect("read"), outside_bytes, "round {round}: the outside file is untouched");
        for name in &names {
            let path = project.join(name);
            assert!(fs::symlink_metadata(&path).expect("there").is_file(), "{name} is the regular file again");
            let bytes = fs::read(&path).expect("read");
            if common::contains(&bytes, b"OUTSIDE-MARKER") {
                pulled_in += 1;
            }
            let ring = ring(&home);
            for found in tokens(&bytes, Encoding::Utf8) {
                assert_eq!(ring.open(&found.text).expect("opens").as_slice(), name.as_bytes(), "round {round}");
            }
        }
        let leftovers: Vec<PathBuf> = fs::read_dir(&project)
            .expect("ls")
            .flatten()
            .map(|e| e.path())
            .filter(|p| keyturn::store::atomic::is_temporary(p.file_name().unwrap_or_default()))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: temporaries left: {leftovers:?}");
    }
    eprintln!("link swaps during upgrades: {rounds} rounds, {swaps} swaps, {pulled_in} outside files pulled in");
    assert_eq!(pulled_in, 0);
}

/// Defect 2 at the level of the store: a `Store` opened before an import
/// upgrades under the key active when it writes, not the one it first read.
#[test]
fn an_upgrade_uses_the_keyring_read_under_its_lock() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let project = dir.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    let a = new_key();
    import(&home, &a);
    fs::write(project.join("t.xml"), format!("<v=\"{}\"/>", Keyring::new(&a, &[]).seal(b"v"))).expect("write");
    import(&home, &new_key());
    let mut stale = Store::open(Home { dir: home.clone(), machine_wide: false }).expect("opens");
    let c = new_key();
    import(&home, &c);
    let reports = stale.upgrade(std::slice::from_ref(&project), false, &mut |_| {}).expect("upgrade");
    assert_eq!(reports[0].upgraded, 1);
    let bytes = fs::read(project.join("t.xml")).expect("read");
    let found = tokens(&bytes, Encoding::Utf8);
    let id = keyturn::token::ParsedToken::parse(&found[0].text).expect("parses").key_id();
    assert_eq!(id, c.fingerprint(), "sealed under the key imported after the store was first opened");
}

// ---------------------------------------------------------------------------
// Defects 4 to 7
// ---------------------------------------------------------------------------

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn a_home_others_can_write_is_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    import(&home, &new_key());
    for mode in [0o777, 0o775, 0o757] {
        set_mode(&home, mode);
        let out = run(&home, &["status"], b"");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "mode {mode:o}: {stderr}");
        assert!(stderr.contains("other users can write") && stderr.contains("chmod 700"), "{stderr}");
        let out = run(&home, &["encrypt"], b"x\n");
        assert_eq!((out.status.code(), out.stdout.is_empty()), (Some(1), true), "mode {mode:o}: nothing sealed");
    }
    set_mode(&home, 0o700);
    ok(&home, &["status"], b"");
}

#[test]
fn a_missing_keys_file_after_a_custom_key_is_an_error_never_the_default_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    import(&home, &new_key());
    let keys = home.join("keys.toml");
    fs::rename(&keys, dir.path().join("moved-away.toml")).expect("move the keys file away");
    for (args, stdin) in [(vec!["status"], b"".as_slice()), (vec!["encrypt"], b"secret\n".as_slice())] {
        let out = run(&home, &args, stdin);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout (no token under the default key)");
        assert!(stderr.contains(&keys.display().to_string()), "names the file: {stderr}");
        assert!(stderr.contains("will not fall back") && stderr.contains("Restore"), "says how to restore: {stderr}");
        assert!(!stderr.contains("Default Key Loaded"), "{stderr}");
    }
    // The marker gone too: the audit log still says a custom key was here.
    fs::remove_file(home.join("keys.held")).expect("remove the marker");
    let out = run(&home, &["status"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("audit.log records the import of a custom key"), "{}", text(&out.stderr));
    // Restored, it works again.
    fs::rename(dir.path().join("moved-away.toml"), &keys).expect("restore");
    ok(&home, &["status"], b"");
    // A fresh home is still the default key.
    let fresh = dir.path().join("fresh");
    let out = ok(&fresh, &["status"], b"");
    assert!(text(&out.stdout).contains("Default Key Loaded"), "{}", text(&out.stdout));
}

#[test]
fn busy_is_exit_4_for_every_rotation_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    ok(&home, &["rotation", "start", "communication", "--setup", "single", "--generate"], b"");
    let status: Value =
        serde_json::from_slice(&ok(&home, &["rotation", "status", "--json"], b"").stdout).expect("json");
    let current = status["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["state"] != "done" && s["state"] != "skipped")
        .and_then(|s| s["id"].as_str())
        .expect("a current step")
        .to_string();
    let _held = keyturn::store::lock::Lock::acquire(&home, "the test", std::time::Duration::ZERO).expect("lock");
    let commands: Vec<Vec<&str>> = vec![
        vec!["rotation", "start", "encryption", "--setup", "single", "--generate"],
        vec!["rotation", "run"],
        vec!["rotation", "skip", &current, "--reason", "busy test"],
        vec!["rotation", "confirm", &current],
        vec!["rotation", "abort"],
        vec!["import", "communication"],
        vec!["keys", "purge"],
    ];
    let comm = Key::generate(KeyKind::Communication).expect("a key");
    for args in commands {
        let stdin = if args[0] == "import" { format!("{}\n", comm.to_text().as_str()) } else { String::new() };
        let out = keyturn(&home)
            .args(&args)
            .env("KEYTURN_LOCK_WAIT_MS", "50")
            .write_stdin(stdin.into_bytes())
            .output()
            .expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("another keyturn is changing the store"), "{args:?}: {stderr}");
    }
}

#[test]
fn output_errors_exit_1_in_one_line_and_a_closed_pipe_is_quiet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    import(&home, &new_key());
    for (args, stdin) in [(vec!["fingerprint", "encryption"], ""), (vec!["encrypt"], "secret\n"), (vec!["status"], "")]
    {
        let full = fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
        let out = spawn_keyturn(&home)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(full)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(stdin.as_bytes())?;
                child.wait_with_output()
            })
            .expect("runs");
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} >/dev/full: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: one line: {stderr}");
        assert!(!stderr.contains("panicked") && stderr.contains("No space left"), "{args:?}: {stderr}");
        // Standard error failing too: exit 1 all the same, no panic (101).
        let out = spawn_keyturn(&home)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full"))
            .stderr(fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full"))
            .status()
            .expect("runs");
        assert_eq!(out.code(), Some(1), "{args:?} >/dev/full 2>/dev/full");
    }
    // A reader that has gone away: a quiet exit.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = spawn_keyturn(&home)
        .args(["generate", "encryption"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("runs");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn smaller_ones_key_length_clock_audit_log_dry_run_os_errors_join_json_hard_links() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let a = new_key();
    import(&home, &a);

    // One character too many: said in characters.
    let out = run(&home, &["import", "encryption"], format!("{}A\n", a.to_text().as_str()).as_bytes());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too long: its body has 49 characters, a key has 48"), "{stderr}");

    // A key imported "in the future": the clock is behind, no negative age.
    let keys = home.join("keys.toml");
    let original = fs::read_to_string(&keys).expect("read");
    let year = jiff::Timestamp::now().strftime("%Y").to_string();
    let future = original
        .replace(&format!("created = \"{year}-"), &format!("created = \"{}-", year.parse::<i32>().expect("year") + 5));
    assert_ne!(future, original, "the fixture moved the import date");
    fs::write(&keys, &future).expect("write");
    let out = ok(&home, &["status"], b"");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("clock is behind") && !stdout.contains(" -1") && !stdout.contains("days ago"), "{stdout}");
    fs::write(&keys, &original).expect("restore");

    // The audit log writable by others is refused like the keys file.
    let audit = home.join("audit.log");
    set_mode(&audit, 0o666);
    let out = run(&home, &["import", "encryption"], format!("{}\n", new_key().to_text().as_str()).as_bytes());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("audit.log") && stderr.contains("chmod go-w"), "{stderr}");
    set_mode(&audit, 0o600);

    // A dry run needs no lock file.
    let project = dir.path().join("project");
    fs::create_dir_all(&project).expect("mkdir");
    fs::write(project.join("t.xml"), format!("<v=\"{}\"/>", Keyring::new(&a, &[]).seal(b"v"))).expect("write");
    fs::remove_file(home.join("keyturn.lock")).expect("remove the lock file");
    let (code, report, stderr) = upgrade_json(&home, &["--dry-run", path_str(&project)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["dry_run"], true);
    assert!(!home.join("keyturn.lock").exists(), "the dry run created no lock file");

    // An OS error is said once.
    let not_a_dir = dir.path().join("file");
    fs::write(&not_a_dir, "x").expect("write");
    let out = run(&not_a_dir.join("home"), &["import", "encryption"], format!("{}\n", a.to_text().as_str()).as_bytes());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.matches("(os error 20)").count(), 1, "said once: {stderr}");

    // `rotation join --json` that fails still prints its JSON report.
    let out = run(&home, &["rotation", "join", "encryption", "--json"], b"not a key\n");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report on stdout");
    assert_eq!((report["failed"].as_bool(), report["kind"].as_str()), (Some(true), Some("encryption")), "{report:#}");
    assert!(report["error"].as_str().is_some_and(|e| !e.is_empty()), "{report:#}");

    // A hard link broken by the rewrite is said.
    fs::hard_link(project.join("t.xml"), dir.path().join("elsewhere.xml")).expect("hard link");
    import(&home, &new_key());
    let (code, report, stderr) = upgrade_json(&home, &[path_str(&project)]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(report["projects"][0]["hard_links_broken"], serde_json::json!(["t.xml"]), "{report:#}");
    let out = run(&home, &["upgrade", path_str(&project)], b"");
    assert_eq!(out.status.code(), Some(0));
}
