//! Entry points for the fuzz targets in `fuzz/`, one per parser or
//! transformation of outside input, each with a property it asserts beyond
//! "does not panic". The ordinary test run replays the kept corpus and every
//! crashing input through these same functions (`tests/fuzz_corpus.rs`).
//!
//! Several targets build their input from pieces: the bytes are cut at
//! `0xFF` into chunks, and a chunk's first byte says what it stands for (a
//! real token sealed over the chunk's bytes, the planted key, plain text).
//! So the fuzzer reaches the logic behind the parsers without having to
//! forge AES-GCM tags or checksums.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use crate::display;
use crate::keys::{self, Key, KeyKind};
use crate::project;
use crate::store::audit;
use crate::store::config::{Config, Encoding, MachineEntry, Role};
use crate::store::config_edit;
use crate::store::credentials::CredentialsFile;
use crate::store::keyfile::KeysFile;
use crate::store::publish;
use crate::system::{Commands, Output};
use crate::token::{Keyring, ParsedToken, SealingKey};

/// A key of `kind` made from `seed`, never weak, never the default.
fn fixed_key(kind: KeyKind, seed: u8) -> Key {
    Key::from_bytes(kind, std::array::from_fn(|i| seed.wrapping_add((i as u8).wrapping_mul(37))))
}

/// The ring the token targets open with: an active key and a retired one.
fn ring() -> &'static (Keyring, Key, Key, Key) {
    static RING: OnceLock<(Keyring, Key, Key, Key)> = OnceLock::new();
    RING.get_or_init(|| {
        let active = fixed_key(KeyKind::Encryption, 7);
        let retired = fixed_key(KeyKind::Encryption, 11);
        let unknown = fixed_key(KeyKind::Encryption, 13);
        (Keyring::new(&active, std::slice::from_ref(&retired)), active, retired, unknown)
    })
}

/// `data` cut at `0xFF`.
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|b| *b == 0xFF)
}

/// A key's text form, both kinds, as pasted or read from a file.
pub fn key_text(data: &[u8]) {
    if let Ok(text) = keys::text_from_bytes(data) {
        for kind in KeyKind::ALL {
            if let Ok(key) = Key::parse(kind, &text) {
                // What parses must print back to the same key.
                assert!(Key::parse(kind, &key.to_text()).ok() == Some(key));
            }
        }
    }
}

/// Tokens. The first byte chooses:
/// - `0`: the rest is a value: sealed under the active key (and under the
///   retired one), it opens to the same bytes, and the scanner sees exactly
///   one token, the whole of it;
/// - `1`: the rest edits real tokens (pairs of position and byte): an edited
///   token never opens to another value, and a change is always refused;
/// - anything else: the rest is a token as found in a file: opening it
///   never panics, and what opens re-seals to a token that opens the same.
pub fn token(data: &[u8]) {
    let (ring, _, retired, _) = ring();
    match data.split_first() {
        Some((0, value)) => {
            for token in [ring.seal(value), SealingKey::new(retired).seal(value)] {
                assert!(ring.open(&token).is_ok_and(|v| v.as_slice() == value));
                assert!(ParsedToken::parse(&token).is_ok());
                assert!(project::find_tokens(token.as_bytes()).eq(std::iter::once(0..token.len())));
            }
        }
        Some((1, edits)) => {
            static REAL: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
            let real = REAL.get_or_init(|| {
                [&b""[..], b"s3cret", b"Password=p@ss;\xff\x00 and a longer value of 40 bytes"]
                    .iter()
                    .flat_map(|v| [(ring.seal(v), v.to_vec()), (SealingKey::new(retired).seal(v), v.to_vec())])
                    .collect()
            });
            let Some((which, edits)) = edits.split_first() else { return };
            let (token, value) = &real[usize::from(*which) % real.len()];
            let mut bytes = token.clone().into_bytes();
            for pair in edits.chunks_exact(2) {
                let at = usize::from(pair[0]) * bytes.len() / 256;
                bytes[at] = pair[1];
            }
            let Ok(edited) = std::str::from_utf8(&bytes) else { return };
            match ring.open(edited) {
                Ok(opened) => {
                    assert_eq!(edited, token.as_str(), "a changed token opened");
                    assert_eq!(opened.as_slice(), value.as_slice());
                }
                Err(_) => assert_ne!(edited, token.as_str(), "a real token was refused"),
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(data) else { return };
            let _ = ParsedToken::parse(text);
            if let Ok(value) = ring.open(text) {
                assert!(ring.open(&ring.seal(&value)).is_ok_and(|v| v == value));
            }
        }
    }
}

/// The keys file: what loads writes back to a file that loads the same
/// keys, with the same dates and the same retired marks, in the same order.
pub fn keys_file(data: &[u8]) {
    if let Ok(file) = KeysFile::parse(Path::new("keys.toml"), data) {
        let again = KeysFile::parse(Path::new("keys.toml"), file.to_toml().as_bytes());
        let Ok(again) = again else { panic!("the keys file it wrote does not load") };
        let ring = |f: &KeysFile| f.keys.iter().map(|k| (k.key.clone(), k.created, k.retired)).collect::<Vec<_>>();
        assert!(ring(&again) == ring(&file), "the keys file it wrote loads other keys");
        assert_eq!(again.to_toml().as_str(), file.to_toml().as_str());
    }
}

/// The credentials file.
pub fn credentials_file(data: &[u8]) {
    if let Ok(file) = CredentialsFile::parse(Path::new("credentials.toml"), data) {
        let again = CredentialsFile::parse(Path::new("credentials.toml"), file.to_toml().as_bytes());
        assert_eq!(again.ok(), Some(file));
    }
}

/// `keyturn.toml`.
pub fn config(data: &[u8]) {
    let _ = Config::parse(Path::new("keyturn.toml"), data);
}

/// The rotation state: what loads is written back (as it is persisted) to
/// a state that loads equal.
pub fn rotation_state(data: &[u8]) {
    let path = Path::new("rotation.json");
    if let Ok(rotation) = crate::rotation::persist::parse(path, data) {
        let _ = rotation.current();
        let json = serde_json::to_string_pretty(&rotation).expect("a loaded rotation serialises");
        let again = crate::rotation::persist::parse(path, json.as_bytes());
        assert_eq!(again.ok(), Some(rotation));
    }
}

/// Another machine's answers: a join report and a status.
pub fn remote_answer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = serde_json::from_str::<crate::fleet::JoinReport>(text);
    if let Some(status) = crate::rotation::machines::parse_status(text) {
        assert!(!status.keyturn.chars().chain(status.home.chars()).any(display::is_hidden));
    }
}

/// A project file with real tokens spliced in, through the upgrade's
/// rewrite. The first byte chooses the file's encoding (UTF-8, UTF-16 LE or
/// BE with their byte-order mark); then chunk kinds (first byte / 64): plain
/// bytes; a token sealed over the rest under the retired key (upgraded);
/// under the active key (left); under a key the ring lacks (left,
/// unreadable). Every byte outside the tokens stays, no token is lost (each
/// opens to what it opened to before), and a second pass changes nothing.
pub fn project_rewrite(data: &[u8]) {
    use crate::project::text::{self, Encoding};
    let (ring, active, retired, unknown) = ring();
    let Some((selector, data)) = data.split_first() else { return };
    let (encoding, mut file) = match selector % 3 {
        0 => (Encoding::Utf8, Vec::new()),
        1 => (Encoding::Utf16Le, vec![0xFF, 0xFE]),
        _ => (Encoding::Utf16Be, vec![0xFE, 0xFF]),
    };
    for chunk in chunks(data) {
        let Some((kind, rest)) = chunk.split_first() else { continue };
        let token = match kind / 64 {
            0 => {
                file.extend_from_slice(rest);
                continue;
            }
            1 => SealingKey::new(retired).seal(rest),
            2 => SealingKey::new(active).seal(rest),
            _ => SealingKey::new(unknown).seal(rest),
        };
        text::encode(&token, encoding, &mut file);
    }
    let (out, upgraded) = project::rewrite_in(&file, encoding, ring);
    // Candidates that parse as tokens never overlap (a body holds no `:`);
    // those that do not parse are bytes like any other.
    let tokens = |bytes: &[u8]| -> Vec<(std::ops::Range<usize>, String)> {
        text::tokens(bytes, encoding)
            .into_iter()
            .filter(|f| ParsedToken::parse(&f.text).is_ok())
            .map(|f| (f.bytes, f.text))
            .collect()
    };
    let (before, after) = (tokens(&file), tokens(&out));
    assert_eq!(before.len(), after.len(), "a token was lost or made");
    let gaps = |bytes: &[u8], found: &[(std::ops::Range<usize>, String)]| {
        let mut at = 0;
        let mut gaps = Vec::new();
        for (r, _) in found {
            gaps.push(bytes[at..r.start].to_vec());
            at = r.end;
        }
        gaps.push(bytes[at..].to_vec());
        gaps
    };
    assert!(gaps(&file, &before) == gaps(&out, &after), "a byte outside the tokens changed");
    let mut changed = 0;
    for ((_, old), (_, new)) in before.iter().zip(&after) {
        if old != new {
            changed += 1;
            assert!(ParsedToken::parse(new).is_ok_and(|p| ring.is_current(&p)), "re-sealed under the active key");
            assert!(ring.open(old).ok().is_some_and(|v| ring.open(new).ok() == Some(v)), "the value changed");
        }
    }
    assert_eq!(changed, upgraded);
    let (again, upgraded_again) = project::rewrite_in(&out, encoding, ring);
    assert_eq!(upgraded_again, 0, "a second pass upgraded again");
    assert!(again == out, "a second pass changed the file");
}

/// Answers whatever it is asked with one canned output.
struct Canned(Output);

impl Commands for Canned {
    fn run(&self, _: &[String], _: &[(&str, &str)], _: Duration) -> std::io::Result<Output> {
        Ok(self.0.clone())
    }
    fn run_with_input(&self, _: &[String], _: &[u8], _: Duration) -> std::io::Result<Output> {
        Ok(self.0.clone())
    }
}

/// The key that the remote output target plants in what a machine answers.
pub fn planted_key() -> Key {
    fixed_key(KeyKind::Communication, 0x5a)
}

/// Another machine's output on the way to the screen: the first byte is its
/// exit code (255: killed; its top bit also marks a timeout), then stdout and
/// stderr cut at `0xFF`, where `0xFE` stands for the planted key's text,
/// `0xFD` for its base64 body and `0xFC` for the body's first 20 characters.
/// Whatever the machine answers, no text kept or shown (the join's answer,
/// the step's evidence, the status, the failure) holds the key or a run of
/// 16 of its body's characters, or a character that would act on the
/// terminal or draw nothing.
pub fn remote_output(data: &[u8]) {
    let key = planted_key();
    let text = key.to_text();
    let body = text.rsplit(':').next().unwrap_or_default().to_string();
    let Some((code, rest)) = data.split_first() else { return };
    let mut streams = chunks(rest).map(|chunk| {
        let mut bytes = Vec::new();
        for b in chunk {
            match b {
                0xFE => bytes.extend_from_slice(text.as_bytes()),
                0xFD => bytes.extend_from_slice(body.as_bytes()),
                0xFC => bytes.extend_from_slice(&body.as_bytes()[..20]),
                b => bytes.push(*b),
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    });
    let out = Output {
        code: (code & 0x7f != 0x7f).then_some(i32::from(code & 0x7f)),
        stdout: streams.next().unwrap_or_default(),
        stderr: streams.next().unwrap_or_default(),
        timed_out: code & 0x80 != 0,
    };
    let machine = MachineEntry { name: "m".into(), roles: vec![Role::Execution], command: None };
    let commands = std::sync::Arc::new(Canned(out));
    let remote = crate::system::remote::CommandRemote { commands };
    let kind = KeyKind::Communication;
    let joined = crate::rotation::machines::push(&machine, kind, Some(&key), &remote, Duration::from_secs(1));
    let mut shown: Vec<String> = Vec::new();
    match &joined {
        Ok(r) => {
            shown.extend([r.keyturn.clone(), r.machine.clone(), r.home.clone()]);
            shown.extend(
                r.steps.iter().flat_map(|s| [s.id.clone(), s.title.clone(), s.state.clone(), s.evidence.clone()]),
            );
            shown.extend(r.needs_person.iter().cloned());
        }
        Err(e) => shown.push(e.clone()),
    }
    let change = crate::rotation::machines::machine_change("m", kind, key.fingerprint(), &joined);
    shown.push(format!("{change:?}"));
    // The push as a rotation makes it: a second session asks the status
    // when the answer is unclear.
    let change = crate::rotation::machines::checked_push(
        &machine,
        kind,
        Some(&key),
        key.fingerprint(),
        &remote,
        Duration::from_secs(1),
    );
    shown.push(format!("{change:?}"));
    let pieces: Vec<String> = body.chars().collect::<Vec<_>>().windows(16).map(|w| w.iter().collect()).collect();
    for s in &shown {
        assert!(!s.contains(text.as_str()) && !pieces.iter().any(|p| s.contains(p.as_str())), "the key is shown");
    }
    // A status call carries no key to repeat; what it shows is still filtered.
    match crate::fleet::status(&machine, &remote, Duration::from_secs(1)) {
        Ok(s) => shown.extend([s.keyturn, s.home]),
        Err(e) => shown.push(e),
    }
    for s in &shown {
        assert!(!s.chars().any(display::is_hidden), "a hidden character is shown: {s:?}");
    }
}

/// A published key file: a key chosen by the fuzzer renders and reads back
/// in every encoding; bytes that read as a key read as the same key again
/// once rendered, and (base64, hex) are that key's canonical form.
pub fn published_file(data: &[u8]) {
    let Some((selector, rest)) = data.split_first() else { return };
    let kind = if selector & 1 == 0 { KeyKind::Encryption } else { KeyKind::Communication };
    let encodings = [Encoding::Text, Encoding::Base64, Encoding::Hex, Encoding::Raw];
    if let Ok(raw) = <[u8; keys::KEY_LEN]>::try_from(rest.get(..keys::KEY_LEN).unwrap_or_default()) {
        let key = Key::from_bytes(kind, raw);
        let weak = raw.iter().all(|b| *b == raw[0]);
        for encoding in encodings {
            let read = publish::parse(kind, &publish::render(&key, encoding), encoding);
            if encoding == Encoding::Text && weak {
                assert!(read.is_err(), "a weak key read from text");
            } else {
                assert!(read.ok() == Some(key.clone()), "{encoding:?} does not read back");
            }
        }
    }
    let encoding = encodings[usize::from(selector >> 1) % encodings.len()];
    if let Ok(key) = publish::parse(kind, rest, encoding) {
        let rendered = publish::render(&key, encoding);
        assert!(publish::parse(kind, &rendered, encoding).ok() == Some(key), "{encoding:?} reads another key back");
        if matches!(encoding, Encoding::Base64 | Encoding::Hex) {
            let given = std::str::from_utf8(rest).map(str::trim).unwrap_or_default();
            let canonical = std::str::from_utf8(&rendered).map(str::trim).unwrap_or_default();
            assert!(given.eq_ignore_ascii_case(canonical), "{encoding:?} accepted a non-canonical form");
        }
    }
}

/// The audit log reader: after whatever the log held (torn lines, other
/// rotations, garbage), a line appended for a rotation counts: the highest
/// transition number read is the larger of the one before and the one
/// appended, and lines of other rotations change nothing.
pub fn audit_log(data: &[u8]) {
    let (seq, log) = match data.split_first_chunk::<8>() {
        Some((seq, log)) => (u64::from_le_bytes(*seq), log),
        None => return,
    };
    let id = "r-fuzz";
    let before = audit::max_seq(log, id);
    let mut line = audit::AuditLine::new("step", "done");
    line.rotation = Some(id.into());
    line.seq = Some(seq);
    let mut grown = log.to_vec();
    if !grown.ends_with(b"\n") {
        grown.push(b'\n');
    }
    grown.extend(serde_json::to_vec(&line).expect("an audit line serialises"));
    grown.push(b'\n');
    assert_eq!(audit::max_seq(&grown, id), before.max(seq));
    line.rotation = Some("r-other".into());
    let mut other = log.to_vec();
    other.push(b'\n');
    other.extend(serde_json::to_vec(&line).expect("an audit line serialises"));
    assert_eq!(audit::max_seq(&other, id), audit::max_seq(&[log, b"\n"].concat(), id));
}

/// `keyturn.toml` edited by keyturn's commands: the first byte chooses the
/// edit, the chunk after the first `0xFF` is its argument (a project path
/// or a machine name), the rest is the file (with a final line break). An
/// addition inserts bytes and
/// keeps every other byte where it was (comments included); removing what
/// was just added gives back the file byte for byte; a removal only cuts.
pub fn config_edit(data: &[u8]) {
    let mut parts = data.splitn(2, |b| *b == 0xFF);
    let (Some(head), Some(file)) = (parts.next(), parts.next()) else { return };
    let Some((op, arg)) = head.split_first() else { return };
    let (Ok(arg), Ok(original)) = (std::str::from_utf8(arg), std::str::from_utf8(file)) else { return };
    // toml_edit ends the file with a line break after an edit of its last
    // table: the one byte an edit may add besides the entry.
    let original = &format!("{}\n", original.strip_suffix('\n').unwrap_or(original));
    // Names and paths with a control or invisible character are refused
    // before any edit (`keyturn.toml` may not hold them).
    if arg.chars().any(display::is_hidden) {
        return;
    }
    let common = |a: &str, b: &str| {
        let pre = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
        let max_suf = a.len().min(b.len()) - pre;
        let suf = a.bytes().rev().zip(b.bytes().rev()).take(max_suf).take_while(|(x, y)| x == y).count();
        pre + suf
    };
    let (array, field) = if op & 1 == 0 { ("projects", "path") } else { ("machines", "name") };
    let added = config_edit::edited(original, |doc| match field {
        "path" => config_edit::add_project_entry(doc, arg),
        _ => config_edit::add_machine_entry(doc, arg, &[Role::Execution], None),
    });
    if let Ok(Some(added)) = &added {
        assert_eq!(common(original, added), original.len(), "adding changed other bytes:\n{original}\n---\n{added}");
        let removed = config_edit::edited(added, |doc| config_edit::remove_entry(doc, array, field, arg));
        assert_eq!(removed, Ok(Some(original.to_string())), "adding then removing is not the file again");
    }
    if let Ok(Some(removed)) = config_edit::edited(original, |doc| config_edit::remove_entry(doc, array, field, arg)) {
        assert_eq!(
            common(original, &removed),
            removed.len(),
            "removing changed other bytes:\n{original}\n---\n{removed}"
        );
    }
}

/// Bracketed paste into each kind of field of the wizard. The first byte
/// chooses: `0`: the rest places line breaks (position, then one of four
/// breaks a console makes) into the planted key's text, which the key
/// field must take as the same key the CLI reads from it; anything else:
/// the rest is pasted as it is into the key field, a one-line dialog field
/// and both credential fields, each twice. Caps hold whatever is pasted,
/// and the key field accepts a key only where the CLI accepts that key.
// Clippy 1.96 (Debian's, used for the Windows build) flags this `const`
// thread-local as not const: a false positive on the macro's expansion.
#[allow(clippy::missing_const_for_thread_local)]
pub fn paste(data: &[u8]) {
    use crate::tui::app::{App, Dialog, InputPurpose, KEY_FIELD_MAX, LINE_MAX, Options};
    use crate::tui::field::LineEdit;
    use crate::tui::keymap::Action;
    thread_local! {
        static APP: std::cell::RefCell<Option<(tempfile::TempDir, App)>> = const { std::cell::RefCell::new(None) };
    }
    let Some((mode, rest)) = data.split_first() else { return };
    let text = if *mode == 0 {
        let key = planted_key().to_text();
        let mut wrapped = key.to_string();
        for pair in rest.chunks_exact(2).take(8) {
            let at = usize::from(pair[0]) * wrapped.len() / 256;
            if !wrapped.is_char_boundary(at) {
                continue;
            }
            let line_break = ["\n", "\r\n", "\n  ", " \r\n "][usize::from(pair[1] % 4)];
            wrapped.insert_str(at, line_break);
        }
        wrapped
    } else {
        String::from_utf8_lossy(rest).into_owned()
    };
    let cli = keys::text_from_bytes(text.as_bytes()).ok().and_then(|t| Key::parse(KeyKind::Communication, &t).ok());
    if *mode == 0 {
        assert!(cli.as_ref() == Some(&planted_key()), "the CLI refuses a wrapped key");
    }
    APP.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (_, app) = cell.get_or_insert_with(|| {
            let dir = tempfile::tempdir().expect("a temporary home");
            let home = crate::store::home::Home { dir: dir.path().join("home"), machine_wide: false };
            let clipboard = Box::new(crate::system::clipboard::FakeClipboard::default());
            let app = App::new(home, clipboard, Options { background: false, wait: Duration::from_secs(1) });
            (dir, app)
        });
        app.dialog = None;
        app.tab = crate::tui::app::Tab::Communication;
        let pane = 1;
        app.update(Action::Paste(text.clone()));
        let field = app.panes[pane].field.text().to_string();
        assert!(field.len() <= KEY_FIELD_MAX, "the key field holds {} bytes", field.len());
        let wizard = Key::parse(KeyKind::Communication, &field).ok();
        if let Some(key) = &cli {
            assert!(wizard.as_ref() == Some(key), "the wizard refuses a pasted key the CLI accepts");
        }
        if *mode == 0 {
            return;
        }
        for dialog in [
            Dialog::Input { purpose: InputPurpose::AbortReason, value: LineEdit::new(LINE_MAX), error: None },
            Dialog::Credential {
                name: crate::store::credentials::CredentialName::Git,
                user: LineEdit::new(LINE_MAX),
                secret: LineEdit::new(LINE_MAX),
                on_secret: false,
                error: None,
            },
            Dialog::Credential {
                name: crate::store::credentials::CredentialName::Smtp,
                user: LineEdit::new(LINE_MAX),
                secret: LineEdit::new(LINE_MAX),
                on_secret: true,
                error: None,
            },
        ] {
            app.dialog = Some(dialog);
            app.update(Action::Paste(text.clone()));
            app.update(Action::Paste(text.clone()));
            match &app.dialog {
                Some(Dialog::Input { value, .. }) => {
                    assert!(value.text().len() <= LINE_MAX, "a line of {} bytes", value.text().len())
                }
                Some(Dialog::Credential { user, secret, .. }) => {
                    let (user, secret) = (user.text(), secret.text());
                    assert!(user.len() <= LINE_MAX && secret.len() <= LINE_MAX, "a credential over the cap");
                    assert!(!user.chars().chain(secret.chars()).any(char::is_control), "a control character kept");
                }
                _ => {}
            }
        }
        app.dialog = None;
    });
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by name: `fuzz/Cargo.toml` has a binary of each name and
/// `fuzz/corpus/` a folder (the corpus test checks both).
pub const TARGETS: [(&str, Target); 13] = [
    ("key_text", key_text),
    ("token", token),
    ("keys_file", keys_file),
    ("credentials_file", credentials_file),
    ("config", config),
    ("rotation_state", rotation_state),
    ("remote_answer", remote_answer),
    ("project_rewrite", project_rewrite),
    ("remote_output", remote_output),
    ("published_file", published_file),
    ("audit_log", audit_log),
    ("config_edit", config_edit),
    ("paste", paste),
];
