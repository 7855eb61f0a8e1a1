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
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    let mut file = options.open(path).map_err(io)?;
    // Others who can write the log can forge or erase its history.
    super::file::check_open(path, &file, super::file::Guard::Trusted)?;
    // A crash can leave a last line without its line break; the new line
    // starts on a line of its own, so it is never glued onto the torn one.
    let torn = torn_tail(&mut file).map_err(io)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    if torn {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(line);
    file.write_all(&bytes).and_then(|()| file.sync_data()).map_err(io)
}

/// Whether the log's last byte is something other than a line break.
fn torn_tail(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_after_a_torn_one_starts_on_its_own_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        }
        let path = dir.path().join(AUDIT_FILE);
        append_bytes(&path, b"{\"first\":1}\n").expect("first line");
        // A crash cut the second line short: no line break.
        append_bytes(&path, b"{\"torn\":").expect("torn line");
        append_bytes(&path, b"{\"third\":3}\n").expect("third line");
        let text = std::fs::read_to_string(&path).expect("read log");
        assert_eq!(text, "{\"first\":1}\n{\"torn\":\n{\"third\":3}\n");
        append_bytes(&path, b"{\"fourth\":4}\n").expect("fourth line");
        let text = std::fs::read_to_string(&path).expect("read log");
        assert!(text.ends_with("{\"third\":3}\n{\"fourth\":4}\n"), "no blank line added after a whole one: {text:?}");
    }
}
