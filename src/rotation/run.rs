//! Driving a rotation: starting it (the import is its first step), and
//! running it: carrying out the automatic steps and checking the evidence of
//! the others, step by step, until a step needs a person.
//!
//! The store's lock is taken for each transition only, never while a step
//! waits for a component to come back.

use jiff::Timestamp;
use std::path::Path;

use super::evidence;
use super::persist::{self, PersistError};
use super::procedure::{self, Action, Facts, Setup, Variant};
use super::state::{Change, Event, Rotation, Status, Step};
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::project;
use crate::store::audit::AuditLine;
use crate::store::config::Role;
use crate::store::credentials::CredentialState;
use crate::store::{Previous, Store, StoreError};
use crate::system::ProcessInfo;

/// The system edge, defined in [`crate::system`]; named here too for the
/// callers that reach it through the rotation.
pub use crate::system::Edge;

/// Why a rotation could not be started or run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Procedure(#[from] procedure::ProcedureError),
    #[error("the key given is {given}, but this rotation imports {expected}; give the rotation's key")]
    WrongKey { given: Fingerprint, expected: Fingerprint },
    #[error("the encryption key has no reset (as in the original); import a new key")]
    NoEncryptionReset,
    #[error("there is no previous {kind} key to roll back to: {current} is the only one this machine has held")]
    NothingToRollBack { kind: KeyKind, current: Fingerprint },
    #[error(
        "the previous encryption key was the built-in default, and the encryption key has no reset (as in the original): nothing to roll back to from {current}"
    )]
    NoEncryptionRollbackToDefault { current: Fingerprint },
}

/// What this machine's configuration says about which steps apply.
pub fn facts(store: &Store) -> Facts {
    let config = store.config();
    let home = &store.home().dir;
    let projects = config.project_dirs(home);
    let git_projects = config
        .projects
        .iter()
        .zip(&projects)
        .filter(|(entry, dir)| entry.git.unwrap_or_else(|| dir.join(".git").exists()))
        .map(|(_, dir)| dir.clone())
        .collect();
    Facts {
        projects,
        git_projects,
        bug_tracker: config.projects.iter().any(|p| p.bug_tracker),
        scheduling_server: config.machine.roles.contains(&Role::Scheduling),
        smtp: config.machine.smtp,
        execution: config.machine.roles.contains(&Role::Execution),
        credentials: store.credentials().entries.iter().map(|c| c.name).collect(),
        components: config
            .components
            .all()
            .iter()
            .filter(|(_, _, c)| c.service.is_some() || c.process.is_some())
            .map(|(id, _, _)| id.to_string())
            .collect(),
        machines: config.machines.iter().map(|m| (m.name.clone(), m.roles.clone())).collect(),
        step_commands: config.steps.keys().cloned().collect(),
        password_steps: Vec::new(),
        connection_strings: Vec::new(),
    }
}

/// The variant a rotation of `kind` would be now.
pub fn variant(store: &Store, kind: KeyKind, reset: bool) -> Result<Variant, RunError> {
    Ok(match (kind, reset) {
        (KeyKind::Encryption, true) => return Err(RunError::NoEncryptionReset),
        (KeyKind::Encryption, false) if store.status(kind).custom => Variant::Regenerated,
        (KeyKind::Encryption, false) => Variant::FirstCustom,
        (KeyKind::Communication, true) => Variant::Reset,
        (KeyKind::Communication, false) => Variant::Import,
    })
}

/// The checklist a rotation would follow here, changing nothing.
pub fn plan(store: &Store, kind: KeyKind, setup: Setup, reset: bool) -> Result<(Variant, Vec<Step>), RunError> {
    let variant = variant(store, kind, reset)?;
    let mut facts = facts(store);
    if variant == Variant::Regenerated {
        // The steps to redo by hand list the projects' secrets inventory.
        let lines = project::inventory::for_checklist(&facts.projects, &store.keyring());
        facts.password_steps = lines.password_steps;
        facts.connection_strings = lines.connection_strings;
    }
    Ok((variant, procedure::build(kind, setup, variant, &facts)?))
}

/// What runs of each component before a change: a component whose lookup
/// failed is left out (what ran before it is then unknown).
pub fn before(store: &Store, edge: &Edge) -> std::collections::BTreeMap<String, Vec<ProcessInfo>> {
    store
        .config()
        .components
        .all()
        .iter()
        .filter_map(|(id, _, c)| evidence::running(c, edge).ok().map(|p| (id.to_string(), p)))
        .collect()
}

/// Starts a rotation: persists it, then imports the key (`None`: resets the
/// communication key) as its first step, under one hold of the lock.
pub fn start(
    store: &mut Store,
    kind: KeyKind,
    setup: Setup,
    key: Option<Key>,
    edge: &Edge,
) -> Result<Rotation, RunError> {
    start_with(store, kind, setup, key, edge, false)
}

/// Starts a rollback: a rotation, with the same checklist and evidence,
/// whose key is the previous one from the keyring (the one the last
/// rotation of `kind` replaced, or else the one replaced last); on every
/// machine in the multiple-machines setup, through the same `join`. The
/// key rolled back from stays in the ring as retired (an encryption key),
/// so nothing sealed under it is lost.
pub fn start_rollback(store: &mut Store, kind: KeyKind, setup: Setup, edge: &Edge) -> Result<Rotation, RunError> {
    *store = Store::open(store.home().clone())?;
    let last = persist::load(&store.home().dir)?.filter(|r| r.kind == kind && !r.is_open());
    let current = store.active_key(kind).fingerprint();
    let key = match store.previous_key(kind, last.map(|r| r.old_fingerprint)) {
        None => return Err(RunError::NothingToRollBack { kind, current }),
        Some(Previous::Default) if kind == KeyKind::Encryption => {
            return Err(RunError::NoEncryptionRollbackToDefault { current });
        }
        Some(Previous::Default) => None,
        Some(Previous::Key(key)) => Some(key),
    };
    start_with(store, kind, setup, key, edge, true)
}

fn start_with(
    store: &mut Store,
    kind: KeyKind,
    setup: Setup,
    key: Option<Key>,
    edge: &Edge,
    rollback: bool,
) -> Result<Rotation, RunError> {
    let (variant, steps) = plan(store, kind, setup, key.is_none())?;
    let new = key.as_ref().map_or_else(|| Key::default_for(kind).fingerprint(), Key::fingerprint);
    let now = Timestamp::now();
    let before = before(store, edge);
    let mut rotation = Rotation {
        format: persist::FORMAT,
        revision: 0,
        id: now.strftime("%Y%m%dT%H%M%S%.3fZ").to_string(),
        kind,
        setup,
        variant,
        old_fingerprint: store.active_key(kind).fingerprint(),
        new_fingerprint: new,
        rollback,
        started: now,
        operator: crate::system::operator(),
        machine: crate::system::machine(),
        status: Status::Open,
        before,
        steps,
        history: Vec::new(),
        window: None,
    };
    rotation.history.push(super::state::Transition {
        seq: 1,
        at: now,
        step: None,
        outcome: if rollback {
            format!(
                "started: rollback of the {kind} key to {new} (from {}), {} setup",
                store.active_key(kind).fingerprint(),
                format!("{setup:?}").to_lowercase()
            )
        } else {
            format!("started: {kind} key, {setup:?} setup, {variant:?}").to_lowercase()
        },
    });
    let home = store.home().dir.clone();
    let _lock = persist::begin(&home, &mut rotation)?;
    if rollback {
        AuditLine {
            kind: Some(kind),
            old: Some(rotation.old_fingerprint),
            new: Some(rotation.new_fingerprint),
            rotation: Some(rotation.id.clone()),
            ..AuditLine::new("rollback", "started: the previous key becomes active again")
        }
        .append(&home)?;
    }
    import_locked(store, &home, &rotation, key)
}

fn import_locked(store: &mut Store, home: &Path, rotation: &Rotation, key: Option<Key>) -> Result<Rotation, RunError> {
    let change = store.import_in_rotation(rotation.kind, key)?;
    // Said from the state reached, not from what this run did, so a run
    // resumed after a crash records the same evidence as one that was not cut.
    let mut evidence = format!("{} is active (was {})", change.new, rotation.old_fingerprint);
    let ring = store.keyring();
    let readable = store.credentials().entries.iter().filter(|c| c.state(&ring) == CredentialState::Current).count();
    if rotation.kind == KeyKind::Encryption && readable > 0 {
        evidence.push_str(&format!("; {readable} credentials read under it"));
    }
    if !change.published.is_empty() {
        evidence.push_str(&format!("; {} key files published", change.published.len()));
    }
    Ok(persist::commit_locked(home, Some(rotation.revision), Event::step("import", Change::Done(evidence)))?)
}

/// Runs the open rotation: each step in turn is carried out or checked,
/// until one needs a person (or all are done). `key` completes an import cut
/// short by a crash. `progress` hears what is going on.
pub fn run(
    store: &mut Store,
    key: Option<Key>,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Result<Rotation, RunError> {
    let home = store.home().dir.clone();
    let mut key = key;
    loop {
        let rotation = persist::load(&home)?.filter(Rotation::is_open).ok_or(PersistError::NoneOpen)?;
        persist::sync_audit(&home, &rotation)?;
        let Some(step) = rotation.current().cloned() else { return Ok(rotation) };
        progress(&format!("{}: {}", step.id, step.title));
        *store = Store::open(store.home().clone())?;
        if let Action::Machine(_) = step.action {
            match super::machines::run_block(store, &home, &rotation, edge, progress)? {
                Some(next) => return Ok(next),
                None => continue,
            }
        }
        let change = if step.action == Action::Import {
            match import_step(store, &home, &rotation, key.take())? {
                Ok(next) if !next.is_open() => return Ok(next),
                Ok(_) => continue,
                Err(change) => change,
            }
        } else {
            evaluate(store, &rotation, &step, edge, progress)
        };
        let stops = !matches!(change, Change::Done(_));
        match persist::commit(&home, Some(rotation.revision), Event::step(&step.id, change)) {
            Ok(next) if stops || !next.is_open() => return Ok(next),
            Ok(_) => {}
            // Another keyturn moved the rotation meanwhile: look again.
            Err(PersistError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The import step after a crash cut it short: done if the key is already
/// active, else imported from `key`, else waiting for the key.
fn import_step(
    store: &mut Store,
    home: &Path,
    rotation: &Rotation,
    key: Option<Key>,
) -> Result<Result<Rotation, Change>, RunError> {
    let expected = rotation.new_fingerprint;
    let resetting = rotation.variant == Variant::Reset;
    if store.active_key(rotation.kind).fingerprint() == expected {
        // Imported before the crash, or by now: finish the step (this also
        // re-encrypts credentials and republishes, which the crash may have cut).
        let _lock = store.lock("rotation import")?;
        let key = (!resetting).then(|| store.active_key(rotation.kind));
        return Ok(Ok(import_locked(store, home, rotation, key)?));
    }
    match key {
        Some(key) if key.fingerprint() != expected => Err(RunError::WrongKey { given: key.fingerprint(), expected }),
        Some(key) => {
            let _lock = store.lock("rotation import")?;
            Ok(Ok(import_locked(store, home, rotation, Some(key))?))
        }
        None if resetting => {
            let _lock = store.lock("rotation reset")?;
            Ok(Ok(import_locked(store, home, rotation, None)?))
        }
        None => Ok(Err(Change::Wait(format!(
            "the key was not imported before the interruption; give it again on standard input: keyturn rotation run < KEYFILE (fingerprint {expected})"
        )))),
    }
}

fn evaluate(
    store: &mut Store,
    rotation: &Rotation,
    step: &Step,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Change {
    match &step.action {
        Action::Import => Change::Wait("internal: the import is handled before".into()),
        Action::Restart(id) => evidence::restart_step(store, rotation, id, edge, progress),
        Action::Credential(name) => evidence::credential(store, *name),
        Action::Upgrade => evidence::upgrade(store, progress),
        Action::Push => evidence::source_control(store, edge, false),
        Action::GetLatest => evidence::source_control(store, edge, true),
        Action::Machine(_) => super::machines::by_hand(rotation, step),
        Action::Manual => evidence::manual(store, step, edge),
    }
}
