//! The keys file, `keys.toml`: every custom key of the machine, the active one
//! of each kind and the retired encryption keys. Format version 1:
//!
//! ```toml
//! format = 1
//!
//! [[keys]]
//! kind = "encryption"                 # or "communication"
//! status = "active"                   # or "retired" (every encryption key; the last communication key)
//! fingerprint = "6030-2EF6-9E95-EFD4" # must match the key
//! created = "2026-11-23T10:49:42Z"    # when it was imported here
//! retired = "2026-12-01T08:00:00Z"    # retired keys only
//! key = "kt1:enc:..."
//! ```
//!
//! A kind with no active entry uses its built-in default key.

use std::fmt::Write as _;
use std::path::Path;

use jiff::Timestamp;
use zeroize::Zeroizing;

use super::StoreError;
use super::file::versioned_list;
use crate::keys::{Fingerprint, Key, KeyKind};

/// The keys file format this keyturn reads and writes.
pub const FORMAT: i64 = 1;

/// One key of the store.
#[derive(Clone, Debug)]
pub struct StoredKey {
    /// The key.
    pub key: Key,
    /// When it was imported on this machine.
    pub created: Timestamp,
    /// When it was replaced; `None` while it is active.
    pub retired: Option<Timestamp>,
}

/// The content of the keys file.
#[derive(Clone, Debug, Default)]
pub struct KeysFile {
    /// Every stored key, active ones first, retired ones newest first.
    pub keys: Vec<StoredKey>,
}

impl KeysFile {
    /// The active custom key of `kind`, if any.
    pub fn active(&self, kind: KeyKind) -> Option<&StoredKey> {
        self.keys.iter().find(|k| k.key.kind() == kind && k.retired.is_none())
    }

    /// The retired keys of `kind`, newest first.
    pub fn retired(&self, kind: KeyKind) -> impl Iterator<Item = &StoredKey> {
        self.keys.iter().filter(move |k| k.key.kind() == kind && k.retired.is_some())
    }

    /// Makes `key` the active key of its kind. A replaced encryption key is
    /// kept as retired; a replaced communication key is dropped. A key that
    /// was retired becomes active again. `None` means the built-in default.
    pub fn activate(&mut self, kind: KeyKind, key: Option<Key>, now: Timestamp) {
        self.activate_with(kind, key, now, false);
    }

    /// [`KeysFile::activate`] in a rotation: the communication key it
    /// replaces is kept (retired, the only one), so the rotation can be
    /// rolled back to it.
    pub fn activate_keeping_previous(&mut self, kind: KeyKind, key: Option<Key>, now: Timestamp) {
        self.activate_with(kind, key, now, true);
    }

    fn activate_with(&mut self, kind: KeyKind, key: Option<Key>, now: Timestamp, keep: bool) {
        if kind == KeyKind::Communication {
            self.keys.retain(|k| k.key.kind() != kind || k.retired.is_none() || Some(&k.key) == key.as_ref());
        }
        for stored in self.keys.iter_mut().filter(|k| k.key.kind() == kind && k.retired.is_none()) {
            stored.retired = Some(now);
        }
        if kind == KeyKind::Communication && !keep {
            self.keys.retain(|k| k.key.kind() != kind || k.retired.is_none() || Some(&k.key) == key.as_ref());
        }
        if let Some(key) = key {
            let created = match self.keys.iter().position(|k| k.key == key) {
                Some(i) => self.keys.remove(i).created,
                None => now,
            };
            self.keys.push(StoredKey { key, created, retired: None });
        }
        self.keys.sort_by_key(|k| (k.key.kind(), k.retired.is_some(), std::cmp::Reverse(k.retired)));
    }

    /// Parses and checks the file at `path` (for messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<KeysFile, StoreError> {
        let entries = versioned_list(path, bytes, FORMAT, "keys")?;
        let corrupt = |problem: String| StoreError::corrupt(path, problem);
        let mut file = KeysFile::default();
        for (i, entry) in entries.iter().enumerate() {
            let stored = parse_entry(entry).map_err(|problem| corrupt(format!("key entry {}: {problem}", i + 1)))?;
            file.keys.push(stored);
        }
        file.check().map_err(|problem| StoreError::Inconsistent { path: path.to_path_buf(), problem })?;
        Ok(file)
    }

    fn check(&self) -> Result<(), String> {
        for kind in KeyKind::ALL {
            if self.keys.iter().filter(|k| k.key.kind() == kind && k.retired.is_none()).count() > 1 {
                return Err(format!("two active {kind} keys"));
            }
        }
        if self.keys.iter().filter(|k| k.key.kind() == KeyKind::Communication && k.retired.is_some()).count() > 1 {
            return Err("two retired communication keys (only the one replaced last is kept)".into());
        }
        for (i, a) in self.keys.iter().enumerate() {
            if self.keys[i + 1..].iter().any(|b| b.key == a.key) {
                return Err(format!("the {} key {} is listed twice", a.key.kind(), a.key.fingerprint()));
            }
        }
        Ok(())
    }

    /// The file's text. It holds key material: write it owner-only.
    pub fn to_toml(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::from(
            "# keyturn keys file: key material. Owner-only; written by keyturn, do not edit.\n",
        ));
        let _ = writeln!(out, "format = {FORMAT}");
        if self.keys.is_empty() {
            out.push_str("keys = []\n");
        }
        for stored in &self.keys {
            let _ = write!(
                out,
                "\n[[keys]]\nkind = \"{}\"\nstatus = \"{}\"\nfingerprint = \"{}\"\ncreated = \"{}\"\n",
                stored.key.kind(),
                if stored.retired.is_some() { "retired" } else { "active" },
                stored.key.fingerprint(),
                stored.created,
            );
            if let Some(retired) = stored.retired {
                let _ = writeln!(out, "retired = \"{retired}\"");
            }
            out.push_str("key = \"");
            out.push_str(&stored.key.to_text());
            out.push_str("\"\n");
        }
        out.push_str(super::file::END_LINE);
        out.push('\n');
        out
    }
}

fn parse_entry(entry: &toml::Value) -> Result<StoredKey, String> {
    let toml::Value::Table(table) = entry else {
        return Err("not a table".into());
    };
    const FIELDS: [&str; 6] = ["kind", "status", "fingerprint", "created", "retired", "key"];
    if let Some(unknown) = table.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!("unknown field `{unknown}`"));
    }
    let string = |name: &str| -> Result<&str, String> {
        match table.get(name) {
            None => Err(format!("missing field `{name}`")),
            Some(toml::Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    };
    let time = |name: &str| -> Result<Timestamp, String> {
        string(name)?.parse().map_err(|_| format!("`{name}` is not a time like 2026-11-23T10:49:42Z"))
    };
    let kind = KeyKind::from_name(string("kind")?).ok_or("`kind` is neither encryption nor communication")?;
    let retired = match string("status")? {
        "active" if table.contains_key("retired") => return Err("an active key with a `retired` time".into()),
        "active" => None,
        "retired" => Some(time("retired")?),
        _ => return Err("`status` is neither active nor retired".into()),
    };
    let key = Key::parse(kind, string("key")?).map_err(|e| format!("the {kind} key is damaged: {e}"))?;
    let fingerprint: Fingerprint =
        string("fingerprint")?.parse().map_err(|_| "`fingerprint` is not a fingerprint".to_string())?;
    if fingerprint != key.fingerprint() {
        return Err(format!("the fingerprint {fingerprint} does not match its {kind} key"));
    }
    Ok(StoredKey { key, created: time("created")?, retired })
}
