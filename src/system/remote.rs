//! Reaching another machine: its roster `command` (OpenSSH by default, any
//! remote shell the operator configures) runs keyturn there. keyturn invents
//! no protocol: a join is `keyturn rotation join <kind> --json` with the key
//! on standard input only, a status is `keyturn status --json`; each is one
//! remote session. Many machines are reached at once, with a bound.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::command::{Commands, Output};
use crate::keys::KeyKind;
use crate::store::config::MachineEntry;

/// What keyturn asks of another machine. Each call is one remote session.
pub trait Remote: Send + Sync {
    /// Runs `keyturn rotation join <kind> --json` there (`--reset` when
    /// there is no key), `input` (the key's text) on its standard input.
    fn join(
        &self,
        machine: &MachineEntry,
        kind: KeyKind,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> io::Result<Output>;
    /// Runs `keyturn status --json` there.
    fn status(&self, machine: &MachineEntry, timeout: Duration) -> io::Result<Output>;
}

/// The real transport: each machine's roster command, run by `commands`.
pub struct CommandRemote {
    pub commands: std::sync::Arc<dyn Commands>,
}

/// The argument list of a join of `kind` on `machine`.
pub fn join_argv(machine: &MachineEntry, kind: KeyKind, reset: bool) -> Vec<String> {
    let mut argv = machine.command();
    argv.extend(["rotation", "join", kind.name(), "--json"].map(String::from));
    if reset {
        argv.push("--reset".into());
    }
    argv
}

/// The argument list of a status of `machine`.
pub fn status_argv(machine: &MachineEntry) -> Vec<String> {
    let mut argv = machine.command();
    argv.extend(["status", "--json"].map(String::from));
    argv
}

impl Remote for CommandRemote {
    fn join(
        &self,
        machine: &MachineEntry,
        kind: KeyKind,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> io::Result<Output> {
        self.commands.run_with_input(&join_argv(machine, kind, input.is_none()), input.unwrap_or_default(), timeout)
    }

    fn status(&self, machine: &MachineEntry, timeout: Duration) -> io::Result<Output> {
        self.commands.run(&status_argv(machine), &[], timeout)
    }
}

/// A fleet for tests: each machine's answers to joins and statuses, given in
/// advance, first first; every session is recorded.
#[derive(Debug, Default)]
pub struct FakeRemote {
    /// Answers to joins, by machine name.
    pub joins: Mutex<BTreeMap<String, VecDeque<io::Result<Output>>>>,
    /// Answers to statuses, by machine name.
    pub statuses: Mutex<BTreeMap<String, VecDeque<io::Result<Output>>>>,
    /// Every session opened: the machine and `join` or `status`.
    pub sessions: Mutex<Vec<(String, &'static str)>>,
}

impl FakeRemote {
    fn answer(
        &self,
        answers: &Mutex<BTreeMap<String, VecDeque<io::Result<Output>>>>,
        machine: &MachineEntry,
        what: &'static str,
    ) -> io::Result<Output> {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.push((machine.name.clone(), what));
        }
        answers
            .lock()
            .ok()
            .and_then(|mut a| a.get_mut(&machine.name).and_then(VecDeque::pop_front))
            .unwrap_or_else(|| Err(io::Error::new(io::ErrorKind::NotFound, format!("no {what} answer set"))))
    }

    /// How many sessions `machine` was given.
    pub fn sessions_of(&self, machine: &str) -> usize {
        self.sessions.lock().map(|s| s.iter().filter(|(m, _)| m == machine).count()).unwrap_or(0)
    }
}

impl Remote for FakeRemote {
    fn join(&self, machine: &MachineEntry, _: KeyKind, _: Option<&[u8]>, _: Duration) -> io::Result<Output> {
        self.answer(&self.joins, machine, "join")
    }

    fn status(&self, machine: &MachineEntry, _: Duration) -> io::Result<Output> {
        self.answer(&self.statuses, machine, "status")
    }
}

/// Another machine's text, safe to show (see `display`): escape sequences
/// and characters that act on the terminal or draw nothing, which a hostile
/// or broken remote could send, become visible escapes.
pub fn printable(text: &str) -> String {
    crate::display::escaped(text)
}

/// How many machines are reached at once unless the operator says
/// otherwise: sized for SSH work, where each session mostly waits on the
/// network and the other side.
pub const DEFAULT_PARALLEL: usize = 32;
/// The most machines reached at once: each is a process and a thread here.
pub const MAX_PARALLEL: usize = 256;

/// Runs `work` for every machine, at most `parallel` at once; `done` hears
/// each answer (with the machine's index in `machines`) as it comes.
/// Answers come back in roster order.
pub fn each<T: Send>(
    machines: &[MachineEntry],
    parallel: usize,
    work: &(dyn Fn(&MachineEntry) -> T + Sync),
    done: &(dyn Fn(usize, &MachineEntry, &T) + Sync),
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<T>>> = Mutex::new(machines.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..parallel.clamp(1, machines.len().clamp(1, MAX_PARALLEL)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(machine) = machines.get(i) else { break };
                    let answer = work(machine);
                    done(i, machine, &answer);
                    if let Ok(mut answers) = answers.lock() {
                        answers[i] = Some(answer);
                    }
                }
            });
        }
    });
    answers.into_inner().unwrap_or_default().into_iter().flatten().collect()
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
        let heard = Mutex::new(Vec::new());
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
            &|i, m, answer| {
                assert_eq!(&m.name, answer);
                heard.lock().expect("heard").push(i);
            },
        );
        assert_eq!(answers, machines.iter().map(|m| m.name.clone()).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 4);
        let mut heard = heard.into_inner().expect("heard");
        heard.sort_unstable();
        assert_eq!(heard, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn the_real_transport_runs_the_roster_command_with_the_key_on_stdin_only() {
        let commands = std::sync::Arc::new(super::super::command::FakeCommands::default());
        let remote = CommandRemote { commands: commands.clone() };
        let m = MachineEntry { name: "exec-01".into(), roles: vec![], command: None };
        let _ = remote.join(&m, KeyKind::Communication, Some(b"kt1:com:SECRET\n"), Duration::from_secs(1));
        let _ = remote.join(&m, KeyKind::Communication, None, Duration::from_secs(1));
        let _ = remote.status(&m, Duration::from_secs(1));
        let ran = commands.ran.lock().expect("ran").clone();
        let line = |i: usize| ran[i].join(" ");
        assert_eq!(line(0), "ssh -o BatchMode=yes exec-01 keyturn rotation join communication --json");
        assert_eq!(line(1), "ssh -o BatchMode=yes exec-01 keyturn rotation join communication --json --reset");
        assert_eq!(line(2), "ssh -o BatchMode=yes exec-01 keyturn status --json");
        assert!(ran.iter().flatten().all(|a| !a.contains("SECRET")));
    }
}
