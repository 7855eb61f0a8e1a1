//! Reading the store's files: only regular files, never through a link, and
//! never one whose permissions let other users at what it protects.

use std::fs;
use std::io;
use std::path::Path;

use super::StoreError;

/// What a file's permissions must keep others from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Key material or secrets: no access at all for group or others.
    Secret,
    /// Names commands keyturn runs: no writing for group or others.
    Trusted,
}

/// Reads a store file, `None` if it does not exist.
pub fn read(path: &Path, guard: Guard) -> Result<Option<Vec<u8>>, StoreError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StoreError::Io { path: path.to_path_buf(), source }),
    };
    if meta.file_type().is_symlink() {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            problem: "is a symbolic link; keyturn reads only regular files in its home".into(),
            fix: format!("replace the link with the file it points to (mv the target to {})", path.display()),
        });
    }
    if !meta.is_file() {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            problem: "is not a regular file".into(),
            fix: "move it out of the way and restore the file from a backup".into(),
        });
    }
    check_mode(path, &meta, guard)?;
    fs::read(path).map(Some).map_err(|source| StoreError::Io { path: path.to_path_buf(), source })
}

/// Checks the file `file` (already open at `path`) as [`read`] checks a
/// store file: owned by this user, and `guard` kept.
pub fn check_open(path: &Path, file: &fs::File, guard: Guard) -> Result<(), StoreError> {
    let meta = file.metadata().map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
    check_mode(path, &meta, guard)
}

#[cfg(unix)]
fn check_mode(path: &Path, meta: &fs::Metadata, guard: Guard) -> Result<(), StoreError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mode = meta.permissions().mode() & 0o777;
    let (bad, problem, fix) = match guard {
        Guard::Secret => (mode & 0o077 != 0, "holds key material or secrets but other users have access", "chmod 600"),
        Guard::Trusted => (mode & 0o022 != 0, "names commands keyturn runs but other users can write it", "chmod go-w"),
    };
    let owner = meta.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            problem: format!("is owned by another user (uid {owner}, keyturn runs as uid {me}), who could change it"),
            fix: format!("run keyturn as its owner, or chown it to uid {me}: chown {me} '{}'", path.display()),
        });
    }
    if bad {
        return Err(StoreError::Insecure {
            path: path.to_path_buf(),
            problem: format!("{problem} (mode {mode:04o})"),
            fix: format!("{fix} '{}'", path.display()),
        });
    }
    Ok(())
}

/// Windows: the file's DACL may grant no one but its owner, SYSTEM and
/// Administrators (for a trusted file: no one else may write).
#[cfg(windows)]
fn check_mode(path: &Path, _meta: &fs::Metadata, guard: Guard) -> Result<(), StoreError> {
    let (write_only, problem) = match guard {
        Guard::Secret => (false, "holds key material or secrets but its access list lets others at it"),
        Guard::Trusted => (true, "names commands keyturn runs but its access list lets others change it"),
    };
    let others = super::acl::granted_to_others_of(path, write_only)
        .map_err(|source| StoreError::Io { path: path.to_path_buf(), source })?;
    if others.is_empty() {
        return Ok(());
    }
    Err(StoreError::Insecure {
        path: path.to_path_buf(),
        problem: format!("{problem} ({})", others.join(", ")),
        fix: format!(
            "leave only the owner, SYSTEM and Administrators: icacls \"{}\" /inheritance:r /grant:r \"%USERNAME%:F\" *S-1-5-18:F *S-1-5-32-544:F",
            path.display()
        ),
    })
}

#[cfg(not(any(unix, windows)))]
fn check_mode(_path: &Path, _meta: &fs::Metadata, _guard: Guard) -> Result<(), StoreError> {
    Ok(())
}

/// The text of a store file: UTF-8 without a byte-order mark.
pub fn text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str, StoreError> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) || bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(StoreError::corrupt(
            path,
            "starts with a byte-order mark; keyturn's files are plain UTF-8 (was it saved by an editor?)",
        ));
    }
    std::str::from_utf8(bytes)
        .map_err(|e| StoreError::corrupt(path, format!("is not UTF-8 text (bad byte at offset {})", e.valid_up_to())))
}

/// A TOML error as one line that never quotes the file's content: the
/// parser's short message and the line it is on.
pub fn toml_problem(text: &str, err: &toml::de::Error) -> String {
    let message = err.message().lines().next().unwrap_or("invalid TOML").trim_end_matches('.');
    match err.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
            format!("line {line}: {message}")
        }
        None => message.to_string(),
    }
}

/// The last line of every file keyturn writes a list of keys or secrets to:
/// a file cut anywhere, even between two entries, lacks it and is refused
/// instead of loading with an entry missing.
pub const END_LINE: &str = "# end of file";

/// The entries of a versioned store file: `format = <format>` and the list
/// `list`, nothing else; any other shape is refused naming the file.
pub fn versioned_list(path: &Path, bytes: &[u8], format: i64, list: &str) -> Result<Vec<toml::Value>, StoreError> {
    let text = text(path, bytes)?;
    let corrupt = |problem: String| StoreError::Corrupt { path: path.to_path_buf(), problem };
    if text.trim().is_empty() {
        return Err(corrupt("is empty (truncated?)".into()));
    }
    if text.trim_end().lines().last() != Some(END_LINE) {
        return Err(corrupt(format!("is truncated: its last line is not `{END_LINE}`")));
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| corrupt(toml_problem(text, &e)))?;
    if let Some(unknown) = table.keys().find(|k| *k != "format" && *k != list) {
        return Err(corrupt(format!("unknown field `{unknown}`")));
    }
    match table.get("format") {
        None => return Err(corrupt("missing field `format`".into())),
        Some(toml::Value::Integer(found)) if *found == format => {}
        Some(toml::Value::Integer(found)) => {
            return Err(StoreError::UnknownVersion { path: path.to_path_buf(), found: *found });
        }
        Some(_) => return Err(corrupt("`format` is not a number".into())),
    }
    match table.remove(list) {
        None => Err(corrupt(format!("missing field `{list}`"))),
        Some(toml::Value::Array(entries)) => Ok(entries),
        Some(_) => Err(corrupt(format!("`{list}` is not a list"))),
    }
}
