//! `status`, `generate`, `import`, `show`, `fingerprint`, `reset`.

use std::io::Write;
use std::path::Path;

use color_eyre::eyre::{self, WrapErr};
use jiff::Timestamp;
use keyturn::keys::{Key, KeyKind};
use keyturn::store::config::Encoding;
use keyturn::store::publish;
use keyturn::store::{Change, KeyStatus, Store};
use serde_json::json;

use super::{Usage, input};

const DEFAULT_WARNING: &str =
    "data under the default key is readable by anyone who has keyturn; generate and import a custom key";

fn loaded(status: &KeyStatus) -> &'static str {
    if status.custom { "Custom Key Loaded." } else { "Default Key Loaded." }
}

fn age(since: Timestamp) -> String {
    let seconds = Timestamp::now().as_second() - since.as_second();
    if seconds < -300 {
        return format!(
            "in the future by {}: this machine's clock is behind the one that imported it; check the clock",
            if seconds < -86_400 {
                format!("{} days", -seconds / 86_400)
            } else {
                format!("{} minutes", -seconds / 60)
            }
        );
    }
    match seconds.max(0) / 86_400 {
        0 => "today".to_string(),
        1 => "1 day ago".to_string(),
        days => format!("{days} days ago"),
    }
}

pub fn status(store: &Store, json: bool) -> eyre::Result<()> {
    let home = store.home();
    let statuses: Vec<KeyStatus> = KeyKind::ALL.into_iter().map(|k| store.status(k)).collect();
    let mut out = std::io::stdout().lock();
    if json {
        let keys: serde_json::Map<String, serde_json::Value> = statuses
            .iter()
            .map(|s| {
                let value = json!({
                    "loaded": if s.custom { "custom" } else { "default" },
                    "fingerprint": s.fingerprint.to_string(),
                    "imported": s.created.map(|t| t.to_string()),
                    "age_seconds": s.created.map(|t| Timestamp::now().as_second() - t.as_second()),
                    "retired": s.retired.iter().map(|(fp, when)| json!({"fingerprint": fp.to_string(), "retired": when.to_string()})).collect::<Vec<_>>(),
                });
                (s.kind.name().to_string(), value)
            })
            .collect();
        let doc = json!({
            "keyturn": env!("CARGO_PKG_VERSION"),
            "time": Timestamp::now().to_string(),
            "machine": keyturn::system::machine(),
            "home": home.dir.display().to_string(),
            "machine_wide": home.machine_wide,
            "keys": keys,
            "rotation": super::rotation::summary_json(&home.dir)?,
        });
        writeln!(out, "{}", keyturn::display::json(&doc)?)?;
        return Ok(());
    }
    let scope = if home.machine_wide {
        "machine-wide"
    } else {
        "a user store, not machine-wide: services reading the machine's store do not see it"
    };
    writeln!(out, "keyturn {}, home {} ({scope})", env!("CARGO_PKG_VERSION"), home.dir.display())?;
    for s in &statuses {
        let label = format!("{} key:", s.kind.title());
        write!(out, "{label:<19}{:<20} {}", loaded(s), s.fingerprint)?;
        match s.created {
            Some(created) => writeln!(out, "  imported {} ({})", created.strftime("%Y-%m-%d %H:%M UTC"), age(created))?,
            None => writeln!(out)?,
        }
        if !s.custom {
            writeln!(out, "{:19}Warning: {DEFAULT_WARNING}.", "")?;
        }
        if !s.retired.is_empty() {
            let fps: Vec<String> = s.retired.iter().map(|(fp, _)| fp.to_string()).collect();
            writeln!(out, "{:19}Retired, kept to read older data: {}", "", fps.join(", "))?;
        }
    }
    match keyturn::rotation::persist::open_rotation(&home.dir)? {
        Some(r) => writeln!(
            out,
            "{:<19}{} key rotation open, at step `{}` (keyturn rotation status)",
            "Rotation:",
            r.kind,
            r.current().map_or("-", |s| s.id.as_str())
        )?,
        None => writeln!(out, "{:<19}none open", "Rotation:")?,
    }
    Ok(())
}

pub fn generate(kind: KeyKind) -> eyre::Result<()> {
    let key = Key::generate(kind)?;
    let mut out = std::io::stdout().lock();
    out.write_all(key.to_text().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    eprintln!(
        "Key generated successfully. Ready to import (fingerprint {}): keyturn import {kind} < FILE. \
         Keep it as secret as the data it protects.",
        key.fingerprint()
    );
    Ok(())
}

pub fn import(store: &mut Store, kind: KeyKind, file: Option<&Path>) -> eyre::Result<()> {
    let text = input::key_text(kind, file)?;
    let key = Key::parse(kind, &text).wrap_err(format!("the {kind} key was not imported"))?;
    drop(text);
    let change = store.import(key).wrap_err(format!("the {kind} key was not imported"))?;
    report_change(&change, "imported");
    Ok(())
}

pub fn reset(store: &mut Store, kind: KeyKind) -> eyre::Result<()> {
    if kind == KeyKind::Encryption {
        return Err(Usage(
            "the encryption key has no reset (as in the original): data sealed under a custom key would become unreadable; import a new key instead".into(),
        )
        .into());
    }
    let change = store.reset_communication().wrap_err("the communication key was not reset")?;
    report_change(&change, "reset to the default");
    if change.changed || change.published.iter().any(|p| p.changed) {
        eprintln!("Warning: {DEFAULT_WARNING}.");
    }
    Ok(())
}

fn report_change(change: &Change, verb: &str) {
    let kind = change.kind;
    if !change.changed {
        eprintln!("The {kind} key {} is already active; nothing changed.", change.new);
    } else {
        eprintln!("Key {verb} successfully. The {kind} key is now {} (was {}).", change.new, change.old);
        if kind == KeyKind::Encryption {
            eprintln!("The replaced key {} is kept as retired, so data sealed under it stays readable.", change.old);
        }
    }
    if change.credentials_reencrypted > 0 {
        eprintln!("{} credentials re-encrypted under the new key.", change.credentials_reencrypted);
    }
    for name in &change.credentials_inaccessible {
        eprintln!("The {name} credential cannot be read and must be re-entered: keyturn credentials set {name}");
    }
    for published in &change.published {
        let state = if published.changed { "written" } else { "already current" };
        eprintln!("Published {}: {state}.", published.path.display());
    }
    if change.changed || change.published.iter().any(|p| p.changed) {
        eprintln!(
            "Components read the key when they start: restart them. Every other machine must import the same key."
        );
    }
}

pub fn show(store: &Store, kind: KeyKind) -> eyre::Result<()> {
    let key = store.active_key(kind);
    if key.is_default() {
        eyre::bail!(
            "the {kind} key is the built-in default, which cannot be shown or copied; generate and import a custom key"
        );
    }
    eprintln!(
        "The next line is the secret {kind} key ({}). Anyone who sees it can use it: clear the screen when done.",
        key.fingerprint()
    );
    let mut out = std::io::stdout().lock();
    out.write_all(key.to_text().as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

/// The fingerprint of the key in a file (a published file, a key file to
/// distribute): what a component's `check` command can print.
pub fn fingerprint_of_file(kind: KeyKind, path: &Path, encoding: Encoding) -> eyre::Result<()> {
    let bytes = std::fs::read(path).wrap_err_with(|| format!("cannot read {}", path.display()))?;
    let bytes = zeroize::Zeroizing::new(bytes);
    let key = publish::parse(kind, &bytes, encoding).map_err(|e| eyre::eyre!("{}: {e}", path.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", key.fingerprint())?;
    out.flush()?;
    Ok(())
}

pub fn fingerprint(store: &Store, kind: KeyKind) -> eyre::Result<()> {
    let key = store.active_key(kind);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", key.fingerprint())?;
    out.flush()?;
    if key.is_default() {
        eprintln!("This is the built-in default {kind} key: {DEFAULT_WARNING}.");
    }
    Ok(())
}
