//! Driving a rotation: starting it (the import is its first step), and
//! running it: carrying out the automatic steps and checking the evidence of
//! the others, step by step, until a step needs a person.
//!
//! The store's lock is taken for each transition only, never while a step
//! waits for a component to come back.

use jiff::Timestamp;
use std::path::Path;

use super::persist::{self, PersistError};
use super::procedure::{self, Action, Facts, Setup, Variant};
use super::state::{Change, Event, Rotation, Status, Step};
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::project;
use crate::store::audit::AuditLine;
use crate::store::config::{Component, Role};
use crate::store::credentials::{CredentialName, CredentialState};
use crate::store::{Previous, Store, StoreError};
use crate::system::git::Range;
use crate::system::{ProcessInfo, ServiceState, Wanted};

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

fn component<'s>(store: &'s Store, id: &str) -> Option<&'s Component> {
    store.config().components.all().into_iter().find(|(cid, _, _)| *cid == id).map(|(_, _, c)| c)
}

/// The processes a component runs as now: its service's main process (as
/// the service manager says), or its processes by executable path, or by
/// name and owner (and session on Windows). A failed lookup is an error,
/// never "not running".
pub fn running(component: &Component, edge: &Edge) -> Result<Vec<ProcessInfo>, String> {
    if let Some(service) = &component.service {
        return match edge.services.query(service).map_err(|e| e.to_string())? {
            // A service whose process has gone is not running, whatever the
            // manager says (Wine's keeps saying Running for a killed one).
            ServiceState::Running { pid } => Ok(edge.processes.get(pid).into_iter().collect()),
            ServiceState::Stopped => Ok(Vec::new()),
        };
    }
    let Some(process) = component.process.as_deref() else { return Ok(Vec::new()) };
    Ok(edge.processes.find(&Wanted::new(process, edge.processes.me().as_ref())))
}

/// What runs of each component before a change: a component whose lookup
/// failed is left out (what ran before it is then unknown).
pub fn before(store: &Store, edge: &Edge) -> std::collections::BTreeMap<String, Vec<ProcessInfo>> {
    store
        .config()
        .components
        .all()
        .iter()
        .filter_map(|(id, _, c)| running(c, edge).ok().map(|p| (id.to_string(), p)))
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
            match machines(store, &home, &rotation, edge, progress)? {
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

/// The block of machine steps from the current one: each roster machine
/// joins, all at once with a bound, and each step is checked off from its
/// machine's report. `None`: all done, go on; `Some`: stop here.
fn machines(
    store: &Store,
    home: &Path,
    rotation: &Rotation,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Rotation>, RunError> {
    let roster = &store.config().machines;
    let block: Vec<(String, crate::store::config::MachineEntry)> = rotation
        .steps
        .iter()
        .skip_while(|s| s.state.is_closed())
        .take_while(|s| matches!(s.action, Action::Machine(_)))
        .filter(|s| !s.state.is_closed())
        .filter_map(|s| match &s.action {
            Action::Machine(name) => roster.iter().find(|m| &m.name == name).map(|m| (s.id.clone(), m.clone())),
            _ => None,
        })
        .collect();
    let key = (rotation.variant != Variant::Reset).then(|| store.active_key(rotation.kind));
    let entries: Vec<crate::store::config::MachineEntry> = block.iter().map(|(_, m)| m.clone()).collect();
    progress(&format!("pushing the key to {} machines", entries.len()));
    // Each machine's step is checked off as its answer arrives, so one slow
    // machine holds back none of the others, and a stop loses none.
    let committed = std::sync::Mutex::new(Vec::new());
    let changes = crate::fleet::each(
        &entries,
        crate::fleet::DEFAULT_PARALLEL,
        &|m| {
            crate::fleet::checked_push(
                m,
                rotation.kind,
                key.as_ref(),
                rotation.new_fingerprint,
                &*edge.commands,
                edge.machine_timeout,
            )
        },
        &|m, change| {
            let Some((step, _)) = block.iter().find(|(_, entry)| entry.name == m.name) else { return };
            let result = persist::commit(home, None, Event::step(step, change.clone()));
            if let Ok(mut committed) = committed.lock() {
                committed.push(result);
            }
        },
    );
    let mut stop = false;
    let mut last = None;
    for ((_, machine), change) in block.iter().zip(&changes) {
        let done = matches!(change, Change::Done(_));
        progress(&format!("{}: {}", machine.name, if done { "on the new key" } else { "needs attention" }));
        stop |= !done;
    }
    let mut landed = false;
    for result in committed.into_inner().unwrap_or_default() {
        match result {
            Ok(_) => landed = true,
            Err(PersistError::Transition(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Commits landed in the order answers came: the file has the last state.
    if landed {
        last = persist::load(home)?;
    }
    // A machine step not in the roster waits for a typed fingerprint.
    if block.is_empty() {
        stop = true;
        if let Some(step) = rotation.current() {
            let change = evaluate_machine_by_hand(rotation, step);
            last = Some(persist::commit(home, None, Event::step(&step.id, change))?);
        }
    }
    Ok(match last {
        Some(next) if stop || !next.is_open() => Some(next),
        _ => None,
    })
}

fn evaluate_machine_by_hand(rotation: &Rotation, step: &Step) -> Change {
    let Action::Machine(name) = &step.action else { return Change::Wait(String::new()) };
    Change::Wait(format!(
        "{name} is not in the roster: run `keyturn fingerprint {}` there and type what it shows: keyturn rotation confirm {} --fingerprint XXXX-XXXX-XXXX-XXXX",
        rotation.kind, step.id
    ))
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
        Action::Restart(id) => restart_step(store, rotation, id, edge, progress),
        Action::Credential(name) => credential(store, *name),
        Action::Upgrade => upgrade(store, progress),
        Action::Push => source_control(store, edge, false),
        Action::GetLatest => source_control(store, edge, true),
        Action::Machine(_) => evaluate_machine_by_hand(rotation, step),
        Action::Manual => manual(store, step, edge),
    }
}

fn pids(list: &[ProcessInfo]) -> String {
    list.iter().map(|p| p.pid.to_string()).collect::<Vec<_>>().join(", ")
}

/// The fingerprint-shaped words in `text`.
fn fingerprints_in(text: &str) -> Vec<Fingerprint> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|w| w.len() == 19)
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A component on a machine whose key did not change (a join run again):
/// left alone when it runs with the new key, restarted when its `check`
/// shows it does not.
pub fn unchanged_component(store: &Store, rotation: &Rotation, id: &str, edge: &Edge) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Skip(format!("[components.{id}] is not configured here"));
    };
    match running(component, edge) {
        Err(e) => return Change::Wait(format!("[components.{id}]: {e}")),
        Ok(now) if now.is_empty() => return Change::Done("not running, nothing to restart".into()),
        Ok(_) => {}
    }
    match check(component, rotation, edge) {
        None => Change::Done("the key was already active: not restarted".into()),
        Some(Ok(fp)) => Change::Done(format!("runs with the new key (reports {fp})")),
        Some(Err(_)) => restart_step(store, rotation, id, edge, &mut |_| {}),
    }
}

/// A restart step: runs the component's restart (or start) command, or has
/// the service manager restart its service, and waits for the evidence that
/// it came back with the new key.
pub fn restart_step(
    store: &Store,
    rotation: &Rotation,
    id: &str,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Wait(format!(
            "[components.{id}] is not configured: configure it, or skip this step with a reason"
        ));
    };
    // `None`: what ran before the import is unknown (its lookup failed then);
    // a process started before the rotation may then hold the old key.
    let before: Option<&Vec<ProcessInfo>> = rotation.before.get(id);
    let started_at = u64::try_from(rotation.started.as_second()).unwrap_or(0);
    let is_old = |p: &ProcessInfo| match before {
        Some(list) => list.iter().any(|b| b.same(p)),
        None => p.started <= started_at,
    };
    let known: &[ProcessInfo] = before.map(Vec::as_slice).unwrap_or_default();
    let note =
        if id == "execution" { " The Execution client may not come back by itself after an import." } else { "" };
    let deadline = edge.clock.now() + edge.wait;
    let (mut restarted, mut started) = (false, false);
    let mut command_note = String::new();
    let mut last_seen;
    loop {
        let now = match running(component, edge) {
            Ok(now) => now,
            Err(e) => return Change::Wait(format!("[components.{id}]: {e}")),
        };
        let old_alive: Vec<ProcessInfo> = now.iter().filter(|p| is_old(p)).cloned().collect();
        let fresh: Vec<ProcessInfo> = now.iter().filter(|p| !is_old(p)).cloned().collect();
        if known.is_empty() && now.is_empty() {
            return Change::Done("not running, nothing to restart".into());
        }
        if old_alive.is_empty() && !fresh.is_empty() {
            let what = if known.is_empty() {
                format!("started after the import (pid {})", pids(&fresh))
            } else {
                format!("restarted (pid {} -> {})", pids(known), pids(&fresh))
            };
            let watched = format!("instance {}", describe(&fresh));
            match check(component, rotation, edge) {
                None => return Change::Done(format!("{what}; {watched}")),
                Some(Ok(fp)) => return Change::Done(format!("{what}; reports {fp}; {watched}")),
                Some(Err(seen)) => last_seen = format!("{what} but {seen}; {watched}"),
            }
        } else if !old_alive.is_empty() {
            if !restarted {
                restarted = true;
                if let Some(command) = &component.restart {
                    progress(&format!("running {}", command.join(" ")));
                    match edge.commands.run(command, &[], edge.command_timeout) {
                        Ok(out) if out.success() => {}
                        Ok(out) => {
                            command_note = format!("; its restart command failed ({}): {}", exit(&out), out.tail())
                        }
                        Err(e) => command_note = format!("; its restart command could not run: {e}"),
                    }
                    continue;
                }
                if let Some(service) = &component.service {
                    progress(&format!("restarting service {service}"));
                    if let Err(e) = edge.services.restart(service, edge.wait) {
                        command_note = format!("; the service manager did not restart it: {e}");
                    }
                    continue;
                }
            }
            last_seen = format!(
                "still the old process (pid {}) after {} s: restart it{command_note}; instance {}",
                pids(&old_alive),
                edge.wait.as_secs(),
                describe(&old_alive)
            );
        } else {
            if !started {
                started = true;
                if let Some(command) = &component.start {
                    progress(&format!("running {}", command.join(" ")));
                    let _ = edge.commands.run(command, &[], edge.command_timeout);
                    continue;
                }
                if let Some(service) = &component.service {
                    progress(&format!("starting service {service}"));
                    if let Err(e) = edge.services.restart(service, edge.wait) {
                        command_note = format!(" The service manager did not start it: {e}");
                    }
                    continue;
                }
            }
            let start =
                component.start.as_ref().map(|c| format!(" (its start command: {})", c.join(" "))).unwrap_or_default();
            last_seen =
                format!("stopped (pid {}) and not running again: start it{start}.{note}{command_note}", pids(known));
        }
        if edge.clock.now() >= deadline {
            return Change::Wait(last_seen);
        }
        edge.clock.sleep(edge.poll);
    }
}

/// The instances in words, in one parenthesis (`(pid 11: client, ...)`).
fn describe(list: &[ProcessInfo]) -> String {
    format!("({})", list.iter().map(ProcessInfo::describe).collect::<Vec<_>>().join("; "))
}

fn exit(out: &crate::system::Output) -> String {
    match (out.timed_out, out.code) {
        (true, _) => "timed out".into(),
        (false, Some(code)) => format!("exit {code}"),
        (false, None) => "killed".into(),
    }
}

/// Runs the component's `check` command: `None` if it has none, else the
/// new fingerprint it reports or what is wrong.
fn check(component: &Component, rotation: &Rotation, edge: &Edge) -> Option<Result<Fingerprint, String>> {
    let command = component.check.as_ref()?;
    Some(match edge.commands.run(command, &[], edge.command_timeout) {
        Err(e) => Err(format!("its check command could not run: {e}")),
        Ok(out) if !out.success() => Err(format!("its check command failed ({}): {}", exit(&out), out.tail())),
        Ok(out) => {
            // A component may report several keys (one per kind): the new
            // one must be among them.
            let reported = fingerprints_in(&out.stdout);
            if reported.contains(&rotation.new_fingerprint) {
                Ok(rotation.new_fingerprint)
            } else if reported.contains(&rotation.old_fingerprint) {
                Err(format!("reports the old key {}", rotation.old_fingerprint))
            } else if let Some(other) = reported.first() {
                Err(format!("reports another key {other}, not {}", rotation.new_fingerprint))
            } else {
                Err("its check command printed no fingerprint".into())
            }
        }
    })
}

fn credential(store: &Store, name: CredentialName) -> Change {
    let ring = store.keyring();
    match store.credentials().entries.iter().find(|c| c.name == name).map(|c| c.state(&ring)) {
        Some(CredentialState::Current) => {
            Change::Done(format!("the {name} credential reads under the new key {}", ring.active().id()))
        }
        Some(CredentialState::Retired(fp)) => Change::Wait(format!(
            "the {name} credential reads only under retired key {fp}: re-enter it (keyturn credentials set {name})"
        )),
        Some(CredentialState::Inaccessible(e)) => Change::Wait(format!(
            "the {name} credential cannot be read ({e}): re-enter it (keyturn credentials set {name})"
        )),
        None => Change::Wait(format!(
            "no {name} credential is stored here: enter it (keyturn credentials set {name}), or skip this step with a reason"
        )),
    }
}

fn upgrade(store: &Store, progress: &mut dyn FnMut(&str)) -> Change {
    let roots = store.config().project_dirs(&store.home().dir);
    let result = store.lock("rotation upgrade").map_err(|e| e.to_string()).and_then(|_lock| {
        // Counts at every hundredth of the files, so a watcher sees it move.
        let ring = store.keyring_now().map_err(|e| e.to_string())?;
        project::upgrade(&roots, &ring, false, &mut |p| {
            let step = (p.files_total / 100).max(1);
            if p.files_done % step == 0 || p.files_done == p.files_total {
                let what = if p.pass == 1 { "checking" } else { "rewriting" };
                progress(&format!("upgrade, {what}: {}/{} files, {} tokens", p.files_done, p.files_total, p.tokens));
            }
        })
        .map_err(|e| e.to_string())
    });
    let reports = match result {
        Ok(reports) => reports,
        Err(e) => return Change::Fail(format!("the upgrade stopped: {e}")),
    };
    let sum = |f: fn(&project::ProjectReport) -> usize| reports.iter().map(f).sum::<usize>();
    // The state reached, the same whether or not a crash cut an earlier run.
    let summary = format!(
        "{} tokens in {} projects are under the new key",
        sum(|r| r.upgraded) + sum(|r| r.current),
        reports.len()
    );
    progress(&format!("{} tokens re-encrypted in {} files", sum(|r| r.upgraded), sum(|r| r.files_rewritten)));
    let unreadable: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.unreadable
                .iter()
                .map(move |u| format!("{}:{} ({})", crate::display::path(&r.project.join(&u.file)), u.line, u.reason))
                .chain(r.skipped.iter().map(move |f| {
                    format!(
                        "{}: skipped ({}), holds {} tokens",
                        crate::display::path(&r.project.join(&f.file)),
                        f.reason,
                        f.tokens
                    )
                }))
        })
        .collect();
    if unreadable.is_empty() {
        return Change::Done(summary);
    }
    let shown: Vec<&str> = unreadable.iter().take(10).map(String::as_str).collect();
    Change::Wait(format!(
        "{summary}; {} cannot be decrypted: re-record those password steps and re-enter those connection strings, then run again, or skip with a reason: {}",
        unreadable.len(),
        shown.join("; ")
    ))
}

fn source_control(store: &Store, edge: &Edge, latest: bool) -> Change {
    let facts = facts(store);
    let non_git = facts.projects.iter().filter(|p| !facts.git_projects.contains(p)).count();
    let mut problems = Vec::new();
    for dir in &facts.git_projects {
        if let Err(problem) = git_state(dir, edge, latest) {
            problems.push(format!("{}: {problem}", dir.display()));
        }
    }
    let verb = if latest { "got the latest version" } else { "pushed" };
    if !problems.is_empty() {
        return Change::Wait(problems.join("; "));
    }
    if non_git > 0 {
        return Change::Wait(format!(
            "{non_git} projects are not Git work trees: confirm when they are {verb} (keyturn rotation confirm)"
        ));
    }
    Change::Done(format!("git: {} projects clean and {verb}", facts.git_projects.len()))
}

/// `Ok` when the work tree is clean and level with its upstream (after a
/// fetch, when `latest`).
fn git_state(dir: &Path, edge: &Edge, latest: bool) -> Result<(), String> {
    if edge.git.dirty(dir).map_err(|e| e.to_string())? {
        return Err(if latest {
            "uncommitted changes: commit or discard them, then pull"
        } else {
            "uncommitted changes: commit and push them"
        }
        .into());
    }
    if latest {
        edge.git.fetch(dir).map_err(|e| e.to_string())?;
    }
    let range = if latest { Range::Behind } else { Range::Unpushed };
    match edge.git.count(dir, range).map_err(|e| e.to_string())? {
        0 => Ok(()),
        n if latest => Err(format!("{n} commits behind the upstream: pull them")),
        n => Err(format!("{n} commits not pushed: push them")),
    }
}

fn manual(store: &Store, step: &Step, edge: &Edge) -> Change {
    let Some(config) = store.config().steps.get(&step.id) else {
        return Change::Wait(format!("confirm when done: keyturn rotation confirm {}", step.id));
    };
    match edge.commands.run(&config.command, &[], edge.command_timeout) {
        Ok(out) if out.success() => Change::Done(format!("`{}` exited 0: {}", config.command.join(" "), out.tail())),
        Ok(out) => Change::Fail(format!("`{}` failed ({}): {}", config.command.join(" "), exit(&out), out.tail())),
        Err(e) => Change::Fail(format!("`{}` could not run: {e}", config.command.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::system::ServiceError;
    use crate::system::command::{FakeCommands, Output};
    use crate::system::processes::FakeProcesses;
    use crate::system::services::FakeServices;

    #[test]
    fn finds_a_fingerprint_in_check_output() {
        let fp: Fingerprint = "7F3A-91C0-55D2-0B8E".parse().expect("fp");
        assert_eq!(fingerprints_in("loaded key 7F3A-91C0-55D2-0B8E at 10:00\n"), vec![fp]);
        assert_eq!(fingerprints_in("pid 1234-5678"), vec![]);
    }

    fn store_with(config: &str) -> (tempfile::TempDir, Store) {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join("keyturn.toml"), config).expect("config");
        let store =
            Store::open(crate::store::home::Home { dir: home.path().into(), machine_wide: false }).expect("store");
        (home, store)
    }

    fn fake_edge(processes: FakeProcesses, commands: FakeCommands, services: FakeServices) -> Edge {
        Edge {
            processes: Arc::new(processes),
            commands: Arc::new(commands),
            services: Arc::new(services),
            ..Edge::fake()
        }
    }

    fn reports(fp: Fingerprint) -> FakeCommands {
        let commands = FakeCommands::default();
        if let Ok(mut answers) = commands.answers.lock() {
            answers.push_back(Output {
                code: Some(0),
                stdout: format!("loaded {fp}\n"),
                stderr: String::new(),
                timed_out: false,
            });
        }
        commands
    }

    /// The restart evidence from the system edge's fakes: a new process
    /// whose check reports the new key is done, naming the instance; one
    /// that reports the old key waits, saying so.
    #[test]
    fn restart_evidence_through_the_fakes() {
        let (_home, store) = store_with("[components.execution]\nprocess = \"client\"\ncheck = [\"check\"]\n");
        let (old, new) = (Fingerprint([1; 8]), Fingerprint([2; 8]));
        let before = FakeProcesses::process("client", 10, 100);
        let after = FakeProcesses::process("client", 11, 200);
        let processes = FakeProcesses { running: vec![after.clone()], ..FakeProcesses::default() };
        let mut rotation = runner_rotation(old, new);
        rotation.before.insert("execution".into(), vec![before]);
        let edge = fake_edge(processes.clone(), reports(new), FakeServices::default());
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge, &mut |_| {}),
            Change::Done(format!("restarted (pid 10 -> 11); reports {new}; instance ({})", after.describe()))
        );
        // No wait: the one check answer is the evidence.
        let edge =
            Edge { wait: std::time::Duration::ZERO, ..fake_edge(processes, reports(old), FakeServices::default()) };
        let Change::Wait(evidence) = restart_step(&store, &rotation, "execution", &edge, &mut |_| {}) else {
            panic!("a component on the old key is not done")
        };
        assert!(evidence.starts_with(&format!("restarted (pid 10 -> 11) but reports the old key {old}")), "{evidence}");
    }

    /// Another user's process of the same name is not the component: the
    /// old one still running is said, and the stranger's restart proves
    /// nothing.
    #[test]
    fn another_owners_process_is_not_the_component() {
        let (_home, store) = store_with("[components.execution]\nprocess = \"client\"\n");
        let mine = FakeProcesses::process("client", 10, 100);
        let theirs = ProcessInfo { pid: 12, started: 300, owner: Some("uid 2000".into()), ..mine.clone() };
        let processes = FakeProcesses { running: vec![mine.clone(), theirs], ..FakeProcesses::default() };
        let mut rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        rotation.before.insert("execution".into(), vec![mine]);
        let edge = fake_edge(processes, FakeCommands::default(), FakeServices::default());
        let Change::Wait(evidence) = restart_step(&store, &rotation, "execution", &edge, &mut |_| {}) else {
            panic!("not done while the operator's own client still runs")
        };
        assert!(evidence.starts_with("still the old process (pid 10) after 60 s"), "{evidence}");
        assert!(!evidence.contains("pid 12"), "{evidence}");
    }

    /// A service whose lookup fails (not installed, access denied, no
    /// answer) is never "not running": the step waits with the reason.
    #[test]
    fn a_failed_service_lookup_never_checks_a_restart_off() {
        let (_home, store) = store_with("[components.scheduling]\nservice = \"sched\"\n");
        let rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        for answer in [
            None,
            Some(Err(ServiceError::AccessDenied { name: "sched".into() })),
            Some(Err(ServiceError::Failed { name: "sched".into(), reason: "RPC server unavailable".into() })),
        ] {
            let services = FakeServices::default();
            if let (Some(answer), Ok(mut list)) = (answer.clone(), services.services.lock()) {
                list.push(("sched".into(), answer));
            }
            let edge = fake_edge(FakeProcesses::default(), FakeCommands::default(), services);
            let change = restart_step(&store, &rotation, "scheduling", &edge, &mut |_| {});
            let Change::Wait(evidence) = &change else { panic!("{answer:?} gave {change:?}") };
            assert!(evidence.starts_with("[components.scheduling]: "), "{evidence}");
            let want = match answer {
                None => "\"sched\" is not installed here",
                Some(Err(ServiceError::AccessDenied { .. })) => "access to service \"sched\" was denied",
                _ => "RPC server unavailable",
            };
            assert!(evidence.contains(want), "{evidence}");
            assert!(matches!(unchanged_component(&store, &rotation, "scheduling", &edge), Change::Wait(_)));
        }
        assert!(!before(&store, &Edge::fake()).contains_key("scheduling"), "a failed lookup is no record");
    }

    /// A service with no restart command is restarted through the service
    /// manager, and the new pid it reports is the evidence.
    #[test]
    fn a_service_restarts_through_the_service_manager() {
        let (_home, store) = store_with("[components.scheduling]\nservice = \"sched\"\n");
        let old = FakeProcesses::process("sched.exe", 40, 100);
        let new = FakeProcesses::process("sched.exe", 41, 200);
        let services = FakeServices::default();
        if let (Ok(mut list), Ok(mut to)) = (services.services.lock(), services.restarts_to.lock()) {
            list.push(("sched".into(), Ok(ServiceState::Running { pid: 40 })));
            to.push(("sched".into(), 41));
        }
        let processes = FakeProcesses { running: vec![old.clone(), new], ..FakeProcesses::default() };
        let services = Arc::new(services);
        let edge = Edge {
            services: services.clone(),
            ..fake_edge(processes, FakeCommands::default(), FakeServices::default())
        };
        let mut rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        rotation.before = before(&store, &edge);
        assert_eq!(rotation.before.get("scheduling"), Some(&vec![old]));
        let change = restart_step(&store, &rotation, "scheduling", &edge, &mut |_| {});
        let Change::Done(evidence) = &change else { panic!("{change:?}") };
        assert!(evidence.starts_with("restarted (pid 40 -> 41); instance (pid 41: sched.exe"), "{evidence}");
        assert_eq!(services.restarted.lock().map(|r| r.clone()).unwrap_or_default(), vec!["sched".to_string()]);
    }

    /// A service the manager still calls running whose process has gone
    /// (Wine keeps a killed service Running) is not running.
    #[test]
    fn a_service_whose_process_has_gone_is_not_running() {
        let component = Component { service: Some("sched".into()), ..Component::default() };
        let services = FakeServices::default();
        if let Ok(mut list) = services.services.lock() {
            list.push(("sched".into(), Ok(ServiceState::Running { pid: 77 })));
        }
        let edge = fake_edge(FakeProcesses::default(), FakeCommands::default(), services);
        assert_eq!(running(&component, &edge), Ok(Vec::new()));
    }

    fn runner_rotation(old: Fingerprint, new: Fingerprint) -> Rotation {
        Rotation {
            format: persist::FORMAT,
            revision: 0,
            id: "test".into(),
            kind: KeyKind::Communication,
            setup: Setup::Single,
            variant: Variant::Import,
            old_fingerprint: old,
            new_fingerprint: new,
            rollback: false,
            started: Timestamp::UNIX_EPOCH,
            operator: "op".into(),
            machine: "m".into(),
            status: Status::Open,
            before: std::collections::BTreeMap::new(),
            steps: Vec::new(),
            history: Vec::new(),
        }
    }
}
