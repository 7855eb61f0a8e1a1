//! `encrypt` and `decrypt`.

use std::io::Write;

use color_eyre::eyre::{self, WrapErr};
use keyturn::keys::KeyKind;
use keyturn::store::Store;

use super::input;

/// Values larger than this are not the passwords and connection strings
/// that tokens are for.
const MAX_VALUE: usize = 1024 * 1024;

pub fn encrypt(store: &Store, raw: bool) -> eyre::Result<()> {
    let mut value = input::value("Value to encrypt (it is not shown): ", MAX_VALUE)?;
    if !raw {
        input::drop_line_ending(&mut value);
    }
    let token = store.keyring().seal(&value);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{token}")?;
    out.flush()?;
    if store.active_key(KeyKind::Encryption).is_default() {
        eprintln!(
            "Warning: sealed under the built-in default encryption key, which anyone with keyturn has; import a custom key."
        );
    }
    Ok(())
}

pub fn decrypt(store: &Store) -> eyre::Result<()> {
    // A token of the largest value `encrypt` takes: base64 adds a third.
    let input = input::token(MAX_VALUE / 3 * 4 + 4096)?;
    let token = std::str::from_utf8(&input).map(str::trim).unwrap_or("");
    let value = store.keyring().open(token).wrap_err("cannot decrypt")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&value)?;
    out.flush()?;
    Ok(())
}
