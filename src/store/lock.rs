//! The writer's lock: an OS file lock on `keyturn.lock`, held for the length
//! of one change. The OS frees it when the holder dies, even by `kill -9`.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::StoreError;

/// The lock file's name in the home.
pub const LOCK_FILE: &str = "keyturn.lock";

/// How long a second writer waits before it is told who holds the lock.
/// `KEYTURN_LOCK_WAIT_MS` overrides it.
pub fn default_wait() -> Duration {
    let ms = std::env::var("KEYTURN_LOCK_WAIT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    Duration::from_millis(ms)
}

/// A held lock; dropping it clears the holder's note and releases the lock.
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

impl Lock {
    /// Creates the home if it is new (owner-only), then takes its lock,
    /// waiting the default time: what every change of the store begins with.
    pub fn for_change(home: &Path, doing: &str) -> Result<Lock, StoreError> {
        super::atomic::create_private_dir(home)
            .map_err(|source| StoreError::Io { path: home.to_path_buf(), source })?;
        Lock::acquire(home, doing, default_wait())
    }

    /// Takes the lock of the store in `home`, waiting up to `wait`.
    /// `doing` says what this process is doing, for the next one that waits.
    pub fn acquire(home: &Path, doing: &str, wait: Duration) -> Result<Lock, StoreError> {
        let path = home.join(LOCK_FILE);
        let io = |source| StoreError::Io { path: path.clone(), source };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        let mut file = options.open(&path).map_err(io)?;
        #[cfg(unix)]
        {
            // The umask narrows the mode above but a umask of 000 leaves it
            // as it is; set it exactly all the same.
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                file = wait_for(file, wait).map_err(io)?.ok_or_else(|| busy(&path, home))?
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let note = format!(
            "keyturn pid {} ({}) by {} since {}",
            std::process::id(),
            doing,
            crate::system::operator(),
            jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(note.as_bytes()))
            .map_err(io)?;
        hold_for_tests();
        Ok(Lock { file })
    }
}

/// Blocks on the lock in the OS (no polling) for at most `wait`: a helper
/// thread waits and hands the file back, locked. Given up on, the helper
/// drops the file when (if ever) it gets the lock, which releases it.
fn wait_for(file: File, wait: Duration) -> std::io::Result<Option<File>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let locked = file.lock().map(|()| file);
        let _ = tx.send(locked);
    });
    match rx.recv_timeout(wait) {
        Ok(locked) => locked.map(Some),
        Err(_) => Ok(None),
    }
}

/// Who holds the lock, as the holder wrote it right after locking.
fn busy(path: &Path, home: &Path) -> StoreError {
    let mut holder = String::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_string(&mut holder);
    }
    // An empty note means the holder has only just started.
    let holder = holder.trim();
    StoreError::Busy {
        home: home.to_path_buf(),
        holder: if holder.is_empty() { "another process".to_string() } else { holder.to_string() },
    }
}

/// Debug builds only: `KEYTURN_TEST_HOLD_LOCK_MS` keeps the lock that long,
/// so a test can run a second writer against it and kill the first.
fn hold_for_tests() {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("KEYTURN_TEST_HOLD_LOCK_MS").ok().and_then(|v| v.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
}
