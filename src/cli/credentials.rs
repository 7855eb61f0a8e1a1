//! `credentials set` and `credentials list`.

use std::io::{BufRead, IsTerminal, Write};

use color_eyre::eyre::{self, WrapErr};
use keyturn::store::Store;
use keyturn::store::credentials::{CredentialName, CredentialState};
use serde_json::json;

use super::{Usage, input};

pub fn set(store: &mut Store, name: CredentialName, user: Option<String>) -> eyre::Result<()> {
    let user = match user {
        Some(user) => user,
        None if std::io::stdin().is_terminal() => {
            eprint!("User name for {name}: ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).wrap_err("cannot read the user name")?;
            line.trim().to_string()
        }
        None => {
            return Err(Usage("give the user name with --user NAME (the secret comes on standard input)".into()).into());
        }
    };
    if user.is_empty() || user.chars().any(char::is_control) {
        return Err(Usage("the user name is empty or has control characters".into()).into());
    }
    let secret = input::secret(&format!("Secret for {name} (it is not shown): "))?;
    if secret.is_empty() {
        eyre::bail!("the secret is empty; nothing was stored");
    }
    store.set_credential(name, &user, &secret).wrap_err(format!("the {name} credential was not stored"))?;
    eprintln!("The {name} credential for {user} is stored under encryption key {}.", store.keyring().active().id());
    Ok(())
}

fn state_text(state: &CredentialState) -> String {
    match state {
        CredentialState::Current => "readable under the active key".into(),
        CredentialState::Retired(fp) => format!("readable only under retired key {fp}; the next import re-encrypts it"),
        CredentialState::Inaccessible(e) => format!("inaccessible, must be re-entered ({e})"),
    }
}

pub fn list(store: &Store, json: bool) -> eyre::Result<()> {
    let ring = store.keyring();
    let mut out = std::io::stdout().lock();
    let entries = &store.credentials().entries;
    if json {
        let list: Vec<_> = entries
            .iter()
            .map(|c| {
                let (state, key) = match c.state(&ring) {
                    CredentialState::Current => ("current", Some(ring.active().id().to_string())),
                    CredentialState::Retired(fp) => ("retired", Some(fp.to_string())),
                    CredentialState::Inaccessible(_) => ("inaccessible", None),
                };
                json!({"name": c.name, "user": c.user, "state": state, "key": key, "updated": c.updated.to_string()})
            })
            .collect();
        writeln!(out, "{}", keyturn::display::json(&json!({ "credentials": list }))?)?;
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("No credentials stored; `keyturn credentials set git|bug-tracker|smtp` stores one.");
    }
    for c in entries {
        writeln!(out, "{:<12} {:<20} {}", c.name.name(), c.user, state_text(&c.state(&ring)))?;
    }
    Ok(())
}
