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
            let f = std::fs::File::open(path).wrap_err_with(|| format!("cannot open {}", path.display()))?;
            read_limited(f, keys::MAX_INPUT, &format!("the key file {}", path.display()))?
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

/// A value to seal: standard input, hidden when it is a terminal.
pub fn value(limit: usize) -> eyre::Result<Zeroizing<Vec<u8>>> {
    if std::io::stdin().is_terminal() {
        let line = rpassword::prompt_password("Value to encrypt (it is not shown): ")
            .wrap_err("cannot read the value from the terminal")?;
        return Ok(Zeroizing::new(line.into_bytes()));
    }
    read_limited(std::io::stdin().lock(), limit, "standard input")
}

/// A token to open: standard input.
pub fn token() -> eyre::Result<Zeroizing<Vec<u8>>> {
    read_limited(std::io::stdin().lock(), keys::MAX_INPUT, "standard input")
}
