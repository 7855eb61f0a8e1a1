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
    /// What happened, e.g. `import`, `reset`.
    pub event: &'a str,
    /// Which key.
    pub kind: KeyKind,
    /// The fingerprint before.
    #[serde(serialize_with = "fingerprint")]
    pub old: Fingerprint,
    /// The fingerprint after.
    #[serde(serialize_with = "fingerprint")]
    pub new: Fingerprint,
    /// How it ended.
    pub outcome: &'a str,
}

fn fingerprint<S: serde::Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(fp)
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
