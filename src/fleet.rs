//! Many machines: `join` (a machine's own part of a rotation run elsewhere)
//! and its report; reaching roster machines through their `command` (OpenSSH
//! by default, any remote shell the operator configures), concurrently with
//! a bound and a timeout each; the fleet's status and its convergence.
//!
//! keyturn invents no protocol: the first machine runs `keyturn rotation
//! join <kind> --json` there with the key on standard input only, and reads
//! the JSON report it prints; `keyturn status --json` likewise for status.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::keys::{Fingerprint, Key, KeyKind};
use crate::project;
use crate::rotation::run::{self as runner, Edge, RunError};
use crate::rotation::{Change, Rotation, Setup, Status};
use crate::store::Store;
use crate::store::config::MachineEntry;
use crate::store::credentials::CredentialState;
use crate::system::{Commands, Output};

/// How many machines are reached at once by default.
pub const DEFAULT_PARALLEL: usize = 8;
/// How long one machine's join may take (its restarts wait too).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one machine's status may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

/// Both keys' fingerprints on a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    pub encryption: Fingerprint,
    pub communication: Fingerprint,
}

impl Fingerprints {
    /// The fingerprints of `store`'s active keys.
    pub fn of(store: &Store) -> Fingerprints {
        Fingerprints {
            encryption: store.active_key(KeyKind::Encryption).fingerprint(),
            communication: store.active_key(KeyKind::Communication).fingerprint(),
        }
    }

    /// The fingerprint of `kind`.
    pub fn get(&self, kind: KeyKind) -> Fingerprint {
        match kind {
            KeyKind::Encryption => self.encryption,
            KeyKind::Communication => self.communication,
        }
    }
}

/// One step of a join, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinStep {
    pub id: String,
    pub title: String,
    /// `done`, `waiting` (needs a person there), `failed` or `skipped`.
    pub state: String,
    pub evidence: String,
}

/// What `keyturn rotation join --json` prints: the machine's part, done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinReport {
    /// The keyturn version there.
    pub keyturn: String,
    /// The machine's name.
    pub machine: String,
    /// Its home, and whether that is the machine-wide store.
    pub home: String,
    pub machine_wide: bool,
    /// Its clock, for the skew.
    pub time: Timestamp,
    /// The key joined.
    pub kind: KeyKind,
    /// Both fingerprints after the join.
    pub fingerprints: Fingerprints,
    /// Whether the key changed (false: it was already active).
    pub changed: bool,
    /// Each step's outcome and evidence, in the original's order.
    pub steps: Vec<JoinStep>,
    /// What still needs a person there.
    pub needs_person: Vec<String>,
}

fn joined(id: &str, title: &str, change: &Change) -> JoinStep {
    let (state, evidence) = match change {
        Change::Done(e) => ("done", e.clone()),
        Change::Wait(e) => ("waiting", e.clone()),
        Change::Fail(e) => ("failed", e.clone()),
        Change::Skip(e) => ("skipped", e.clone()),
        Change::Confirm | Change::VerifyMachine(_) => ("done", String::new()),
    };
    JoinStep { id: id.into(), title: title.into(), state: state.into(), evidence }
}

/// This machine's part of a rotation run elsewhere, unattended, in the
/// original's order: import (or reset); for encryption, get the latest
/// project version, then upgrade what is still under a retired key (tokens
/// the first machine pushed are left as they are); restart the configured
/// components with evidence. Run again, it changes nothing.
pub fn join(store: &mut Store, kind: KeyKind, key: Option<Key>, edge: &Edge) -> Result<JoinReport, RunError> {
    let old = store.active_key(kind);
    let new_fp = key.as_ref().map_or_else(|| Key::default_for(kind).fingerprint(), Key::fingerprint);
    let (variant, plan) = runner::plan(store, kind, Setup::Single, key.is_none())?;
    let before = runner::before(store, edge);
    let change = match key {
        Some(key) => store.import(key)?,
        None => store.reset_communication()?,
    };
    let mut steps = vec![joined(
        "import",
        "Import the key",
        &Change::Done(if change.changed {
            format!("{} is active (was {})", change.new, change.old)
        } else {
            format!("{} was already active; nothing changed", change.new)
        }),
    )];
    // A transient rotation, never written: the restart checks compare with it.
    let rotation = Rotation {
        format: crate::rotation::persist::FORMAT,
        revision: 0,
        id: "join".into(),
        kind,
        setup: Setup::Single,
        variant,
        old_fingerprint: if change.changed { old.fingerprint() } else { change.old },
        new_fingerprint: new_fp,
        rollback: false,
        started: Timestamp::now(),
        operator: crate::system::operator(),
        machine: crate::system::machine(),
        status: Status::Open,
        before,
        steps: Vec::new(),
        history: Vec::new(),
    };
    *store = Store::open(store.home().clone())?;
    if kind == KeyKind::Encryption {
        steps.push(joined("get-latest", "Get the latest version of the projects", &get_latest(store, edge)));
        steps.push(joined("upgrade-projects", "Upgrade what is still under a retired key", &upgrade(store)));
    }
    for step in plan.iter().filter(|s| s.kind == crate::rotation::StepKind::Restart && !s.state.is_closed()) {
        let crate::rotation::Action::Restart(id) = &step.action else { continue };
        let outcome = if change.changed {
            runner::restart_step(store, &rotation, id, edge, &mut |_| {})
        } else {
            runner::unchanged_component(store, &rotation, id, edge)
        };
        steps.push(joined(&step.id, &step.title, &outcome));
    }
    if kind == KeyKind::Encryption {
        let ring = store.keyring();
        for c in &store.credentials().entries {
            let outcome = match c.state(&ring) {
                CredentialState::Current => Change::Done(format!("reads under {}", ring.active().id())),
                _ => Change::Wait(format!(
                    "the {} credential cannot be read under the new key: re-enter it there (keyturn credentials set {})",
                    c.name, c.name
                )),
            };
            steps.push(joined(&format!("credential-{}", c.name), &format!("The {} credential", c.name), &outcome));
        }
    }
    let needs_person = steps
        .iter()
        .filter(|s| s.state == "waiting" || s.state == "failed")
        .map(|s| format!("{}: {}", s.id, s.evidence))
        .collect();
    Ok(JoinReport {
        keyturn: env!("CARGO_PKG_VERSION").into(),
        machine: crate::system::machine(),
        home: store.home().dir.display().to_string(),
        machine_wide: store.home().machine_wide,
        time: Timestamp::now(),
        kind,
        fingerprints: Fingerprints::of(store),
        changed: change.changed,
        steps,
        needs_person,
    })
}

/// `git pull --ff-only` in each clean Git project; others need a person.
fn get_latest(store: &Store, edge: &Edge) -> Change {
    let facts = runner::facts(store);
    if facts.projects.is_empty() {
        return Change::Skip("no project is registered here".into());
    }
    let mut problems = Vec::new();
    for dir in &facts.git_projects {
        if let Err(e) = edge.git.pull(dir) {
            problems.push(format!("{}: {e}", dir.display()));
        }
    }
    let manual = facts.projects.len() - facts.git_projects.len();
    if manual > 0 {
        problems.push(format!("{manual} projects are not Git work trees: get their latest version by hand"));
    }
    if problems.is_empty() {
        Change::Done(format!("git pull: {} projects up to date", facts.git_projects.len()))
    } else {
        Change::Wait(problems.join("; "))
    }
}

fn upgrade(store: &Store) -> Change {
    let roots = store.config().project_dirs(&store.home().dir);
    if roots.is_empty() {
        return Change::Skip("no project is registered here".into());
    }
    let result = store.lock("join upgrade").map_err(|e| e.to_string()).and_then(|_lock| {
        let ring = store.keyring_now().map_err(|e| e.to_string())?;
        project::upgrade(&roots, &ring, false, &mut |_| {}).map_err(|e| e.to_string())
    });
    match result {
        Err(e) => Change::Fail(format!("the upgrade stopped: {e}")),
        Ok(reports) => {
            let upgraded: usize = reports.iter().map(|r| r.upgraded).sum();
            let current: usize = reports.iter().map(|r| r.current).sum();
            let unreadable: Vec<String> = reports
                .iter()
                .flat_map(|r| {
                    r.unreadable
                        .iter()
                        .map(move |u| format!("{}:{}", crate::display::path(&r.project.join(&u.file)), u.line))
                        .chain(r.skipped.iter().map(move |f| {
                            format!(
                                "{} (skipped: {}, {} tokens)",
                                crate::display::path(&r.project.join(&f.file)),
                                f.reason,
                                f.tokens
                            )
                        }))
                })
                .collect();
            let summary = format!("{upgraded} tokens re-encrypted, {current} already current");
            if unreadable.is_empty() {
                Change::Done(summary)
            } else {
                Change::Wait(format!(
                    "{summary}; {} cannot be decrypted (re-record or re-enter): {}",
                    unreadable.len(),
                    unreadable.join(", ")
                ))
            }
        }
    }
}

/// What one machine answered, or why it did not.
pub type Answer<T> = Result<T, String>;

fn describe_failure(out: &Output, timeout: Duration) -> String {
    printable(&describe_output(out, timeout))
}

fn describe_output(out: &Output, timeout: Duration) -> String {
    if out.timed_out {
        return format!("no answer within {} s (the machine or its command hangs)", timeout.as_secs());
    }
    let tail = out.tail();
    match out.code {
        Some(127) => format!("keyturn was not found there (exit 127): {tail}"),
        Some(255) => format!("unreachable, or its remote command was killed (the remote shell exited 255): {tail}"),
        Some(code) => format!("exit {code}: {tail}"),
        None => format!("killed: {tail}"),
    }
}

/// Another machine's text, safe to show (see `display`).
fn printable(text: &str) -> String {
    crate::display::escaped(text)
}

impl JoinReport {
    fn printable(mut self) -> JoinReport {
        self.keyturn = printable(&self.keyturn);
        self.machine = printable(&self.machine);
        self.home = printable(&self.home);
        for step in &mut self.steps {
            step.id = printable(&step.id);
            step.title = printable(&step.title);
            step.state = printable(&step.state);
            step.evidence = printable(&step.evidence);
        }
        self.needs_person = self.needs_person.iter().map(|n| printable(n)).collect();
        self
    }
}

/// `out` with the key's text, its base64 body and any part of it long enough
/// to matter replaced, before anything of it is kept or shown.
fn redacted(mut out: Output, key: Option<&Key>) -> Output {
    let Some(key) = key else { return out };
    withhold(&mut out.stdout, key);
    withhold(&mut out.stderr, key);
    out
}

/// `s` with the key's text, its base64 body and any run of 16 or more of
/// the body's characters in a row (a cut line may hold a piece) replaced.
fn withhold(s: &mut String, key: &Key) {
    let text = key.to_text();
    let body = text.rsplit(':').next().unwrap_or_default().to_string();
    for secret in [text.as_str(), body.as_str()] {
        *s = s.replace(secret, "[key withheld]");
    }
    let chars: Vec<char> = body.chars().collect();
    for window in chars.windows(16) {
        let piece: String = window.iter().collect();
        if s.contains(&piece) {
            *s = s.replace(&piece, "[key withheld]");
        }
    }
}

impl JoinReport {
    /// The report with the key withheld from every text it carries: a
    /// remote that repeats its input in its report must not get the key
    /// into the evidence, the rotation state or the screen.
    fn withheld(mut self, key: Option<&Key>) -> JoinReport {
        let Some(key) = key else { return self };
        for s in [&mut self.keyturn, &mut self.machine, &mut self.home] {
            withhold(s, key);
        }
        for step in &mut self.steps {
            for s in [&mut step.id, &mut step.title, &mut step.state, &mut step.evidence] {
                withhold(s, key);
            }
        }
        for s in &mut self.needs_person {
            withhold(s, key);
        }
        self
    }
}

/// Runs `keyturn rotation join` on `machine`, the key on its standard input.
pub fn push(
    machine: &MachineEntry,
    kind: KeyKind,
    key: Option<&Key>,
    commands: &dyn Commands,
    timeout: Duration,
) -> Answer<JoinReport> {
    let mut argv = machine.command();
    argv.extend(["rotation", "join", kind.name(), "--json"].map(String::from));
    if key.is_none() {
        argv.push("--reset".into());
    }
    let input = key.map(|k| {
        let mut text = k.to_text();
        text.push('\n');
        text
    });
    let out = commands
        .run_with_input(&argv, input.as_ref().map_or(b"".as_slice(), |t| t.as_bytes()), timeout)
        .map_err(|e| format!("its command could not run: {e}"))?;
    // Exit 3 (a person is needed there) still carries a report.
    match serde_json::from_str::<JoinReport>(&out.stdout) {
        Ok(report) if matches!(out.code, Some(0 | 3)) => Ok(report.withheld(key).printable()),
        // A command that repeats its input (a shell reading the key line as
        // a command, `cat`) would put the key in the evidence: cut it out.
        _ => Err(describe_failure(&redacted(out, key), timeout)),
    }
}

/// Pushes the key to `machine` and checks its step off from the report,
/// then confirms with a status call that the machine's store really holds
/// the new key (a report alone could claim it).
pub fn checked_push(
    machine: &MachineEntry,
    kind: KeyKind,
    key: Option<&Key>,
    new: Fingerprint,
    commands: &dyn Commands,
    timeout: Duration,
) -> Change {
    let change = machine_change(&machine.name, kind, new, &push(machine, kind, key, commands, timeout));
    if !matches!(change, Change::Done(_)) {
        return change;
    }
    match status(machine, commands, STATUS_TIMEOUT.min(timeout)) {
        Ok(s) if s.fingerprints.get(kind) == new => change,
        Ok(s) => Change::Wait(format!(
            "{}: its join reported {new}, but its store holds {}: it did not keep the key",
            machine.name,
            s.fingerprints.get(kind)
        )),
        Err(e) => Change::Wait(format!("{}: joined, but its status could not be read to confirm: {e}", machine.name)),
    }
}

/// What `keyturn status --json` says of a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    pub keyturn: String,
    pub home: String,
    pub machine_wide: bool,
    pub time: Option<Timestamp>,
    pub fingerprints: Fingerprints,
}

/// Asks `machine` for its status.
pub fn status(machine: &MachineEntry, commands: &dyn Commands, timeout: Duration) -> Answer<RemoteStatus> {
    let mut argv = machine.command();
    argv.extend(["status", "--json"].map(String::from));
    let out = commands.run(&argv, &[], timeout).map_err(|e| format!("its command could not run: {e}"))?;
    if !out.success() {
        return Err(describe_failure(&out, timeout));
    }
    parse_status(&out.stdout).ok_or_else(|| printable(&format!("its answer is not keyturn's status: {}", out.tail())))
}

/// Reads what `keyturn status --json` printed on another machine.
pub fn parse_status(json: &str) -> Option<RemoteStatus> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let fp = |kind: &str| v["keys"][kind]["fingerprint"].as_str()?.parse().ok();
    Some(RemoteStatus {
        keyturn: printable(v["keyturn"].as_str()?),
        home: printable(v["home"].as_str()?),
        machine_wide: v["machine_wide"].as_bool()?,
        time: v["time"].as_str().and_then(|t| t.parse().ok()),
        fingerprints: Fingerprints { encryption: fp("encryption")?, communication: fp("communication")? },
    })
}

/// Runs `work` for every machine, at most `parallel` at once; `done` hears
/// each answer as it comes. Answers come back in roster order.
pub fn each<T: Send>(
    machines: &[MachineEntry],
    parallel: usize,
    work: &(dyn Fn(&MachineEntry) -> T + Sync),
    done: &(dyn Fn(&MachineEntry, &T) + Sync),
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<T>>> = Mutex::new(machines.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, machines.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(machine) = machines.get(i) else { break };
                    let answer = work(machine);
                    done(machine, &answer);
                    if let Ok(mut answers) = answers.lock() {
                        answers[i] = Some(answer);
                    }
                }
            });
        }
    });
    answers.into_inner().unwrap_or_default().into_iter().flatten().collect()
}

/// One machine in the fleet view.
#[derive(Clone, Debug, Serialize)]
pub struct MachineRow {
    pub name: String,
    pub roles: Vec<crate::store::config::Role>,
    /// Its status, or why it could not be had.
    pub status: Option<RemoteStatus>,
    pub error: Option<String>,
    /// Whether each key matches this machine's.
    pub matches: BTreeMap<KeyKind, bool>,
    /// Its clock minus this machine's, in seconds.
    pub skew_seconds: Option<i64>,
    /// Its step in the open rotation: state and evidence.
    pub rollout: Option<String>,
}

/// Convergence of one key across the fleet.
#[derive(Clone, Debug, Serialize)]
pub struct Convergence {
    /// This machine's fingerprint.
    pub fingerprint: Fingerprint,
    /// Roster machines on it.
    pub on: usize,
    /// Roster machines.
    pub of: usize,
}

/// The fleet view: every machine against this one.
#[derive(Clone, Debug, Serialize)]
pub struct FleetStatus {
    pub local: Fingerprints,
    pub machines: Vec<MachineRow>,
    pub convergence: BTreeMap<KeyKind, Convergence>,
}

impl FleetStatus {
    /// Whether every machine is reachable and on this machine's keys.
    pub fn converged(&self) -> bool {
        self.convergence.values().all(|c| c.on == c.of)
    }
}

/// Asks every roster machine for its status, `parallel` at once.
pub fn fleet_status(
    store: &Store,
    commands: &dyn Commands,
    parallel: usize,
    timeout: Duration,
    done: &(dyn Fn(&MachineEntry) + Sync),
) -> FleetStatus {
    let local = Fingerprints::of(store);
    let machines = &store.config().machines;
    let rotation = crate::rotation::persist::open_rotation(&store.home().dir).ok().flatten();
    let answers = each(machines, parallel, &|m| (status(m, commands, timeout), Timestamp::now()), &|m, _| done(m));
    let rows: Vec<MachineRow> = machines
        .iter()
        .zip(answers)
        .map(|(m, (answer, answered_at))| {
            let rollout = rotation.as_ref().and_then(|r| r.machine_step(&m.name)).map(|s| {
                format!("{}{}", s.state.name(), s.state.evidence().map(|e| format!(": {e}")).unwrap_or_default())
            });
            let (status, error) = match answer {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(e)),
            };
            let matches = KeyKind::ALL
                .into_iter()
                .map(|k| (k, status.as_ref().is_some_and(|s| s.fingerprints.get(k) == local.get(k))))
                .collect();
            // Against this machine's clock when the answer came, not after
            // every machine answered.
            let skew_seconds = status.as_ref().and_then(|s| s.time).map(|t| t.as_second() - answered_at.as_second());
            MachineRow { name: m.name.clone(), roles: m.roles.clone(), status, error, matches, skew_seconds, rollout }
        })
        .collect();
    let convergence = KeyKind::ALL
        .into_iter()
        .map(|k| {
            (
                k,
                Convergence {
                    fingerprint: local.get(k),
                    on: rows.iter().filter(|r| r.matches[&k]).count(),
                    of: rows.len(),
                },
            )
        })
        .collect();
    FleetStatus { local, machines: rows, convergence }
}

/// The machine step's outcome from `machine`'s join answer.
pub fn machine_change(name: &str, kind: KeyKind, new: Fingerprint, answer: &Answer<JoinReport>) -> Change {
    let report = match answer {
        Err(e) => {
            return Change::Wait(format!(
                "{name}: {e}. Run again to retry, or do it by hand: run `keyturn fingerprint {kind}` there and type what it shows"
            ));
        }
        Ok(report) => report,
    };
    let got = report.fingerprints.get(kind);
    if got != new {
        return Change::Wait(format!(
            "{name} reports {got} after the join, not the new key {new}: it did not take the key"
        ));
    }
    if !report.needs_person.is_empty() {
        return Change::Wait(format!(
            "{name} is on {new} but needs a person there: {}",
            report.needs_person.join("; ")
        ));
    }
    // Flagged, not held: an operator may keep a store elsewhere on purpose
    // (with --home); the fleet view shows it too.
    let flag = if report.machine_wide {
        String::new()
    } else {
        format!("; FLAGGED: a user store ({}), not the machine-wide one its services read", report.home)
    };
    Change::Done(format!(
        "{name} reports {new} ({}, keyturn {}){flag}",
        if report.changed { "imported" } else { "already on it" },
        report.keyturn
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_answers_in_roster_order_with_a_bound() {
        let machines: Vec<MachineEntry> =
            (0..20).map(|i| MachineEntry { name: format!("m{i}"), roles: vec![], command: None }).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let answers = each(
            &machines,
            4,
            &|m| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                running.fetch_sub(1, Ordering::SeqCst);
                m.name.clone()
            },
            &|_, _| {},
        );
        assert_eq!(answers, machines.iter().map(|m| m.name.clone()).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
    }

    #[test]
    fn a_machine_is_done_only_on_the_new_key_machine_wide() {
        let new = Fingerprint([1; 8]);
        let report = JoinReport {
            keyturn: "0.1.0".into(),
            machine: "m".into(),
            home: "/var/lib/keyturn".into(),
            machine_wide: true,
            time: Timestamp::UNIX_EPOCH,
            kind: KeyKind::Communication,
            fingerprints: Fingerprints { encryption: Fingerprint([0; 8]), communication: new },
            changed: true,
            steps: vec![],
            needs_person: vec![],
        };
        assert!(matches!(machine_change("m", KeyKind::Communication, new, &Ok(report.clone())), Change::Done(_)));
        let user = JoinReport { machine_wide: false, ..report.clone() };
        assert!(
            matches!(machine_change("m", KeyKind::Communication, new, &Ok(user)), Change::Done(w) if w.contains("FLAGGED: a user store"))
        );
        let other = JoinReport {
            fingerprints: Fingerprints { communication: Fingerprint([2; 8]), ..report.fingerprints },
            ..report
        };
        assert!(
            matches!(machine_change("m", KeyKind::Communication, new, &Ok(other)), Change::Wait(w) if w.contains("did not take"))
        );
        assert!(matches!(
            machine_change("m", KeyKind::Communication, new, &Err("unreachable".into())),
            Change::Wait(_)
        ));
    }
}
