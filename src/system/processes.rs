//! Finding running processes, with what tells one instance from another: the
//! process id and start time (together they tell a restarted process from
//! the one seen before), the owner, the session (Windows), the executable.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// One running process.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Start time, seconds since the Unix epoch.
    pub started: u64,
    /// Its name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Who runs it: `uid N` on Unix, the account's SID on Windows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Its Windows session (Remote Desktop and console users each have one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<u32>,
    /// Its executable, when the system tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exe: Option<PathBuf>,
}

impl ProcessInfo {
    /// The same instance: the same pid started at the same time.
    pub fn same(&self, other: &ProcessInfo) -> bool {
        self.pid == other.pid && self.started == other.started
    }

    /// The instance in words, for evidence: `pid 11: client, owner uid
    /// 1000, started 2026-11-25 14:18:44Z`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.name.is_empty() {
            parts.push(self.name.clone());
        }
        if let Some(owner) = &self.owner {
            parts.push(format!("owner {owner}"));
        }
        if let Some(session) = self.session {
            parts.push(format!("session {session}"));
        }
        if let Ok(at) = jiff::Timestamp::from_second(self.started as i64) {
            parts.push(format!("started {}", at.strftime("%Y-%m-%d %H:%M:%SZ")));
        }
        if parts.is_empty() { format!("pid {}", self.pid) } else { format!("pid {}: {}", self.pid, parts.join(", ")) }
    }
}

/// Which processes are a component's: those of its executable when it is
/// named by path, else those of its name run by the same owner (and on
/// Windows in the same session) as `me`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    /// By the executable's full path, whoever runs it.
    Path(PathBuf),
    /// By name, run by `owner` in `session`.
    Name { name: String, owner: Option<String>, session: Option<u32> },
}

impl Wanted {
    /// A component's `process` setting, for processes like `me` (keyturn
    /// itself: its owner and session).
    pub fn new(process: &str, me: Option<&ProcessInfo>) -> Wanted {
        let path = Path::new(process);
        if path.is_absolute() {
            return Wanted::Path(path.to_path_buf());
        }
        Wanted::Name {
            name: process.to_string(),
            owner: me.and_then(|m| m.owner.clone()),
            session: me.and_then(|m| m.session),
        }
    }

    /// The name the system lists it under.
    pub fn name(&self) -> String {
        match self {
            Wanted::Path(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            Wanted::Name { name, .. } => name.clone(),
        }
    }

    /// Whether `p` is one of them.
    pub fn matches(&self, p: &ProcessInfo) -> bool {
        match self {
            Wanted::Path(path) => p.exe.as_deref().is_some_and(|exe| same_file(exe, path)),
            Wanted::Name { name, owner, session } => {
                let named = p.name == *name || p.exe.as_deref().and_then(Path::file_name) == Some(OsStr::new(name));
                named
                    && (owner.is_none() || p.owner == *owner)
                    && (session.is_none() || p.session.is_none() || p.session == *session)
            }
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    if cfg!(windows) {
        a.as_os_str().to_string_lossy().eq_ignore_ascii_case(&b.as_os_str().to_string_lossy())
    } else {
        a == b
    }
}

/// Looks up processes.
pub trait Processes: Send + Sync {
    /// The processes `wanted` names, by pid.
    fn find(&self, wanted: &Wanted) -> Vec<ProcessInfo>;
    /// The process with id `pid`, if it runs.
    fn get(&self, pid: u32) -> Option<ProcessInfo>;
    /// keyturn's own process (its owner and session).
    fn me(&self) -> Option<ProcessInfo> {
        self.get(std::process::id())
    }
}

/// The operating system's process table, through `sysinfo`.
#[derive(Debug, Default)]
pub struct SystemProcesses;

fn info(p: &sysinfo::Process) -> ProcessInfo {
    ProcessInfo {
        pid: p.pid().as_u32(),
        started: p.start_time(),
        name: p.name().to_string_lossy().into_owned(),
        owner: p.user_id().map(owner),
        session: session(p),
        exe: p.exe().map(Path::to_path_buf),
    }
}

#[cfg(windows)]
fn owner(uid: &sysinfo::Uid) -> String {
    (**uid).to_string()
}

#[cfg(not(windows))]
fn owner(uid: &sysinfo::Uid) -> String {
    format!("uid {}", **uid)
}

#[cfg(windows)]
fn session(p: &sysinfo::Process) -> Option<u32> {
    p.session_id().map(|s| s.as_u32())
}

#[cfg(not(windows))]
fn session(_p: &sysinfo::Process) -> Option<u32> {
    None
}

fn refresh() -> sysinfo::ProcessRefreshKind {
    use sysinfo::{ProcessRefreshKind, UpdateKind};
    ProcessRefreshKind::nothing().with_exe(UpdateKind::OnlyIfNotSet).with_user(UpdateKind::OnlyIfNotSet)
}

impl Processes for SystemProcesses {
    fn find(&self, wanted: &Wanted) -> Vec<ProcessInfo> {
        use sysinfo::{ProcessesToUpdate, System};
        let mut system = System::new();
        system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh());
        let mut found: Vec<ProcessInfo> = system
            .processes()
            .values()
            // A zombie has exited: it is no longer the running component.
            .filter(|p| p.status() != sysinfo::ProcessStatus::Zombie)
            .map(info)
            .filter(|p| wanted.matches(p))
            .collect();
        found.sort_by_key(|p| p.pid);
        found
    }

    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        use sysinfo::{Pid, ProcessesToUpdate, System};
        let mut system = System::new();
        let pid = Pid::from_u32(pid);
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, refresh());
        system.process(pid).filter(|p| p.status() != sysinfo::ProcessStatus::Zombie).map(info)
    }
}

/// A process table for tests.
#[derive(Debug, Clone)]
pub struct FakeProcesses {
    /// The processes running.
    pub running: Vec<ProcessInfo>,
    /// keyturn's own process.
    pub me: ProcessInfo,
}

impl Default for FakeProcesses {
    fn default() -> FakeProcesses {
        FakeProcesses { running: Vec::new(), me: FakeProcesses::process("keyturn", 1, 0) }
    }
}

/// Where the fake processes' executables are: an absolute path on each
/// platform, so a component named by path matches them.
const FAKE_DIR: &str = if cfg!(windows) { r"C:\opt\fake" } else { "/opt/fake" };

impl FakeProcesses {
    /// A process of `name` run by the same owner as the default `me`.
    pub fn process(name: &str, pid: u32, started: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            started,
            name: name.into(),
            owner: Some("uid 1000".into()),
            session: None,
            exe: Some(PathBuf::from(FAKE_DIR).join(name)),
        }
    }
}

impl Processes for FakeProcesses {
    fn find(&self, wanted: &Wanted) -> Vec<ProcessInfo> {
        self.running.iter().filter(|p| wanted.matches(p)).cloned().collect()
    }

    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        self.running.iter().find(|p| p.pid == pid).cloned()
    }

    fn me(&self) -> Option<ProcessInfo> {
        Some(self.me.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child process that lives until killed: this test binary itself,
    /// asked to run an ignored test that waits.
    fn long_lived_child() -> std::process::Child {
        let exe = std::env::current_exe().expect("test binary");
        std::process::Command::new(exe)
            .args(["--ignored", "--exact", "system::processes::tests::wait_to_be_killed", "--nocapture"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("child")
    }

    #[test]
    #[ignore = "the child process of finds_a_real_process"]
    fn wait_to_be_killed() {
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    #[test]
    fn finds_a_real_process() {
        let mut child = long_lived_child();
        let me = SystemProcesses.me().expect("keyturn's own process");
        std::thread::sleep(std::time::Duration::from_millis(300));
        let exe = std::env::current_exe().expect("test binary");
        let name = exe.file_name().expect("name").to_string_lossy().into_owned();
        let by_name = SystemProcesses.find(&Wanted::new(&name, Some(&me)));
        let by_path = SystemProcesses.find(&Wanted::new(&exe.display().to_string(), Some(&me)));
        let stranger = Wanted::Name { name: name.clone(), owner: Some("someone else".into()), session: None };
        let by_stranger = SystemProcesses.find(&stranger);
        let _ = child.kill();
        let _ = child.wait();
        for found in [&by_name, &by_path] {
            assert!(found.iter().any(|p| p.pid == child.id() && p.started > 0 && p.owner == me.owner), "{found:?}");
        }
        assert!(by_stranger.is_empty(), "another owner's processes are not the component's: {by_stranger:?}");
        assert!(me.owner.is_some(), "the owner is known: {me:?}");
        assert!(SystemProcesses.find(&Wanted::new("no-such-process-keyturn", Some(&me))).is_empty());
    }

    #[test]
    fn matches_by_name_and_owner_or_by_path() {
        let me = FakeProcesses::process("keyturn", 1, 0);
        let mine = FakeProcesses::process("client", 10, 100);
        let theirs = ProcessInfo { owner: Some("uid 1001".into()), pid: 11, ..mine.clone() };
        let other_session = ProcessInfo { session: Some(2), pid: 12, ..mine.clone() };
        let wanted = Wanted::new("client", Some(&ProcessInfo { session: Some(1), ..me.clone() }));
        assert!(wanted.matches(&mine));
        assert!(!wanted.matches(&theirs), "another user's process of the same name");
        assert!(!wanted.matches(&other_session), "the same user's process in another session");
        let by_path = Wanted::new(&format!("{FAKE_DIR}{}client", std::path::MAIN_SEPARATOR), Some(&me));
        assert!(by_path.matches(&mine) && by_path.matches(&theirs));
        assert!(!by_path.matches(&ProcessInfo {
            exe: Some(std::path::Path::new(FAKE_DIR).join("elsewhere").join("client")),
            ..mine.clone()
        }));
        assert_eq!(
            mine.describe(),
            "pid 10: client, owner uid 1000, started 1970-01-01 00:01:40Z",
            "the evidence names the instance"
        );
    }
}
