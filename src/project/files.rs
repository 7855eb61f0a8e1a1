//! A project file read and replaced without ever following a link: the file
//! is opened relative to its directory, which is opened without following a
//! link and checked to be the directory the walk saw; the file is checked to
//! be the one the walk saw (device and inode); and before the new content is
//! renamed over it, the name is checked to still be that same file. Whatever
//! another process swaps in meanwhile, nothing outside the project is read
//! or written.

use std::io::{self, Read};
use std::path::Path;

/// Which file a name held when it was looked at: device and inode (on
/// Windows, size and modification time, as std has no stable file id), with
/// the size and modification time that tell an in-place change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileId {
    dev: u64,
    ino: u64,
    len: u64,
    modified: i128,
}

impl FileId {
    /// The id from metadata read without following a link.
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileId {
                dev: meta.dev(),
                ino: meta.ino(),
                len: meta.len(),
                modified: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            FileId { dev: 0, ino: 0, len: meta.len(), modified }
        }
    }

    /// Whether both name the same directory or file, whatever its content.
    pub fn same_object(&self, other: &FileId) -> bool {
        if cfg!(unix) { self.dev == other.dev && self.ino == other.ino } else { self == other }
    }
}

/// Why a file could not be used as the walk saw it.
#[derive(Debug)]
pub enum Refused {
    /// It, or its directory, is now a link or another file than the one the
    /// walk saw.
    Swapped,
    /// Its content changed while keyturn read or rewrote it.
    Changed,
}

/// The outcome of opening or replacing a file.
#[derive(Debug)]
pub enum Outcome<T> {
    Done(T),
    Refused(Refused),
}

/// A project file opened for reading, with what identifies it.
pub struct Opened {
    /// Its bytes, at most `limit + 1` of them.
    pub bytes: Vec<u8>,
    /// What it was when it was read.
    pub id: FileId,
    /// Its permissions, owner and link count.
    pub meta: std::fs::Metadata,
    #[cfg(unix)]
    dir: std::os::fd::OwnedFd,
}

#[cfg(unix)]
mod imp {
    use super::*;
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::os::fd::OwnedFd;

    fn name_of(path: &Path) -> io::Result<&std::ffi::OsStr> {
        path.file_name().ok_or_else(|| io::Error::other("a project file has no name"))
    }

    fn open_dir(path: &Path, dir_id: &FileId) -> io::Result<Option<OwnedFd>> {
        let dir_path = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = match rustix::fs::open(dir_path, flags, Mode::empty()) {
            Ok(dir) => dir,
            // The directory is now a link (or not a directory): swapped.
            Err(e) if [rustix::io::Errno::LOOP, rustix::io::Errno::NOTDIR, rustix::io::Errno::NOENT].contains(&e) => {
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let meta = std::fs::File::from(dir.try_clone()?).metadata()?;
        Ok(FileId::of(&meta).same_object(dir_id).then_some(dir))
    }

    pub fn open(path: &Path, id: &FileId, dir_id: &FileId, limit: u64) -> io::Result<Outcome<(std::fs::File, Opened)>> {
        let Some(dir) = open_dir(path, dir_id)? else { return Ok(Outcome::Refused(Refused::Swapped)) };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
        let fd = match rustix::fs::openat(&dir, name_of(path)?, flags, Mode::empty()) {
            Ok(fd) => fd,
            // A link now, or gone (moved away): not the file the walk saw.
            Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOENT => {
                return Ok(Outcome::Refused(Refused::Swapped));
            }
            Err(e) => return Err(e.into()),
        };
        let file = std::fs::File::from(fd);
        let meta = file.metadata()?;
        if !meta.is_file() || !FileId::of(&meta).same_object(id) {
            return Ok(Outcome::Refused(Refused::Swapped));
        }
        let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize + 1);
        (&file).take(limit + 1).read_to_end(&mut bytes)?;
        Ok(Outcome::Done((file, Opened { bytes, id: FileId::of(&meta), meta, dir })))
    }

    pub fn replace(path: &Path, opened: &Opened, bytes: &[u8]) -> io::Result<Outcome<()>> {
        use std::io::Write;
        let name = name_of(path)?;
        let tmp_name = crate::store::atomic::temporary_name();
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&opened.dir, &tmp_name, flags, Mode::from_raw_mode(0o600))?;
        let mut tmp = std::fs::File::from(fd);
        let result = (|| -> io::Result<Outcome<()>> {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            if rustix::process::geteuid().is_root() {
                let uid = rustix::fs::Uid::from_raw(opened.meta.uid());
                let gid = rustix::fs::Gid::from_raw(opened.meta.gid());
                rustix::fs::fchown(&tmp, Some(uid), Some(gid))?;
            }
            let mode = opened.meta.permissions().mode() & 0o7777;
            rustix::fs::fchmod(&tmp, Mode::from_raw_mode(mode))?;
            tmp.write_all(bytes)?;
            tmp.sync_all()?;
            crate::fault::point("temporary file written");
            // The name must still hold the very file that was read, as it
            // was read: not a link swapped in, not a file changed since.
            let now = match rustix::fs::statat(&opened.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(e) if e == rustix::io::Errno::NOENT => return Ok(Outcome::Refused(Refused::Swapped)),
                Err(e) => return Err(e.into()),
            };
            let same_object = now.st_dev == opened.id.dev && now.st_ino == opened.id.ino;
            let is_file = rustix::fs::FileType::from_raw_mode(now.st_mode) == rustix::fs::FileType::RegularFile;
            if !same_object || !is_file {
                return Ok(Outcome::Refused(Refused::Swapped));
            }
            let modified = i128::from(now.st_mtime) * 1_000_000_000 + i128::from(now.st_mtime_nsec);
            if now.st_size as u64 != opened.id.len || modified != opened.id.modified {
                return Ok(Outcome::Refused(Refused::Changed));
            }
            rustix::fs::renameat(&opened.dir, &tmp_name, &opened.dir, name)?;
            // The directory is flushed once, after all its renames: see
            // [`Flushes`].
            crate::fault::point("renamed");
            Ok(Outcome::Done(()))
        })();
        if !matches!(result, Ok(Outcome::Done(()))) {
            let _ = rustix::fs::unlinkat(&opened.dir, &tmp_name, AtFlags::empty());
        }
        result
    }
}

/// The directories renamed into and not flushed yet, each kept open (one
/// descriptor a directory, not one a file), so each is flushed once after
/// all its files are replaced instead of once a file.
///
/// Why that is crash-safe: every temporary file is flushed (`fsync`) before
/// it is renamed over its name, so whichever directory entry a power loss
/// leaves, the old file or the new, its content is whole on disk; and both
/// decrypt, since the key the old tokens are under stays in the keyring
/// until a purge. The directory flush is what makes the new names durable,
/// and [`Pending::flush`] runs before the upgrade returns: before it reports
/// success, and so before anything relies on the rewrite (a purge of the
/// retired key, a rotation step checked off). A failed upgrade flushes what
/// it renamed too, before it reports its error.
#[cfg(unix)]
#[derive(Default)]
pub struct Pending {
    dirs: std::sync::Mutex<std::collections::HashMap<FileId, std::os::fd::OwnedFd>>,
}

#[cfg(unix)]
impl Pending {
    /// Keeps the directory of `opened` (the walk saw it as `dir_id`) to be
    /// flushed, once a file was renamed into it.
    pub fn note(&self, dir_id: &FileId, opened: &Opened) -> io::Result<()> {
        let mut dirs = self.dirs.lock().map_err(|_| io::Error::other("a writer thread panicked"))?;
        if !dirs.contains_key(dir_id) {
            match opened.dir.try_clone() {
                Ok(dir) => {
                    dirs.insert(*dir_id, dir);
                }
                // Out of descriptors: this one is flushed now instead.
                Err(_) => {
                    rustix::fs::fsync(&opened.dir)?;
                    crate::fault::point("directory flushed");
                }
            }
        }
        Ok(())
    }

    /// Flushes every directory noted, each once; the first error after
    /// trying them all.
    pub fn flush(self) -> io::Result<()> {
        let dirs = self.dirs.into_inner().map_err(|_| io::Error::other("a writer thread panicked"))?;
        let mut first_error = None;
        for dir in dirs.into_values() {
            match rustix::fs::fsync(&dir) {
                Ok(()) => crate::fault::point("directory flushed"),
                Err(e) => {
                    first_error.get_or_insert(io::Error::from(e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Windows: a replacement is flushed whole by [`replace`] (NTFS journals the
/// rename), so nothing is pending.
#[cfg(not(unix))]
#[derive(Default)]
pub struct Pending {
    // Not a unit struct, so callers build it with `default()` on every
    // platform.
    _nothing: (),
}

#[cfg(not(unix))]
impl Pending {
    pub fn note(&self, _dir_id: &FileId, _opened: &Opened) -> io::Result<()> {
        Ok(())
    }

    pub fn flush(self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(windows)]
mod imp {
    //! Windows: the file is opened without following a reparse point
    //! (FILE_FLAG_OPEN_REPARSE_POINT) and refused if it is one; the
    //! replacement checks the name again (not a reparse point, same size and
    //! time) just before the rename.
    use super::*;
    use std::os::windows::fs::{MetadataExt, OpenOptionsExt};

    const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
    const FILE_ATTRIBUTE_REPARSE_POINT: u32 = 0x0400;

    fn is_reparse(meta: &std::fs::Metadata) -> bool {
        meta.file_attributes() & FILE_ATTRIBUTE_REPARSE_POINT != 0
    }

    fn ancestors_plain(path: &Path) -> io::Result<bool> {
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => Ok(!is_reparse(&std::fs::symlink_metadata(dir)?)),
            _ => Ok(true),
        }
    }

    pub fn open(
        path: &Path,
        id: &FileId,
        _dir_id: &FileId,
        limit: u64,
    ) -> io::Result<Outcome<(std::fs::File, Opened)>> {
        if !ancestors_plain(path)? {
            return Ok(Outcome::Refused(Refused::Swapped));
        }
        let file = std::fs::OpenOptions::new().read(true).custom_flags(FILE_FLAG_OPEN_REPARSE_POINT).open(path)?;
        let meta = file.metadata()?;
        if is_reparse(&meta) || !meta.is_file() || !FileId::of(&meta).same_object(id) {
            return Ok(Outcome::Refused(Refused::Swapped));
        }
        let mut bytes = Vec::new();
        (&file).take(limit + 1).read_to_end(&mut bytes)?;
        Ok(Outcome::Done((file, Opened { bytes, id: FileId::of(&meta), meta })))
    }

    pub fn replace(path: &Path, opened: &Opened, bytes: &[u8]) -> io::Result<Outcome<()>> {
        let now = std::fs::symlink_metadata(path)?;
        if is_reparse(&now) || !now.is_file() || !ancestors_plain(path)? {
            return Ok(Outcome::Refused(Refused::Swapped));
        }
        if FileId::of(&now) != opened.id {
            return Ok(Outcome::Refused(Refused::Changed));
        }
        // A rename over a file with the read-only attribute fails: the
        // attribute is lifted for the rename and put on the new file after
        // it (after a failed rename, back on the old one). A crash in
        // between leaves the file whole, only without the attribute.
        let permissions = opened.meta.permissions();
        let read_only = permissions.readonly();
        let set_read_only = |on: bool| {
            let mut p = permissions.clone();
            p.set_readonly(on);
            std::fs::set_permissions(path, p)
        };
        if read_only {
            set_read_only(false)?;
        }
        let written = crate::store::atomic::write_with(path, bytes, |_| Ok(()));
        if read_only {
            set_read_only(true)?;
        }
        written?;
        Ok(Outcome::Done(()))
    }
}

/// Opens the file at `path` that the walk saw as `id`, in the directory it
/// saw as `dir_id`, and reads at most `limit + 1` bytes of it; the file
/// stays open for reading on past them.
pub fn open(path: &Path, id: &FileId, dir_id: &FileId, limit: u64) -> io::Result<Outcome<(std::fs::File, Opened)>> {
    imp::open(path, id, dir_id, limit)
}

/// Replaces the file `opened` came from with `bytes`, crash-safely, keeping
/// its permissions (and owner, as root on Unix), unless the name no longer
/// holds that file as it was read. On Unix the new content is flushed before
/// the rename and the directory is not: the caller notes it in a [`Pending`]
/// and flushes it before it reports success.
pub fn replace(path: &Path, opened: &Opened, bytes: &[u8]) -> io::Result<Outcome<()>> {
    imp::replace(path, opened, bytes)
}
