//! The evidence of each step, the checks a rotation's steps and a join
//! share: a restart is done when the component runs as a new process that
//! reports the new key; a credential when it reads under the new key; the
//! upgrade when no token is left under a retired key; source control when
//! each Git project is clean and level with its upstream.

use super::run::facts;
use super::state::{Change, Rotation, Step};
use crate::keys::Fingerprint;
use crate::project;
use crate::store::Store;
use crate::store::config::Component;
use crate::store::credentials::{CredentialName, CredentialState};
use crate::system::Edge;
use crate::system::git::Range;
use crate::system::{ProcessInfo, ServiceState, Wanted};
use std::path::Path;

pub(super) fn component<'s>(store: &'s Store, id: &str) -> Option<&'s Component> {
    store.config().components.all().into_iter().find(|(cid, _, _)| *cid == id).map(|(_, _, c)| c)
}

/// The processes a component runs as now: its service's main process (as
/// the service manager says), or its processes by executable path, or by
/// name and owner (and session on Windows). A failed lookup is an error,
/// never "not running".
pub fn running(component: &Component, edge: &Edge) -> Result<Vec<ProcessInfo>, String> {
    if let Some(service) = &component.service {
        return match edge.services.query(service).map_err(|e| e.to_string())? {
            // A service whose process has gone is not running, whatever the
            // manager says (Wine's keeps saying Running for a killed one).
            ServiceState::Running { pid } => Ok(edge.processes.get(pid).into_iter().collect()),
            ServiceState::Stopped => Ok(Vec::new()),
        };
    }
    let Some(process) = component.process.as_deref() else { return Ok(Vec::new()) };
    Ok(edge.processes.find(&Wanted::new(process, edge.processes.me().as_ref())))
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
pub fn unchanged_component(store: &Store, rotation: &Rotation, id: &str, edge: &Edge) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Skip(format!("[components.{id}] is not configured here"));
    };
    match running(component, edge) {
        Err(e) => return Change::Wait(format!("[components.{id}]: {e}")),
        Ok(now) if now.is_empty() => return Change::Done("not running, nothing to restart".into()),
        Ok(_) => {}
    }
    match check(component, rotation, edge) {
        None => Change::Done("the key was already active: not restarted".into()),
        Some(Ok(fp)) => Change::Done(format!("runs with the new key (reports {fp})")),
        Some(Err(_)) => restart_step(store, rotation, id, edge, &mut |_| {}),
    }
}

/// A restart step: runs the component's restart (or start) command, or has
/// the service manager restart its service, and waits for the evidence that
/// it came back with the new key.
pub fn restart_step(
    store: &Store,
    rotation: &Rotation,
    id: &str,
    edge: &Edge,
    progress: &mut dyn FnMut(&str),
) -> Change {
    let Some(component) = component(store, id) else {
        return Change::Wait(format!(
            "[components.{id}] is not configured: configure it, or skip this step with a reason"
        ));
    };
    // `None`: what ran before the import is unknown (its lookup failed then);
    // a process started before the rotation may then hold the old key.
    let before: Option<&Vec<ProcessInfo>> = rotation.before.get(id);
    let started_at = u64::try_from(rotation.started.as_second()).unwrap_or(0);
    let is_old = |p: &ProcessInfo| match before {
        Some(list) => list.iter().any(|b| b.same(p)),
        None => p.started <= started_at,
    };
    let known: &[ProcessInfo] = before.map(Vec::as_slice).unwrap_or_default();
    let note =
        if id == "execution" { " The Execution client may not come back by itself after an import." } else { "" };
    let deadline = edge.clock.now() + edge.wait;
    let (mut restarted, mut started) = (false, false);
    let mut command_note = String::new();
    let mut last_seen;
    loop {
        let now = match running(component, edge) {
            Ok(now) => now,
            Err(e) => return Change::Wait(format!("[components.{id}]: {e}")),
        };
        let old_alive: Vec<ProcessInfo> = now.iter().filter(|p| is_old(p)).cloned().collect();
        let fresh: Vec<ProcessInfo> = now.iter().filter(|p| !is_old(p)).cloned().collect();
        if known.is_empty() && now.is_empty() {
            return Change::Done("not running, nothing to restart".into());
        }
        if old_alive.is_empty() && !fresh.is_empty() {
            let what = if known.is_empty() {
                format!("started after the import (pid {})", pids(&fresh))
            } else {
                format!("restarted (pid {} -> {})", pids(known), pids(&fresh))
            };
            let watched = format!("instance {}", describe(&fresh));
            match check(component, rotation, edge) {
                None => return Change::Done(format!("{what}; {watched}")),
                Some(Ok(fp)) => return Change::Done(format!("{what}; reports {fp}; {watched}")),
                Some(Err(seen)) => last_seen = format!("{what} but {seen}; {watched}"),
            }
        } else if !old_alive.is_empty() {
            if !restarted {
                restarted = true;
                if let Some(command) = &component.restart {
                    progress(&format!("running {}", command.join(" ")));
                    match edge.commands.run(command, &[], edge.command_timeout) {
                        Ok(out) if out.success() => {}
                        Ok(out) => {
                            command_note = format!("; its restart command failed ({}): {}", exit(&out), out.tail())
                        }
                        Err(e) => command_note = format!("; its restart command could not run: {e}"),
                    }
                    continue;
                }
                if let Some(service) = &component.service {
                    progress(&format!("restarting service {service}"));
                    if let Err(e) = edge.services.restart(service, edge.wait) {
                        command_note = format!("; the service manager did not restart it: {e}");
                    }
                    continue;
                }
            }
            last_seen = format!(
                "still the old process (pid {}) after {} s: restart it{command_note}; instance {}",
                pids(&old_alive),
                edge.wait.as_secs(),
                describe(&old_alive)
            );
        } else {
            if !started {
                started = true;
                if let Some(command) = &component.start {
                    progress(&format!("running {}", command.join(" ")));
                    let _ = edge.commands.run(command, &[], edge.command_timeout);
                    continue;
                }
                if let Some(service) = &component.service {
                    progress(&format!("starting service {service}"));
                    if let Err(e) = edge.services.restart(service, edge.wait) {
                        command_note = format!(" The service manager did not start it: {e}");
                    }
                    continue;
                }
            }
            let start =
                component.start.as_ref().map(|c| format!(" (its start command: {})", c.join(" "))).unwrap_or_default();
            last_seen =
                format!("stopped (pid {}) and not running again: start it{start}.{note}{command_note}", pids(known));
        }
        if edge.clock.now() >= deadline {
            return Change::Wait(last_seen);
        }
        edge.clock.sleep(edge.poll);
    }
}

/// The instances in words, in one parenthesis (`(pid 11: client, ...)`).
fn describe(list: &[ProcessInfo]) -> String {
    format!("({})", list.iter().map(ProcessInfo::describe).collect::<Vec<_>>().join("; "))
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
fn check(component: &Component, rotation: &Rotation, edge: &Edge) -> Option<Result<Fingerprint, String>> {
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

pub(super) fn upgrade(store: &Store, progress: &mut dyn FnMut(&str)) -> Change {
    let roots = store.config().project_dirs(&store.home().dir);
    let result = store.lock("rotation upgrade").map_err(|e| e.to_string()).and_then(|_lock| {
        // Counts at every hundredth of the files, so a watcher sees it move.
        let ring = store.keyring_now().map_err(|e| e.to_string())?;
        project::upgrade(&roots, &ring, false, &mut |p| {
            let step = (p.files_total / 100).max(1);
            if p.files_done % step == 0 || p.files_done == p.files_total {
                let what = if p.pass == 1 { "checking" } else { "rewriting" };
                progress(&format!("upgrade, {what}: {}/{} files, {} tokens", p.files_done, p.files_total, p.tokens));
            }
        })
        .map_err(|e| e.to_string())
    });
    let reports = match result {
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
    let unreadable: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            r.unreadable
                .iter()
                .map(move |u| format!("{}:{} ({})", crate::display::path(&r.project.join(&u.file)), u.line, u.reason))
                .chain(r.skipped.iter().map(move |f| {
                    format!(
                        "{}: skipped ({}), holds {} tokens",
                        crate::display::path(&r.project.join(&f.file)),
                        f.reason,
                        f.tokens
                    )
                }))
        })
        .collect();
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

pub(super) fn source_control(store: &Store, edge: &Edge, latest: bool) -> Change {
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
fn git_state(dir: &Path, edge: &Edge, latest: bool) -> Result<(), String> {
    if edge.git.dirty(dir).map_err(|e| e.to_string())? {
        return Err(if latest {
            "uncommitted changes: commit or discard them, then pull"
        } else {
            "uncommitted changes: commit and push them"
        }
        .into());
    }
    if latest {
        edge.git.fetch(dir).map_err(|e| e.to_string())?;
    }
    let range = if latest { Range::Behind } else { Range::Unpushed };
    match edge.git.count(dir, range).map_err(|e| e.to_string())? {
        0 => Ok(()),
        n if latest => Err(format!("{n} commits behind the upstream: pull them")),
        n => Err(format!("{n} commits not pushed: push them")),
    }
}

pub(super) fn manual(store: &Store, step: &Step, edge: &Edge) -> Change {
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
    use std::sync::Arc;

    use super::*;
    use crate::keys::KeyKind;
    use crate::rotation::run::before;
    use crate::rotation::{Setup, Status, Variant, persist};
    use crate::system::ServiceError;
    use crate::system::command::{FakeCommands, Output};
    use crate::system::processes::FakeProcesses;
    use crate::system::services::FakeServices;
    use jiff::Timestamp;

    #[test]
    fn finds_a_fingerprint_in_check_output() {
        let fp: Fingerprint = "7F3A-91C0-55D2-0B8E".parse().expect("fp");
        assert_eq!(fingerprints_in("loaded key 7F3A-91C0-55D2-0B8E at 10:00\n"), vec![fp]);
        assert_eq!(fingerprints_in("pid 1234-5678"), vec![]);
    }

    fn store_with(config: &str) -> (tempfile::TempDir, Store) {
        let home = tempfile::tempdir().expect("tempdir");
        std::fs::write(home.path().join("keyturn.toml"), config).expect("config");
        let store =
            Store::open(crate::store::home::Home { dir: home.path().into(), machine_wide: false }).expect("store");
        (home, store)
    }

    fn fake_edge(processes: FakeProcesses, commands: FakeCommands, services: FakeServices) -> Edge {
        Edge {
            processes: Arc::new(processes),
            commands: Arc::new(commands),
            services: Arc::new(services),
            ..Edge::fake()
        }
    }

    fn reports(fp: Fingerprint) -> FakeCommands {
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
    }

    /// The restart evidence from the system edge's fakes: a new process
    /// whose check reports the new key is done, naming the instance; one
    /// that reports the old key waits, saying so.
    #[test]
    fn restart_evidence_through_the_fakes() {
        let (_home, store) = store_with("[components.execution]\nprocess = \"client\"\ncheck = [\"check\"]\n");
        let (old, new) = (Fingerprint([1; 8]), Fingerprint([2; 8]));
        let before = FakeProcesses::process("client", 10, 100);
        let after = FakeProcesses::process("client", 11, 200);
        let processes = FakeProcesses { running: vec![after.clone()], ..FakeProcesses::default() };
        let mut rotation = runner_rotation(old, new);
        rotation.before.insert("execution".into(), vec![before]);
        let edge = fake_edge(processes.clone(), reports(new), FakeServices::default());
        assert_eq!(
            restart_step(&store, &rotation, "execution", &edge, &mut |_| {}),
            Change::Done(format!("restarted (pid 10 -> 11); reports {new}; instance ({})", after.describe()))
        );
        // No wait: the one check answer is the evidence.
        let edge =
            Edge { wait: std::time::Duration::ZERO, ..fake_edge(processes, reports(old), FakeServices::default()) };
        let Change::Wait(evidence) = restart_step(&store, &rotation, "execution", &edge, &mut |_| {}) else {
            panic!("a component on the old key is not done")
        };
        assert!(evidence.starts_with(&format!("restarted (pid 10 -> 11) but reports the old key {old}")), "{evidence}");
    }

    /// Another user's process of the same name is not the component: the
    /// old one still running is said, and the stranger's restart proves
    /// nothing.
    #[test]
    fn another_owners_process_is_not_the_component() {
        let (_home, store) = store_with("[components.execution]\nprocess = \"client\"\n");
        let mine = FakeProcesses::process("client", 10, 100);
        let theirs = ProcessInfo { pid: 12, started: 300, owner: Some("uid 2000".into()), ..mine.clone() };
        let processes = FakeProcesses { running: vec![mine.clone(), theirs], ..FakeProcesses::default() };
        let mut rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        rotation.before.insert("execution".into(), vec![mine]);
        let edge = fake_edge(processes, FakeCommands::default(), FakeServices::default());
        let Change::Wait(evidence) = restart_step(&store, &rotation, "execution", &edge, &mut |_| {}) else {
            panic!("not done while the operator's own client still runs")
        };
        assert!(evidence.starts_with("still the old process (pid 10) after 60 s"), "{evidence}");
        assert!(!evidence.contains("pid 12"), "{evidence}");
    }

    /// A service whose lookup fails (not installed, access denied, no
    /// answer) is never "not running": the step waits with the reason.
    #[test]
    fn a_failed_service_lookup_never_checks_a_restart_off() {
        let (_home, store) = store_with("[components.scheduling]\nservice = \"sched\"\n");
        let rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        for answer in [
            None,
            Some(Err(ServiceError::AccessDenied { name: "sched".into() })),
            Some(Err(ServiceError::Failed { name: "sched".into(), reason: "RPC server unavailable".into() })),
        ] {
            let services = FakeServices::default();
            if let (Some(answer), Ok(mut list)) = (answer.clone(), services.services.lock()) {
                list.push(("sched".into(), answer));
            }
            let edge = fake_edge(FakeProcesses::default(), FakeCommands::default(), services);
            let change = restart_step(&store, &rotation, "scheduling", &edge, &mut |_| {});
            let Change::Wait(evidence) = &change else { panic!("{answer:?} gave {change:?}") };
            assert!(evidence.starts_with("[components.scheduling]: "), "{evidence}");
            let want = match answer {
                None => "\"sched\" is not installed here",
                Some(Err(ServiceError::AccessDenied { .. })) => "access to service \"sched\" was denied",
                _ => "RPC server unavailable",
            };
            assert!(evidence.contains(want), "{evidence}");
            assert!(matches!(unchanged_component(&store, &rotation, "scheduling", &edge), Change::Wait(_)));
        }
        assert!(!before(&store, &Edge::fake()).contains_key("scheduling"), "a failed lookup is no record");
    }

    /// A service with no restart command is restarted through the service
    /// manager, and the new pid it reports is the evidence.
    #[test]
    fn a_service_restarts_through_the_service_manager() {
        let (_home, store) = store_with("[components.scheduling]\nservice = \"sched\"\n");
        let old = FakeProcesses::process("sched.exe", 40, 100);
        let new = FakeProcesses::process("sched.exe", 41, 200);
        let services = FakeServices::default();
        if let (Ok(mut list), Ok(mut to)) = (services.services.lock(), services.restarts_to.lock()) {
            list.push(("sched".into(), Ok(ServiceState::Running { pid: 40 })));
            to.push(("sched".into(), 41));
        }
        let processes = FakeProcesses { running: vec![old.clone(), new], ..FakeProcesses::default() };
        let services = Arc::new(services);
        let edge = Edge {
            services: services.clone(),
            ..fake_edge(processes, FakeCommands::default(), FakeServices::default())
        };
        let mut rotation = runner_rotation(Fingerprint([1; 8]), Fingerprint([2; 8]));
        rotation.before = before(&store, &edge);
        assert_eq!(rotation.before.get("scheduling"), Some(&vec![old]));
        let change = restart_step(&store, &rotation, "scheduling", &edge, &mut |_| {});
        let Change::Done(evidence) = &change else { panic!("{change:?}") };
        assert!(evidence.starts_with("restarted (pid 40 -> 41); instance (pid 41: sched.exe"), "{evidence}");
        assert_eq!(services.restarted.lock().map(|r| r.clone()).unwrap_or_default(), vec!["sched".to_string()]);
    }

    /// A service the manager still calls running whose process has gone
    /// (Wine keeps a killed service Running) is not running.
    #[test]
    fn a_service_whose_process_has_gone_is_not_running() {
        let component = Component { service: Some("sched".into()), ..Component::default() };
        let services = FakeServices::default();
        if let Ok(mut list) = services.services.lock() {
            list.push(("sched".into(), Ok(ServiceState::Running { pid: 77 })));
        }
        let edge = fake_edge(FakeProcesses::default(), FakeCommands::default(), services);
        assert_eq!(running(&component, &edge), Ok(Vec::new()));
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
