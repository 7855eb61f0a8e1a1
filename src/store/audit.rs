//! The audit log, `audit.log`: one JSON object a line, append-only. It names
//! keys by fingerprint only, never a key or a secret.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::StoreError;
use crate::keys::{Fingerprint, KeyKind};

/// The audit log's name in the home.
pub const AUDIT_FILE: &str = "audit.log";

/// One audit line.
#[derive(Debug, Serialize)]
pub struct AuditLine<'a> {
    /// RFC 3339, UTC.
    pub time: String,
    /// Who ran keyturn.
    pub operator: String,
    /// Which machine.
    pub machine: String,
    /// What happened, e.g. `import`, `reset`, `purge`, `credential`.
    pub event: &'a str,
    /// Which key, where the event concerns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<KeyKind>,
    /// The fingerprint before.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "fingerprint")]
    pub old: Option<Fingerprint>,
    /// The fingerprint after.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "fingerprint")]
    pub new: Option<Fingerprint>,
    /// How it ended, in words.
    pub outcome: String,
}

fn fingerprint<S: serde::Serializer>(fp: &Option<Fingerprint>, s: S) -> Result<S::Ok, S::Error> {
    match fp {
        Some(fp) => s.collect_str(fp),
        None => s.serialize_none(),
    }
}

impl<'a> AuditLine<'a> {
    /// A line for `event` now, by this operator on this machine.
    pub fn new(event: &'a str, outcome: impl Into<String>) -> AuditLine<'a> {
        AuditLine {
            time: jiff::Timestamp::now().to_string(),
            operator: crate::system::operator(),
            machine: crate::system::machine(),
            event,
            kind: None,
            old: None,
            new: None,
            outcome: outcome.into(),
        }
    }
}

impl AuditLine<'_> {
    /// Appends the line to the log in `home` and flushes it to disk.
    pub fn append(&self, home: &Path) -> Result<(), StoreError> {
        let path = home.join(AUDIT_FILE);
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut line = serde_json::to_vec(self).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(&line).and_then(|()| file.sync_data()).map_err(io)
    }
}
