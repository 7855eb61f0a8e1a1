//! Reading secrets: a key or a value from standard input (hidden when it is
//! a terminal) or a file, never from an argument, with a size limit checked
//! before anything is parsed.

use std::io::{IsTerminal, Read};
use std::path::Path;

use color_eyre::eyre::{self, WrapErr, bail};
use keyturn::keys::{self, KeyKind};
use zeroize::Zeroizing;

/// Reads at most `limit` bytes from `reader`, refusing more unread.
fn read_limited(reader: impl Read, limit: usize, what: &str) -> eyre::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    reader.take(limit as u64 + 1).read_to_end(&mut buf).wrap_err_with(|| format!("cannot read {what}"))?;
    if buf.len() > limit {
        bail!("{what} is over {} KiB: refused unread", limit / 1024);
    }
    Ok(buf)
}

/// The key text for an import: from `file`, else standard input.
pub fn key_text(kind: KeyKind, file: Option<&Path>) -> eyre::Result<Zeroizing<String>> {
    let bytes = match file {
        Some(path) => {
            // A key passed as --file by mistake must not be repeated.
            let plausible_path = path.parent().is_some_and(|d| d.as_os_str().is_empty() || d.is_dir());
            let shown =
                if super::looks_secret(&path.to_string_lossy()) && !(plausible_path && path.components().count() > 1) {
                    "the file named by --file".to_string()
                } else {
                    path.display().to_string()
                };
            let f = std::fs::File::open(path).wrap_err_with(|| format!("cannot open {shown}"))?;
            read_limited(f, keys::MAX_INPUT, &format!("the key file {shown}"))?
        }
        None if std::io::stdin().is_terminal() => return key_from_terminal(kind),
        None => read_limited(std::io::stdin().lock(), keys::MAX_INPUT, "standard input")?,
    };
    Ok(keys::text_from_bytes(&bytes)?)
}

/// Hidden entry of a pasted key; a paste that a console wrapped arrives as
/// several lines, so lines are read until a whole key's length is in.
fn key_from_terminal(kind: KeyKind) -> eyre::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    let mut prompt = format!("Paste the {kind} key (it is not shown) and press Enter: ");
    loop {
        let line =
            Zeroizing::new(rpassword::prompt_password(&prompt).wrap_err("cannot read the key from the terminal")?);
        prompt.clear();
        if line.trim().is_empty() && !text.is_empty() {
            break;
        }
        text.push_str(line.trim());
        text.push('\n');
        let length: usize = text.lines().map(|l| l.trim().len()).sum();
        if length >= keys::TEXT_LEN || line.trim().is_empty() || text.len() > keys::MAX_INPUT {
            break;
        }
    }
    Ok(text)
}

/// A secret value: standard input, read hidden after `prompt` when it is a
/// terminal. At most `limit` bytes.
pub fn value(prompt: &str, limit: usize) -> eyre::Result<Zeroizing<Vec<u8>>> {
    if std::io::stdin().is_terminal() {
        let line = Zeroizing::new(rpassword::prompt_password(prompt).wrap_err("cannot read from the terminal")?);
        return Ok(Zeroizing::new(line.as_bytes().to_vec()));
    }
    read_limited(std::io::stdin().lock(), limit, "standard input")
}

/// A credential's secret: one line, its line ending dropped.
pub fn secret(prompt: &str) -> eyre::Result<Zeroizing<Vec<u8>>> {
    let mut value = value(prompt, keys::MAX_INPUT)?;
    drop_line_ending(&mut value);
    Ok(value)
}

/// Drops one trailing `\n` or `\r\n`, as `echo secret |` adds.
pub fn drop_line_ending(value: &mut Vec<u8>) {
    let ending = if value.ends_with(b"\r\n") { 2 } else { usize::from(value.ends_with(b"\n")) };
    value.truncate(value.len() - ending);
}

/// A token to open: standard input, at most `limit` bytes.
pub fn token(limit: usize) -> eyre::Result<Zeroizing<Vec<u8>>> {
    read_limited(std::io::stdin().lock(), limit, "standard input")
}
