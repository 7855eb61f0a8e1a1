//! `upgrade`, `projects add|remove|list` and `keys purge`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use color_eyre::eyre::{self, WrapErr};
use keyturn::display;
use keyturn::keys::KeyKind;
use keyturn::project::{self, Progress, ProjectReport};
use keyturn::store::Store;
use keyturn::store::config_edit;
use keyturn::store::credentials::CredentialState;
use keyturn::system::{Processes, SystemProcesses};
use serde_json::json;

use super::{NotFinished, Usage};

fn absolute(path: &Path) -> eyre::Result<PathBuf> {
    std::fs::canonicalize(path)
        .wrap_err_with(|| format!("{}: not found; name an existing project directory", path.display()))
}

/// The projects to work on: the paths named, else the registered ones.
fn projects(store: &Store, paths: &[PathBuf]) -> eyre::Result<Vec<PathBuf>> {
    if !paths.is_empty() {
        return paths.iter().map(|p| absolute(p)).collect();
    }
    let registered = store.config().project_dirs(&store.home().dir);
    if registered.is_empty() {
        return Err(Usage(
            "no project is registered and none was named: run `keyturn projects add DIR`, or `keyturn upgrade DIR`"
                .into(),
        )
        .into());
    }
    Ok(registered)
}

/// Warns when the Test Studio app runs: it may save stale tokens back.
fn warn_if_app_runs(store: &Store) {
    if let Some(name) = &store.config().components.app.process
        && !SystemProcesses.find(name).is_empty()
    {
        eprintln!(
            "Warning: the Test Studio app ({name}) is running; it may save its own stale tokens back over the upgrade. Close it and run the upgrade again afterwards."
        );
    }
}

/// Draws progress on stderr when it is a terminal, at most ten times a second.
fn progress_printer() -> impl FnMut(Progress) {
    let show = std::io::stderr().is_terminal();
    let mut last = Instant::now() - Duration::from_secs(1);
    move |p: Progress| {
        let finished = p.files_done == p.files_total;
        if show && (finished || last.elapsed() >= Duration::from_millis(100)) {
            last = Instant::now();
            let what = if p.pass == 1 { "checking" } else { "rewriting" };
            eprint!("\r{what}: {}/{} files, {} tokens   ", p.files_done, p.files_total, p.tokens);
            if finished {
                eprintln!();
            }
        }
    }
}

pub fn upgrade(store: &Store, paths: &[PathBuf], dry_run: bool, json: bool) -> eyre::Result<()> {
    let roots = projects(store, paths)?;
    warn_if_app_runs(store);
    let _lock = store.lock("upgrade")?;
    let ring = store.keyring();
    let reports = project::upgrade(&roots, &ring, dry_run, &mut progress_printer()).wrap_err("upgrade stopped")?;
    let unreadable: usize = reports.iter().map(|r| r.unreadable.len()).sum();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = json!({
            "dry_run": dry_run,
            "active_key": ring.active().id().to_string(),
            "projects": reports,
        });
        writeln!(out, "{}", keyturn::display::json(&doc)?)?;
    } else {
        for report in &reports {
            print_report(&mut out, report, dry_run)?;
        }
    }
    if unreadable > 0 {
        return Err(NotFinished(format!(
            "{unreadable} tokens cannot be decrypted: re-record those password steps and re-enter those connection strings"
        ))
        .into());
    }
    Ok(())
}

fn print_report(out: &mut impl Write, r: &ProjectReport, dry_run: bool) -> std::io::Result<()> {
    let would = if dry_run { "would be " } else { "" };
    writeln!(out, "{}", display::path(&r.project))?;
    writeln!(out, "  files scanned:   {} ({} skipped: binary, too large, links)", r.files_scanned, r.files_skipped)?;
    writeln!(out, "  tokens found:    {}", r.tokens)?;
    writeln!(out, "  re-encrypted:    {} {would}in {} files", r.upgraded, r.files_rewritten)?;
    writeln!(out, "  already current: {}", r.current)?;
    writeln!(out, "  cannot decrypt:  {}", r.unreadable.len())?;
    for u in &r.unreadable {
        writeln!(out, "    {}:{}  {}", display::path(&u.file), u.line, u.reason)?;
    }
    Ok(())
}

pub fn add(store: &Store, path: &Path) -> eyre::Result<()> {
    let dir = absolute(path)?;
    if !dir.is_dir() {
        return Err(Usage(format!("{}: not a directory; name a project directory", dir.display())).into());
    }
    if config_edit::add_project(&store.home().dir, &dir)? {
        eprintln!("Project {} registered.", dir.display());
    } else {
        eprintln!("Project {} was already registered; nothing changed.", dir.display());
    }
    Ok(())
}

pub fn remove(store: &Store, path: &Path) -> eyre::Result<()> {
    // A removed project's directory may be gone already: match as written too.
    let dir = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if config_edit::remove_project(&store.home().dir, &dir)? {
        eprintln!("Project {} removed from the list (its files are untouched).", dir.display());
        Ok(())
    } else {
        eyre::bail!("{} is not a registered project; `keyturn projects list` shows them", dir.display())
    }
}

pub fn list(store: &Store) -> eyre::Result<()> {
    let mut out = std::io::stdout().lock();
    for dir in store.config().project_dirs(&store.home().dir) {
        let state = if !dir.is_dir() {
            "missing"
        } else if dir.join(".git").exists() {
            "git work tree"
        } else {
            "no git"
        };
        writeln!(out, "{}\t{state}", display::path(&dir))?;
    }
    Ok(())
}

pub fn purge(store: &mut Store, force: bool) -> eyre::Result<()> {
    let retired = store.status(KeyKind::Encryption).retired;
    if retired.is_empty() {
        eprintln!("No retired keys to purge.");
        return Ok(());
    }
    let (roots, missing): (Vec<PathBuf>, Vec<PathBuf>) =
        store.config().project_dirs(&store.home().dir).into_iter().partition(|r| r.is_dir());
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|p| p.display().to_string()).collect();
        let message =
            format!("registered projects cannot be read, so their tokens cannot be checked: {}", names.join(", "));
        if !force {
            eyre::bail!(
                "refused: {message}; mount them, or remove them from the list (keyturn projects remove DIR), or purge anyway with --force"
            );
        }
        eprintln!("Warning: {message}; --force purges without them.");
    }
    let usage = project::key_usage(&roots).wrap_err("cannot check which keys the projects use")?;
    let ring = store.keyring();
    let mut in_use = Vec::new();
    for (fp, _) in &retired {
        let mut places: Vec<String> = store
            .credentials()
            .entries
            .iter()
            .filter(|c| c.state(&ring) == CredentialState::Retired(*fp))
            .map(|c| format!("the {} credential", c.name))
            .collect();
        let mut count = places.len();
        if let Some(u) = usage.get(fp) {
            count += u.count;
            places.extend(u.places.iter().cloned());
        }
        if count > 0 {
            in_use.push((*fp, count, places));
        }
    }
    let chosen: Vec<_> =
        retired.iter().map(|(fp, _)| *fp).filter(|fp| force || !in_use.iter().any(|(u, _, _)| u == fp)).collect();
    eprintln!(
        "Warning: Git history, backups and other machines may still hold tokens under the keys purged here; on this machine they become unreadable for good."
    );
    for (fp, count, places) in &in_use {
        eprintln!("Retired key {fp} is still used by {count} tokens or credentials, for example:");
        for place in places {
            eprintln!("  {place}");
        }
    }
    if !in_use.is_empty() && !force {
        eyre::bail!(
            "refused: {} retired keys are still in use; run `keyturn upgrade` (and `keyturn import encryption` again for credentials) first, or purge anyway with --force",
            in_use.len()
        );
    }
    if force && !in_use.is_empty() {
        eprintln!("--force: purging keys still in use; the values listed above will be lost.");
    }
    let removed = store.purge(&chosen)?;
    let names: Vec<String> = removed.iter().map(ToString::to_string).collect();
    eprintln!("Purged {} retired keys: {}.", removed.len(), names.join(", "));
    let kept = retired.len() - removed.len();
    if kept > 0 {
        eprintln!("{kept} retired keys are kept.");
    }
    Ok(())
}
