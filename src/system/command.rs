//! Running the commands `keyturn.toml` names (restart, start, check, step
//! commands, git), with a timeout, capturing their output. No key is ever
//! passed to one: not in its arguments, not in its environment.

use std::io::{self, Read, Seek, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How a command ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// Its exit code; `None` when killed (or timed out).
    pub code: Option<i32>,
    /// What it printed (at most the last 16 KiB of each stream).
    pub stdout: String,
    pub stderr: String,
    /// Whether it was killed for taking too long.
    pub timed_out: bool,
}

impl Output {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The end of what it printed, in one line, for evidence.
    pub fn tail(&self) -> String {
        let text = format!("{} {}", self.stdout.trim(), self.stderr.trim());
        let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let chars: Vec<char> = one_line.chars().collect();
        let start = chars.len().saturating_sub(200);
        crate::display::escaped(&chars[start..].iter().collect::<String>())
    }
}

/// Runs commands. Shared by threads that reach several machines at once.
pub trait Commands: Send + Sync {
    /// Runs `argv` with `env` added, no standard input, for at most `timeout`.
    fn run(&self, argv: &[String], env: &[(&str, &str)], timeout: Duration) -> io::Result<Output>;
    /// Runs `argv` with `input` on its standard input (the only way a key
    /// reaches another process), for at most `timeout`.
    fn run_with_input(&self, argv: &[String], input: &[u8], timeout: Duration) -> io::Result<Output>;
}

/// Real processes.
#[derive(Debug, Default)]
pub struct SystemCommands;

const KEEP: u64 = 64 * 1024;

fn read_tail(mut file: std::fs::File) -> String {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(io::SeekFrom::Start(len.saturating_sub(KEEP)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

impl SystemCommands {
    fn spawn(
        &self,
        argv: &[String],
        env: &[(&str, &str)],
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> io::Result<Output> {
        let (program, args) = argv.split_first().ok_or_else(|| io::Error::other("the command is empty"))?;
        // Files, not pipes: a command that leaves a process running (a
        // restart that starts a service) cannot block keyturn on a pipe.
        let out = tempfile::tempfile()?;
        let err = tempfile::tempfile()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().copied())
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(out.try_clone()?)
            .stderr(err.try_clone()?);
        // Its own process group, so a timeout ends everything it started.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn()?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A writer thread, so a command that never reads cannot block
            // keyturn; the pipe closes when it is done.
            let input = zeroize::Zeroizing::new(input.to_vec());
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let deadline = Instant::now() + timeout;
        let (code, timed_out) = loop {
            if let Some(status) = child.try_wait()? {
                break (status.code(), false);
            }
            if Instant::now() >= deadline {
                kill_group(&mut child);
                let _ = child.wait();
                break (None, true);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Ok(Output { code, stdout: read_tail(out), stderr: read_tail(err), timed_out })
    }
}

#[cfg(unix)]
fn kill_group(child: &mut std::process::Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

#[cfg(not(unix))]
fn kill_group(child: &mut std::process::Child) {
    let _ = child.kill();
}

impl Commands for SystemCommands {
    fn run(&self, argv: &[String], env: &[(&str, &str)], timeout: Duration) -> io::Result<Output> {
        self.spawn(argv, env, None, timeout)
    }

    fn run_with_input(&self, argv: &[String], input: &[u8], timeout: Duration) -> io::Result<Output> {
        self.spawn(argv, &[], Some(input), timeout)
    }
}

/// Commands for tests: each answer in turn, recording what was run.
#[derive(Debug, Default)]
pub struct FakeCommands {
    /// Commands run so far.
    pub ran: std::sync::Mutex<Vec<Vec<String>>>,
    /// The answers, first first; when empty, every command exits 0 silently.
    pub answers: std::sync::Mutex<std::collections::VecDeque<Output>>,
}

impl Commands for FakeCommands {
    fn run(&self, argv: &[String], _env: &[(&str, &str)], _timeout: Duration) -> io::Result<Output> {
        if let Ok(mut ran) = self.ran.lock() {
            ran.push(argv.to_vec());
        }
        let answer = self.answers.lock().ok().and_then(|mut a| a.pop_front());
        Ok(answer.unwrap_or(Output { code: Some(0), stdout: String::new(), stderr: String::new(), timed_out: false }))
    }

    fn run_with_input(&self, argv: &[String], _input: &[u8], timeout: Duration) -> io::Result<Output> {
        self.run(argv, &[], timeout)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_times_out() {
        let argv = |s: &[&str]| s.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let out = SystemCommands
            .run(&argv(&["sh", "-c", "echo hi; echo oops >&2; exit 3"]), &[], Duration::from_secs(5))
            .expect("runs");
        assert_eq!((out.code, out.stdout.trim(), out.stderr.trim(), out.timed_out), (Some(3), "hi", "oops", false));
        let slow = SystemCommands.run(&argv(&["sleep", "5"]), &[], Duration::from_millis(100)).expect("runs");
        assert!(slow.timed_out && !slow.success());
        let env =
            SystemCommands.run(&argv(&["sh", "-c", "echo $X"]), &[("X", "y")], Duration::from_secs(5)).expect("runs");
        assert_eq!(env.stdout.trim(), "y");
    }
}
