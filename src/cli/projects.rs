//! `upgrade`, `projects add|remove|list` and `keys purge`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use color_eyre::eyre::{self, WrapErr};
use keyturn::display;
use keyturn::project::inventory::{self, Kind};
use keyturn::project::{Progress, ProjectReport};
use keyturn::store::Store;
use keyturn::store::config_edit;
use keyturn::system::{Processes, SystemProcesses, Wanted};
use serde_json::json;

use super::{NotFinished, Usage};

fn absolute(path: &Path) -> eyre::Result<PathBuf> {
    // Not std's canonicalize: on Windows it gives `\\?\C:\...` paths.
    dunce::canonicalize(path)
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
        // Anyone's app, not only this user's: any of them may save back.
        && !SystemProcesses.find(&Wanted::new(name, None)).is_empty()
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

pub fn upgrade(store: &mut Store, paths: &[PathBuf], dry_run: bool, json: bool) -> eyre::Result<()> {
    let roots = projects(store, paths)?;
    warn_if_app_runs(store);
    let reports = store.upgrade(&roots, dry_run, &mut progress_printer())?;
    let unreadable: usize = reports.iter().map(|r| r.unreadable.len()).sum();
    let skipped: usize = reports.iter().map(|r| r.skipped.len()).sum();
    let mut out = std::io::stdout().lock();
    if json {
        let doc = json!({
            "dry_run": dry_run,
            "active_key": store.keyring().active().id().to_string(),
            "projects": reports,
        });
        writeln!(out, "{}", keyturn::display::json(&doc)?)?;
    } else {
        for report in &reports {
            print_report(&mut out, report, dry_run)?;
        }
    }
    out.flush()?;
    let mut remains = Vec::new();
    if unreadable > 0 {
        remains.push(format!(
            "{unreadable} tokens cannot be decrypted: re-record those password steps and re-enter those connection strings"
        ));
    }
    if skipped > 0 {
        remains.push(format!(
            "{skipped} files that hold tokens were not upgraded (listed as skipped): convert them to UTF-8 or UTF-16 text, or re-enter their values, and run the upgrade again"
        ));
    }
    if !remains.is_empty() {
        return Err(NotFinished(remains.join("; ")).into());
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
    for s in &r.skipped {
        writeln!(out, "  {}: skipped ({}), holds {} tokens", display::path(&s.file), s.reason, s.tokens)?;
    }
    for f in &r.hard_links_broken {
        writeln!(
            out,
            "  {}: had other hard links, which keep the old tokens (the upgrade replaced this name only)",
            display::path(f)
        )?;
    }
    Ok(())
}

/// `projects secrets`: the inventory of the projects' secrets.
pub fn secrets(store: &Store, paths: &[PathBuf], json: bool) -> eyre::Result<()> {
    let roots = projects(store, paths)?;
    let found = inventory::inventory(&roots, &store.keyring()).wrap_err("cannot list the secrets")?;
    for file in &found.unparsed {
        eprintln!(
            "Warning: {}: not JSON keyturn can read, so its password steps and connection strings are not listed",
            display::path(file)
        );
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", display::json(&found)?)?;
        return Ok(());
    }
    for project in &found.projects {
        let what =
            if project.test_studio { "Test Studio project" } else { "not a Test Studio project (no Settings.aiis)" };
        writeln!(out, "{}  ({what})", display::path(&project.path))?;
        let items: Vec<_> = found.items.iter().filter(|i| i.project == project.path).collect();
        if items.is_empty() {
            writeln!(out, "  no secrets found")?;
        }
        for item in items {
            writeln!(out, "  {}", item.line_text_relative())?;
        }
    }
    let count = |kind| found.of(kind).count();
    eprintln!(
        "{} keyturn tokens, {} password steps encrypted by Test Studio, {} password steps in plain text, {} connection strings, {} settings passwords.",
        count(Kind::KeyturnToken),
        count(Kind::TestStudioCipher),
        count(Kind::PlaintextPassword),
        count(Kind::ConnectionString),
        count(Kind::SettingsPassword)
    );
    Ok(())
}

pub fn add(store: &Store, path: &Path) -> eyre::Result<()> {
    let dir = absolute(path)?;
    if !dir.is_dir() {
        return Err(Usage(format!("{}: not a directory; name a project directory", dir.display())).into());
    }
    if !inventory::is_test_studio_project(&dir) {
        eprintln!(
            "Note: {} has no {}, so it is not a Test Studio project; keyturn upgrades the tokens in it all the same.",
            display::path(&dir),
            inventory::SETTINGS_FILE
        );
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
    let dir = dunce::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
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
        let kind = if inventory::is_test_studio_project(&dir) { "\tTest Studio project" } else { "" };
        writeln!(out, "{}\t{state}{kind}", display::path(&dir))?;
    }
    Ok(())
}

pub fn purge(store: &mut Store, force: bool) -> eyre::Result<()> {
    let report = store.purge(force)?;
    if report.retired == 0 {
        eprintln!("No retired keys to purge.");
        return Ok(());
    }
    if !report.missing_projects.is_empty() {
        let names: Vec<String> = report.missing_projects.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "Warning: registered projects cannot be read, so their tokens cannot be checked: {}; --force purges without them.",
            names.join(", ")
        );
    }
    eprintln!(
        "Warning: Git history, backups and other machines may still hold tokens under the keys purged here; on this machine they become unreadable for good."
    );
    for (fp, usage) in &report.in_use {
        eprintln!("Retired key {fp} is still used by {} tokens or credentials, for example:", usage.count);
        for place in &usage.places {
            eprintln!("  {place}");
        }
    }
    if !report.in_use.is_empty() && !force {
        eyre::bail!(
            "refused: {} retired keys are still in use; run `keyturn upgrade` (and `keyturn import encryption` again for credentials) first, or purge anyway with --force",
            report.in_use.len()
        );
    }
    if force && !report.in_use.is_empty() {
        eprintln!("--force: purged keys still in use; the values listed above will be lost.");
    }
    let names: Vec<String> = report.removed.iter().map(ToString::to_string).collect();
    eprintln!("Purged {} retired keys: {}.", report.removed.len(), names.join(", "));
    let kept = report.retired - report.removed.len();
    if kept > 0 {
        eprintln!("{kept} retired keys are kept.");
    }
    Ok(())
}
