//! The machine's credentials, `credentials.toml`: the Git, bug-tracker and
//! SMTP user names with their secrets sealed as tokens under the active
//! encryption key. Format version 1:
//!
//! ```toml
//! format = 1
//!
//! [[credentials]]
//! name = "git"                       # git | bug-tracker | smtp
//! user = "qa-bot"
//! secret = "ktsec:1:..."             # a token, never the secret itself
//! updated = "2026-11-23T10:49:42Z"
//! ```

use std::fmt::{self, Write as _};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::StoreError;
use super::file::versioned_list;
use crate::keys::Fingerprint;
use crate::token::{Keyring, ParsedToken, TokenError};

/// The credentials file's name in the home.
pub const CREDENTIALS_FILE: &str = "credentials.toml";
const FORMAT: i64 = 1;

/// Which credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CredentialName {
    /// Source control.
    Git,
    /// The bug-tracking system.
    BugTracker,
    /// The Scheduling server's SMTP settings.
    Smtp,
}

impl CredentialName {
    /// All, in display order.
    pub const ALL: [CredentialName; 3] = [CredentialName::Git, CredentialName::BugTracker, CredentialName::Smtp];

    /// The name used in commands and files.
    pub fn name(self) -> &'static str {
        match self {
            CredentialName::Git => "git",
            CredentialName::BugTracker => "bug-tracker",
            CredentialName::Smtp => "smtp",
        }
    }

    fn from_name(name: &str) -> Option<CredentialName> {
        CredentialName::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for CredentialName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One stored credential. The secret is a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    /// Which one.
    pub name: CredentialName,
    /// The user name (not secret).
    pub user: String,
    /// The secret, sealed.
    pub secret: String,
    /// When it was last entered or re-encrypted.
    pub updated: Timestamp,
}

/// Whether a credential can be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialState {
    /// Sealed under the active key.
    Current,
    /// Readable only under this retired key; the next import re-encrypts it.
    Retired(Fingerprint),
    /// Cannot be read: it must be re-entered.
    Inaccessible(TokenError),
}

impl Credential {
    /// Whether the keyring can read it, and under which key.
    pub fn state(&self, ring: &Keyring) -> CredentialState {
        match (ParsedToken::parse(&self.secret), ring.open(&self.secret)) {
            (_, Err(e)) | (Err(e), _) => CredentialState::Inaccessible(e),
            (Ok(parsed), Ok(_)) if ring.is_current(&parsed) => CredentialState::Current,
            (Ok(parsed), Ok(_)) => CredentialState::Retired(parsed.key_id()),
        }
    }
}

/// The content of the credentials file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialsFile {
    /// One entry per name at most, in name order.
    pub entries: Vec<Credential>,
}

impl CredentialsFile {
    /// Stores (or replaces) a credential.
    pub fn set(&mut self, credential: Credential) {
        self.entries.retain(|c| c.name != credential.name);
        self.entries.push(credential);
        self.entries.sort_by_key(|c| c.name);
    }

    /// Re-encrypts under the active key every credential the ring can read
    /// under a retired key; returns how many.
    pub fn reencrypt(&mut self, ring: &Keyring, now: Timestamp) -> usize {
        let mut count = 0;
        for credential in &mut self.entries {
            if let CredentialState::Retired(_) = credential.state(ring)
                && let Ok(secret) = ring.open(&credential.secret)
            {
                credential.secret = ring.seal(&secret);
                credential.updated = now;
                count += 1;
            }
        }
        count
    }

    /// Parses and checks the file at `path` (for messages).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<CredentialsFile, StoreError> {
        let entries = versioned_list(path, bytes, FORMAT, "credentials")?;
        let corrupt = |problem: String| StoreError::Corrupt { path: path.to_path_buf(), problem };
        let mut file = CredentialsFile::default();
        for (i, entry) in entries.iter().enumerate() {
            let credential = parse_entry(entry).map_err(|p| corrupt(format!("credential entry {}: {p}", i + 1)))?;
            if file.entries.iter().any(|c| c.name == credential.name) {
                return Err(StoreError::Inconsistent {
                    path: path.to_path_buf(),
                    problem: format!("the {} credential is listed twice", credential.name),
                });
            }
            file.entries.push(credential);
        }
        file.entries.sort_by_key(|c| c.name);
        Ok(file)
    }

    /// The file's text.
    pub fn to_toml(&self) -> String {
        let mut out =
            String::from("# keyturn credentials: secrets sealed under the encryption key. Written by keyturn.\n");
        let _ = writeln!(out, "format = {FORMAT}");
        if self.entries.is_empty() {
            out.push_str("credentials = []\n");
        }
        for c in &self.entries {
            let _ = write!(
                out,
                "\n[[credentials]]\nname = \"{}\"\nuser = {}\nsecret = \"{}\"\nupdated = \"{}\"\n",
                c.name,
                toml::Value::String(c.user.clone()),
                c.secret,
                c.updated
            );
        }
        out.push_str(super::file::END_LINE);
        out.push('\n');
        out
    }
}

fn parse_entry(entry: &toml::Value) -> Result<Credential, String> {
    let toml::Value::Table(table) = entry else { return Err("not a table".into()) };
    if let Some(unknown) = table.keys().find(|k| !["name", "user", "secret", "updated"].contains(&k.as_str())) {
        return Err(format!("unknown field `{unknown}`"));
    }
    let string = |name: &str| match table.get(name) {
        None => Err(format!("missing field `{name}`")),
        Some(toml::Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("`{name}` is not a string")),
    };
    let name = CredentialName::from_name(&string("name")?).ok_or("`name` is not git, bug-tracker or smtp")?;
    let secret = string("secret")?;
    // Only the token grammar: a secret in clear, or anything else, is refused.
    if crate::token::ParsedToken::parse(&secret).is_err() {
        return Err("`secret` is not a token (a secret must never be stored in clear)".into());
    }
    let updated = string("updated")?.parse().map_err(|_| "`updated` is not a time".to_string())?;
    Ok(Credential { name, user: string("user")?, secret, updated })
}
