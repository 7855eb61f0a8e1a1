//! The block of per-machine steps: every roster machine joins (one remote
//! session each), `parallel` at once, and each machine's step is checked
//! off from its join report. The one process that drives the push commits
//! the answers in batches as they arrive: one read, one write and one hold
//! of the lock for all the answers that came while the last batch was being
//! written, so the push stays linear in the roster's size.
//!
//! A push killed at any instant loses no machine: an answer not yet written
//! leaves its step open, and the push run again joins that machine again,
//! which changes nothing there (a join is idempotent) and reports the same.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::join::JoinReport;
use super::persist::{self, PersistError};
use super::procedure::{Action, Variant};
use super::run::RunError;
use super::state::{Change, Event, Rotation, Step};
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::report::StatusReport;
use crate::store::Store;
use crate::store::config::MachineEntry;
use crate::system::remote::{self, Remote, printable};
use crate::system::{Edge, Output};

/// The least time between two writes of the push's answers.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How long one machine's status may take.
pub const STATUS_TIMEOUT: Duration = Duration::from_secs(30);

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
    let text = zeroize::Zeroizing::new(key.to_text());
    let body = zeroize::Zeroizing::new(text.rsplit(':').next().unwrap_or_default().to_string());
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
    /// remote that repeats its input in its report (JSON escapes and all)
    /// must not get the key into the evidence, the rotation state or the
    /// screen.
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

/// The join report in what a machine printed: one report, or the same one
/// more than once (a transport that repeats itself). Two that disagree, a
/// report cut short, or anything else is no answer.
fn read_report(stdout: &str, kind: KeyKind) -> Result<JoinReport, String> {
    let mut reports = Vec::new();
    for item in serde_json::Deserializer::from_str(stdout).into_iter::<JoinReport>() {
        match item {
            Ok(report) => reports.push(report),
            Err(e) if e.is_eof() => return Err("its answer was cut short (truncated)".into()),
            Err(_) => return Err("its answer is not keyturn's join report".into()),
        }
    }
    let Some(last) = reports.pop() else { return Err("it answered nothing".into()) };
    if reports.iter().any(|r| r.kind != last.kind || r.fingerprints != last.fingerprints) {
        return Err("it answered more than once, and the answers disagree".into());
    }
    if last.kind != kind {
        return Err(format!("its answer is about the {} key, not the {kind} key", last.kind));
    }
    Ok(last)
}

/// Runs `keyturn rotation join` on `machine` (one session), the key on its
/// standard input, and reads its report.
pub fn push(
    machine: &MachineEntry,
    kind: KeyKind,
    key: Option<&Key>,
    remote: &dyn Remote,
    timeout: Duration,
) -> Answer<JoinReport> {
    let input = key.map(|k| {
        let mut text = zeroize::Zeroizing::new(k.to_text());
        text.push('\n');
        text
    });
    let out = remote
        .join(machine, kind, input.as_ref().map(|t| t.as_bytes()), timeout)
        .map_err(|e| format!("its command could not run: {e}"))?;
    // A command that repeats its input (a shell reading the key line as a
    // command, `cat`) would put the key in the evidence: cut it out first.
    let out = redacted(out, key);
    // Exit 3 (a person is needed there) still carries a report.
    if !matches!(out.code, Some(0 | 3)) {
        return Err(describe_failure(&out, timeout));
    }
    read_report(&out.stdout, kind)
        .map(|r| r.withheld(key).printable())
        .map_err(|e| printable(&format!("{e}: {}", out.tail())))
}

/// Asks `machine` for its status (one session).
pub fn status(machine: &MachineEntry, remote: &dyn Remote, timeout: Duration) -> Answer<StatusReport> {
    let out = remote.status(machine, timeout).map_err(|e| format!("its command could not run: {e}"))?;
    if !out.success() {
        return Err(describe_failure(&out, timeout));
    }
    parse_status(&out.stdout).ok_or_else(|| printable(&format!("its answer is not keyturn's status: {}", out.tail())))
}

/// Reads what `keyturn status --json` printed on another machine, its text
/// made safe to show.
pub fn parse_status(json: &str) -> Option<StatusReport> {
    let mut s: StatusReport = serde_json::from_str(json).ok()?;
    s.keyturn = printable(&s.keyturn);
    s.machine = printable(&s.machine);
    s.home = printable(&s.home);
    s.rotation = None;
    for key in s.keys.values_mut() {
        key.loaded = printable(&key.loaded);
    }
    Some(s)
}

/// Pushes the key to `machine` and checks its step off from its join
/// report: one session. Only when the answer is missing or unclear does a
/// second session ask its status, to say where it stands; such a machine is
/// left waiting (run again to retry, or a person), never done.
pub fn checked_push(
    machine: &MachineEntry,
    kind: KeyKind,
    key: Option<&Key>,
    new: Fingerprint,
    remote: &dyn Remote,
    timeout: Duration,
) -> Change {
    let answer = push(machine, kind, key, remote, timeout);
    let Err(lost) = &answer else { return machine_change(&machine.name, kind, new, &answer) };
    let name = &machine.name;
    // The status session carries no key, but a remote that repeats earlier
    // input (a logging wrapper, a shared shell) could still print it.
    let status = status(machine, remote, STATUS_TIMEOUT.min(timeout)).map_err(|mut e| {
        if let Some(key) = key {
            withhold(&mut e, key);
        }
        e
    });
    match status {
        Ok(s) if s.fingerprint(kind) == Some(new) => Change::Wait(format!(
            "{name}: holds the new key {new} (its status says), but its join answer was lost ({lost}), so its restarts and upgrade are not confirmed. Run again to retry (a join changes nothing twice), or check there and type the fingerprint: keyturn rotation confirm machine-{name} --fingerprint {new}"
        )),
        Ok(s) => Change::Wait(format!(
            "{name}: {lost}; its status shows {}, not the new key {new}. Run again to retry, or do it by hand: run `keyturn rotation join {kind}` there, then `keyturn fingerprint {kind}` and type what it shows",
            s.fingerprint(kind).map_or_else(|| "no fingerprint".to_string(), |f| f.to_string())
        )),
        Err(e) => machine_change(name, kind, new, &Err(format!("{lost}; its status could not be read either ({e})"))),
    }
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

/// The block of machine steps from the current one: each roster machine
/// joins, `edge.parallel` at once, and each step is checked off from its
/// machine's report as it arrives. `None`: all done, go on; `Some`: stop here.
pub fn run_block(
    store: &Store,
    home: &Path,
    rotation: &Rotation,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Rotation>, RunError> {
    let roster = &store.config().machines;
    let block: Vec<(String, MachineEntry)> = rotation
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
    // A machine step not in the roster waits for a typed fingerprint.
    if block.is_empty() {
        let Some(step) = rotation.current() else { return Ok(None) };
        let change = by_hand(rotation, step);
        return Ok(Some(persist::commit(home, None, Event::step(&step.id, change))?));
    }
    let key = (rotation.variant != Variant::Reset).then(|| store.active_key(rotation.kind));
    let entries: Vec<MachineEntry> = block.iter().map(|(_, m)| m.clone()).collect();
    let total = entries.len();
    let parallel = edge.parallel.clamp(1, remote::MAX_PARALLEL);
    progress(&format!("pushing the key to {total} machines, {} at once", parallel.min(total)));
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Change, Timestamp)>();
    let mut last = None;
    let mut failure = None;
    let mut all_done = true;
    let mut heard = 0;
    std::thread::scope(|scope| {
        let (entries, stop, key) = (&entries, &stop, key.as_ref());
        scope.spawn(move || {
            remote::each(
                entries,
                parallel,
                &|m| {
                    // After a write failed nothing more is pushed: the answers
                    // could not be kept.
                    (!stop.load(Ordering::SeqCst)).then(|| {
                        checked_push(
                            m,
                            rotation.kind,
                            key,
                            rotation.new_fingerprint,
                            &*edge.remote,
                            edge.machine_timeout,
                        )
                    })
                },
                &|i, _, change| {
                    if let Some(change) = change {
                        let _ = tx.send((i, change.clone(), Timestamp::now()));
                    }
                },
            );
        });
        // The driver: the answers that arrive within a flush interval of
        // the last write are the next batch, so the writes (each O(roster))
        // take a bounded share of the time however many machines answer.
        let mut last_write: Option<Instant> = None;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            if let Some(at) = last_write {
                let due = at + FLUSH_INTERVAL;
                while let Some(left) = due.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(left) {
                        Ok(answer) => batch.push(answer),
                        Err(_) => break,
                    }
                }
            }
            batch.extend(rx.try_iter());
            last_write = Some(Instant::now());
            let mut events = Vec::with_capacity(batch.len());
            for (i, change, at) in batch {
                heard += 1;
                let done = matches!(change, Change::Done(_));
                all_done &= done;
                let what = if done { "on the new key" } else { "needs attention" };
                progress(&format!("[{heard}/{total}] {}: {what}", block[i].1.name));
                events.push((Event::step(&block[i].0, change), at));
            }
            if failure.is_some() {
                continue;
            }
            match persist::commit_batch(home, events) {
                Ok((next, _refused)) => last = Some(next),
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    failure = Some(e);
                }
            }
        }
    });
    if let Some(e) = failure {
        return Err(e.into());
    }
    if heard < total {
        all_done = false;
    }
    Ok(match last {
        Some(next) if !all_done || !next.is_open() => Some(next),
        Some(_) => None,
        None => Some(persist::load(home)?.ok_or(PersistError::NoneOpen)?),
    })
}

/// A machine step whose machine is not in the roster.
pub fn by_hand(rotation: &Rotation, step: &Step) -> Change {
    let Action::Machine(name) = &step.action else { return Change::Wait(String::new()) };
    Change::Wait(format!(
        "{name} is not in the roster: run `keyturn fingerprint {}` there and type what it shows: keyturn rotation confirm {} --fingerprint XXXX-XXXX-XXXX-XXXX",
        rotation.kind, step.id
    ))
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::rotation::join::{Fingerprints, JoinStep};
    use crate::rotation::{Setup, StepKind, StepState};
    use crate::store::home::Home;
    use crate::system::remote::FakeRemote;

    const NEW: Fingerprint = Fingerprint([1; 8]);

    fn report(name: &str, kind: KeyKind, fp: Fingerprint) -> JoinReport {
        JoinReport {
            keyturn: "0.1.0".into(),
            machine: name.into(),
            home: "/var/lib/keyturn".into(),
            machine_wide: true,
            time: Timestamp::UNIX_EPOCH,
            kind,
            fingerprints: Fingerprints { encryption: Fingerprint([0; 8]), communication: fp },
            changed: true,
            steps: vec![JoinStep {
                id: "import".into(),
                title: "Import the key".into(),
                state: "done".into(),
                evidence: "e".into(),
            }],
            needs_person: vec![],
        }
    }

    fn out(code: i32, stdout: String) -> std::io::Result<Output> {
        Ok(Output { code: Some(code), stdout, stderr: String::new(), timed_out: false })
    }

    fn json(r: &JoinReport) -> String {
        serde_json::to_string_pretty(r).expect("json")
    }

    fn status_json(fp: Fingerprint) -> String {
        format!(
            r#"{{"keyturn": "0.1.0", "home": "/h", "machine_wide": true,
               "keys": {{"encryption": {{"loaded": "custom", "fingerprint": "{}"}},
                         "communication": {{"loaded": "custom", "fingerprint": "{fp}"}}}}}}"#,
            Fingerprint([0; 8])
        )
    }

    fn machine(name: &str) -> MachineEntry {
        MachineEntry { name: name.into(), roles: vec![], command: None }
    }

    fn fake(joins: Vec<(&str, std::io::Result<Output>)>, statuses: Vec<(&str, String)>) -> FakeRemote {
        let remote = FakeRemote::default();
        for (name, answer) in joins {
            remote.joins.lock().expect("joins").entry(name.into()).or_insert_with(VecDeque::new).push_back(answer);
        }
        for (name, answer) in statuses {
            remote.statuses.lock().expect("statuses").entry(name.into()).or_default().push_back(out(0, answer));
        }
        remote
    }

    fn push_to(remote: &FakeRemote, name: &str) -> Change {
        checked_push(&machine(name), KeyKind::Communication, None, NEW, remote, Duration::from_secs(5))
    }

    #[test]
    fn a_machine_is_done_only_on_the_new_key_machine_wide() {
        let good = report("m", KeyKind::Communication, NEW);
        let kind = KeyKind::Communication;
        assert!(matches!(machine_change("m", kind, NEW, &Ok(good.clone())), Change::Done(_)));
        let user = JoinReport { machine_wide: false, ..good.clone() };
        assert!(
            matches!(machine_change("m", kind, NEW, &Ok(user)), Change::Done(w) if w.contains("FLAGGED: a user store"))
        );
        let other = report("m", kind, Fingerprint([2; 8]));
        assert!(matches!(machine_change("m", kind, NEW, &Ok(other)), Change::Wait(w) if w.contains("did not take")));
        assert!(matches!(machine_change("m", kind, NEW, &Err("unreachable".into())), Change::Wait(_)));
    }

    /// A clear join answer is the one session: no status is asked.
    #[test]
    fn one_session_per_machine_when_the_join_answers() {
        let remote = fake(vec![("m", out(0, json(&report("m", KeyKind::Communication, NEW))))], vec![]);
        assert!(matches!(push_to(&remote, "m"), Change::Done(_)));
        assert_eq!(*remote.sessions.lock().expect("sessions"), vec![("m".to_string(), "join")]);
    }

    /// The same report twice (a transport that repeats itself) is one
    /// answer; two that disagree, a report cut short, one about the other
    /// key, or nothing, are unclear: the status is asked, and the machine is
    /// left waiting, never done, even when its status shows the new key.
    #[test]
    fn duplicated_truncated_or_unclear_answers_are_never_done() {
        let kind = KeyKind::Communication;
        let good = json(&report("m", kind, NEW));
        let twice = fake(vec![("m", out(0, format!("{good}\n{good}\n")))], vec![]);
        assert!(matches!(push_to(&twice, "m"), Change::Done(_)));
        assert_eq!(twice.sessions_of("m"), 1);

        let differing = format!("{good}\n{}", json(&report("m", kind, Fingerprint([2; 8]))));
        let truncated = good[..good.len() / 2].to_string();
        let other_kind = json(&report("m", KeyKind::Encryption, NEW));
        for (what, stdout) in [
            ("disagree", differing),
            ("truncated", truncated),
            ("about the encryption key", other_kind),
            ("answered nothing", String::new()),
        ] {
            let remote = fake(vec![("m", out(0, stdout))], vec![("m", status_json(NEW))]);
            let change = push_to(&remote, "m");
            assert!(
                matches!(&change, Change::Wait(w) if w.contains("its join answer was lost") && w.contains("Run again to retry")),
                "{what}: {change:?}"
            );
            assert_eq!(remote.sessions_of("m"), 2, "{what}: a join, then a status");
        }
    }

    /// A lost answer (unreachable, killed, timed out, or no status either)
    /// leaves the machine waiting for a retry or a person.
    #[test]
    fn a_lost_answer_is_retried_or_left_to_a_person() {
        let unreachable = fake(vec![("m", out(255, "".into()))], vec![("m", status_json(Fingerprint([3; 8])))]);
        let change = push_to(&unreachable, "m");
        assert!(
            matches!(&change, Change::Wait(w) if w.contains("unreachable") && w.contains("not the new key") && w.contains("Run again to retry")),
            "{change:?}"
        );
        let timed_out = Ok(Output { code: None, stdout: String::new(), stderr: String::new(), timed_out: true });
        let silent = fake(vec![("m", timed_out)], vec![]);
        let change = push_to(&silent, "m");
        assert!(
            matches!(&change, Change::Wait(w) if w.contains("no answer within") && w.contains("could not be read either") && w.contains("do it by hand")),
            "{change:?}"
        );
    }

    fn home_with_rotation(names: &[String]) -> (tempfile::TempDir, Rotation) {
        let dir = tempfile::tempdir().expect("tempdir");
        let steps = names
            .iter()
            .map(|n| Step {
                id: format!("machine-{n}"),
                title: format!("Join {n}"),
                detail: String::new(),
                kind: StepKind::PerMachine,
                action: Action::Machine(n.clone()),
                seed_steps: vec![],
                confirmable: false,
                state: StepState::Pending,
            })
            .collect();
        let mut rotation = Rotation {
            format: persist::FORMAT,
            revision: 0,
            id: "r".into(),
            kind: KeyKind::Communication,
            setup: Setup::Multi,
            variant: Variant::Import,
            old_fingerprint: Fingerprint([0; 8]),
            new_fingerprint: NEW,
            rollback: false,
            started: Timestamp::UNIX_EPOCH,
            operator: "op".into(),
            machine: "first".into(),
            status: crate::rotation::Status::Open,
            before: Default::default(),
            steps,
            history: vec![],
            window: None,
        };
        drop(persist::begin(dir.path(), &mut rotation).expect("begins"));
        (dir, rotation)
    }

    /// Answers committed in any order, in batches of any size, some twice
    /// (a late lost answer after a done one cannot undo it), end in the same
    /// states and the same window.
    #[test]
    fn answers_in_any_order_and_duplicated_reach_the_same_state() {
        let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
        let at = |i: usize| Timestamp::from_second(1_000 + i as i64).expect("time");
        let change = |i: usize| {
            if i == 4 { Change::Wait("m4: lost".into()) } else { Change::Done(format!("m{i} reports {NEW}")) }
        };
        let orders: [&[usize]; 4] =
            [&[0, 1, 2, 3, 4, 5], &[5, 4, 3, 2, 1, 0], &[3, 0, 5, 1, 4, 2], &[2, 2, 0, 5, 1, 3, 4, 0]];
        let mut finals = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let (dir, _) = home_with_rotation(&names);
            // Batches of n + 1 answers.
            for chunk in order.chunks(n + 1) {
                let events = chunk.iter().map(|&i| (Event::step(&format!("machine-m{i}"), change(i)), at(i))).collect();
                persist::commit_batch(dir.path(), events).expect("commits");
            }
            // A lost answer arriving late for a machine already done.
            let (r, refused) = persist::commit_batch(
                dir.path(),
                vec![(Event::step("machine-m1", Change::Wait("m1: lost".into())), at(9))],
            )
            .expect("commits");
            assert!(refused[0].is_err(), "a done machine stays done");
            let states: Vec<(String, String)> =
                r.steps.iter().map(|s| (s.id.clone(), s.state.name().to_string())).collect();
            finals.push((states, r.window));
        }
        assert!(finals.windows(2).all(|w| w[0] == w[1]), "{finals:?}");
        let (states, window) = &finals[0];
        assert_eq!(states.iter().filter(|(_, s)| s == "done").count(), 5);
        assert_eq!(states[4].1, "waiting");
        let window = window.expect("a window");
        assert_eq!((window.first, window.last, window.machines), (at(0), at(5), 5));
    }

    /// The whole block through the fake fleet: every answer lands, each
    /// machine had one session, the window spans them.
    #[test]
    fn the_block_checks_off_every_machine_with_one_session_each() {
        let names: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
        let (dir, rotation) = home_with_rotation(&names);
        let roster: String = names.iter().map(|n| format!("[[machines]]\nname = \"{n}\"\n")).collect();
        std::fs::write(dir.path().join("keyturn.toml"), roster).expect("config");
        let store = Store::open(Home { dir: dir.path().into(), machine_wide: false }).expect("store");
        let lost = "m07";
        let remote = std::sync::Arc::new(fake(
            names
                .iter()
                .map(|n| {
                    let answer = if n == lost {
                        out(255, String::new())
                    } else {
                        out(0, json(&report(n, KeyKind::Communication, NEW)))
                    };
                    (n.as_str(), answer)
                })
                .collect(),
            vec![(lost, status_json(Fingerprint([0; 8])))],
        ));
        let edge = Edge { remote: remote.clone(), parallel: 8, ..Edge::fake() };
        let mut heard = Vec::new();
        let next = run_block(&store, dir.path(), &rotation, &edge, &mut |p| heard.push(p.to_string()))
            .expect("runs")
            .expect("stops: one machine waits");
        assert_eq!(next.steps.iter().filter(|s| s.state.name() == "done").count(), 39);
        assert_eq!(next.steps.iter().find(|s| s.id == "machine-m07").map(|s| s.state.name()), Some("waiting"));
        for n in &names {
            assert_eq!(remote.sessions_of(n), if n == lost { 2 } else { 1 }, "{n}");
        }
        assert_eq!(next.window.map(|w| w.machines), Some(39));
        assert!(heard.iter().any(|p| p.starts_with("[40/40] ")), "progress counts every answer: {heard:?}");
        assert_eq!(persist::load(dir.path()).expect("loads"), Some(next));
    }
}
