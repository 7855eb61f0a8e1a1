//! The rotation's state machine: a rotation and its steps, the events that
//! move them, and the one function that applies an event or refuses it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::procedure::{Action, Setup, StepKind, Variant};
use crate::keys::{Fingerprint, KeyKind};
use crate::system::ProcessInfo;

/// Where a step stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "is")]
pub enum StepState {
    /// Not reached yet.
    Pending,
    /// Reached; waiting for evidence or a person. `seen` says what is seen.
    Waiting { seen: String },
    /// Carried out, with the evidence.
    Done { evidence: String },
    /// Not carried out, with the reason (not applicable here, or the
    /// operator's).
    Skipped { reason: String, by_operator: bool },
    /// An automatic step failed; running again retries it.
    Failed { error: String },
}

impl StepState {
    /// Whether the step needs nothing more.
    pub fn is_closed(&self) -> bool {
        matches!(self, StepState::Done { .. } | StepState::Skipped { .. })
    }

    /// The state's name, as `status --json` writes it.
    pub fn name(&self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Waiting { .. } => "waiting",
            StepState::Done { .. } => "done",
            StepState::Skipped { .. } => "skipped",
            StepState::Failed { .. } => "failed",
        }
    }

    /// The evidence, what is seen, the reason or the error.
    pub fn evidence(&self) -> Option<&str> {
        match self {
            StepState::Pending => None,
            StepState::Waiting { seen } => Some(seen),
            StepState::Done { evidence } => Some(evidence),
            StepState::Skipped { reason, .. } => Some(reason),
            StepState::Failed { error } => Some(error),
        }
    }
}

/// One step of a checklist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Stable id, e.g. `restart-execution`.
    pub id: String,
    /// What to do, in a line.
    pub title: String,
    /// More: what the original says, what keyturn does.
    pub detail: String,
    /// How it is checked off.
    pub kind: StepKind,
    /// What carrying it out means.
    pub action: Action,
    /// The seed steps it carries out.
    pub seed_steps: Vec<u8>,
    /// Whether the operator may check it off by confirming.
    pub confirmable: bool,
    /// Where it stands.
    pub state: StepState,
}

impl Step {
    /// The step's text marker: `[x]` done, `[>]` current, `[ ]` pending,
    /// `[-]` skipped, `[!]` failed. State is shown by text, not colour alone.
    pub fn marker(&self, current: bool) -> &'static str {
        match &self.state {
            StepState::Done { .. } => "[x]",
            StepState::Skipped { .. } => "[-]",
            StepState::Failed { .. } => "[!]",
            _ if current => "[>]",
            _ => "[ ]",
        }
    }
}

/// Whether the rotation is still going.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "is")]
pub enum Status {
    /// Steps remain.
    Open,
    /// Every step done or skipped.
    Finished { at: Timestamp },
    /// Ended by the operator; the key was not rolled back.
    Aborted { at: Timestamp, reason: String },
}

/// One transition, as the audit log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Its number in this rotation, from 1.
    pub seq: u64,
    /// When.
    pub at: Timestamp,
    /// The step, if it concerns one.
    pub step: Option<String>,
    /// What happened.
    pub outcome: String,
}

/// A rotation: a checklist the state machine drives step by step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// File format version.
    pub format: u32,
    /// Bumped on every write, so that two writers never overwrite each
    /// other's steps.
    pub revision: u64,
    /// Unique per rotation (its start time).
    pub id: String,
    /// Which key.
    pub kind: KeyKind,
    /// One machine or many.
    pub setup: Setup,
    /// Which variant.
    pub variant: Variant,
    /// The fingerprint before.
    pub old_fingerprint: Fingerprint,
    /// The fingerprint the rotation puts in place.
    pub new_fingerprint: Fingerprint,
    /// A rollback: the key it puts in place is the previous one, from the
    /// keyring.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
    /// When it started.
    pub started: Timestamp,
    /// Who started it.
    pub operator: String,
    /// Where.
    pub machine: String,
    /// Open, finished or aborted.
    pub status: Status,
    /// The components' processes seen before the import, by component id.
    pub before: BTreeMap<String, Vec<ProcessInfo>>,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Every transition so far.
    pub history: Vec<Transition>,
    /// When the first and the last roster machine reached the new key: the
    /// disagreement window. Absent until a machine step is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Window>,
}

/// The disagreement window: from the first roster machine on the new key to
/// the last, on this machine's clock as their answers (or the operator's
/// typed fingerprints) arrived. Meanwhile machines on different keys cannot
/// talk to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// The first machine's arrival on the new key.
    pub first: Timestamp,
    /// The latest machine's so far.
    pub last: Timestamp,
    /// How many machine steps are done within it.
    pub machines: usize,
}

impl Window {
    /// Its length in milliseconds.
    pub fn millis(&self) -> i64 {
        self.last.as_millisecond() - self.first.as_millisecond()
    }

    /// Whether every machine step of `rotation` is done, so the window is closed.
    pub fn closed(&self, rotation: &Rotation) -> bool {
        rotation.steps.iter().filter(|s| s.kind == StepKind::PerMachine).all(|s| s.state.is_closed())
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.millis();
        write!(
            f,
            "{}.{:03} s from the first machine on the new key to the last ({} machines, {} to {})",
            ms / 1000,
            ms % 1000,
            self.machines,
            self.first.strftime("%H:%M:%S%.3f UTC"),
            self.last.strftime("%H:%M:%S%.3f UTC")
        )
    }
}

/// What moves a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Something happened to a step (it must be the current one).
    Step { step: String, change: Change },
    /// The operator ends the rotation.
    Abort { reason: String },
}

/// What happened to a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The evidence shows it carried out.
    Done(String),
    /// It waits, for evidence or for a person; what is seen.
    Wait(String),
    /// An automatic step failed; the error.
    Fail(String),
    /// The operator confirms it.
    Confirm,
    /// The operator skips it, with a reason.
    Skip(String),
    /// The operator typed the fingerprint another machine shows.
    VerifyMachine(Fingerprint),
}

impl Event {
    /// `change` happened to `step`.
    pub fn step(step: &str, change: Change) -> Event {
        Event::Step { step: step.to_string(), change }
    }
}

/// Why an event was refused. The rotation is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("the rotation is {0}; start a new one")]
    Closed(&'static str),
    #[error("there is no step `{0}` in this rotation; `keyturn rotation status` lists them")]
    UnknownStep(String),
    #[error("step `{step}` is not the current step; the current step is `{current}`")]
    NotCurrent { step: String, current: String },
    #[error("step `{step}` is already {state}")]
    AlreadyClosed { step: String, state: &'static str },
    #[error("step `{0}` is checked off by evidence, not by confirming; `keyturn rotation run` checks it")]
    NotConfirmable(String),
    #[error("a skip needs a reason: --reason TEXT")]
    EmptyReason,
    #[error("the import cannot be skipped: it is the rotation; abort instead")]
    ImportNotSkippable,
    #[error("step `{0}` is not another machine's step")]
    NotAMachine(String),
    #[error(
        "{machine} shows {got}, not the new key {expected}: import the key there again, then type the fingerprint it shows"
    )]
    FingerprintMismatch { machine: String, expected: Fingerprint, got: Fingerprint },
}

impl Rotation {
    /// The step in which the roster machine `name` takes the key (found by
    /// what it does, not by its id's spelling).
    pub fn machine_step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| matches!(&s.action, super::Action::Machine(m) if m == name))
    }

    /// The first step not done or skipped.
    pub fn current(&self) -> Option<&Step> {
        self.steps.iter().find(|s| !s.state.is_closed())
    }

    /// Whether steps remain.
    pub fn is_open(&self) -> bool {
        self.status == Status::Open
    }

    fn status_name(&self) -> &'static str {
        match self.status {
            Status::Open => "open",
            Status::Finished { .. } => "finished",
            Status::Aborted { .. } => "aborted",
        }
    }

    fn record(&mut self, at: Timestamp, step: Option<&str>, outcome: String) {
        let seq = self.history.last().map_or(1, |t| t.seq + 1);
        self.history.push(Transition { seq, at, step: step.map(String::from), outcome });
    }
}

/// Applies `event` to `rotation` at `now`: the new rotation, or why the
/// event is impossible (and the rotation unchanged).
pub fn apply(mut rotation: Rotation, event: Event, now: Timestamp) -> Result<Rotation, TransitionError> {
    apply_in_place(&mut rotation, event, now)?;
    Ok(rotation)
}

/// [`apply`] on a rotation in place, for a caller applying many events to
/// one large rotation (a fleet push): on a refusal it is left untouched,
/// as every check comes before the first change.
pub fn apply_in_place(rotation: &mut Rotation, event: Event, now: Timestamp) -> Result<(), TransitionError> {
    if !rotation.is_open() {
        return Err(TransitionError::Closed(rotation.status_name()));
    }
    let (step_id, change) = match event {
        Event::Abort { reason } => {
            let reason =
                if reason.trim().is_empty() { "no reason given".to_string() } else { reason.trim().to_string() };
            rotation.record(now, None, format!("aborted: {reason}; the key was not rolled back"));
            rotation.status = Status::Aborted { at: now, reason };
            return Ok(());
        }
        Event::Step { step, change } => (step, change),
    };
    let index = rotation
        .steps
        .iter()
        .position(|s| s.id == step_id)
        .ok_or_else(|| TransitionError::UnknownStep(step_id.clone()))?;
    let step = &rotation.steps[index];
    if step.state.is_closed() {
        return Err(TransitionError::AlreadyClosed { step: step_id, state: step.state.name() });
    }
    let current_index = rotation.steps.iter().position(|s| !s.state.is_closed()).unwrap_or(0);
    // Machine steps in one block are independent: one slow or dead machine
    // must not hold back the others' evidence.
    let in_machine_block =
        index > current_index && rotation.steps[current_index..=index].iter().all(|s| s.kind == StepKind::PerMachine);
    if index != current_index && !in_machine_block {
        let current = rotation.steps[current_index].id.clone();
        return Err(TransitionError::NotCurrent { step: step_id, current });
    }
    let new_state = match change {
        Change::Done(evidence) => StepState::Done { evidence },
        Change::Wait(seen) => StepState::Waiting { seen },
        Change::Fail(error) => StepState::Failed { error },
        Change::Confirm if step.confirmable => StepState::Done { evidence: "confirmed by the operator".into() },
        Change::Confirm => return Err(TransitionError::NotConfirmable(step_id)),
        Change::Skip(reason) => {
            if reason.trim().is_empty() {
                return Err(TransitionError::EmptyReason);
            }
            if step.action == Action::Import {
                return Err(TransitionError::ImportNotSkippable);
            }
            StepState::Skipped { reason: reason.trim().to_string(), by_operator: true }
        }
        Change::VerifyMachine(fingerprint) => {
            let Action::Machine(machine) = &step.action else {
                return Err(TransitionError::NotAMachine(step_id));
            };
            if fingerprint != rotation.new_fingerprint {
                return Err(TransitionError::FingerprintMismatch {
                    machine: machine.clone(),
                    expected: rotation.new_fingerprint,
                    got: fingerprint,
                });
            }
            StepState::Done { evidence: format!("{machine} shows {fingerprint} (typed by the operator)") }
        }
    };
    if rotation.steps[index].state == new_state {
        // Nothing new (e.g. still waiting for the same thing): no transition.
        return Ok(());
    }
    let outcome = format!("{}{}", new_state.name(), new_state.evidence().map(|e| format!(": {e}")).unwrap_or_default());
    if matches!(new_state, StepState::Done { .. }) && matches!(rotation.steps[index].action, Action::Machine(_)) {
        rotation.window = Some(match rotation.window {
            None => Window { first: now, last: now, machines: 1 },
            Some(w) => Window { first: w.first.min(now), last: w.last.max(now), machines: w.machines + 1 },
        });
    }
    rotation.steps[index].state = new_state;
    rotation.record(now, Some(&step_id), outcome);
    if rotation.current().is_none() {
        rotation.status = Status::Finished { at: now };
        rotation.record(now, None, "finished: every step done or skipped".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotation::procedure::{self, Facts};

    fn rotation(kind: KeyKind, setup: Setup, variant: Variant) -> Rotation {
        let facts = Facts {
            components: vec!["execution".into(), "app".into(), "scheduling".into()],
            projects: vec!["/p".into()],
            machines: vec![("exec-01".into(), vec![crate::store::config::Role::Execution])],
            ..Facts::default()
        };
        Rotation {
            format: 1,
            revision: 0,
            id: "r1".into(),
            kind,
            setup,
            variant,
            old_fingerprint: Fingerprint([0; 8]),
            new_fingerprint: Fingerprint([1; 8]),
            rollback: false,
            started: Timestamp::UNIX_EPOCH,
            operator: "op".into(),
            machine: "m".into(),
            status: Status::Open,
            before: BTreeMap::new(),
            steps: procedure::build(kind, setup, variant, &facts).expect("builds"),
            history: vec![],
            window: None,
        }
    }

    fn done(step: &str) -> Event {
        Event::step(step, Change::Done("seen".into()))
    }

    #[test]
    fn a_whole_rotation_reaches_finished() {
        let mut r = rotation(KeyKind::Communication, Setup::Multi, Variant::Import);
        let now = Timestamp::UNIX_EPOCH;
        while let Some(step) = r.current().cloned() {
            let event = match step.kind {
                StepKind::Manual => Event::step(&step.id, Change::Confirm),
                StepKind::PerMachine => Event::step(&step.id, Change::VerifyMachine(Fingerprint([1; 8]))),
                _ => done(&step.id),
            };
            r = apply(r, event, now).expect("applies");
        }
        assert!(matches!(r.status, Status::Finished { .. }));
        assert_eq!(r.history.last().map(|t| t.outcome.as_str()), Some("finished: every step done or skipped"));
        assert_eq!(apply(r, done("import"), now), Err(TransitionError::Closed("finished")));
    }

    /// The transition table: every event in every situation that must be
    /// refused, is, and leaves the rotation as it was.
    #[test]
    fn impossible_transitions_are_refused() {
        let now = Timestamp::UNIX_EPOCH;
        let r = rotation(KeyKind::Encryption, Setup::Multi, Variant::FirstCustom);
        let refused = |r: &Rotation, e: Event| apply(r.clone(), e, now).expect_err("refused");
        assert_eq!(refused(&r, done("nope")), TransitionError::UnknownStep("nope".into()));
        assert!(matches!(refused(&r, done("restart-execution")), TransitionError::NotCurrent { .. }));
        assert_eq!(
            refused(&r, Event::step("import", Change::Confirm)),
            TransitionError::NotConfirmable("import".into())
        );
        assert_eq!(refused(&r, Event::step("import", Change::Skip("x".into()))), TransitionError::ImportNotSkippable);
        assert_eq!(refused(&r, Event::step("import", Change::Skip("  ".into()))), TransitionError::EmptyReason);
        assert!(matches!(
            refused(&r, Event::step("import", Change::VerifyMachine(Fingerprint([1; 8])))),
            TransitionError::NotAMachine(_)
        ));
        let r = apply(r, done("import"), now).expect("import done");
        assert!(matches!(refused(&r, done("import")), TransitionError::AlreadyClosed { .. }));
        // Restart steps are checked by evidence only.
        assert!(matches!(
            refused(&r, Event::step("restart-execution", Change::Confirm)),
            TransitionError::NotConfirmable(_)
        ));
        // Walk to the machine step and type a wrong fingerprint.
        let mut r = r;
        while r.current().is_some_and(|s| s.kind != StepKind::PerMachine) {
            let s = r.current().cloned().expect("current");
            r = apply(r, if s.confirmable { Event::step(&s.id, Change::Confirm) } else { done(&s.id) }, now)
                .expect("applies");
        }
        let machine = r.current().map(|s| s.id.clone()).expect("machine step");
        assert!(matches!(refused(&r, Event::step(&machine, Change::Confirm)), TransitionError::NotConfirmable(_)));
        assert!(matches!(
            refused(&r, Event::step(&machine, Change::VerifyMachine(Fingerprint([9; 8])))),
            TransitionError::FingerprintMismatch { .. }
        ));
        let r = apply(r, Event::step(&machine, Change::VerifyMachine(Fingerprint([1; 8]))), now).expect("matches");
        let aborted = apply(r, Event::Abort { reason: "operator left".into() }, now).expect("abort");
        assert!(matches!(aborted.status, Status::Aborted { .. }));
        assert_eq!(refused(&aborted, Event::Abort { reason: String::new() }), TransitionError::Closed("aborted"));
        assert_eq!(refused(&aborted, done("get-latest")), TransitionError::Closed("aborted"));
    }

    #[test]
    fn waiting_again_for_the_same_thing_records_nothing() {
        let now = Timestamp::UNIX_EPOCH;
        let r = rotation(KeyKind::Communication, Setup::Single, Variant::Reset);
        let wait = Event::step("import", Change::Wait("x".into()));
        let r = apply(r, wait.clone(), now).expect("waits");
        let again = apply(r.clone(), wait, now).expect("waits");
        assert_eq!(again.history, r.history);
        let r = apply(r, Event::step("import", Change::Fail("e".into())), now).expect("fails");
        let r = apply(r, done("import"), now).expect("retried");
        assert_eq!(r.steps[0].state, StepState::Done { evidence: "seen".into() });
    }
}
