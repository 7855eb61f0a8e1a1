//! Driving a rotation: starting it (the import is its first step), and
//! running it: carrying out the automatic steps and checking the evidence of
//! the others, step by step, until a step needs a person.
//!
//! The store's lock is taken for each transition only, never while a step
//! waits for a component to come back.

use std::path::Path;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::persist::{self, PersistError};
use super::procedure::{self, Action, Facts, Setup, Variant};
use super::state::{Change, Event, Rotation, Status, Step};
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::project;
use crate::store::config::{Component, Role};
use crate::store::credentials::{CredentialName, CredentialState};
use crate::store::{Store, StoreError};
use crate::system::{Commands, ProcessInfo, Processes};

/// The system edge a rotation uses, and how long it waits.
pub struct Edge<'a> {
    /// The process table.
    pub processes: &'a dyn Processes,
    /// Runs restart, start, check, step and git commands.
    pub commands: &'a dyn Commands,
    /// How long a restart step waits for its component.
    pub wait: Duration,
    /// How often it looks meanwhile.
    pub poll: Duration,
    /// How long a configured command may take.
    pub command_timeout: Duration,
    /// How long another machine's join may take.
    pub machine_timeout: Duration,
}

impl Edge<'static> {
    /// The real system: its process table and commands; a restart waits
    /// `wait`, another machine's join `machine_timeout`.
    pub fn system(wait: Duration, machine_timeout: Duration) -> Edge<'static> {
        Edge {
            processes: &crate::system::SystemProcesses,
            commands: &crate::system::SystemCommands,
            wait,
            poll: Duration::from_millis(250),
            command_timeout: Duration::from_secs(120),
            machine_timeout,
        }
    }
}

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
    Ok((variant, procedure::build(kind, setup, variant, &facts(store))?))
}

fn component<'s>(store: &'s Store, id: &str) -> Option<&'s Component> {
    store.config().components.all().into_iter().find(|(cid, _, _)| *cid == id).map(|(_, _, c)| c)
}

/// The processes a component runs as now: its service's main process (as
/// the service manager says), or the processes of its name.
pub fn running(component: &Component, edge: &Edge<'_>) -> Vec<ProcessInfo> {
    if let Some(service) = &component.service {
        return service_pid(service, edge).and_then(|pid| edge.processes.get(pid)).into_iter().collect();
    }
    component.process.as_deref().map(|name| edge.processes.find(name)).unwrap_or_default()
}

fn service_pid(service: &str, edge: &Edge<'_>) -> Option<u32> {
    let argv: Vec<String> = if cfg!(windows) {
        let name = service.replace('\'', "''");
        ["powershell", "-NoProfile", "-NonInteractive", "-Command"]
            .map(String::from)
            .into_iter()
            .chain([format!(
                "(Get-CimInstance Win32_Service -Filter \"Name='{name}' OR DisplayName='{name}'\").ProcessId"
            )])
            .collect()
    } else {
        ["systemctl", "show", "-p", "MainPID", "--value", service].map(String::from).to_vec()
    };
    let out = edge.commands.run(&argv, &[], edge.command_timeout).ok()?;
    out.stdout.trim().parse().ok().filter(|pid| *pid != 0)
}

/// Starts a rotation: persists it, then imports the key (`None`: resets the
/// communication key) as its first step, under one hold of the lock.
pub fn start(
    store: &mut Store,
    kind: KeyKind,
    setup: Setup,
    key: Option<Key>,
    edge: &Edge<'_>,
) -> Result<Rotation, RunError> {
    let (variant, steps) = plan(store, kind, setup, key.is_none())?;
    let new = key.as_ref().map_or_else(|| Key::default_for(kind).fingerprint(), Key::fingerprint);
    let now = Timestamp::now();
    let before = store.config().components.all().iter().map(|(id, _, c)| (id.to_string(), running(c, edge))).collect();
    let mut rotation = Rotation {
        format: persist::FORMAT,
        revision: 0,
        id: now.strftime("%Y%m%dT%H%M%S%.3fZ").to_string(),
        kind,
        setup,
        variant,
        old_fingerprint: store.active_key(kind).fingerprint(),
        new_fingerprint: new,
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
        outcome: format!("started: {kind} key, {setup:?} setup, {variant:?}").to_lowercase(),
    });
    let home = store.home().dir.clone();
    let _lock = persist::begin(&home, &mut rotation)?;
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
    edge: &Edge<'_>,
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
    edge: &Edge<'_>,
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
                edge.commands,
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
    edge: &Edge<'_>,
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
pub fn unchanged_component(store: &Store, rotation: &Rotation, id: &str, edge: &Edge<'_>) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Skip(format!("[components.{id}] is not configured here"));
    };
    if running(component, edge).is_empty() {
        return Change::Done("not running, nothing to restart".into());
    }
    match check(component, rotation, edge) {
        None => Change::Done("the key was already active: not restarted".into()),
        Some(Ok(fp)) => Change::Done(format!("runs with the new key (reports {fp})")),
        Some(Err(_)) => restart_step(store, rotation, id, edge, &mut |_| {}),
    }
}

/// A restart step: runs the component's restart (or start) command and
/// waits for the evidence that it came back with the new key.
pub fn restart_step(
    store: &Store,
    rotation: &Rotation,
    id: &str,
    edge: &Edge<'_>,
    progress: &mut dyn FnMut(&str),
) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Wait(format!(
            "[components.{id}] is not configured: configure it, or skip this step with a reason"
        ));
    };
    let before: Vec<ProcessInfo> = rotation.before.get(id).cloned().unwrap_or_default();
    let note =
        if id == "execution" { " The Execution client may not come back by itself after an import." } else { "" };
    let deadline = Instant::now() + edge.wait;
    let (mut restarted, mut started) = (false, false);
    let mut command_note = String::new();
    let mut last_seen;
    loop {
        let now = running(component, edge);
        let old_alive: Vec<ProcessInfo> = now.iter().filter(|p| before.contains(p)).copied().collect();
        let fresh: Vec<ProcessInfo> = now.iter().filter(|p| !before.contains(p)).copied().collect();
        if before.is_empty() && now.is_empty() {
            return Change::Done("not running, nothing to restart".into());
        }
        if old_alive.is_empty() && !fresh.is_empty() {
            let what = if before.is_empty() {
                format!("started after the import (pid {})", pids(&fresh))
            } else {
                format!("restarted (pid {} -> {})", pids(&before), pids(&fresh))
            };
            match check(component, rotation, edge) {
                None => return Change::Done(what),
                Some(Ok(fp)) => return Change::Done(format!("{what}; reports {fp}")),
                Some(Err(seen)) => last_seen = format!("{what} but {seen}"),
            }
        } else if !old_alive.is_empty() {
            if !restarted && let Some(command) = &component.restart {
                restarted = true;
                progress(&format!("running {}", command.join(" ")));
                match edge.commands.run(command, &[], edge.command_timeout) {
                    Ok(out) if out.success() => {}
                    Ok(out) => command_note = format!("; its restart command failed ({}): {}", exit(&out), out.tail()),
                    Err(e) => command_note = format!("; its restart command could not run: {e}"),
                }
                continue;
            }
            last_seen = format!(
                "still the old process (pid {}) after {} s: restart it{command_note}",
                pids(&old_alive),
                edge.wait.as_secs()
            );
        } else {
            if !started && let Some(command) = &component.start {
                started = true;
                progress(&format!("running {}", command.join(" ")));
                let _ = edge.commands.run(command, &[], edge.command_timeout);
                continue;
            }
            let start =
                component.start.as_ref().map(|c| format!(" (its start command: {})", c.join(" "))).unwrap_or_default();
            last_seen = format!("stopped (pid {}) and not running again: start it{start}.{note}", pids(&before));
        }
        if Instant::now() >= deadline {
            return Change::Wait(last_seen);
        }
        std::thread::sleep(edge.poll);
    }
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
fn check(component: &Component, rotation: &Rotation, edge: &Edge<'_>) -> Option<Result<Fingerprint, String>> {
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
        project::upgrade(&roots, &store.keyring(), false, &mut |p| {
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

fn source_control(store: &Store, edge: &Edge<'_>, latest: bool) -> Change {
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
fn git_state(dir: &Path, edge: &Edge<'_>, latest: bool) -> Result<(), String> {
    let git = |args: &[&str]| -> Result<String, String> {
        let argv: Vec<String> = ["git", "-C"]
            .iter()
            .map(|s| s.to_string())
            .chain([dir.display().to_string()])
            .chain(args.iter().map(|s| s.to_string()))
            .collect();
        let out = edge
            .commands
            .run(&argv, &[("GIT_TERMINAL_PROMPT", "0")], edge.command_timeout)
            .map_err(|e| format!("git could not run: {e}"))?;
        if out.success() { Ok(out.stdout) } else { Err(format!("git {} failed: {}", args.join(" "), out.tail())) }
    };
    if !git(&["status", "--porcelain"])?.trim().is_empty() {
        return Err(if latest {
            "uncommitted changes: commit or discard them, then pull"
        } else {
            "uncommitted changes: commit and push them"
        }
        .into());
    }
    if latest {
        git(&["fetch", "--quiet"])?;
    }
    let range = if latest { "HEAD..@{u}" } else { "@{u}..HEAD" };
    let count = git(&["rev-list", "--count", range])
        .map_err(|_| "no upstream branch to compare with: set one, or confirm by hand".to_string())?;
    match count.trim().parse::<u64>() {
        Ok(0) => Ok(()),
        Ok(n) if latest => Err(format!("{n} commits behind the upstream: pull them")),
        Ok(n) => Err(format!("{n} commits not pushed: push them")),
        Err(_) => Err("git printed no commit count".into()),
    }
}

fn manual(store: &Store, step: &Step, edge: &Edge<'_>) -> Change {
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
    use super::*;

    #[test]
    fn finds_a_fingerprint_in_check_output() {
        let fp: Fingerprint = "7F3A-91C0-55D2-0B8E".parse().expect("fp");
        assert_eq!(fingerprints_in("loaded key 7F3A-91C0-55D2-0B8E at 10:00\n"), vec![fp]);
        assert_eq!(fingerprints_in("pid 1234-5678"), vec![]);
    }

    /// The restart evidence from the system edge's fakes: a new process
    /// whose check reports the new key is done; one that reports the old
    /// key waits, saying so.
    #[test]
    fn restart_evidence_through_the_fakes() {
        use crate::system::ProcessInfo;
        use crate::system::command::{FakeCommands, Output};
        use crate::system::processes::FakeProcesses;
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join("keyturn.toml"),
            "[components.execution]\nprocess = \"client\"\ncheck = [\"check\"]\n",
        )
        .expect("config");
        let store =
            Store::open(crate::store::home::Home { dir: home.path().into(), machine_wide: false }).expect("store");
        let (old, new) = (Fingerprint([1; 8]), Fingerprint([2; 8]));
        let before = ProcessInfo { pid: 10, started: 100 };
        let after = ProcessInfo { pid: 11, started: 200 };
        let processes = FakeProcesses { running: vec![("client".into(), after)] };
        let mut rotation = runner_rotation(old, new);
        rotation.before.insert("execution".into(), vec![before]);
        let reports = |fp: Fingerprint| {
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
        };
        fn edge<'a>(commands: &'a FakeCommands, processes: &'a FakeProcesses) -> Edge<'a> {
            Edge {
                processes,
                commands,
                wait: Duration::ZERO,
                poll: Duration::from_millis(1),
                command_timeout: Duration::from_secs(1),
                machine_timeout: Duration::from_secs(1),
            }
        }
        let good = reports(new);
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge(&good, &processes), &mut |_| {}),
            Change::Done(format!("restarted (pid 10 -> 11); reports {new}"))
        );
        let stale = reports(old);
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge(&stale, &processes), &mut |_| {}),
            Change::Wait(format!("restarted (pid 10 -> 11) but reports the old key {old}"))
        );
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
