//! `rotation join` and `machines list | add | remove | status`.

use std::io::Write;
use std::time::Duration;

use color_eyre::eyre::{self, WrapErr};
use keyturn::display;
use keyturn::fleet::{self, FleetStatus, JoinReport};
use keyturn::keys::{Key, KeyKind};
use keyturn::store::Store;
use keyturn::store::config::Role;
use keyturn::store::config_edit;
use keyturn::system::Edge;
use keyturn::system::SystemCommands;

use super::{NotFinished, Usage, input};

pub fn join(store: &mut Store, kind: KeyKind, reset: bool, json: bool, wait: Duration) -> eyre::Result<()> {
    if reset && kind == KeyKind::Encryption {
        return Err(Usage("the encryption key has no reset (as in the original)".into()).into());
    }
    let key = if reset {
        None
    } else {
        // The key comes on standard input only: never an argument, a
        // variable, a log or a temporary file.
        let text = input::key_text(kind, None)?;
        Some(Key::parse(kind, &text).wrap_err(format!("the {kind} key was not joined"))?)
    };
    let edge = Edge::system(wait, keyturn::fleet::JOIN_TIMEOUT);
    let report = fleet::join(store, kind, key, &edge).wrap_err(format!("the {kind} key was not joined"))?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", keyturn::display::json(&report)?)?;
    } else {
        print_report(&mut out, &report)?;
    }
    if report.needs_person.is_empty() {
        Ok(())
    } else {
        Err(NotFinished(format!(
            "{} things need a person here: {}",
            report.needs_person.len(),
            report.needs_person.join("; ")
        ))
        .into())
    }
}

/// `rotation join --json` that failed: its JSON report all the same, with
/// the failure, so the first machine (or a fleet tool) reads why.
pub fn print_join_failure(home: Option<&keyturn::store::home::Home>, kind: KeyKind, error: &eyre::Report) {
    if error.chain().any(|c| c.downcast_ref::<NotFinished>().is_some()) {
        return; // A report was printed already; a person is needed there.
    }
    let mut message: Vec<String> = Vec::new();
    for cause in error.chain().map(ToString::to_string) {
        if !message.last().is_some_and(|parent| parent.ends_with(&cause)) {
            message.push(cause);
        }
    }
    let message = message.join(": ");
    let doc = serde_json::json!({
        "keyturn": env!("CARGO_PKG_VERSION"),
        "machine": keyturn::system::machine(),
        "home": home.map(|h| h.dir.display().to_string()),
        "machine_wide": home.is_some_and(|h| h.machine_wide),
        "time": jiff::Timestamp::now().to_string(),
        "kind": kind.name(),
        "changed": false,
        "failed": true,
        "error": message,
        "steps": [{"id": "import", "title": "Import the key", "state": "failed", "evidence": message}],
        "needs_person": [message],
    });
    if let Ok(text) = serde_json::to_string_pretty(&doc) {
        let _ = writeln!(std::io::stdout(), "{text}");
    }
}

fn print_report(out: &mut impl Write, r: &JoinReport) -> std::io::Result<()> {
    let scope = if r.machine_wide { "machine-wide" } else { "a user store" };
    writeln!(out, "{} on {} ({scope}): {} key {}", r.machine, r.home, r.kind, r.fingerprints.get(r.kind))?;
    for s in &r.steps {
        writeln!(out, "  {:<8} {:<22} {}", s.state, s.id, s.evidence)?;
    }
    Ok(())
}

pub fn list(store: &Store) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    for m in &store.config().machines {
        let roles: Vec<String> = m.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
        writeln!(out, "{}\t{}\t{}", m.name, roles.join(","), m.command().join(" "))?;
    }
    Ok(())
}

pub fn add(store: &Store, name: &str, roles: &[Role], command: &[String]) -> eyre::Result<()> {
    if name.trim().is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Usage("a machine's name is one word without spaces or control characters".into()).into());
    }
    let command = (!command.is_empty()).then_some(command);
    if config_edit::add_machine(&store.home().dir, name, roles, command)? {
        eprintln!("Machine {name} added to the roster.");
        Ok(())
    } else {
        eyre::bail!("a machine named {name} is already in the roster; remove it first to change it")
    }
}

pub fn remove(store: &Store, name: &str) -> eyre::Result<()> {
    if config_edit::remove_machine(&store.home().dir, name)? {
        eprintln!("Machine {name} removed from the roster.");
        Ok(())
    } else {
        eyre::bail!("no machine named {name} is in the roster; `keyturn machines list` shows it")
    }
}

pub fn status(store: &Store, json: bool, parallel: usize) -> eyre::Result<()> {
    if store.config().machines.is_empty() {
        eprintln!("The roster is empty: add machines with `keyturn machines add NAME --role execution`.");
    }
    let total = store.config().machines.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let fleet = fleet::fleet_status(store, &SystemCommands, parallel, fleet::STATUS_TIMEOUT, &|m| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        eprintln!("[{n}/{total}] {}", m.name);
    });
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", keyturn::display::json(&fleet)?)?;
    } else {
        print_fleet(&mut out, &fleet)?;
    }
    if fleet.converged() {
        Ok(())
    } else {
        Err(NotFinished("the fleet has not converged: some machines differ or cannot be reached".into()).into())
    }
}

fn print_fleet(out: &mut impl Write, fleet: &FleetStatus) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<16} {:<20} {:<25} {:<25} {:<8} {:>6}",
        "machine", "roles", "encryption", "communication", "keyturn", "skew"
    )?;
    for row in &fleet.machines {
        let roles: Vec<String> = row.roles.iter().map(|r| format!("{r:?}").to_lowercase()).collect();
        match &row.status {
            Some(s) => {
                let fp =
                    |k: KeyKind| format!("{} {}", s.fingerprints.get(k), if row.matches[&k] { "ok" } else { "DIFF" });
                let skew = row.skew_seconds.map(|s| format!("{s:+} s")).unwrap_or_else(|| "?".into());
                let user = if s.machine_wide { "" } else { "  (user store)" };
                writeln!(
                    out,
                    "{:<16} {:<20} {:<25} {:<25} {:<8} {:>6}{user}",
                    row.name,
                    roles.join(","),
                    fp(KeyKind::Encryption),
                    fp(KeyKind::Communication),
                    s.keyturn,
                    skew
                )?;
            }
            None => writeln!(
                out,
                "{:<16} {:<20} UNREACHABLE: {}",
                row.name,
                roles.join(","),
                row.error.as_deref().unwrap_or("")
            )?,
        }
        if let Some(rollout) = &row.rollout {
            writeln!(out, "{:<16} rollout: {}", "", display::escape(rollout))?;
        }
    }
    for (kind, c) in &fleet.convergence {
        writeln!(out, "{kind}: {}/{} machines on {}", c.on, c.of, c.fingerprint)?;
    }
    Ok(())
}
