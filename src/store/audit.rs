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
    /// The rotation it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation: Option<String>,
    /// The transition's number in that rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The rotation step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
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
            rotation: None,
            seq: None,
            step: None,
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
        append_bytes(&path, &line)
    }
}

/// Appends whole lines to the audit log and flushes them to disk.
fn append_bytes(path: &Path, line: &[u8]) -> Result<(), StoreError> {
    let io = |source| StoreError::Io { path: path.to_path_buf(), source };
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    let mut file = options.open(path).map_err(io)?;
    // Others who can write the log can forge or erase its history.
    super::file::check_open(path, &file, super::file::Guard::Trusted)?;
    file.write_all(line).and_then(|()| file.sync_data()).map_err(io)
}

/// The highest transition number of rotation `id` already in the log, read
/// from its last 1 MiB (a rotation's lines are recent).
pub fn last_seq(home: &Path, id: &str) -> Result<u64, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let path = home.join(AUDIT_FILE);
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(StoreError::Io { path, source }),
    };
    let io = |source| StoreError::Io { path: path.clone(), source };
    let len = file.metadata().map_err(io)?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(1 << 20))).map_err(io)?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).map_err(io)?;
    Ok(max_seq(&tail, id))
}

/// The highest transition number of rotation `id` in `log` (audit lines);
/// a line that is not an audit line (torn by a crash, cut by the 1 MiB
/// window) counts for nothing.
pub fn max_seq(log: &[u8], id: &str) -> u64 {
    #[derive(serde::Deserialize)]
    struct Seen {
        rotation: Option<String>,
        seq: Option<u64>,
    }
    log.split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<Seen>(line).ok())
        .filter(|seen| seen.rotation.as_deref() == Some(id))
        .filter_map(|seen| seen.seq)
        .max()
        .unwrap_or(0)
}
