//! The fleet: every roster machine's status against this one, and the
//! convergence of each key across the roster. Reaching a machine is the
//! system edge's (`system::remote`); a machine's part of a rotation is
//! `rotation::join`, and the push that checks it off `rotation::machines`.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::keys::{Fingerprint, KeyKind};
use crate::report::{StatusReport, WindowReport};
pub use crate::rotation::join::{Fingerprints, JOIN_TIMEOUT, JoinReport};
pub use crate::rotation::machines::STATUS_TIMEOUT;
use crate::rotation::machines::{self, Answer};
use crate::store::Store;
use crate::store::config::MachineEntry;
pub use crate::system::remote::DEFAULT_PARALLEL;
use crate::system::remote::{self, Remote};

/// What `keyturn status --json` says of a machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    pub keyturn: String,
    pub home: String,
    pub machine_wide: bool,
    pub time: Option<Timestamp>,
    pub fingerprints: Fingerprints,
}

impl RemoteStatus {
    /// The row's status from a machine's `status --json`; `None` when it
    /// lacks a key's fingerprint.
    pub fn of(s: &StatusReport) -> Option<RemoteStatus> {
        Some(RemoteStatus {
            keyturn: s.keyturn.clone(),
            home: s.home.clone(),
            machine_wide: s.machine_wide,
            time: s.time,
            fingerprints: Fingerprints {
                encryption: s.fingerprint(KeyKind::Encryption)?,
                communication: s.fingerprint(KeyKind::Communication)?,
            },
        })
    }
}

/// Asks `machine` for its status (one session).
pub fn status(machine: &MachineEntry, remote: &dyn Remote, timeout: Duration) -> Answer<RemoteStatus> {
    let s = machines::status(machine, remote, timeout)?;
    RemoteStatus::of(&s).ok_or_else(|| "its status lacks a key's fingerprint".into())
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
    /// The last rotation's disagreement window, once a machine is on its key.
    pub window: Option<WindowReport>,
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
    remote: &dyn Remote,
    parallel: usize,
    timeout: Duration,
    done: &(dyn Fn(&MachineEntry) + Sync),
) -> FleetStatus {
    let local = Fingerprints::of(store);
    let machines = &store.config().machines;
    let last = crate::rotation::persist::load(&store.home().dir).ok().flatten();
    let window = last.as_ref().and_then(WindowReport::of);
    let rotation = last.filter(crate::rotation::Rotation::is_open);
    let answers =
        remote::each(machines, parallel, &|m| (status(m, remote, timeout), Timestamp::now()), &|_, m, _| done(m));
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
    FleetStatus { local, machines: rows, convergence, window }
}
