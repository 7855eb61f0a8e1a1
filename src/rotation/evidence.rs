//! The evidence of each step: the checks a rotation's steps and a join
//! share. A restart is done when the component runs as a new process that
//! reports the new key; a credential when it reads under the new key; the
//! upgrade when no token is left under a retired key; source control when
//! each Git project is clean and level with its upstream.

use std::path::Path;
use std::time::Instant;

use super::run::{Edge, facts};
use super::state::{Change, Rotation, Step};
use crate::keys::Fingerprint;
use crate::project;
use crate::store::Store;
use crate::store::config::Component;
use crate::store::credentials::{CredentialName, CredentialState};
use crate::system::ProcessInfo;

pub(super) fn component<'s>(store: &'s Store, id: &str) -> Option<&'s Component> {
    store.config().components.all().into_iter().find(|(cid, _, _)| *cid == id).map(|(_, _, c)| c)
}

/// The processes a component runs as now: its service's main process (as
/// the service manager says), or the processes of its name.
pub fn running(component: &Component, edge: &Edge<'_>) -> Vec<ProcessInfo> {
    if let Some(service) = &component.service {
        return service_pid(service, edge).and_then(|pid| edge.processes.get(pid)).into_iter().collect();
    }
    component.process.as_deref().map(|name| edge.processes.find(name)).unwrap_or_default()
}

fn service_pid(service: &str, edge: &Edge<'_>) -> Option<u32> {
    let argv: Vec<String> = if cfg!(windows) {
        let name = service.replace('\'', "''");
        ["powershell", "-NoProfile", "-NonInteractive", "-Command"]
            .map(String::from)
            .into_iter()
            .chain([format!(
                "(Get-CimInstance Win32_Service -Filter \"Name='{name}' OR DisplayName='{name}'\").ProcessId"
            )])
            .collect()
    } else {
        ["systemctl", "show", "-p", "MainPID", "--value", service].map(String::from).to_vec()
    };
    let out = edge.commands.run(&argv, &[], edge.command_timeout).ok()?;
    out.stdout.trim().parse().ok().filter(|pid| *pid != 0)
}

fn pids(list: &[ProcessInfo]) -> String {
    list.iter().map(|p| p.pid.to_string()).collect::<Vec<_>>().join(", ")
}

/// The fingerprint-shaped words in `text`.
fn fingerprints_in(text: &str) -> Vec<Fingerprint> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|w| w.len() == 19)
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// A component on a machine whose key did not change (a join run again):
/// left alone when it runs with the new key, restarted when its `check`
/// shows it does not.
pub fn unchanged_component(store: &Store, rotation: &Rotation, id: &str, edge: &Edge<'_>) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Skip(format!("[components.{id}] is not configured here"));
    };
    if running(component, edge).is_empty() {
        return Change::Done("not running, nothing to restart".into());
    }
    match check(component, rotation, edge) {
        None => Change::Done("the key was already active: not restarted".into()),
        Some(Ok(fp)) => Change::Done(format!("runs with the new key (reports {fp})")),
        Some(Err(_)) => restart_step(store, rotation, id, edge, &mut |_| {}),
    }
}

/// A restart step: runs the component's restart (or start) command and
/// waits for the evidence that it came back with the new key.
pub fn restart_step(
    store: &Store,
    rotation: &Rotation,
    id: &str,
    edge: &Edge<'_>,
    progress: &mut dyn FnMut(&str),
) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Wait(format!(
            "[components.{id}] is not configured: configure it, or skip this step with a reason"
        ));
    };
    let before: Vec<ProcessInfo> = rotation.before.get(id).cloned().unwrap_or_default();
    let note =
        if id == "execution" { " The Execution client may not come back by itself after an import." } else { "" };
    let deadline = Instant::now() + edge.wait;
    let (mut restarted, mut started) = (false, false);
    let mut command_note = String::new();
    let mut last_seen;
    loop {
        let now = running(component, edge);
        let old_alive: Vec<ProcessInfo> = now.iter().filter(|p| before.contains(p)).copied().collect();
        let fresh: Vec<ProcessInfo> = now.iter().filter(|p| !before.contains(p)).copied().collect();
        if before.is_empty() && now.is_empty() {
            return Change::Done("not running, nothing to restart".into());
        }
        if old_alive.is_empty() && !fresh.is_empty() {
            let what = if before.is_empty() {
                format!("started after the import (pid {})", pids(&fresh))
            } else {
                format!("restarted (pid {} -> {})", pids(&before), pids(&fresh))
            };
            match check(component, rotation, edge) {
                None => return Change::Done(what),
                Some(Ok(fp)) => return Change::Done(format!("{what}; reports {fp}")),
                Some(Err(seen)) => last_seen = format!("{what} but {seen}"),
            }
        } else if !old_alive.is_empty() {
            if !restarted && let Some(command) = &component.restart {
                restarted = true;
                progress(&format!("running {}", command.join(" ")));
                match edge.commands.run(command, &[], edge.command_timeout) {
                    Ok(out) if out.success() => {}
                    Ok(out) => command_note = format!("; its restart command failed ({}): {}", exit(&out), out.tail()),
                    Err(e) => command_note = format!("; its restart command could not run: {e}"),
                }
                continue;
            }
            last_seen = format!(
                "still the old process (pid {}) after {} s: restart it{command_note}",
                pids(&old_alive),
                edge.wait.as_secs()
            );
        } else {
            if !started && let Some(command) = &component.start {
                started = true;
                progress(&format!("running {}", command.join(" ")));
                let _ = edge.commands.run(command, &[], edge.command_timeout);
                continue;
            }
            let start =
                component.start.as_ref().map(|c| format!(" (its start command: {})", c.join(" "))).unwrap_or_default();
            last_seen = format!("stopped (pid {}) and not running again: start it{start}.{note}", pids(&before));
        }
        if Instant::now() >= deadline {
            return Change::Wait(last_seen);
        }
        std::thread::sleep(edge.poll);
    }
}

fn exit(out: &crate::system::Output) -> String {
    match (out.timed_out, out.code) {
        (true, _) => "timed out".into(),
        (false, Some(code)) => format!("exit {code}"),
        (false, None) => "killed".into(),
    }
}

/// Runs the component's `check` command: `None` if it has none, else the
/// new fingerprint it reports or what is wrong.
fn check(component: &Component, rotation: &Rotation, edge: &Edge<'_>) -> Option<Result<Fingerprint, String>> {
    let command = component.check.as_ref()?;
    Some(match edge.commands.run(command, &[], edge.command_timeout) {
        Err(e) => Err(format!("its check command could not run: {e}")),
        Ok(out) if !out.success() => Err(format!("its check command failed ({}): {}", exit(&out), out.tail())),
        Ok(out) => {
            // A component may report several keys (one per kind): the new
            // one must be among them.
            let reported = fingerprints_in(&out.stdout);
            if reported.contains(&rotation.new_fingerprint) {
                Ok(rotation.new_fingerprint)
            } else if reported.contains(&rotation.old_fingerprint) {
                Err(format!("reports the old key {}", rotation.old_fingerprint))
            } else if let Some(other) = reported.first() {
                Err(format!("reports another key {other}, not {}", rotation.new_fingerprint))
            } else {
                Err("its check command printed no fingerprint".into())
            }
        }
    })
}

pub(super) fn credential(store: &Store, name: CredentialName) -> Change {
    let ring = store.keyring();
    match store.credentials().entries.iter().find(|c| c.name == name).map(|c| c.state(&ring)) {
        Some(CredentialState::Current) => {
            Change::Done(format!("the {name} credential reads under the new key {}", ring.active().id()))
        }
        Some(CredentialState::Retired(fp)) => Change::Wait(format!(
            "the {name} credential reads only under retired key {fp}: re-enter it (keyturn credentials set {name})"
        )),
        Some(CredentialState::Inaccessible(e)) => Change::Wait(format!(
            "the {name} credential cannot be read ({e}): re-enter it (keyturn credentials set {name})"
        )),
        None => Change::Wait(format!(
            "no {name} credential is stored here: enter it (keyturn credentials set {name}), or skip this step with a reason"
        )),
    }
}

/// Upgrades the registered projects under the store's lock (`doing` says
/// what for, in the lock's note); `progress` hears counts at every
/// hundredth of the files, so a watcher sees it move.
pub fn upgrade_projects(
    store: &Store,
    doing: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<project::ProjectReport>, String> {
    let roots = store.config().project_dirs(&store.home().dir);
    store.lock(doing).map_err(|e| e.to_string()).and_then(|_lock| {
        let ring = store.keyring_now().map_err(|e| e.to_string())?;
        project::upgrade(&roots, &ring, false, &mut |p| {
            let step = (p.files_total / 100).max(1);
            if p.files_done % step == 0 || p.files_done == p.files_total {
                let what = if p.pass == 1 { "checking" } else { "rewriting" };
                progress(&format!("upgrade, {what}: {}/{} files, {} tokens", p.files_done, p.files_total, p.tokens));
            }
        })
        .map_err(|e| e.to_string())
    })
}

/// The tokens the upgrade could not decrypt, as `file:line` (with the
/// reason when `why`), and the files it skipped that hold tokens.
pub fn unreadable(reports: &[project::ProjectReport], why: bool) -> Vec<String> {
    reports
        .iter()
        .flat_map(|r| {
            let path = move |file: &Path| crate::display::path(&r.project.join(file));
            r.unreadable
                .iter()
                .map(move |u| {
                    let at = format!("{}:{}", path(&u.file), u.line);
                    if why { format!("{at} ({})", u.reason) } else { at }
                })
                .chain(r.skipped.iter().map(move |f| {
                    if why {
                        format!("{}: skipped ({}), holds {} tokens", path(&f.file), f.reason, f.tokens)
                    } else {
                        format!("{} (skipped: {}, {} tokens)", path(&f.file), f.reason, f.tokens)
                    }
                }))
        })
        .collect()
}

pub(super) fn upgrade(store: &Store, progress: &mut dyn FnMut(&str)) -> Change {
    let reports = match upgrade_projects(store, "rotation upgrade", progress) {
        Ok(reports) => reports,
        Err(e) => return Change::Fail(format!("the upgrade stopped: {e}")),
    };
    let sum = |f: fn(&project::ProjectReport) -> usize| reports.iter().map(f).sum::<usize>();
    // The state reached, the same whether or not a crash cut an earlier run.
    let summary = format!(
        "{} tokens in {} projects are under the new key",
        sum(|r| r.upgraded) + sum(|r| r.current),
        reports.len()
    );
    progress(&format!("{} tokens re-encrypted in {} files", sum(|r| r.upgraded), sum(|r| r.files_rewritten)));
    let unreadable = unreadable(&reports, true);
    if unreadable.is_empty() {
        return Change::Done(summary);
    }
    let shown: Vec<&str> = unreadable.iter().take(10).map(String::as_str).collect();
    Change::Wait(format!(
        "{summary}; {} cannot be decrypted: re-record those password steps and re-enter those connection strings, then run again, or skip with a reason: {}",
        unreadable.len(),
        shown.join("; ")
    ))
}

pub(super) fn source_control(store: &Store, edge: &Edge<'_>, latest: bool) -> Change {
    let facts = facts(store);
    let non_git = facts.projects.iter().filter(|p| !facts.git_projects.contains(p)).count();
    let mut problems = Vec::new();
    for dir in &facts.git_projects {
        if let Err(problem) = git_state(dir, edge, latest) {
            problems.push(format!("{}: {problem}", dir.display()));
        }
    }
    let verb = if latest { "got the latest version" } else { "pushed" };
    if !problems.is_empty() {
        return Change::Wait(problems.join("; "));
    }
    if non_git > 0 {
        return Change::Wait(format!(
            "{non_git} projects are not Git work trees: confirm when they are {verb} (keyturn rotation confirm)"
        ));
    }
    Change::Done(format!("git: {} projects clean and {verb}", facts.git_projects.len()))
}

/// `Ok` when the work tree is clean and level with its upstream (after a
/// fetch, when `latest`).
/// Runs git with `args` in `dir`, never prompting: what it printed, or what
/// went wrong.
pub fn git(dir: &Path, edge: &Edge<'_>, args: &[&str]) -> Result<String, String> {
    let argv: Vec<String> = ["git", "-C"]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .chain(args.iter().map(|s| s.to_string()))
        .collect();
    let out = edge
        .commands
        .run(&argv, &[("GIT_TERMINAL_PROMPT", "0")], edge.command_timeout)
        .map_err(|e| format!("git could not run: {e}"))?;
    if out.success() { Ok(out.stdout) } else { Err(format!("git {} failed: {}", args.join(" "), out.tail())) }
}

fn git_state(dir: &Path, edge: &Edge<'_>, latest: bool) -> Result<(), String> {
    let git = |args: &[&str]| git(dir, edge, args);
    if !git(&["status", "--porcelain"])?.trim().is_empty() {
        return Err(if latest {
            "uncommitted changes: commit or discard them, then pull"
        } else {
            "uncommitted changes: commit and push them"
        }
        .into());
    }
    if latest {
        git(&["fetch", "--quiet"])?;
    }
    let range = if latest { "HEAD..@{u}" } else { "@{u}..HEAD" };
    let count = git(&["rev-list", "--count", range])
        .map_err(|_| "no upstream branch to compare with: set one, or confirm by hand".to_string())?;
    match count.trim().parse::<u64>() {
        Ok(0) => Ok(()),
        Ok(n) if latest => Err(format!("{n} commits behind the upstream: pull them")),
        Ok(n) => Err(format!("{n} commits not pushed: push them")),
        Err(_) => Err("git printed no commit count".into()),
    }
}

pub(super) fn manual(store: &Store, step: &Step, edge: &Edge<'_>) -> Change {
    let Some(config) = store.config().steps.get(&step.id) else {
        return Change::Wait(format!("confirm when done: keyturn rotation confirm {}", step.id));
    };
    match edge.commands.run(&config.command, &[], edge.command_timeout) {
        Ok(out) if out.success() => Change::Done(format!("`{}` exited 0: {}", config.command.join(" "), out.tail())),
        Ok(out) => Change::Fail(format!("`{}` failed ({}): {}", config.command.join(" "), exit(&out), out.tail())),
        Err(e) => Change::Fail(format!("`{}` could not run: {e}", config.command.join(" "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyKind;
    use crate::rotation::persist;
    use crate::rotation::{Setup, Status, Variant};
    use jiff::Timestamp;
    use std::time::Duration;

    #[test]
    fn finds_a_fingerprint_in_check_output() {
        let fp: Fingerprint = "7F3A-91C0-55D2-0B8E".parse().expect("fp");
        assert_eq!(fingerprints_in("loaded key 7F3A-91C0-55D2-0B8E at 10:00\n"), vec![fp]);
        assert_eq!(fingerprints_in("pid 1234-5678"), vec![]);
    }

    /// The restart evidence from the system edge's fakes: a new process
    /// whose check reports the new key is done; one that reports the old
    /// key waits, saying so.
    #[test]
    fn restart_evidence_through_the_fakes() {
        use crate::system::ProcessInfo;
        use crate::system::command::{FakeCommands, Output};
        use crate::system::processes::FakeProcesses;
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            home.path().join("keyturn.toml"),
            "[components.execution]\nprocess = \"client\"\ncheck = [\"check\"]\n",
        )
        .expect("config");
        let store =
            Store::open(crate::store::home::Home { dir: home.path().into(), machine_wide: false }).expect("store");
        let (old, new) = (Fingerprint([1; 8]), Fingerprint([2; 8]));
        let before = ProcessInfo { pid: 10, started: 100 };
        let after = ProcessInfo { pid: 11, started: 200 };
        let processes = FakeProcesses { running: vec![("client".into(), after)] };
        let mut rotation = runner_rotation(old, new);
        rotation.before.insert("execution".into(), vec![before]);
        let reports = |fp: Fingerprint| {
            let commands = FakeCommands::default();
            if let Ok(mut answers) = commands.answers.lock() {
                answers.push_back(Output {
                    code: Some(0),
                    stdout: format!("loaded {fp}\n"),
                    stderr: String::new(),
                    timed_out: false,
                });
            }
            commands
        };
        fn edge<'a>(commands: &'a FakeCommands, processes: &'a FakeProcesses) -> Edge<'a> {
            Edge {
                processes,
                commands,
                wait: Duration::ZERO,
                poll: Duration::from_millis(1),
                command_timeout: Duration::from_secs(1),
                machine_timeout: Duration::from_secs(1),
                remote: &crate::system::remote::SYSTEM,
                parallel: 1,
            }
        }
        let good = reports(new);
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge(&good, &processes), &mut |_| {}),
            Change::Done(format!("restarted (pid 10 -> 11); reports {new}"))
        );
        let stale = reports(old);
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge(&stale, &processes), &mut |_| {}),
            Change::Wait(format!("restarted (pid 10 -> 11) but reports the old key {old}"))
        );
    }

    fn runner_rotation(old: Fingerprint, new: Fingerprint) -> Rotation {
        Rotation {
            format: persist::FORMAT,
            revision: 0,
            id: "test".into(),
            kind: KeyKind::Communication,
            setup: Setup::Single,
            variant: Variant::Import,
            old_fingerprint: old,
            new_fingerprint: new,
            rollback: false,
            started: Timestamp::UNIX_EPOCH,
            operator: "op".into(),
            machine: "m".into(),
            status: Status::Open,
            before: std::collections::BTreeMap::new(),
            steps: Vec::new(),
            history: Vec::new(),
            window: None,
        }
    }
}
