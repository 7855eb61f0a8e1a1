//! The rotation on disk: `rotation.json` in the home, written crash-safely
//! after every transition, with a revision that two writers check so neither
//! overwrites the other's steps. Closed rotations move to `rotations/`.
//! Every transition is also an audit line, appended idempotently from the
//! rotation's history, so a crash between the two writes neither loses nor
//! doubles a line.

use std::path::Path;

use jiff::Timestamp;

use super::state::{Event, Rotation, TransitionError, apply, apply_in_place};
use crate::store::audit::{self, AuditLine};
use crate::store::file::{self, Guard, text};
use crate::store::lock::Lock;
use crate::store::{StoreError, atomic};

/// The open (or last) rotation's file in the home.
pub const ROTATION_FILE: &str = "rotation.json";
/// Where closed rotations are kept.
pub const ARCHIVE_DIR: &str = "rotations";
/// The rotation file format this keyturn reads and writes.
pub const FORMAT: u32 = 1;

/// Why a rotation could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("the rotation changed meanwhile (revision {expected}, now {found}): another keyturn drove it; look again")]
    Conflict { expected: u64, found: u64 },
    #[error("no rotation is open here; `keyturn rotation start` begins one")]
    NoneOpen,
}

/// The rotation in `home`, open or closed, if any.
pub fn load(home: &Path) -> Result<Option<Rotation>, StoreError> {
    let path = home.join(ROTATION_FILE);
    let Some(bytes) = file::read(&path, Guard::Secret)? else { return Ok(None) };
    parse(&path, &bytes).map(Some)
}

/// Parses and checks a rotation file's bytes (read from `path`, for messages).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Rotation, StoreError> {
    let path = path.to_path_buf();
    let text = text(&path, bytes)?;
    if text.trim().is_empty() {
        return Err(StoreError::Corrupt { path, problem: "is empty (truncated?)".into() });
    }
    let rotation: Rotation = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        path: path.clone(),
        problem: format!("line {}: {}", e.line(), first_clause(&e.to_string())),
    })?;
    if rotation.format != FORMAT {
        return Err(StoreError::UnknownVersion { path, found: i64::from(rotation.format) });
    }
    Ok(rotation)
}

/// serde_json's message without its position (given separately).
fn first_clause(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

/// The open rotation in `home`, if any.
pub fn open_rotation(home: &Path) -> Result<Option<Rotation>, StoreError> {
    Ok(load(home)?.filter(Rotation::is_open))
}

/// Writes `rotation` as the next revision after `expected`. The caller holds
/// the store's lock.
fn save(home: &Path, rotation: &mut Rotation, expected: u64) -> Result<(), PersistError> {
    let found = load(home)?.map_or(0, |r| r.revision);
    if found != expected {
        return Err(PersistError::Conflict { expected, found });
    }
    rotation.revision = expected + 1;
    let path = home.join(ROTATION_FILE);
    let json =
        serde_json::to_string_pretty(rotation).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
    atomic::write(&path, json.as_bytes(), atomic::Access::OwnerOnly)
        .map_err(|source| StoreError::Io { path, source })?;
    Ok(())
}

/// Appends to the audit log every transition of `rotation` not yet there.
pub fn sync_audit(home: &Path, rotation: &Rotation) -> Result<(), StoreError> {
    append_audit(home, rotation, audit::last_seq(home, &rotation.id)?)
}

/// Appends the transitions of `rotation` after number `logged`, in one
/// write and one flush.
fn append_audit(home: &Path, rotation: &Rotation, logged: u64) -> Result<(), StoreError> {
    let lines: Vec<AuditLine<'_>> = rotation
        .history
        .iter()
        .filter(|t| t.seq > logged)
        .map(|t| AuditLine {
            time: t.at.to_string(),
            kind: Some(rotation.kind),
            old: Some(rotation.old_fingerprint),
            new: Some(rotation.new_fingerprint),
            rotation: Some(rotation.id.clone()),
            seq: Some(t.seq),
            step: t.step.clone(),
            ..AuditLine::new("rotation", t.outcome.clone())
        })
        .collect();
    audit::append_all(home, &lines)
}

/// Starts `rotation` as the home's one rotation: refused while another is
/// open; a closed one is archived first. Returns the lock, held, so that the
/// caller's first step (the import) follows without a gap.
pub fn begin(home: &Path, rotation: &mut Rotation) -> Result<Lock, PersistError> {
    let lock = Lock::for_change(home, "rotation start")?;
    let previous = load(home)?;
    let mut expected = 0;
    if let Some(previous) = previous {
        if previous.is_open() {
            return Err(StoreError::RotationOpen { id: previous.id, kind: previous.kind }.into());
        }
        // Lines a killed command did not write yet must not be lost.
        sync_audit(home, &previous)?;
        archive(home, &previous)?;
        expected = previous.revision;
    }
    save(home, rotation, expected)?;
    sync_audit(home, rotation)?;
    Ok(lock)
}

fn archive(home: &Path, rotation: &Rotation) -> Result<(), StoreError> {
    let dir = home.join(ARCHIVE_DIR);
    atomic::create_private_dir(&dir).map_err(|source| StoreError::Io { path: dir.clone(), source })?;
    let path = dir.join(format!("{}.json", rotation.id.replace(':', "-")));
    let json =
        serde_json::to_string_pretty(rotation).map_err(|e| StoreError::Io { path: path.clone(), source: e.into() })?;
    atomic::write(&path, json.as_bytes(), atomic::Access::OwnerOnly).map_err(|source| StoreError::Io { path, source })
}

/// Applies `event` to the open rotation, which must still be at revision
/// `expected` (when given), and persists it. Takes the lock for just this.
pub fn commit(home: &Path, expected: Option<u64>, event: Event) -> Result<Rotation, PersistError> {
    let _lock = Lock::for_change(home, "rotation")?;
    commit_locked(home, expected, event)
}

/// [`commit`] for a caller that holds the lock.
pub fn commit_locked(home: &Path, expected: Option<u64>, event: Event) -> Result<Rotation, PersistError> {
    let rotation = load(home)?.ok_or(PersistError::NoneOpen)?;
    // A crash after an earlier write may have left audit lines behind, and
    // a temporary file (we hold the lock: no writer is at work).
    sync_audit(home, &rotation)?;
    atomic::remove_stale_temporaries(home);
    if let Some(expected) = expected
        && expected != rotation.revision
    {
        return Err(PersistError::Conflict { expected, found: rotation.revision });
    }
    let revision = rotation.revision;
    let mut next = apply(rotation.clone(), event, Timestamp::now())?;
    if next == rotation {
        return Ok(next);
    }
    save(home, &mut next, revision)?;
    sync_audit(home, &next)?;
    Ok(next)
}

/// Applies `events` in order to the open rotation, each at its own time,
/// under one hold of the lock and with one write: how the driver of a push
/// checks off many machines' answers at once. An event the rotation refuses
/// (a step closed meanwhile by hand, an answer given twice) leaves it as it
/// was and is returned in its place; the others apply.
pub fn commit_batch(
    home: &Path,
    events: Vec<(Event, Timestamp)>,
) -> Result<(Rotation, Vec<Result<(), TransitionError>>), PersistError> {
    let _lock = Lock::for_change(home, "rotation")?;
    let rotation = load(home)?.ok_or(PersistError::NoneOpen)?;
    sync_audit(home, &rotation)?;
    atomic::remove_stale_temporaries(home);
    let revision = rotation.revision;
    // Every transition so far is in the audit log now.
    let logged = rotation.history.last().map_or(0, |t| t.seq);
    let mut next = rotation;
    let refusals: Vec<Result<(), TransitionError>> =
        events.into_iter().map(|(event, at)| apply_in_place(&mut next, event, at)).collect();
    if next.history.last().map_or(0, |t| t.seq) != logged {
        // A kill here loses the batch's answers, not a machine: the push run
        // again joins those machines again, which changes nothing there.
        crate::fault::point("answers applied, not yet written");
        save(home, &mut next, revision)?;
        crate::fault::point("answers written, not yet audited");
        append_audit(home, &next, logged)?;
    }
    Ok((next, refusals))
}
