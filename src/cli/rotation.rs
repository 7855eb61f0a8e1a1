//! `rotation plan | start | status | run | confirm | skip | abort` and
//! `config check`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use color_eyre::eyre::{self, WrapErr};
use keyturn::keys::{Key, KeyKind};
use keyturn::report::RotationReport;
use keyturn::rotation::persist::{self, PersistError};
use keyturn::rotation::run as runner;
use keyturn::rotation::{Change, Event, Rotation, Setup, Status, Step};
use keyturn::store::Store;
use keyturn::system::{Edge, ServiceState, Services, SystemServices};

use super::{NotFinished, Usage, input};

fn print_steps(out: &mut impl Write, steps: &[Step], current: Option<&str>) -> std::io::Result<()> {
    for step in steps {
        let is_current = current == Some(step.id.as_str());
        writeln!(out, "{} {:<22} {}", step.marker(is_current), step.id, step.title)?;
        if let Some(evidence) = step.state.evidence() {
            writeln!(out, "      {}", keyturn::display::escape(evidence))?;
        }
    }
    Ok(())
}

fn describe(r: &Rotation) -> String {
    let status = match &r.status {
        Status::Open => "open".to_string(),
        Status::Finished { at } => format!("finished {}", at.strftime("%Y-%m-%d %H:%M UTC")),
        Status::Aborted { at, reason } => format!("aborted {} ({reason})", at.strftime("%Y-%m-%d %H:%M UTC")),
    };
    format!("{} key rotation, {}, {}: {status}", r.kind.title(), r.setup.label(), r.variant.label())
}

pub fn plan(store: &Store, kind: KeyKind, setup: Setup, reset: bool) -> eyre::Result<()> {
    let (variant, steps) = runner::plan(store, kind, setup, reset)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "The {kind} key rotation ({}, {}) would run these steps here:", setup.label(), variant.label())?;
    print_steps(&mut out, &steps, None)?;
    Ok(())
}

pub fn start(
    store: &mut Store,
    kind: KeyKind,
    setup: Setup,
    key_source: KeySource<'_>,
    wait: Duration,
) -> eyre::Result<()> {
    let edge = Edge::system(wait, keyturn::fleet::JOIN_TIMEOUT);
    let key = match key_source {
        KeySource::Rollback => return start_rollback(store, kind, setup, &edge),
        KeySource::Reset if kind == KeyKind::Encryption => {
            return Err(Usage("the encryption key has no reset (as in the original); import a new key".into()).into());
        }
        KeySource::Reset => None,
        KeySource::Generate => Some(Key::generate(kind)?),
        KeySource::Input(file) => {
            let text = input::key_text(kind, file)?;
            Some(Key::parse(kind, &text).wrap_err("the rotation was not started")?)
        }
    };
    let rotation = runner::start(store, kind, setup, key, &edge).wrap_err("the rotation was not started")?;
    eprintln!(
        "{} key rotation, {}, {}: started; the key is imported.",
        rotation.kind.title(),
        rotation.setup.label(),
        rotation.variant.label()
    );
    if setup == Setup::Multi {
        eprintln!("Other machines need this key: `keyturn show {kind}` prints it when the distribute step comes.");
    }
    eprintln!("Next: keyturn rotation run");
    let mut out = std::io::stdout().lock();
    print_steps(&mut out, &rotation.steps, rotation.current().map(|s| s.id.as_str()))?;
    Ok(())
}

fn start_rollback(store: &mut Store, kind: KeyKind, setup: Setup, edge: &Edge) -> eyre::Result<()> {
    let rotation = runner::start_rollback(store, kind, setup, edge).wrap_err("the rollback was not started")?;
    eprintln!(
        "{} started: a rollback to the previous key {} (from {}), which is imported; {} is kept {}.",
        describe(&rotation),
        rotation.new_fingerprint,
        rotation.old_fingerprint,
        rotation.old_fingerprint,
        if kind == KeyKind::Encryption {
            "in the keyring as retired, so nothing sealed under it is lost"
        } else {
            "as the previous key"
        }
    );
    eprintln!("Next: keyturn rotation run");
    let mut out = std::io::stdout().lock();
    print_steps(&mut out, &rotation.steps, rotation.current().map(|s| s.id.as_str()))?;
    Ok(())
}

/// Where `rotation start` takes its key from.
pub enum KeySource<'a> {
    /// A new key.
    Generate,
    /// Standard input or a file.
    Input(Option<&'a Path>),
    /// The communication key's default.
    Reset,
    /// The previous key, from the keyring.
    Rollback,
}

/// The open rotation's summary for `keyturn status --json`.
pub fn summary(home: &Path) -> eyre::Result<Option<Rotation>> {
    Ok(persist::open_rotation(home)?)
}

pub fn status(store: &Store, json: bool) -> eyre::Result<()> {
    let rotation = persist::load(&store.home().dir)?;
    let mut out = std::io::stdout().lock();
    if json {
        let report = rotation.as_ref().map(RotationReport::of);
        writeln!(out, "{}", keyturn::display::json(&report)?)?;
        return Ok(());
    }
    let Some(r) = rotation else {
        writeln!(out, "No rotation here yet; `keyturn rotation start` begins one.")?;
        return Ok(());
    };
    print_rotation(&mut out, &r)?;
    Ok(())
}

fn print_rotation(out: &mut impl Write, r: &Rotation) -> std::io::Result<()> {
    writeln!(out, "{} (revision {})", describe(r), r.revision)?;
    writeln!(
        out,
        "{} -> {}, started {} by {} on {}",
        r.old_fingerprint,
        r.new_fingerprint,
        r.started.strftime("%Y-%m-%d %H:%M UTC"),
        r.operator,
        r.machine
    )?;
    if let Some(w) = r.window {
        let state = if w.closed(r) { "" } else { " so far: machines remain" };
        writeln!(out, "Disagreement window{state}: {w}")?;
    }
    print_steps(out, &r.steps, r.current().map(|s| s.id.as_str()))
}

pub fn run(
    store: &mut Store,
    file: Option<&Path>,
    wait: Duration,
    machine_timeout: Duration,
    parallel: usize,
) -> eyre::Result<()> {
    let home = store.home().dir.clone();
    let open = persist::open_rotation(&home)?.ok_or(PersistError::NoneOpen)?;
    // A key is read only when an import was cut short before it happened.
    let needs_key = open.current().is_some_and(|s| s.id == "import")
        && store.active_key(open.kind).fingerprint() != open.new_fingerprint
        && open.new_fingerprint != Key::default_for(open.kind).fingerprint();
    // Empty standard input (</dev/null, a cron job) is no key: the import
    // step then says which key it waits for.
    let key = if needs_key && (file.is_some() || !std::io::stdin().is_terminal()) {
        let text = input::key_text(open.kind, file)?;
        if text.trim().is_empty() { None } else { Some(Key::parse(open.kind, &text)?) }
    } else {
        None
    };
    let show = std::io::stderr().is_terminal();
    let edge = Edge::system(wait, machine_timeout).with_parallel(parallel);
    let rotation = runner::run(store, key, &edge, &mut |what| {
        if show {
            eprintln!("... {what}");
        }
    })?;
    let mut out = std::io::stdout().lock();
    print_rotation(&mut out, &rotation)?;
    finish_message(&rotation)
}

fn finish_message(rotation: &Rotation) -> eyre::Result<()> {
    match (&rotation.status, rotation.current()) {
        (Status::Finished { .. }, _) => {
            eprintln!("The rotation is finished: every step is done or skipped.");
            Ok(())
        }
        (Status::Open, Some(step)) => Err(NotFinished(format!(
            "step `{}` needs a person: {}",
            step.id,
            keyturn::display::escape(step.state.evidence().unwrap_or(&step.title))
        ))
        .into()),
        _ => Ok(()),
    }
}

fn commit(store: &Store, event: Event) -> eyre::Result<Rotation> {
    Ok(persist::commit(&store.home().dir, None, event)?)
}

pub fn confirm(store: &Store, step: &str, fingerprint: Option<&str>) -> eyre::Result<()> {
    // Another machine's step is checked off by the fingerprint it shows,
    // never by a bare confirm: say the exact line to type.
    if fingerprint.is_none()
        && let Some(open) = persist::open_rotation(&store.home().dir)?
        && let Some(found) = open.steps.iter().find(|s| s.id == step)
        && let keyturn::rotation::Action::Machine(machine) = &found.action
    {
        return Err(Usage(format!(
            "step `{step}` is checked off by the fingerprint {machine} shows: run `keyturn fingerprint {kind}` on {machine}, then here: keyturn rotation confirm {step} --fingerprint FP (FP: what it printed)",
            kind = open.kind
        ))
        .into());
    }
    let change = match fingerprint {
        Some(fp) => Change::VerifyMachine(fp.parse().map_err(|e: String| Usage(e))?),
        None => Change::Confirm,
    };
    let rotation = commit(store, Event::step(step, change)).wrap_err(format!("step `{step}` was not checked off"))?;
    eprintln!("Step `{step}` is done.");
    next_hint(&rotation);
    Ok(())
}

pub fn skip(store: &Store, step: &str, reason: &str) -> eyre::Result<()> {
    let rotation = commit(store, Event::step(step, Change::Skip(reason.to_string())))
        .wrap_err(format!("step `{step}` was not skipped"))?;
    eprintln!("Step `{step}` is skipped: {}.", reason.trim());
    next_hint(&rotation);
    Ok(())
}

fn next_hint(rotation: &Rotation) {
    match rotation.current() {
        Some(next) => eprintln!("Next: `{}`, {}; keyturn rotation run", next.id, next.title),
        None => eprintln!("The rotation is finished: every step is done or skipped."),
    }
}

pub fn abort(store: &Store, reason: Option<&str>) -> eyre::Result<()> {
    let rotation = commit(store, Event::Abort { reason: reason.unwrap_or_default().to_string() })?;
    eprintln!(
        "The rotation is aborted and recorded. The key was not rolled back: the {} key is still {}; to go back to {}, the previous key, which keyturn kept: keyturn rotation start {} --setup {} --rollback",
        rotation.kind,
        store.active_key(rotation.kind).fingerprint(),
        rotation.old_fingerprint,
        rotation.kind,
        if rotation.setup == Setup::Multi { "multi" } else { "single" }
    );
    Ok(())
}

pub fn config_check(store: &Store) -> eyre::Result<()> {
    let config = store.config();
    let home = &store.home().dir;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{} is valid.", home.join("keyturn.toml").display())?;
    let roles: Vec<String> = config.machine.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
    writeln!(
        out,
        "This machine: roles [{}]; SMTP settings {}.",
        roles.join(", "),
        if config.machine.smtp { "configured" } else { "not configured" }
    )?;
    for entry in &config.publish {
        writeln!(
            out,
            "Publish: the {} key is written to {} ({:?}) on every import and reset.",
            entry.kind,
            home.join(&entry.path).display(),
            entry.encoding
        )?;
    }
    let facts = runner::facts(store);
    for (entry, dir) in config.projects.iter().zip(&facts.projects) {
        let git = if facts.git_projects.contains(dir) { "Git work tree: push/pull checked with git" } else { "no Git" };
        let exists = if dir.is_dir() { "" } else { " (MISSING)" };
        let bug = if entry.bug_tracker { ", bug tracker" } else { "" };
        writeln!(out, "Project: {}{exists}: {git}{bug}; upgraded in encryption rotations.", dir.display())?;
    }
    for (id, name, c) in config.components.all() {
        let found = match (&c.service, &c.process) {
            // The service manager's own answer, so a wrong name shows here,
            // before a rotation.
            (Some(s), _) => match Services::query(&SystemServices, s) {
                Ok(ServiceState::Running { pid }) => format!("service `{s}` (running, pid {pid})"),
                Ok(ServiceState::Stopped) => format!("service `{s}` (installed, not running)"),
                Err(e) => format!("service `{s}` (NOT USABLE: {e})"),
            },
            (None, Some(p)) => format!("process `{p}`"),
            (None, None) => "not configured (its restart steps are skipped)".into(),
        };
        let cmd = |label: &str, c: &Option<Vec<String>>| {
            c.as_ref().map(|c| format!("; {label}: {}", c.join(" "))).unwrap_or_default()
        };
        writeln!(
            out,
            "Component {id} ({name}): {found}{}{}{}.",
            cmd("restart", &c.restart),
            cmd("start", &c.start),
            cmd("check", &c.check)
        )?;
    }
    let upload = if facts.execution || facts.scheduling_server {
        "applies here (this machine runs tests for the scheduler)"
    } else {
        "is skipped here (this machine neither runs tests for the scheduler nor is the Scheduling server)"
    };
    writeln!(
        out,
        "Step upload-storage (encryption, multiple machines: upload the project to the Storage database) {upload}{}.",
        if config.steps.contains_key("upload-storage") {
            "; its command is below"
        } else {
            "; it is confirmed by hand"
        }
    )?;
    for (id, step) in &config.steps {
        writeln!(out, "Step {id}: runs `{}` and is done when it exits 0.", step.command.join(" "))?;
    }
    for m in &config.machines {
        let roles: Vec<String> = m.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
        writeln!(out, "Machine {} [{}]: reached with `{}`.", m.name, roles.join(", "), m.command().join(" "))?;
    }
    writeln!(out, "The default component names are Test Studio's on Windows: check them against this installation.")?;
    Ok(())
}
