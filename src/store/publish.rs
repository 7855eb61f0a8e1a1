//! Published key files: the key written where another program reads it at
//! start-up, crash-safely and owner-only.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::StoreError;
use super::atomic::{self, Access};
use super::config::Encoding;
use crate::keys::Key;

/// One published file after an import or reset.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// Where.
    pub path: PathBuf,
    /// Whether its content changed (false: it already held this key).
    pub changed: bool,
}

/// The bytes of `key` in `encoding`.
pub fn render(key: &Key, encoding: Encoding) -> Zeroizing<Vec<u8>> {
    let raw = key.expose_secret();
    Zeroizing::new(match encoding {
        Encoding::Text => format!("{}\n", key.to_text().as_str()).into_bytes(),
        Encoding::Base64 => format!("{}\n", STANDARD.encode(raw)).into_bytes(),
        Encoding::Hex => {
            let mut hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            hex.push('\n');
            hex.into_bytes()
        }
        Encoding::Raw => raw.to_vec(),
    })
}

/// The store's own files, which a publish entry must never overwrite.
const STORE_FILES: [&str; 6] =
    ["keys.toml", "keyturn.toml", "credentials.toml", "audit.log", "keyturn.lock", "rotation.json"];

/// Whether `path` is one of the store's own files in `home`.
fn is_store_file(home: &Path, path: &Path) -> bool {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else { return false };
    let same_dir = match (dunce::canonicalize(dir), dunce::canonicalize(home)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    same_dir && STORE_FILES.iter().any(|f| name == *f)
}

/// Reads a key of `kind` back from a published file's bytes.
pub fn parse(kind: crate::keys::KeyKind, bytes: &[u8], encoding: Encoding) -> Result<Key, String> {
    use crate::keys::KEY_LEN;
    let text = || std::str::from_utf8(bytes).map(str::trim).map_err(|_| "the file is not text".to_string());
    let raw: Zeroizing<Vec<u8>> = match encoding {
        Encoding::Text => {
            let text = crate::keys::text_from_bytes(bytes).map_err(|e| e.to_string())?;
            return match Key::parse(kind, &text) {
                Err(crate::keys::KeyTextError::DefaultKey { .. }) => Ok(Key::default_for(kind)),
                other => other.map_err(|e| e.to_string()),
            };
        }
        Encoding::Base64 => Zeroizing::new(STANDARD.decode(text()?).map_err(|_| "the file is not base64".to_string())?),
        Encoding::Hex => {
            let hex = text()?;
            // from_str_radix alone would take a sign ("+a").
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("the file is not hex".into());
            }
            let digits: Option<Vec<u8>> =
                (0..hex.len() / 2).map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()).collect();
            Zeroizing::new(digits.filter(|_| hex.len() % 2 == 0).ok_or("the file is not hex")?)
        }
        Encoding::Raw => Zeroizing::new(bytes.to_vec()),
    };
    let raw: [u8; KEY_LEN] =
        raw.as_slice().try_into().map_err(|_| format!("the file holds {} bytes, a key has {KEY_LEN}", raw.len()))?;
    Ok(Key::from_bytes(kind, raw))
}

/// Checks before a change that every target can be written: its directory
/// exists, the path is not a directory and not one of the store's own files.
pub fn check_targets(home: &Path, targets: &[(PathBuf, Encoding)]) -> Result<(), StoreError> {
    for (path, _) in targets {
        if is_store_file(home, path) {
            return Err(StoreError::Publish {
                path: path.clone(),
                problem: "cannot publish here: it is one of keyturn's own store files; fix the [[publish]] path in keyturn.toml".into(),
            });
        }
        let problem = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Some(format!(
                "cannot publish here: the directory {} does not exist; create it or fix the [[publish]] path in keyturn.toml",
                dir.display()
            )),
            _ if path.is_dir() => {
                Some("cannot publish here: it is a directory; fix the [[publish]] path in keyturn.toml".to_string())
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(StoreError::Publish { path: path.clone(), problem });
        }
    }
    Ok(())
}

/// Writes `key` to every target whose content differs.
pub fn publish(targets: &[(PathBuf, Encoding)], key: &Key) -> Result<Vec<Published>, StoreError> {
    targets
        .iter()
        .map(|(path, encoding)| {
            let bytes = render(key, *encoding);
            let same = std::fs::read(path).map(Zeroizing::new).is_ok_and(|old| *old == *bytes) && owner_only(path);
            if !same {
                atomic::write(path, &bytes, Access::OwnerOnly).map_err(|source| StoreError::Publish {
                    path: path.clone(),
                    problem: format!("could not write the key: {source}; the key itself was changed, run the same import again to publish it"),
                })?;
            }
            Ok(Published { path: path.clone(), changed: !same })
        })
        .collect()
}

#[cfg(unix)]
fn owner_only(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 == 0)
}

#[cfg(not(unix))]
fn owner_only(_path: &Path) -> bool {
    true
}
