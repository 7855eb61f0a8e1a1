//! The JSON documents keyturn prints for other programs, and for itself on
//! the first machine: `status --json` and `rotation status --json`. One
//! type each, written and read through serde, so the writer and the reader
//! cannot drift apart. (`rotation join --json` is `rotation::join::JoinReport`.)

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::keys::{Fingerprint, KeyKind};
use crate::rotation::{Rotation, Setup, StepKind, Variant, Window};
use crate::store::{KeyStatus, Store};

/// `keyturn status --json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The keyturn version.
    pub keyturn: String,
    /// The machine's clock when it answered (absent from old versions).
    #[serde(default)]
    pub time: Option<Timestamp>,
    /// The machine's name.
    #[serde(default)]
    pub machine: String,
    /// The home, and whether it is the machine-wide store.
    pub home: String,
    pub machine_wide: bool,
    /// Each key, by kind.
    pub keys: BTreeMap<KeyKind, KeyReport>,
    /// The open rotation, if any.
    #[serde(default)]
    pub rotation: Option<RotationSummary>,
}

/// One key in [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    /// `custom` or `default` (absent from old versions).
    #[serde(default)]
    pub loaded: String,
    pub fingerprint: Fingerprint,
    /// When the custom key was imported.
    #[serde(default)]
    pub imported: Option<Timestamp>,
    #[serde(default)]
    pub age_seconds: Option<i64>,
    /// Retired keys, kept to read older data.
    #[serde(default)]
    pub retired: Vec<RetiredReport>,
}

/// A retired key in [`KeyReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredReport {
    pub fingerprint: Fingerprint,
    pub retired: Timestamp,
}

/// The open rotation in [`StatusReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationSummary {
    pub id: String,
    pub kind: KeyKind,
    pub setup: Setup,
    pub variant: Variant,
    pub current: Option<String>,
}

impl KeyReport {
    fn of(s: &KeyStatus, now: Timestamp) -> KeyReport {
        KeyReport {
            loaded: if s.custom { "custom" } else { "default" }.into(),
            fingerprint: s.fingerprint,
            imported: s.created,
            age_seconds: s.created.map(|t| now.as_second() - t.as_second()),
            retired: s.retired.iter().map(|(fp, at)| RetiredReport { fingerprint: *fp, retired: *at }).collect(),
        }
    }
}

impl StatusReport {
    /// `store`'s status now, with its open rotation.
    pub fn of(store: &Store, open: Option<&Rotation>) -> StatusReport {
        let now = Timestamp::now();
        StatusReport {
            keyturn: env!("CARGO_PKG_VERSION").into(),
            time: Some(now),
            machine: crate::system::machine(),
            home: store.home().dir.display().to_string(),
            machine_wide: store.home().machine_wide,
            keys: KeyKind::ALL.into_iter().map(|k| (k, KeyReport::of(&store.status(k), now))).collect(),
            rotation: open.map(|r| RotationSummary {
                id: r.id.clone(),
                kind: r.kind,
                setup: r.setup,
                variant: r.variant,
                current: r.current().map(|s| s.id.clone()),
            }),
        }
    }

    /// The fingerprint of `kind`, if the report has it.
    pub fn fingerprint(&self, kind: KeyKind) -> Option<Fingerprint> {
        self.keys.get(&kind).map(|k| k.fingerprint)
    }
}

/// `keyturn rotation status --json`: a stable, documented shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationReport {
    pub id: String,
    pub kind: KeyKind,
    pub setup: Setup,
    pub variant: Variant,
    /// `open`, `finished` or `aborted`.
    pub status: String,
    pub revision: u64,
    pub old_fingerprint: Fingerprint,
    pub new_fingerprint: Fingerprint,
    pub started: Timestamp,
    pub operator: String,
    pub machine: String,
    /// The current step's id.
    pub current: Option<String>,
    pub steps: Vec<StepReport>,
    /// The disagreement window, once a machine is on the new key.
    #[serde(default)]
    pub window: Option<WindowReport>,
}

/// One step in [`RotationReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub kind: StepKind,
    /// `pending`, `waiting`, `done`, `skipped` or `failed`.
    pub state: String,
    pub seed_steps: Vec<u8>,
    pub evidence: Option<String>,
}

/// The disagreement window in [`RotationReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowReport {
    pub first: Timestamp,
    pub last: Timestamp,
    pub milliseconds: i64,
    /// Machines on the new key within it.
    pub machines: usize,
    /// Whether every machine step is closed (the window will not grow).
    pub closed: bool,
}

impl WindowReport {
    /// `rotation`'s window, if it has one.
    pub fn of(rotation: &Rotation) -> Option<WindowReport> {
        rotation.window.map(|w: Window| WindowReport {
            first: w.first,
            last: w.last,
            milliseconds: w.millis(),
            machines: w.machines,
            closed: w.closed(rotation),
        })
    }
}

impl RotationReport {
    /// `r` as `rotation status --json` prints it.
    pub fn of(r: &Rotation) -> RotationReport {
        RotationReport {
            id: r.id.clone(),
            kind: r.kind,
            setup: r.setup,
            variant: r.variant,
            status: match r.status {
                crate::rotation::Status::Open => "open",
                crate::rotation::Status::Finished { .. } => "finished",
                crate::rotation::Status::Aborted { .. } => "aborted",
            }
            .into(),
            revision: r.revision,
            old_fingerprint: r.old_fingerprint,
            new_fingerprint: r.new_fingerprint,
            started: r.started,
            operator: r.operator.clone(),
            machine: r.machine.clone(),
            current: r.current().map(|s| s.id.clone()),
            steps: r
                .steps
                .iter()
                .map(|s| StepReport {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    kind: s.kind,
                    state: s.state.name().into(),
                    seed_steps: s.seed_steps.clone(),
                    evidence: s.state.evidence().map(String::from),
                })
                .collect(),
            window: WindowReport::of(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the writer prints, the reader reads back the same; an older
    /// keyturn's status (no `time`, no `machine`) still reads.
    #[test]
    fn status_reads_back_what_it_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            Store::open(crate::store::home::Home { dir: dir.path().into(), machine_wide: false }).expect("store");
        let report = StatusReport::of(&store, None);
        let text = serde_json::to_string_pretty(&report).expect("writes");
        assert_eq!(serde_json::from_str::<StatusReport>(&text).expect("reads"), report);
        let mut old: serde_json::Value = serde_json::from_str(&text).expect("json");
        if let Some(o) = old.as_object_mut() {
            o.remove("time");
            o.remove("machine");
        }
        let read: StatusReport = serde_json::from_value(old).expect("an older status reads");
        assert_eq!(read.fingerprint(KeyKind::Communication), report.fingerprint(KeyKind::Communication));
        assert!(serde_json::from_str::<StatusReport>("{\"keyturn\": \"0.1\"}").is_err());
    }
}
