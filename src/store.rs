//! The machine's store: the home directory with its keys file (and keyring),
//! configuration, published key files, lock and audit log.

pub mod acl;
pub mod atomic;
pub mod audit;
pub mod config;
pub mod config_edit;
pub mod credentials;
pub mod file;
pub mod home;
pub mod keyfile;
pub mod lock;
pub mod publish;

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::fault;
use crate::keys::{Fingerprint, Key, KeyKind};
use crate::token::Keyring;
use audit::AuditLine;
use config::Config;
use credentials::{CREDENTIALS_FILE, Credential, CredentialName, CredentialState, CredentialsFile};
use file::Guard;
use home::Home;
use keyfile::KeysFile;
use lock::Lock;
use publish::Published;

/// The keys file's name in the home.
pub const KEYS_FILE: &str = "keys.toml";

/// Why the store refused or failed. Every message names the file and says
/// what to do; none quotes key material.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{} {problem}; keyturn leaves it as it is and will not replace it: restore it from a backup or repair it", path.display())]
    Corrupt { path: PathBuf, problem: String },
    #[error("{}: format version {found} is not one this keyturn reads (it reads 1); use the keyturn that wrote it or a newer one", path.display())]
    UnknownVersion { path: PathBuf, found: i64 },
    #[error("{} is inconsistent: {problem}; keyturn leaves it as it is: restore it from a backup", path.display())]
    Inconsistent { path: PathBuf, problem: String },
    #[error("{} {problem}; refused. Fix: {fix}", path.display())]
    Insecure { path: PathBuf, problem: String, fix: String },
    #[error("{}: {problem}", path.display())]
    Config { path: PathBuf, problem: String },
    #[error("{}: {problem}", path.display())]
    Publish { path: PathBuf, problem: String },
    #[error("another keyturn is changing the store in {}: {holder}; try again when it has finished", home.display())]
    Busy { home: PathBuf, holder: String },
    #[error(
        "a rotation of the {kind} key ({id}) is open here: finish it (keyturn rotation run) or abort it (keyturn rotation abort) before a plain import or reset"
    )]
    RotationOpen { id: String, kind: KeyKind },
}

impl StoreError {
    fn corrupt(path: &Path, problem: impl Into<String>) -> StoreError {
        StoreError::Corrupt { path: path.to_path_buf(), problem: problem.into() }
    }
}

/// The state of one kind of key, as `status` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// Which key.
    pub kind: KeyKind,
    /// Whether a custom key is loaded (false: the built-in default).
    pub custom: bool,
    /// The active key's fingerprint.
    pub fingerprint: Fingerprint,
    /// When the active custom key was imported here.
    pub created: Option<Timestamp>,
    /// Retired keys: fingerprint and when each was replaced.
    pub retired: Vec<(Fingerprint, Timestamp)>,
}

/// What an import or reset did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Which key.
    pub kind: KeyKind,
    /// The fingerprint before.
    pub old: Fingerprint,
    /// The fingerprint after.
    pub new: Fingerprint,
    /// False when the key was already active and nothing changed.
    pub changed: bool,
    /// The published files.
    pub published: Vec<Published>,
    /// Credentials re-encrypted under the new encryption key.
    pub credentials_reencrypted: usize,
    /// Credentials that cannot be read and must be re-entered.
    pub credentials_inaccessible: Vec<CredentialName>,
}

/// A machine's store, loaded and checked.
#[derive(Debug)]
pub struct Store {
    home: Home,
    keys: KeysFile,
    config: Config,
    credentials: CredentialsFile,
}

impl Store {
    /// Loads the store in `home`, refusing anything damaged, foreign or
    /// unsafe. A home that does not exist yet is a fresh machine on the
    /// default keys; nothing is written.
    pub fn open(home: Home) -> Result<Store, StoreError> {
        if home.dir.exists() && !home.dir.is_dir() {
            return Err(StoreError::Insecure {
                path: home.dir.clone(),
                problem: "is not a directory".into(),
                fix: "point --home or KEYTURN_HOME at a directory".into(),
            });
        }
        check_home_owner(&home.dir)?;
        let keys = load_keys(&home.dir)?;
        let config = Config::load(&home.dir)?;
        let credentials = load_credentials(&home.dir)?;
        Ok(Store { home, keys, config, credentials })
    }

    /// Where the store is.
    pub fn home(&self) -> &Home {
        &self.home
    }

    /// Takes the store's lock for a change made outside the store (a
    /// project upgrade); `doing` is shown to anyone who waits.
    pub fn lock(&self, doing: &str) -> Result<Lock, StoreError> {
        Lock::for_change(&self.home.dir, doing)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The active key of `kind`: the custom one, else the built-in default.
    pub fn active_key(&self, kind: KeyKind) -> Key {
        self.keys.active(kind).map_or_else(|| Key::default_for(kind), |k| k.key.clone())
    }

    /// The state of the key of `kind`.
    pub fn status(&self, kind: KeyKind) -> KeyStatus {
        let active = self.keys.active(kind);
        KeyStatus {
            kind,
            custom: active.is_some(),
            fingerprint: self.active_key(kind).fingerprint(),
            created: active.map(|k| k.created),
            retired: self.keys.retired(kind).filter_map(|k| Some((k.key.fingerprint(), k.retired?))).collect(),
        }
    }

    /// The encryption keyring: the active key seals; retired keys and the
    /// built-in default (which every installation has anyway) open.
    pub fn keyring(&self) -> Keyring {
        let active = self.active_key(KeyKind::Encryption);
        let mut retired: Vec<Key> = self.keys.retired(KeyKind::Encryption).map(|k| k.key.clone()).collect();
        if !active.is_default() {
            retired.push(Key::default_for(KeyKind::Encryption));
        }
        Keyring::new(&active, &retired)
    }

    /// Makes `key` the active key of its kind, retiring a replaced encryption
    /// key into the keyring, and publishes it. Importing the active key again
    /// changes nothing (but repairs published files).
    /// Refused while a rotation is open: the rotation imports its own key.
    pub fn import(&mut self, key: Key) -> Result<Change, StoreError> {
        self.plain_change(key.kind(), "import", Some(key))
    }

    /// Puts the communication key back to the built-in default. Refused
    /// while a rotation is open.
    pub fn reset_communication(&mut self) -> Result<Change, StoreError> {
        self.plain_change(KeyKind::Communication, "reset", None)
    }

    /// An import or reset outside a rotation: refused while one is open.
    fn plain_change(&mut self, kind: KeyKind, event: &str, key: Option<Key>) -> Result<Change, StoreError> {
        let _lock = self.lock(&format!("{event} {kind}"))?;
        refuse_if_rotation_open(&self.home.dir)?;
        self.change_locked(kind, event, key)
    }

    /// A rotation's import step: `key` (or, with `None`, the default key of
    /// `kind`) becomes active. The caller holds the lock.
    pub fn import_in_rotation(&mut self, kind: KeyKind, key: Option<Key>) -> Result<Change, StoreError> {
        self.change_locked(kind, if key.is_some() { "import" } else { "reset" }, key)
    }

    fn change_locked(&mut self, kind: KeyKind, event: &str, key: Option<Key>) -> Result<Change, StoreError> {
        let dir = self.home.dir.clone();
        // Re-read under the lock: another writer may have changed the store
        // since this one was opened.
        *self = Store::open(self.home.clone())?;
        let targets = self.config.published(&dir, kind);
        publish::check_targets(&dir, &targets)?;
        atomic::remove_stale_temporaries(&dir);
        for (target, _) in &targets {
            atomic::remove_stale_temporaries(target.parent().unwrap_or(&dir));
        }
        let old = self.active_key(kind);
        let new = key.unwrap_or_else(|| Key::default_for(kind));
        let changed = old != new;
        if changed {
            // Audited before the write, so a change cut short by a crash is
            // on record even if its closing line never comes.
            AuditLine {
                kind: Some(kind),
                old: Some(old.fingerprint()),
                new: Some(new.fingerprint()),
                ..AuditLine::new(event, "started")
            }
            .append(&dir)?;
            let mut keys = self.keys.clone();
            keys.activate(kind, (!new.is_default()).then(|| new.clone()), now());
            self.write_keys(&keys)?;
            self.keys = keys;
            fault::point("keys file written");
        }
        // After the keys file: the old key is in the ring before anything is
        // re-encrypted, so a crash between the two writes loses nothing, and
        // repeating the import finishes the job.
        let (credentials_reencrypted, credentials_inaccessible) =
            if kind == KeyKind::Encryption { self.reencrypt_credentials()? } else { (0, Vec::new()) };
        let published = publish::publish(&targets, &new)?;
        let change = Change {
            kind,
            old: old.fingerprint(),
            new: new.fingerprint(),
            changed,
            published,
            credentials_reencrypted,
            credentials_inaccessible,
        };
        let mut outcome = String::from(if changed { "changed" } else { "unchanged: already active" });
        if credentials_reencrypted > 0 {
            outcome.push_str(&format!("; {credentials_reencrypted} credentials re-encrypted"));
        }
        AuditLine { kind: Some(kind), old: Some(change.old), new: Some(change.new), ..AuditLine::new(event, outcome) }
            .append(&dir)?;
        Ok(change)
    }

    fn reencrypt_credentials(&mut self) -> Result<(usize, Vec<CredentialName>), StoreError> {
        let ring = self.keyring();
        let mut credentials = self.credentials.clone();
        let count = credentials.reencrypt(&ring, now());
        if count > 0 {
            self.write_credentials(&credentials)?;
            self.credentials = credentials;
        }
        let inaccessible = self
            .credentials
            .entries
            .iter()
            .filter(|c| matches!(c.state(&ring), CredentialState::Inaccessible(_)))
            .map(|c| c.name)
            .collect();
        Ok((count, inaccessible))
    }

    fn write_keys(&self, keys: &KeysFile) -> Result<(), StoreError> {
        let path = self.home.dir.join(KEYS_FILE);
        atomic::write(&path, keys.to_toml().as_bytes(), atomic::Access::OwnerOnly)
            .map_err(|source| StoreError::Io { path, source })
    }

    fn write_credentials(&self, credentials: &CredentialsFile) -> Result<(), StoreError> {
        let path = self.home.dir.join(CREDENTIALS_FILE);
        atomic::write(&path, credentials.to_toml().as_bytes(), atomic::Access::OwnerOnly)
            .map_err(|source| StoreError::Io { path, source })
    }

    /// The machine's credentials.
    pub fn credentials(&self) -> &CredentialsFile {
        &self.credentials
    }

    /// Stores a credential, its secret sealed under the active encryption key.
    pub fn set_credential(&mut self, name: CredentialName, user: &str, secret: &[u8]) -> Result<(), StoreError> {
        let dir = self.home.dir.clone();
        let _lock = self.lock(&format!("credentials set {name}"))?;
        *self = Store::open(self.home.clone())?;
        let mut credentials = self.credentials.clone();
        let ring = self.keyring();
        credentials.set(Credential { name, user: user.to_string(), secret: ring.seal(secret), updated: now() });
        self.write_credentials(&credentials)?;
        self.credentials = credentials;
        AuditLine {
            kind: Some(KeyKind::Encryption),
            new: Some(ring.active().id()),
            ..AuditLine::new("credential", format!("{name} entered"))
        }
        .append(&dir)
    }

    /// Removes the retired encryption keys `fingerprints` from the keyring.
    /// Returns the ones removed.
    pub fn purge(&mut self, fingerprints: &[Fingerprint]) -> Result<Vec<Fingerprint>, StoreError> {
        let dir = self.home.dir.clone();
        let _lock = self.lock("keys purge")?;
        *self = Store::open(self.home.clone())?;
        let mut keys = self.keys.clone();
        let mut removed = Vec::new();
        keys.keys.retain(|k| {
            let gone = k.retired.is_some() && fingerprints.contains(&k.key.fingerprint());
            if gone {
                removed.push(k.key.fingerprint());
            }
            !gone
        });
        if removed.is_empty() {
            return Ok(removed);
        }
        self.write_keys(&keys)?;
        self.keys = keys;
        let list: Vec<String> = removed.iter().map(ToString::to_string).collect();
        AuditLine {
            kind: Some(KeyKind::Encryption),
            ..AuditLine::new("purge", format!("removed {}", list.join(", ")))
        }
        .append(&dir)?;
        Ok(removed)
    }
}

/// Now, to the whole second below (never in the future, so ages are never
/// negative).
fn now() -> Timestamp {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now)
}

fn load_credentials(dir: &Path) -> Result<CredentialsFile, StoreError> {
    let path = dir.join(CREDENTIALS_FILE);
    match file::read(&path, Guard::Secret)? {
        None => Ok(CredentialsFile::default()),
        Some(bytes) => CredentialsFile::parse(&path, &bytes),
    }
}

/// A home owned by another user is refused: that user could swap its files.
#[cfg(unix)]
fn check_home_owner(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else { return Ok(()) };
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(StoreError::Insecure {
            path: dir.to_path_buf(),
            problem: format!(
                "is owned by another user (uid {}, keyturn runs as uid {me}), who could change its files",
                meta.uid()
            ),
            fix: format!(
                "run keyturn as the home's owner, or use a home of your own (--home); as its owner: chown -R {me} '{}'",
                dir.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_home_owner(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn refuse_if_rotation_open(dir: &Path) -> Result<(), StoreError> {
    match crate::rotation::persist::open_rotation(dir)? {
        Some(r) => Err(StoreError::RotationOpen { id: r.id, kind: r.kind }),
        None => Ok(()),
    }
}

fn load_keys(dir: &Path) -> Result<KeysFile, StoreError> {
    let path = dir.join(KEYS_FILE);
    match file::read(&path, Guard::Secret)? {
        None => Ok(KeysFile::default()),
        Some(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            KeysFile::parse(&path, &bytes)
        }
    }
}
