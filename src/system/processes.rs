//! Finding running processes by name, with their process id and start time
//! (together they tell a restarted process from the one seen before).

use std::ffi::OsStr;

/// One running process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    /// Process id.
    pub pid: u32,
    /// Start time, seconds since the Unix epoch.
    pub started: u64,
}

/// Looks up processes by name.
pub trait Processes: Send + Sync {
    /// The processes whose name (or executable's file name) is `name`.
    fn find(&self, name: &str) -> Vec<ProcessInfo>;
    /// The process with id `pid`, if it runs.
    fn get(&self, pid: u32) -> Option<ProcessInfo>;
}

/// The operating system's process table, through `sysinfo`.
#[derive(Debug, Default)]
pub struct SystemProcesses;

impl Processes for SystemProcesses {
    fn find(&self, name: &str) -> Vec<ProcessInfo> {
        use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
        let mut system = System::new();
        system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_exe(UpdateKind::OnlyIfNotSet),
        );
        let mut found: Vec<ProcessInfo> = system
            .processes()
            .values()
            // A zombie has exited: it is no longer the running component.
            .filter(|p| p.status() != sysinfo::ProcessStatus::Zombie)
            .filter(|p| matches(name, p.name(), p.exe().and_then(|e| e.file_name())))
            .map(|p| ProcessInfo { pid: p.pid().as_u32(), started: p.start_time() })
            .collect();
        found.sort_by_key(|p| p.pid);
        found
    }

    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
        let mut system = System::new();
        let pid = Pid::from_u32(pid);
        system.refresh_processes_specifics(ProcessesToUpdate::Some(&[pid]), true, ProcessRefreshKind::nothing());
        system
            .process(pid)
            .filter(|p| p.status() != sysinfo::ProcessStatus::Zombie)
            .map(|p| ProcessInfo { pid: p.pid().as_u32(), started: p.start_time() })
    }
}

/// Linux shortens a process's name to 15 bytes, so the executable's file
/// name is compared too.
fn matches(name: &str, process_name: &OsStr, exe: Option<&OsStr>) -> bool {
    process_name == name || exe.is_some_and(|e| e == name)
}

/// A process table for tests.
#[derive(Debug, Default, Clone)]
pub struct FakeProcesses {
    /// Name and process.
    pub running: Vec<(String, ProcessInfo)>,
}

impl Processes for FakeProcesses {
    fn find(&self, name: &str) -> Vec<ProcessInfo> {
        self.running.iter().filter(|(n, _)| n == name).map(|(_, p)| *p).collect()
    }

    fn get(&self, pid: u32) -> Option<ProcessInfo> {
        self.running.iter().map(|(_, p)| *p).find(|p| p.pid == pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_real_process() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().expect("sleep");
        let found = SystemProcesses.find("sleep");
        let _ = child.kill();
        let _ = child.wait();
        assert!(found.iter().any(|p| p.pid == child.id() && p.started > 0), "{found:?}");
        assert!(SystemProcesses.find("no-such-process-keyturn").is_empty());
    }
}
