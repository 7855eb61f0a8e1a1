//! Entry points for the fuzz targets in `fuzz/`, one per parser that reads
//! outside input. The ordinary test run replays the kept corpus and every
//! crashing input through these same functions (`tests/fuzz_corpus.rs`).
//! Each must never panic, whatever the bytes.

use std::path::Path;

use crate::keys::{self, Key, KeyKind};
use crate::store::config::Config;
use crate::store::credentials::CredentialsFile;
use crate::store::keyfile::KeysFile;
use crate::token::{Keyring, ParsedToken};

/// A key's text form, both kinds, as pasted or read from a file.
pub fn key_text(data: &[u8]) {
    if let Ok(text) = keys::text_from_bytes(data) {
        for kind in KeyKind::ALL {
            if let Ok(key) = Key::parse(kind, &text) {
                // What parses must print back to the same key.
                assert_eq!(Key::parse(kind, &key.to_text()).ok(), Some(key));
            }
        }
    }
}

/// A token, opened with a ring of two keys.
pub fn token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = ParsedToken::parse(text);
    let ring = Keyring::new(&Key::from_bytes(KeyKind::Encryption, [7; 32]), &[Key::default_for(KeyKind::Encryption)]);
    let _ = ring.open(text);
}

/// The keys file.
pub fn keys_file(data: &[u8]) {
    if let Ok(file) = KeysFile::parse(Path::new("keys.toml"), data) {
        // What loads must write back to a file that loads the same keys.
        let again = KeysFile::parse(Path::new("keys.toml"), file.to_toml().as_bytes());
        let keys = |f: &KeysFile| f.keys.iter().map(|k| (k.key.fingerprint(), k.retired.is_some())).collect::<Vec<_>>();
        assert_eq!(again.as_ref().map(keys).ok(), Some(keys(&file)));
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

/// The rotation state.
pub fn rotation_state(data: &[u8]) {
    if let Ok(rotation) = crate::rotation::persist::parse(Path::new("rotation.json"), data) {
        let _ = rotation.current();
        if let Ok(json) = serde_json::to_string(&rotation) {
            assert!(crate::rotation::persist::parse(Path::new("rotation.json"), json.as_bytes()).is_ok());
        }
    }
}

/// Another machine's answers: a join report and a status.
pub fn remote_answer(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = serde_json::from_str::<crate::fleet::JoinReport>(text);
    let _ = crate::rotation::machines::parse_status(text);
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target, by name.
pub const TARGETS: [(&str, Target); 7] = [
    ("key_text", key_text),
    ("token", token),
    ("keys_file", keys_file),
    ("credentials_file", credentials_file),
    ("config", config),
    ("rotation_state", rotation_state),
    ("remote_answer", remote_answer),
];
