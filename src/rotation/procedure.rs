//! The original procedures (`shared/seeds/`) as data: for each key kind,
//! setup and variant, the steps in the original's order, each with its kind,
//! the seed steps it carries out (after the numbering fixes) and whether it
//! applies on this machine.
//!
//! Numbering fixes: the encryption procedure's "Step 10" (the key to import
//! on the other machines) is the copy step, 12; the communication
//! single-machine list numbers two steps "1." and runs 1 to 7; the
//! communication multi-machine "repeat steps 8. to 10." for a separate project
//! machine means the whole per-machine block, 7 to 11.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::state::{Step, StepState};
use crate::keys::KeyKind;
use crate::store::config::Role;
use crate::store::credentials::CredentialName;

/// One machine or many.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setup {
    /// Everything on this machine.
    Single,
    /// This machine first, then every roster machine.
    Multi,
}

/// Which variant of the procedure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Encryption: the first custom key, replacing the default.
    FirstCustom,
    /// Encryption: a custom key replacing another custom key.
    Regenerated,
    /// Communication: a new key.
    Import,
    /// Communication: back to the default key.
    Reset,
}

impl Setup {
    /// In words, for a heading.
    pub fn label(self) -> &'static str {
        match self {
            Setup::Single => "single machine",
            Setup::Multi => "multiple machines",
        }
    }
}

impl Variant {
    /// In words, for a heading.
    pub fn label(self) -> &'static str {
        match self {
            Variant::FirstCustom => "first custom key",
            Variant::Regenerated => "re-generated key",
            Variant::Import => "import",
            Variant::Reset => "reset to default",
        }
    }
}

/// How a step is checked off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepKind {
    /// keyturn does it and records the outcome.
    Automatic,
    /// A component must come back with the new key.
    Restart,
    /// A credential must be readable under the new key.
    Credential,
    /// Push or get latest: checked with `git` in a Git work tree.
    SourceControl,
    /// Another machine's part, checked off from its fingerprint.
    PerMachine,
    /// The operator confirms, or a configured command does it.
    Manual,
}

/// What carrying out a step means.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "do", content = "on")]
pub enum Action {
    /// Import the key (or reset to the default).
    Import,
    /// Restart a component (its id in `[components]`).
    Restart(String),
    /// Have a credential readable under the new key.
    Credential(CredentialName),
    /// Re-encrypt the projects' tokens.
    Upgrade,
    /// Push the projects' latest changes.
    Push,
    /// Get the projects' latest version.
    GetLatest,
    /// Another machine imports the key.
    Machine(String),
    /// The operator does it (or the configured command).
    Manual,
}

/// What is known about this machine that decides which steps apply.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The registered projects.
    pub projects: Vec<PathBuf>,
    /// Those of them connected to Git.
    pub git_projects: Vec<PathBuf>,
    /// Whether a project uses a bug tracker.
    pub bug_tracker: bool,
    /// Whether this machine is the Scheduling server.
    pub scheduling_server: bool,
    /// Whether SMTP settings are configured here.
    pub smtp: bool,
    /// Whether this machine runs tests for the scheduler.
    pub execution: bool,
    /// The credentials stored.
    pub credentials: Vec<CredentialName>,
    /// The components configured (ids).
    pub components: Vec<String>,
    /// The roster: name and roles.
    pub machines: Vec<(String, Vec<Role>)>,
    /// Step ids with a configured command.
    pub step_commands: Vec<String>,
    /// The projects' password steps keyturn cannot upgrade (encrypted by
    /// Test Studio itself, or stored in plain text), one line each, from the
    /// secrets inventory (`keyturn projects secrets`).
    pub password_steps: Vec<String>,
    /// The projects' connection strings and settings passwords, one line each.
    pub connection_strings: Vec<String>,
}

/// Why a procedure cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcedureError {
    #[error("a multiple-machines rotation needs at least one [[machines]] entry in keyturn.toml")]
    NoMachines,
    #[error("the {kind} key has no {variant:?} variant")]
    WrongVariant { kind: KeyKind, variant: Variant },
}

struct Draft {
    id: String,
    title: String,
    detail: String,
    kind: StepKind,
    action: Action,
    seeds: Vec<u8>,
    skip: Option<String>,
}

fn step(id: &str, kind: StepKind, action: Action, seeds: &[u8], title: &str, detail: &str) -> Draft {
    Draft { id: id.into(), title: title.into(), detail: detail.into(), kind, action, seeds: seeds.to_vec(), skip: None }
}

impl Draft {
    /// Marks the step skipped with `reason` unless it applies; the first
    /// reason found stands.
    fn skip_unless(mut self, applies: bool, reason: &str) -> Draft {
        if !applies && self.skip.is_none() {
            self.skip = Some(reason.into());
        }
        self
    }
}

const EXEC_NOTE: &str = "The original warns that the Execution client may close instead of restarting and must then be started by hand; keyturn waits for it and offers its start command.";

fn restart(facts: &Facts, component: &str, seeds: &[u8], title: &str, detail: &str) -> Draft {
    step(&format!("restart-{component}"), StepKind::Restart, Action::Restart(component.into()), seeds, title, detail)
        .skip_unless(
            facts.components.iter().any(|c| c == component),
            "not configured here: [components] names no service or process for it",
        )
}

fn credentials(facts: &Facts, variant: Variant) -> Vec<Draft> {
    let original = match variant {
        Variant::Regenerated => {
            "After a re-generated key the original makes the stored password inaccessible and it must be re-entered; keyturn's keyring re-encrypted it on import: check it reads, or re-enter it."
        }
        _ => {
            "After the first custom key the original requires re-entering this password; keyturn re-encrypted it on import: check it reads, or re-enter it."
        }
    };
    let has = |name| facts.credentials.contains(&name);
    vec![
        step(
            "credential-git",
            StepKind::Credential,
            Action::Credential(CredentialName::Git),
            &[6],
            "Reset the Git credentials",
            original,
        )
        .skip_unless(
            !facts.git_projects.is_empty() || has(CredentialName::Git),
            "no Git: no project is a Git work tree and no Git credential is stored",
        ),
        step(
            "credential-bug-tracker",
            StepKind::Credential,
            Action::Credential(CredentialName::BugTracker),
            &[7],
            "Re-enter the bug-tracker credentials",
            original,
        )
        .skip_unless(
            facts.bug_tracker || has(CredentialName::BugTracker),
            "no bug tracker: no project uses one and no credential is stored",
        ),
        step(
            "credential-smtp",
            StepKind::Credential,
            Action::Credential(CredentialName::Smtp),
            &[8],
            "Re-enter the SMTP credentials",
            original,
        )
        .skip_unless(facts.scheduling_server, "this machine is not the Scheduling server (SMTP is set there only)")
        .skip_unless(facts.smtp || has(CredentialName::Smtp), "no SMTP: no e-mail notification settings here"),
    ]
}

fn upgrade(facts: &Facts, variant: Variant) -> Draft {
    let detail = match variant {
        Variant::Regenerated => {
            "Password steps and database connection strings are re-encrypted under the new key. The original makes them inaccessible after a re-generated key (password steps re-recorded, connection strings re-entered); keyturn's keyring still opens them. Any it cannot open are listed to re-record or re-enter."
        }
        _ => {
            "Password steps and database connection strings are re-encrypted under the new key. Any keyturn cannot open are listed to re-record or re-enter."
        }
    };
    step(
        "upgrade-projects",
        StepKind::Automatic,
        Action::Upgrade,
        &[9, 10],
        "Upgrade password steps and connection strings",
        detail,
    )
    .skip_unless(!facts.projects.is_empty(), "no project is registered here (keyturn projects add DIR)")
}

/// How many inventory lines a step's detail shows.
const DETAIL_LINES: usize = 200;

/// The inventory lines under a step's detail, one a line, cut at
/// [`DETAIL_LINES`] with how many more there are.
fn with_places(text: &str, places: &[String]) -> String {
    let mut detail = String::from(text);
    for place in places.iter().take(DETAIL_LINES) {
        detail.push('\n');
        detail.push_str(place);
    }
    if places.len() > DETAIL_LINES {
        detail.push_str(&format!("\n... and {} more: keyturn projects secrets", places.len() - DETAIL_LINES));
    }
    detail
}

/// After a re-generated key the original has password steps re-recorded
/// (9) and connection strings re-entered (10). keyturn's keyring upgrades
/// its own tokens, but what Test Studio encrypted itself, and what sits in
/// plain text, keyturn cannot carry over: these steps list them, from the
/// secrets inventory, so the operator knows which tests and steps.
fn regenerated_by_hand(facts: &Facts) -> Vec<Draft> {
    let passwords = step(
        "re-record-password-steps",
        StepKind::Manual,
        Action::Manual,
        &[9],
        "Re-record password steps",
        &with_places(
            "The original says to re-record every password step with Encrypt set after a re-generated key. keyturn upgraded its own tokens; the steps Test Studio encrypted itself (keyturn cannot open them) must be re-recorded, and those stored in plain text should be re-recorded with Encrypt set. Confirm when done:",
            &facts.password_steps,
        ),
    )
    .skip_unless(!facts.projects.is_empty(), "no project is registered here (keyturn projects add DIR)")
    .skip_unless(
        !facts.password_steps.is_empty(),
        "no password step encrypted by Test Studio itself or stored in plain text in the registered projects; keyturn's own tokens are upgraded above",
    );
    let connections = step(
        "re-enter-connection-strings",
        StepKind::Manual,
        Action::Manual,
        &[10],
        "Re-enter connection strings",
        &with_places(
            "The original says to re-enter the connection strings of data-driven tests after a re-generated key. keyturn upgraded the tokens inside them; re-enter in Test Studio each one it saved encrypted itself or in plain text, and the passwords in Settings.aiis. Confirm when done:",
            &facts.connection_strings,
        ),
    )
    .skip_unless(!facts.projects.is_empty(), "no project is registered here (keyturn projects add DIR)")
    .skip_unless(
        !facts.connection_strings.is_empty(),
        "no connection string or settings password in the registered projects",
    );
    vec![passwords, connections]
}

/// The id of the step in which roster machine `name` takes the key: the one
/// place it is spelled (find the step with `Rotation::machine_step`).
pub fn machine_step_id(name: &str) -> String {
    format!("machine-{name}")
}

/// A roster machine that only holds the project (seed step 12's "separate
/// machine").
fn separate_project_machine(roles: &[Role]) -> bool {
    roles.contains(&Role::Project) && !roles.contains(&Role::Execution)
}

fn machine_order(roles: &[Role]) -> Role {
    roles.iter().copied().min().unwrap_or(Role::Project)
}

fn machines(facts: &Facts, kind: KeyKind, variant: Variant) -> Result<Vec<Draft>, ProcedureError> {
    if facts.machines.is_empty() {
        return Err(ProcedureError::NoMachines);
    }
    let mut roster = facts.machines.clone();
    // The original's order: Scheduling server, then execution servers, then
    // the project machine if separate.
    roster.sort_by_key(|(_, roles)| machine_order(roles));
    let what =
        if variant == Variant::Reset { "reset its communication key to the default" } else { "import the same key" };
    let short = if variant == Variant::Reset { "reset to the default key" } else { "import the key" };
    Ok(roster
        .iter()
        .map(|(name, roles)| {
            let seeds: Vec<u8> = match kind {
                KeyKind::Encryption => (13..=18).collect(),
                KeyKind::Communication if !separate_project_machine(roles) => (7..=11).collect(),
                KeyKind::Communication => vec![12],
            };
            step(
                &machine_step_id(name),
                StepKind::PerMachine,
                Action::Machine(name.clone()),
                &seeds,
                &format!("On {name}: {short}, restart its components"),
                &format!(
                    "Log on to {name}, {what}, restart the Execution client and the Test Studio app: keyturn does it with `keyturn rotation join {kind}` through the machine's command, or check it off with the fingerprint {name} shows (keyturn fingerprint {kind})."
                ),
            )
        })
        .collect())
}

/// The checklist for `kind`, `setup` and `variant` on a machine described by
/// `facts`, every step pending or skipped with its reason.
pub fn build(kind: KeyKind, setup: Setup, variant: Variant, facts: &Facts) -> Result<Vec<Step>, ProcedureError> {
    let wrong = || ProcedureError::WrongVariant { kind, variant };
    let mut drafts = Vec::new();
    match kind {
        KeyKind::Encryption => {
            if !matches!(variant, Variant::FirstCustom | Variant::Regenerated) {
                return Err(wrong());
            }
            drafts.push(step(
                "import",
                StepKind::Automatic,
                Action::Import,
                &[1, 2, 3],
                "Generate and import the new encryption key",
                "keyturn imports the key: the old one is kept as retired so nothing sealed under it is lost, the machine's credentials are re-encrypted and the published key files rewritten.",
            ));
            drafts.push(restart(facts, "execution", &[4], "Restart the Execution client", EXEC_NOTE));
            drafts.push(restart(
                facts,
                "app",
                &[5],
                "Restart the Test Studio app",
                "If the Test Studio app runs, restart it and reopen the project, so it works with the new key.",
            ));
            drafts.extend(credentials(facts, variant));
            drafts.push(upgrade(facts, variant));
            if variant == Variant::Regenerated {
                drafts.extend(regenerated_by_hand(facts));
            }
            if setup == Setup::Multi {
                drafts.push(
                    step(
                        "push",
                        StepKind::SourceControl,
                        Action::Push,
                        &[11],
                        "Push the latest changes to the remote repository",
                        "The upgraded project must reach the other machines: commit and push it. Checked with git in a Git work tree.",
                    )
                    .skip_unless(!facts.projects.is_empty(), "no project is registered here"),
                );
                drafts.push(distribute(kind, variant));
                drafts.extend(machines(facts, kind, variant)?);
                drafts.push(
                    step(
                        "get-latest",
                        StepKind::SourceControl,
                        Action::GetLatest,
                        &[19],
                        "Get the latest version of the project",
                        "Get the latest version from source control on the machines that record and run tests. Checked with git in a Git work tree.",
                    )
                    .skip_unless(!facts.projects.is_empty(), "no project is registered here"),
                );
                drafts.push(
                    step(
                        "upload-storage",
                        StepKind::Manual,
                        Action::Manual,
                        &[19],
                        "Upload the latest project to the Storage database",
                        "For test execution through the scheduler, upload the project's latest state to the Storage database ([steps.upload-storage] can name the command).",
                    )
                    .skip_unless(facts.execution || facts.scheduling_server, "this machine does not run tests for the scheduler"),
                );
            } else {
                drafts.push(step(
                    "continue",
                    StepKind::Manual,
                    Action::Manual,
                    &[11],
                    "Continue using the project",
                    "Open the project and run a test that uses an encrypted value.",
                ));
            }
        }
        KeyKind::Communication => {
            if !matches!(variant, Variant::Import | Variant::Reset) {
                return Err(wrong());
            }
            let (title, detail) = if variant == Variant::Reset {
                (
                    "Reset the communication key to the default",
                    "keyturn puts the built-in default key back and rewrites the published key files. Anyone with keyturn has the default key.",
                )
            } else {
                (
                    "Generate and import the new communication key",
                    "keyturn imports the key and rewrites the published key files the services read at start.",
                )
            };
            drafts.push(step("import", StepKind::Automatic, Action::Import, &[1, 2, 3], title, detail));
            drafts.push(restart(
                facts,
                "scheduling",
                &[4],
                "Restart the Scheduling service",
                "The original restarts the Scheduling service in the background; keyturn runs its restart command and checks that a new process runs.",
            ));
            drafts.push(restart(
                facts,
                "storage",
                &[4],
                "Restart the Storage service",
                "The Storage service reads the communication key at start too.",
            ));
            drafts.push(restart(facts, "execution", &[5], "Restart the Execution client", EXEC_NOTE));
            let connect_seed = if setup == Setup::Multi {
                drafts.push(distribute(kind, variant));
                drafts.extend(machines(facts, kind, variant)?);
                // Seed step 12 (the project machine, if separate, and the
                // app restart) shows even where it does not apply.
                let separate = facts.machines.iter().any(|(_, roles)| separate_project_machine(roles));
                if !separate {
                    drafts.push(
                        step(
                            "project-machine",
                            StepKind::Manual,
                            Action::Manual,
                            &[12],
                            "The project machine, if separate, and the Test Studio app",
                            "If the project is on a separate machine, repeat the machine steps there; if the Test Studio app runs while the key is imported, restart it.",
                        )
                        .skip_unless(
                            false,
                            "no separate project machine in the roster (one with the project role only): the project is on a machine above; restart the Test Studio app there if it runs",
                        ),
                    );
                }
                13
            } else {
                drafts.push(restart(
                    facts,
                    "app",
                    &[6],
                    "Restart the Test Studio app",
                    "The original does not restart the Test Studio app: restart it by hand if it runs.",
                ));
                7
            };
            drafts.push(step(
                "connect",
                StepKind::Manual,
                Action::Manual,
                &[connect_seed],
                "Connect the project to the Scheduler",
                "Continue with connecting the project to the Scheduler and scheduling test lists.",
            ));
        }
    }
    Ok(drafts
        .into_iter()
        .map(|d| Step {
            confirmable: d.kind == StepKind::Manual && !facts.step_commands.contains(&d.id),
            state: match d.skip {
                Some(reason) => StepState::Skipped { reason, by_operator: false },
                None => StepState::Pending,
            },
            id: d.id,
            title: d.title,
            detail: d.detail,
            kind: d.kind,
            action: d.action,
            seed_steps: d.seeds,
        })
        .collect())
}

fn distribute(kind: KeyKind, variant: Variant) -> Draft {
    let detail = if variant == Variant::Reset {
        "Nothing to copy: every machine goes back to the built-in default key.".to_string()
    } else {
        format!(
            "Copy the new key (keyturn show {kind}, or Copy to Clipboard in the wizard) and distribute it safely, as your security policy says. keyturn rotation join reads it on standard input only."
        )
    };
    step(
        "distribute",
        StepKind::Manual,
        Action::Manual,
        &[if kind == KeyKind::Encryption { 12 } else { 6 }],
        "Copy the new key for the other machines",
        &detail,
    )
}

/// The number of steps in each seed procedure, after the numbering fixes.
pub fn seed_length(kind: KeyKind, setup: Setup) -> u8 {
    match (kind, setup) {
        (KeyKind::Encryption, Setup::Single) => 11,
        (KeyKind::Encryption, Setup::Multi) => 19,
        (KeyKind::Communication, Setup::Single) => 7,
        (KeyKind::Communication, Setup::Multi) => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_step_12_shows_skipped_without_a_separate_project_machine() {
        let facts = Facts { machines: vec![("exec-01".into(), vec![Role::Execution])], ..Facts::default() };
        let steps = build(KeyKind::Communication, Setup::Multi, Variant::Import, &facts).expect("procedure");
        let step = steps.iter().find(|s| s.seed_steps == [12]).expect("seed step 12 is on the checklist");
        assert_eq!(step.id, "project-machine");
        assert!(
            matches!(&step.state, StepState::Skipped { reason, .. } if reason.contains("no separate project machine"))
        );
        // With one, its machine step carries 12 and nothing is skipped for it.
        let steps = build(KeyKind::Communication, Setup::Multi, Variant::Import, &roster_facts()).expect("procedure");
        assert!(steps.iter().all(|s| s.id != "project-machine"));
        assert!(steps.iter().any(|s| s.id == "machine-proj-01" && s.seed_steps == [12]));
    }

    fn roster_facts() -> Facts {
        Facts {
            machines: vec![
                ("proj-01".into(), vec![Role::Project]),
                ("exec-01".into(), vec![Role::Execution]),
                ("sched-01".into(), vec![Role::Scheduling]),
            ],
            ..Facts::default()
        }
    }

    /// Every seed step is carried out by some step, and in the seed's order.
    #[test]
    fn every_procedure_covers_its_seed_in_order() {
        let cases = [
            (KeyKind::Encryption, Setup::Single, Variant::FirstCustom),
            (KeyKind::Encryption, Setup::Single, Variant::Regenerated),
            (KeyKind::Encryption, Setup::Multi, Variant::FirstCustom),
            (KeyKind::Encryption, Setup::Multi, Variant::Regenerated),
            (KeyKind::Communication, Setup::Single, Variant::Import),
            (KeyKind::Communication, Setup::Single, Variant::Reset),
            (KeyKind::Communication, Setup::Multi, Variant::Import),
            (KeyKind::Communication, Setup::Multi, Variant::Reset),
        ];
        for (kind, setup, variant) in cases {
            let steps = build(kind, setup, variant, &roster_facts()).expect("builds");
            // In order: each step starts at or after where the one before
            // started (machine groups repeat the same block).
            let starts: Vec<u8> = steps.iter().map(|s| s.seed_steps[0]).collect();
            assert!(starts.is_sorted(), "{kind} {setup:?} {variant:?}: seed steps out of order: {starts:?}");
            let mut sorted: Vec<u8> = steps.iter().flat_map(|s| s.seed_steps.iter().copied()).collect();
            sorted.sort_unstable();
            sorted.dedup();
            let all: Vec<u8> = (1..=seed_length(kind, setup)).collect();
            assert_eq!(sorted, all, "{kind} {setup:?} {variant:?}: seed steps not all carried out");
            let ids: std::collections::BTreeSet<_> = steps.iter().map(|s| &s.id).collect();
            assert_eq!(ids.len(), steps.len(), "step ids are unique");
            assert_eq!(steps[0].action, Action::Import, "starting imports the key first");
        }
    }

    #[test]
    fn machines_in_the_originals_order_and_required() {
        let steps = build(KeyKind::Communication, Setup::Multi, Variant::Import, &roster_facts()).expect("builds");
        let machines: Vec<&str> =
            steps.iter().filter(|s| s.kind == StepKind::PerMachine).map(|s| s.id.as_str()).collect();
        assert_eq!(machines, ["machine-sched-01", "machine-exec-01", "machine-proj-01"]);
        assert_eq!(
            build(KeyKind::Encryption, Setup::Multi, Variant::FirstCustom, &Facts::default()).map(|_| ()),
            Err(ProcedureError::NoMachines)
        );
        assert!(build(KeyKind::Encryption, Setup::Single, Variant::Reset, &Facts::default()).is_err());
    }

    #[test]
    fn steps_that_do_not_apply_say_why() {
        let steps = build(KeyKind::Encryption, Setup::Single, Variant::Regenerated, &Facts::default()).expect("builds");
        let skipped: Vec<(&str, &str)> = steps
            .iter()
            .filter_map(|s| match &s.state {
                StepState::Skipped { reason, .. } => Some((s.id.as_str(), reason.as_str())),
                _ => None,
            })
            .collect();
        assert!(skipped.iter().any(|(id, r)| *id == "credential-git" && r.contains("no Git")));
        assert!(skipped.iter().any(|(id, r)| *id == "credential-smtp" && r.contains("not the Scheduling server")));
        assert!(skipped.iter().any(|(id, _)| *id == "upgrade-projects"));
        let upgrade = steps.iter().find(|s| s.id == "upgrade-projects").expect("upgrade step");
        assert!(upgrade.detail.contains("original makes them inaccessible"));
        assert!(skipped.iter().any(|(id, r)| *id == "re-record-password-steps" && r.contains("no project")));
    }

    #[test]
    fn a_regenerated_key_lists_the_steps_to_redo() {
        let facts = Facts {
            projects: vec!["/p".into()],
            password_steps: vec![
                "/p/Tests/Login.tstest:12  test-studio-cipher  Login > Enter text '*****' in 'Password'".into(),
            ],
            ..Facts::default()
        };
        let steps = build(KeyKind::Encryption, Setup::Single, Variant::Regenerated, &facts).expect("builds");
        let record = steps.iter().find(|s| s.id == "re-record-password-steps").expect("step");
        assert_eq!(record.state, StepState::Pending);
        assert!(record.confirmable);
        assert!(
            record
                .detail
                .ends_with("\n/p/Tests/Login.tstest:12  test-studio-cipher  Login > Enter text '*****' in 'Password'")
        );
        let enter = steps.iter().find(|s| s.id == "re-enter-connection-strings").expect("step");
        assert!(matches!(&enter.state, StepState::Skipped { reason, .. } if reason.contains("no connection string")));
        let first = build(KeyKind::Encryption, Setup::Single, Variant::FirstCustom, &facts).expect("builds");
        assert!(first.iter().all(|s| !s.id.starts_with("re-")), "the first custom key upgrades everything");
        let many = Facts { password_steps: (0..250).map(|i| format!("line {i}")).collect(), ..facts };
        let steps = build(
            KeyKind::Encryption,
            Setup::Multi,
            Variant::Regenerated,
            &Facts { machines: vec![("exec-01".into(), vec![Role::Execution])], ..many },
        )
        .expect("builds");
        let record = steps.iter().find(|s| s.id == "re-record-password-steps").expect("step");
        assert!(record.detail.contains("line 199\n... and 50 more: keyturn projects secrets"));
    }
}
