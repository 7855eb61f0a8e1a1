//! Real Test Studio projects (`keyturn::project::sample`, written from the
//! measured description of real ones): JSON tests with password steps of
//! every kind, `Settings.aiis`, a BOM `.resx`, CRLF and LF, a 270 KB line,
//! an `.xlsx` data source and image stores. Upgraded twice then purged; the
//! secrets inventory; tokens in zips keyturn cannot rewrite; read-only files.
#![cfg_attr(not(unix), allow(dead_code, unused_imports, unused_variables, unused_mut))]
// helpers of unix-only tests
// Unix modes and rustix: the read-only attribute on Windows is handled in
// project/files.rs (the Windows build compiles it).
#![cfg(unix)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use common::{path_str, run, set_mode, text};
use keyturn::project::sample;

fn ok(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let out = run(home, args, stdin);
    assert_eq!(out.status.code(), Some(0), "keyturn {args:?}: {}", text(&out.stderr));
    out
}

/// Imports a freshly generated encryption key.
fn new_key(home: &Path) {
    let key = ok(home, &["generate", "encryption"], b"").stdout;
    ok(home, &["import", "encryption"], &key);
}

fn seal(home: &Path, value: &[u8]) -> String {
    text(&ok(home, &["encrypt", "--raw"], value).stdout).trim().to_string()
}

fn decrypt(home: &Path, token: &str) -> Vec<u8> {
    ok(home, &["decrypt"], token.as_bytes()).stdout
}

/// Token candidates by the grammar: `ktsec:` then token characters, up to
/// the third colon after the prefix.
fn tokens(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = bytes[at..].windows(6).position(|w| w == b"ktsec:") {
        let start = at + pos;
        let mut end = start + 6;
        let mut colons = 0;
        while end < bytes.len() {
            let b = bytes[end];
            if b == b':' {
                colons += 1;
                if colons > 2 {
                    break;
                }
            } else if !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                break;
            }
            end += 1;
        }
        found.push((start, end));
        at = end;
    }
    found
}

/// The bytes with every token cut out, and the tokens.
fn split(bytes: &[u8]) -> (Vec<u8>, Vec<String>) {
    let mut rest = Vec::new();
    let mut found = Vec::new();
    let mut copied = 0;
    for (start, end) in tokens(bytes) {
        rest.extend_from_slice(&bytes[copied..start]);
        rest.extend_from_slice(b"<TOKEN>");
        found.push(String::from_utf8(bytes[start..end].to_vec()).expect("ascii"));
        copied = end;
    }
    rest.extend_from_slice(&bytes[copied..]);
    (rest, found)
}

fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = BTreeMap::new();
    for entry in walk(root) {
        all.insert(entry.strip_prefix(root).expect("inside").to_path_buf(), fs::read(&entry).expect("read"));
    }
    all
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).expect("ls") {
        let path = entry.expect("entry").path();
        if path.is_dir() { out.extend(walk(&path)) } else { out.push(path) }
    }
    out
}

struct Entry {
    name: String,
    method: zip::CompressionMethod,
    modified: Option<zip::DateTime>,
    raw: Vec<u8>,
    content: Vec<u8>,
}

fn entries(bytes: &[u8]) -> Vec<Entry> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip reader opens it");
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut raw = Vec::new();
        let (name, method, modified) = {
            let mut f = archive.by_index_raw(i).expect("raw");
            f.read_to_end(&mut raw).expect("raw bytes");
            (f.name().expect("name").into_owned(), f.compression(), f.last_modified())
        };
        let mut content = Vec::new();
        archive.by_index(i).expect("entry").read_to_end(&mut content).expect("content");
        out.push(Entry { name, method, modified, raw, content });
    }
    out
}

/// Checks `after` against `before`: identical but for the tokens, each of
/// which opens (through `home`) to the value it had, and is under `active`
/// (its key-id hex) when `upgraded`. Returns how many tokens.
fn same_but_tokens(home: &Path, name: &str, before: &[u8], after: &[u8], active: &str) -> usize {
    let (rest_b, tok_b) = split(before);
    let (rest_a, tok_a) = split(after);
    assert!(rest_b == rest_a, "{name}: bytes outside the tokens changed");
    assert_eq!(tok_b.len(), tok_a.len(), "{name}: token count");
    for (b, a) in tok_b.iter().zip(&tok_a) {
        assert!(a.starts_with(&format!("ktsec:1:{active}:")), "{name}: {a} is not under the active key");
        assert_eq!(decrypt(home, a), decrypt(home, b), "{name}: a token's value changed");
    }
    tok_a.len()
}

fn key_id_hex(home: &Path) -> String {
    let token = seal(home, b"probe");
    token.split(':').nth(2).expect("key id").to_string()
}

fn upgrade_json(home: &Path, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["upgrade", "--json"];
    all.extend_from_slice(args);
    let out = run(home, &all, b"");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), json, text(&out.stderr))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("meta").permissions().mode() & 0o777
}

/// A home with a custom key A that sealed the sample project, then key B
/// imported (A retired).
fn sample_home() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let project = tmp.path().join("Checkout");
    new_key(&home);
    sample::write(&project, &|v| seal(&home, v)).expect("sample project");
    (tmp, home, project)
}

#[test]
fn a_real_shaped_project_upgrades_twice_then_purges() {
    let (_tmp, home, project) = sample_home();
    // A YAML file with a token followed by a colon, and read-only files (a
    // TFS server workspace).
    let yaml_token = seal(&home, b"yaml-value");
    fs::write(project.join("deploy.yml"), format!("db:\n  password: {yaml_token}:\n")).expect("yaml");
    set_mode(&project.join("Tests/Login.tstest"), 0o444);
    set_mode(&project.join("Data/Data.xlsx"), 0o444);
    assert!(keyturn::project::inventory::is_test_studio_project(&project));
    let before = files(&project);
    let image_line = before[Path::new("Tests/Checkout.tstest")].split(|b| *b == b'\n').map(<[u8]>::len).max();
    assert!(image_line.is_some_and(|n| n > sample::IMAGE_LINE));
    assert!(before[Path::new("Pages/Login.resx")].starts_with(b"\xEF\xBB\xBF<?xml"));
    assert!(before[Path::new("Tests/Login.tstest")].windows(2).any(|w| w == b"\r\n"));
    assert!(!before[Path::new("Tests/Checkout.tstest")].contains(&b'\r'));

    new_key(&home);
    let active = key_id_hex(&home);
    ok(&home, &["projects", "add", path_str(&project)], b"");
    let (code, json, stderr) = upgrade_json(&home, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let report = &json["projects"][0];
    // Login.tstest 2, Checkout.tstest 1, Login.resx 1, Settings.aiis 1,
    // Data.xlsx 2 (a shared string and an inline string), deploy.yml 1.
    assert_eq!(report["tokens"], 8, "{report}");
    assert_eq!(report["upgraded"], 8, "{report}");
    assert_eq!(report["files_rewritten"], 6, "{report}");
    assert_eq!(report["unreadable"], serde_json::json!([]));
    assert_eq!(report["skipped"], serde_json::json!([]));

    let after = files(&project);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>(), "no file added or removed");
    let mut opened = 0;
    for (rel, old) in &before {
        let new = &after[rel];
        let name = rel.display().to_string();
        if rel.extension().is_some_and(|e| e == "xlsx") {
            let (a, b) = (entries(old), entries(new));
            assert_eq!(a.len(), b.len());
            for (a, b) in a.iter().zip(&b) {
                assert_eq!(
                    (&a.name, a.method, a.modified),
                    (&b.name, b.method, b.modified),
                    "{name}: entry order and metadata"
                );
                if tokens(&a.content).is_empty() {
                    assert!(a.raw == b.raw, "{name}!/{}: an entry without tokens changed", a.name);
                } else {
                    opened += same_but_tokens(&home, &format!("{name}!/{}", a.name), &a.content, &b.content, &active);
                }
            }
        } else if tokens(old).is_empty() {
            assert!(old == new, "{name}: a file without tokens changed");
        } else {
            opened += same_but_tokens(&home, &name, old, new, &active);
        }
    }
    assert_eq!(opened, 8);
    assert_eq!(mode(&project.join("Tests/Login.tstest")), 0o444, "read-only kept");
    assert_eq!(mode(&project.join("Data/Data.xlsx")), 0o444, "read-only kept");
    let yaml = fs::read_to_string(project.join("deploy.yml")).expect("yaml");
    assert!(yaml.ends_with(":\n") && yaml.contains(&format!("password: ktsec:1:{active}:")));

    // A second run writes nothing.
    let (code, json, stderr) = upgrade_json(&home, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!((json["projects"][0]["upgraded"].clone(), json["projects"][0]["current"].clone()), (0.into(), 8.into()));
    assert!(files(&project) == after, "the second run changed a file");

    // Nothing uses the retired keys any more: purge, and every token opens.
    let out = ok(&home, &["keys", "purge"], b"");
    assert!(text(&out.stderr).contains("Purged 1 retired keys"), "{}", text(&out.stderr));
    for (rel, bytes) in files(&project) {
        let contents = if rel.extension().is_some_and(|e| e == "xlsx") {
            entries(&bytes).into_iter().map(|e| e.content).collect()
        } else {
            vec![bytes]
        };
        for content in contents {
            let (_, found) = split(&content);
            for token in found {
                assert_eq!(run(&home, &["decrypt"], token.as_bytes()).status.code(), Some(0), "{}", rel.display());
            }
        }
    }
}

#[test]
fn projects_secrets_lists_each_kind_once_per_place_and_never_a_value() {
    let (_tmp, home, project) = sample_home();
    let out = ok(&home, &["projects", "secrets", path_str(&project), "--json"], b"");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    let items = json["items"].as_array().expect("items");
    let mut kinds = BTreeMap::new();
    let mut places = BTreeSet::new();
    for item in items {
        *kinds.entry(item["kind"].as_str().expect("kind").to_string()).or_insert(0) += 1;
        let place = (
            item["file"].as_str().expect("file").to_string(),
            item["line"].as_u64().expect("line"),
            item["kind"].clone().to_string(),
        );
        assert!(places.insert(place), "found twice: {item}");
    }
    let want: BTreeMap<String, i32> = [
        ("keyturn-token", 7),
        ("test-studio-cipher", 1),
        ("plaintext-password", 1),
        ("connection-string", 1),
        ("settings-password", 2),
    ]
    .into_iter()
    .map(|(k, n)| (k.to_string(), n))
    .collect();
    assert_eq!(kinds, want);
    let find = |kind: &str| items.iter().find(|i| i["kind"] == kind).expect(kind);
    let cipher = find("test-studio-cipher");
    assert_eq!(cipher["file"], "Tests/Login.tstest");
    assert_eq!(cipher["test"], "Login");
    assert_eq!(cipher["step"], "Enter text '*****' in 'Password'");
    assert_eq!(cipher["field"], "_cipher");
    let plain = find("plaintext-password");
    assert_eq!(plain["step"], "Enter text '*****' in 'Pin'", "the plain-text password is masked in its description");
    let line = |i: &Value| i["line"].as_u64().expect("line") as usize;
    let login = fs::read_to_string(project.join("Tests/Login.tstest")).expect("read");
    let login_lines: Vec<&str> = login.lines().collect();
    assert!(login_lines[line(cipher) - 1].contains("\"_cipher\""));
    assert!(login_lines[line(plain) - 1].contains("\"RawText\""));
    assert!(login_lines[line(find("connection-string")) - 1].contains("\"ConnectionString\""));
    let in_xlsx: Vec<&str> =
        items.iter().filter_map(|i| i["file"].as_str()).filter(|f| f.starts_with("Data/Data.xlsx!/")).collect();
    assert_eq!(in_xlsx, ["Data/Data.xlsx!/xl/worksheets/sheet1.xml", "Data/Data.xlsx!/xl/sharedStrings.xml"]);
    assert!(
        items.iter().filter(|i| i["kind"] == "keyturn-token").all(|i| i["readable"] == true && i["key"].is_string())
    );
    assert_eq!(json["projects"][0]["test_studio"], true);

    let text_out = ok(&home, &["projects", "secrets", path_str(&project)], b"");
    let shown = [out.stdout, out.stderr, text_out.stdout.clone(), text_out.stderr].concat();
    let mut secrets: Vec<&[u8]> = vec![
        sample::PLAINTEXT_PASSWORD.as_bytes(),
        sample::PLAINTEXT_SETTING.as_bytes(),
        sample::TEST_STUDIO_CIPHER.as_bytes(),
        b"Server=db01",
        b"ktsec:",
    ];
    secrets.extend(sample::SEALED.iter().map(|s| s.as_bytes()));
    for secret in secrets {
        assert!(!common::contains(&shown, secret), "{} shown", String::from_utf8_lossy(secret));
    }
    let listing = text(&text_out.stdout);
    assert!(listing.contains("(Test Studio project)"), "{listing}");
    assert!(listing.contains("Tests/Login.tstest:"), "{listing}");
}

fn zip_with(name: &str, content: &[u8]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    writer.start_file(name, zip::write::SimpleFileOptions::default()).expect("start");
    writer.write_all(content).expect("write");
    writer.finish().expect("finish").into_inner()
}

#[test]
fn a_token_in_a_zip_keyturn_cannot_rewrite_is_listed_exits_3_and_blocks_purge() {
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let project = tmp.path().join("Suite");
    new_key(&home);
    let token = seal(&home, b"in-an-image-store");
    let store = zip_with("meta/notes.txt", format!("first\n{token}\n").as_bytes());
    fs::create_dir_all(project.join("Elements")).expect("mkdir");
    fs::write(project.join("Elements/Page.imgstore"), &store).expect("write");
    new_key(&home);
    ok(&home, &["projects", "add", path_str(&project)], b"");

    let (code, json, stderr) = upgrade_json(&home, &[]);
    assert_eq!(code, Some(3), "{stderr}");
    let stuck = &json["projects"][0]["skipped"];
    assert_eq!(
        stuck,
        &serde_json::json!([{"file": "Elements/Page.imgstore!/meta/notes.txt", "reason": "in-archive", "tokens": 1}]),
        "{json}"
    );
    assert_eq!(fs::read(project.join("Elements/Page.imgstore")).expect("read"), store, "nothing written");
    let out = run(&home, &["upgrade", path_str(&project)], b"");
    assert!(text(&out.stdout).contains("zip archive keyturn does not rewrite"), "{}", text(&out.stdout));

    let out = run(&home, &["keys", "purge"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("Page.imgstore!/meta/notes.txt:2"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("refused"), "{}", text(&out.stderr));
    assert_eq!(decrypt(&home, &token), b"in-an-image-store");

    // The inventory lists it too, as not reachable by an upgrade.
    let out = ok(&home, &["projects", "secrets", "--json"], b"");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    let item = &json["items"][0];
    assert_eq!(item["kind"], "keyturn-token");
    assert!(item["note"].as_str().expect("note").contains("an upgrade cannot reach it"));
}

#[test]
fn a_read_only_folder_is_listed_with_the_reason_and_nothing_is_written() {
    if rustix::process::geteuid().is_root() {
        // Root writes into a read-only folder anyway: nothing to show here.
        eprintln!("skipped: running as root");
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let home = tmp.path().join("home");
    let project = tmp.path().join("Suite");
    new_key(&home);
    let token = seal(&home, b"pw");
    fs::create_dir_all(project.join("Locked")).expect("mkdir");
    fs::write(project.join("Locked/a.tstest"), format!("{{\"RawText\": \"{token}\"}}\n")).expect("write");
    fs::write(project.join("b.txt"), format!("{token}\n")).expect("write");
    set_mode(&project.join("Locked"), 0o555);
    new_key(&home);
    let (code, json, stderr) = upgrade_json(&home, &[path_str(&project)]);
    set_mode(&project.join("Locked"), 0o755);
    assert_eq!(code, Some(3), "{stderr}");
    let stuck = &json["projects"][0]["skipped"];
    assert_eq!(
        stuck,
        &serde_json::json!([{"file": "Locked/a.tstest", "reason": "read-only-folder", "tokens": 1}]),
        "{json}"
    );
    assert_eq!(json["projects"][0]["upgraded"], 1, "the rest is upgraded");
}

#[test]
fn a_regenerated_key_lists_the_password_steps_and_connection_strings_to_redo() {
    let (_tmp, home, project) = sample_home();
    ok(&home, &["projects", "add", path_str(&project)], b"");
    ok(&home, &["rotation", "start", "encryption", "--setup", "single", "--generate"], b"");
    let state = fs::read_to_string(home.join("rotation.json")).expect("rotation state");
    let rotation: Value = serde_json::from_str(&state).expect("json");
    let step = common::step(&rotation, "re-record-password-steps");
    let detail = step["detail"].as_str().expect("detail");
    assert!(detail.contains("Tests/Login.tstest:"), "{detail}");
    assert!(detail.contains("test-studio-cipher  Login > Enter text '*****' in 'Password'"), "{detail}");
    assert!(detail.contains("plaintext-password"), "{detail}");
    let step = common::step(&rotation, "re-enter-connection-strings");
    let detail = step["detail"].as_str().expect("detail");
    assert!(detail.contains("connection-string") && detail.contains("[QcPassword]"), "{detail}");
    for secret in [sample::PLAINTEXT_PASSWORD, sample::PLAINTEXT_SETTING, sample::TEST_STUDIO_CIPHER, "Server=db01"] {
        assert!(!state.contains(secret), "{secret} in the rotation state");
    }
    let status = ok(&home, &["rotation", "status", "--json"], b"");
    let status: Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(common::step(&status, "re-record-password-steps")["seed_steps"], serde_json::json!([9]));
}
