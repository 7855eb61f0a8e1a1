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
/// Written beside the keys file once it holds a custom key: from then on a
/// missing keys file is an error, never the default key.
pub const HELD_MARKER: &str = "keys.held";

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
    #[error(
        "{} is missing, but this home has held a custom key ({evidence}): keyturn will not fall back to the built-in default key. Restore {} from a backup (or from the machine it was copied from) and run again; only if it is lost for good, remove {} to start over from the default key and import your key again",
        path.display(), path.display(), marker.display()
    )]
    KeysMissing { path: PathBuf, evidence: String, marker: PathBuf },
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
        check_home(&home.dir)?;
        let keys = load_keys(&home.dir)?;
        let config = Config::load(&home.dir)?;
        let credentials = load_credentials(&home.dir)?;
        fault::hold("store opened");
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
            // The communication key replaced last is kept for a rollback
            // only: nothing is sealed under it.
            retired: if kind == KeyKind::Encryption {
                self.keys.retired(kind).filter_map(|k| Some((k.key.fingerprint(), k.retired?))).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The key a rollback of `kind` makes active again: `preferred` (the
    /// key the last rotation replaced) when the store still holds it, else
    /// the key replaced last; `Previous::Default` when that was the
    /// built-in default (communication only: the encryption key has no
    /// reset). `None`: there is nothing to go back to.
    pub fn previous_key(&self, kind: KeyKind, preferred: Option<Fingerprint>) -> Option<Previous> {
        let active = self.active_key(kind).fingerprint();
        let preferred = preferred.filter(|fp| *fp != active);
        if let Some(fp) = preferred {
            if fp == Key::default_for(kind).fingerprint() {
                return Some(Previous::Default);
            }
            if let Some(k) = self.keys.retired(kind).find(|k| k.key.fingerprint() == fp) {
                return Some(Previous::Key(k.key.clone()));
            }
        }
        match self.keys.retired(kind).next() {
            Some(k) => Some(Previous::Key(k.key.clone())),
            None if self.keys.active(kind).is_some() => Some(Previous::Default),
            None => None,
        }
    }

    /// The encryption keyring as the keys file holds it now, read again:
    /// what a change made under the lock must use (another keyturn may have
    /// imported or purged since this store was opened).
    pub fn keyring_now(&self) -> Result<Keyring, StoreError> {
        Ok(Store::open(self.home.clone())?.keyring())
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
        self.change_locked(kind, event, key, false)
    }

    /// A rotation's import step: `key` (or, with `None`, the default key of
    /// `kind`) becomes active. The caller holds the lock.
    pub fn import_in_rotation(&mut self, kind: KeyKind, key: Option<Key>) -> Result<Change, StoreError> {
        self.change_locked(kind, if key.is_some() { "import" } else { "reset" }, key, true)
    }

    /// `keep_previous`: a rotation keeps the communication key it replaces,
    /// for a rollback; a plain import or reset does not.
    fn change_locked(
        &mut self,
        kind: KeyKind,
        event: &str,
        key: Option<Key>,
        keep_previous: bool,
    ) -> Result<Change, StoreError> {
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
            let new_key = (!new.is_default()).then(|| new.clone());
            if keep_previous {
                keys.activate_keeping_previous(kind, new_key, now());
            } else {
                keys.activate(kind, new_key, now());
            }
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
            .map_err(|source| StoreError::Io { path, source })?;
        // After the keys file, never before: a crash between the two leaves
        // a keys file without the marker (written next time), never a
        // marker without its keys file.
        let marker = self.home.dir.join(HELD_MARKER);
        if !keys.keys.is_empty() && !marker.exists() {
            let note =
                "This home has held a custom key: without keys.toml keyturn refuses to fall back to the default key.\n";
            atomic::write(&marker, note.as_bytes(), atomic::Access::OwnerOnly)
                .map_err(|source| StoreError::Io { path: marker.clone(), source })?;
        }
        Ok(())
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

    /// Removes the retired encryption keys that nothing registered still
    /// uses, all of them with `force`. One transaction: under the lock, the
    /// store is read again, the registered projects are scanned (skipped
    /// files included: a token in a file the upgrade cannot rewrite is still
    /// a token) and the credentials checked, and only then is the keys file
    /// written. Nothing is removed while a key is in use, unless forced.
    pub fn purge(&mut self, force: bool) -> Result<PurgeReport, PurgeError> {
        let _lock = self.lock("keys purge")?;
        *self = Store::open(self.home.clone())?;
        let dir = self.home.dir.clone();
        let retired: Vec<Fingerprint> = self.status(KeyKind::Encryption).retired.iter().map(|(fp, _)| *fp).collect();
        let mut report = PurgeReport { retired: retired.len(), ..Default::default() };
        if retired.is_empty() {
            return Ok(report);
        }
        let (roots, missing): (Vec<PathBuf>, Vec<PathBuf>) =
            self.config.project_dirs(&dir).into_iter().partition(|r| r.is_dir());
        report.missing_projects = missing;
        if !report.missing_projects.is_empty() && !force {
            return Err(PurgeError::ProjectsMissing(report.missing_projects));
        }
        let ring = self.keyring();
        let scan = crate::project::key_usage(&roots, &ring)?;
        for fp in &retired {
            let mut usage = crate::project::Usage::default();
            for c in self.credentials.entries.iter().filter(|c| c.state(&ring) == CredentialState::Retired(*fp)) {
                usage.count += 1;
                usage.places.push(format!("the {} credential", c.name));
            }
            // A token whose key cannot be told may be under this one.
            for u in scan.usage.get(fp).into_iter().chain(Some(&scan.unknown)) {
                usage.count += u.count;
                usage.places.extend(u.places.iter().cloned());
            }
            if usage.count > 0 {
                report.in_use.push((*fp, usage));
            }
        }
        if !report.in_use.is_empty() && !force {
            return Ok(report);
        }
        let chosen: Vec<Fingerprint> =
            retired.iter().copied().filter(|fp| force || !report.in_use.iter().any(|(u, _)| u == fp)).collect();
        let mut keys = self.keys.clone();
        keys.keys.retain(|k| {
            let gone = k.retired.is_some() && chosen.contains(&k.key.fingerprint());
            if gone {
                report.removed.push(k.key.fingerprint());
            }
            !gone
        });
        if report.removed.is_empty() {
            return Ok(report);
        }
        self.write_keys(&keys)?;
        self.keys = keys;
        let list: Vec<String> = report.removed.iter().map(ToString::to_string).collect();
        let forced = if force && !report.in_use.is_empty() { " (forced, while in use)" } else { "" };
        AuditLine {
            kind: Some(KeyKind::Encryption),
            ..AuditLine::new("purge", format!("removed {}{forced}", list.join(", ")))
        }
        .append(&dir)?;
        Ok(report)
    }

    /// Upgrades the projects at `roots`: one transaction, so the keyring it
    /// re-encrypts with is the one in the store while it writes (an import
    /// or purge waits for it, and it waits for them). A dry run writes
    /// nothing and takes no lock: it works on a home it cannot write.
    pub fn upgrade(
        &mut self,
        roots: &[PathBuf],
        dry_run: bool,
        progress: &mut dyn FnMut(crate::project::Progress),
    ) -> Result<Vec<crate::project::ProjectReport>, UpgradeError> {
        let _lock = if dry_run { None } else { Some(self.lock("upgrade")?) };
        *self = Store::open(self.home.clone())?;
        Ok(crate::project::upgrade(roots, &self.keyring(), dry_run, progress)?)
    }
}

/// The key a rollback goes back to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Previous {
    /// A custom key from the keys file.
    Key(Key),
    /// The built-in default key.
    Default,
}

/// What a purge found and did.
#[derive(Clone, Debug, Default)]
pub struct PurgeReport {
    /// How many retired keys there were.
    pub retired: usize,
    /// The keys removed (none when refused).
    pub removed: Vec<Fingerprint>,
    /// Retired keys still in use, with where.
    pub in_use: Vec<(Fingerprint, crate::project::Usage)>,
    /// Registered projects that could not be read (only with force).
    pub missing_projects: Vec<PathBuf>,
}

/// Why a purge stopped.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot check which keys the projects use: {0}")]
    Project(#[from] crate::project::ProjectError),
    #[error(
        "refused: registered projects cannot be read, so their tokens cannot be checked: {}; mount them, or remove them from the list (keyturn projects remove DIR), or purge anyway with --force",
        .0.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ProjectsMissing(Vec<PathBuf>),
}

/// Why an upgrade stopped.
#[derive(Debug, thiserror::Error)]
pub enum UpgradeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upgrade stopped: {0}")]
    Project(#[from] crate::project::ProjectError),
}

impl PurgeError {
    /// The store error inside, if it is one (to tell a busy store).
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            PurgeError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl UpgradeError {
    /// The store error inside, if it is one (to tell a busy store).
    pub fn store(&self) -> Option<&StoreError> {
        match self {
            UpgradeError::Store(e) => Some(e),
            UpgradeError::Project(_) => None,
        }
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

/// A home owned by another user, or one that others can write, is refused:
/// they could swap its files or move the keys file away.
#[cfg(unix)]
fn check_home(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StoreError::Insecure {
            path: dir.to_path_buf(),
            problem: format!(
                "is a home that other users can write (mode {mode:04o}): they could move its keys file away or swap its files"
            ),
            fix: format!("chmod 700 '{}'", dir.display()),
        });
    }
    Ok(())
}

/// Windows: the home is created with an owner-only ACL; an existing ACL is
/// not inspected here.
#[cfg(not(unix))]
fn check_home(_dir: &Path) -> Result<(), StoreError> {
    Ok(())
}

/// What says that this home has held a custom key, if anything does: the
/// marker, or a completed import of a custom key in the audit log.
fn held_custom_key(dir: &Path) -> Option<String> {
    if dir.join(HELD_MARKER).exists() {
        return Some(format!("{HELD_MARKER} says so"));
    }
    #[derive(serde::Deserialize)]
    struct Seen {
        event: String,
        kind: Option<KeyKind>,
        new: Option<String>,
        outcome: String,
    }
    // Only an import that completed: a rotation's first lines come before
    // its keys file is written.
    let log = std::fs::read(dir.join(audit::AUDIT_FILE)).unwrap_or_default();
    let custom = log.split(|b| *b == b'\n').filter_map(|line| serde_json::from_slice::<Seen>(line).ok()).any(|seen| {
        seen.event == "import"
            && seen.outcome.starts_with("changed")
            && matches!((seen.kind, seen.new), (Some(kind), Some(new)) if new != Key::default_for(kind).fingerprint().to_string())
    });
    if custom {
        return Some(format!("{} records the import of a custom key", audit::AUDIT_FILE));
    }
    None
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
        None => match held_custom_key(dir) {
            Some(evidence) => Err(StoreError::KeysMissing { path, evidence, marker: dir.join(HELD_MARKER) }),
            None => Ok(KeysFile::default()),
        },
        Some(bytes) => {
            let bytes = zeroize::Zeroizing::new(bytes);
            KeysFile::parse(&path, &bytes)
        }
    }
}
