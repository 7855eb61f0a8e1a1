//! Crash-safe file writes: a temporary file in the same directory, flushed,
//! renamed over the old file, then the directory flushed, so a crash at any
//! instant leaves the old file or the new one, never a torn one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::fault;

const TEMP_PREFIX: &str = ".keyturn-";
const TEMP_SUFFIX: &str = ".tmp";

/// Who may read the file written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Owner only (0600 on Unix, an owner/SYSTEM/Administrators ACL on
    /// Windows), whatever the umask: key material and secrets.
    OwnerOnly,
    /// Readable by all, writable by the owner only (0644 whatever the umask).
    Shared,
}

/// Replaces `path` with `bytes` crash-safely.
pub fn write(path: &Path, bytes: &[u8], access: Access) -> io::Result<()> {
    write_with(path, bytes, |tmp| match access {
        Access::OwnerOnly => restrict_to_owner(tmp),
        Access::Shared => share_read(tmp),
    })
}

/// Replaces `path` with `bytes` crash-safely; `prepare` sets the temporary
/// file's permissions (or owner) before anything is written to it.
pub fn write_with(path: &Path, bytes: &[u8], prepare: impl FnOnce(&Path) -> io::Result<()>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // tempfile creates the file owner-only (0600), which a umask cannot widen.
    let mut tmp = tempfile::Builder::new().prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX).tempfile_in(dir)?;
    prepare(tmp.path())?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    fault::point("temporary file written");
    tmp.persist(path).map_err(|e| e.error)?;
    fault::point("renamed");
    sync_dir(dir)
}

#[cfg(unix)]
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
}

#[cfg(unix)]
fn share_read(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// On Windows the file (or directory) gets a protected DACL for its owner,
/// SYSTEM and Administrators only, through the Win32 security API.
#[cfg(windows)]
fn restrict_to_owner(path: &Path) -> io::Result<()> {
    super::acl::restrict_to_owner(path)
}

#[cfg(windows)]
fn share_read(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// Windows flushes a rename through the file's own handle; directories
/// cannot be opened for a flush there.
#[cfg(windows)]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// A fresh name for a temporary file, one [`is_temporary`] recognises.
pub fn temporary_name() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::rng().fill_bytes(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{TEMP_PREFIX}{suffix}{TEMP_SUFFIX}")
}

/// Whether `name` is one of keyturn's temporary files.
pub fn is_temporary(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX)
}

/// Removes the temporary files that writers killed mid-write left in `dir`.
/// Call it only under the store's lock, when no other keyturn is writing
/// there. They may hold key material, so they must not linger.
pub fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Creates `dir` (and its parents) if missing, owner-only when new.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    // Every directory created, parents included, is owner-only; a umask can
    // narrow 0700 but never widen it.
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    #[cfg(windows)]
    restrict_to_owner(dir)?;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn replaces_and_sets_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        write(&path, b"one", Access::OwnerOnly).expect("write");
        write(&path, b"two", Access::OwnerOnly).expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o600);
        write(&path, b"three", Access::Shared).expect("write");
        assert_eq!(fs::metadata(&path).expect("meta").permissions().mode() & 0o777, 0o644);
        let leftovers: Vec<_> = fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }
}
