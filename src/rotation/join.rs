//! `keyturn rotation join`: this machine's own part of a rotation run
//! elsewhere, unattended, and the report it prints (`--json`), which the
//! first machine reads to check this machine's step off.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::run::{self as runner, RunError};
use super::{Change, Rotation, Setup, Status};
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::project;
use crate::store::Store;
use crate::store::credentials::CredentialState;
use crate::system::Edge;

/// How long one machine's join may take (its restarts wait too).
pub const JOIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

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
        window: None,
    };
    *store = Store::open(store.home().clone())?;
    if kind == KeyKind::Encryption {
        steps.push(joined("get-latest", "Get the latest version of the projects", &get_latest(store, edge)));
        steps.push(joined("upgrade-projects", "Upgrade what is still under a retired key", &upgrade(store)));
    }
    for step in plan.iter().filter(|s| s.kind == crate::rotation::StepKind::Restart && !s.state.is_closed()) {
        let crate::rotation::Action::Restart(id) = &step.action else { continue };
        let outcome = if change.changed {
            super::evidence::restart_step(store, &rotation, id, edge, &mut |_| {})
        } else {
            super::evidence::unchanged_component(store, &rotation, id, edge)
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
