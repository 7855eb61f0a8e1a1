//! The tamper matrix. A token with any byte changed, cut at any length, or
//! moved to another key is refused with the right one of the four errors.
//! A store file with any byte changed or cut at any length is refused with
//! an error naming the file, or loads exactly the same keys: never a silently
//! different key, never a panic.

use std::path::Path;

use keyturn::keys::{Key, KeyKind};
use keyturn::store::credentials::CredentialsFile;
use keyturn::store::keyfile::KeysFile;
use keyturn::token::{Keyring, SealingKey, TokenError};

fn key(seed: u8) -> Key {
    let mut raw = [0u8; 32];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = seed.wrapping_mul(41).wrapping_add(i as u8 * 3);
    }
    Key::from_bytes(KeyKind::Encryption, raw)
}

/// Which errors a change at byte `at` of a token may give.
fn allowed(at: usize, changed: u8) -> &'static [&'static str] {
    const HEADER: usize = "ktsec:1:".len();
    const ID_END: usize = HEADER + 16;
    match at {
        _ if at < HEADER => &["malformed"],
        // A key id that is still lowercase hex names a key the ring lacks.
        _ if at < ID_END && matches!(changed, b'0'..=b'9' | b'a'..=b'f') => &["unknown key id"],
        _ if at <= ID_END => &["malformed"],
        // The body: another valid character does not authenticate; an
        // invalid one (or trailing bits in the last) is not the grammar.
        _ => &["tampered", "malformed"],
    }
}

fn class(e: &TokenError) -> &'static str {
    match e {
        TokenError::Malformed(_) => "malformed",
        TokenError::UnknownKeyId(_) => "unknown key id",
        TokenError::WrongKey { .. } => "wrong key",
        TokenError::Tampered(_) => "tampered",
    }
}

#[test]
fn every_changed_byte_and_every_cut_of_a_token_is_refused_rightly() {
    let ring = Keyring::new(&key(1), &[key(2)]);
    let mut cases = 0;
    for value in [&b""[..], b"x", b"P@ssw0rd!", &[0xFFu8; 100][..]] {
        for sealer in [SealingKey::new(&key(1)), SealingKey::new(&key(2))] {
            let token = sealer.seal(value);
            assert_eq!(ring.open(&token).expect("opens").as_slice(), value);
            let bytes = token.as_bytes();
            for at in 0..bytes.len() {
                for replacement in [bytes[at] ^ 0x01, b'A', b'0', b'-', b':', b'.', b'z'] {
                    if replacement == bytes[at] {
                        continue;
                    }
                    let mut changed = bytes.to_vec();
                    changed[at] = replacement;
                    let changed = String::from_utf8(changed).expect("ascii");
                    cases += 1;
                    let err = ring.open(&changed).expect_err("a changed token is refused");
                    assert!(
                        allowed(at, replacement).contains(&class(&err)),
                        "byte {at} -> {:?}: {} ({err})",
                        replacement as char,
                        class(&err)
                    );
                }
            }
            for cut in 0..bytes.len() {
                cases += 1;
                let err = ring.open(&token[..cut]).expect_err("a cut token is refused");
                assert!(["malformed", "tampered"].contains(&class(&err)), "cut at {cut}: {err}");
            }
        }
    }
    eprintln!("token tamper cases tried and refused: {cases}");
}

#[test]
fn a_token_moved_to_another_key_or_file_is_refused_as_such() {
    let a = SealingKey::new(&key(1));
    let b = SealingKey::new(&key(3));
    let token = a.seal(b"connection string");
    assert!(matches!(b.open(&token), Err(TokenError::WrongKey { .. })));
    assert!(matches!(Keyring::new(&key(3), &[]).open(&token), Err(TokenError::UnknownKeyId(_))));
    // Another token's body under this token's header: it does not authenticate.
    let other = a.seal(b"another value");
    let (head, _) = token.rsplit_once(':').expect("header");
    let (_, body) = other.rsplit_once(':').expect("body");
    assert!(Keyring::new(&key(1), &[]).open(&format!("{head}:{body}")).is_ok(), "same key and header: opens");
    let (other_head, _) = b.seal(b"x").rsplit_once(':').map(|(h, t)| (h.to_string(), t.to_string())).expect("header");
    assert!(matches!(
        Keyring::new(&key(1), &[key(3)]).open(&format!("{other_head}:{body}")),
        Err(TokenError::Tampered(_))
    ));
}

fn keys_of(file: &KeysFile) -> Vec<(String, bool)> {
    file.keys.iter().map(|k| (k.key.fingerprint().to_string(), k.retired.is_some())).collect()
}

/// Every byte changed and every cut of a store file: refused naming the
/// file, or the same content.
fn sweep<T>(name: &str, text: &str, parse: impl Fn(&[u8]) -> Result<T, String>, same: impl Fn(&T) -> bool) -> usize {
    let bytes = text.as_bytes();
    let mut cases = 0;
    let mut check = |data: &[u8], what: &str| {
        cases += 1;
        match parse(data) {
            Ok(loaded) => assert!(same(&loaded), "{name}, {what}: loaded different content"),
            Err(message) => {
                assert!(message.contains(name), "{name}, {what}: the error does not name the file: {message}")
            }
        }
    };
    for at in 0..bytes.len() {
        for replacement in [bytes[at] ^ 0x01, b'"', b'\n', b'=', 0xFF] {
            if replacement != bytes[at] {
                let mut changed = bytes.to_vec();
                changed[at] = replacement;
                check(&changed, &format!("byte {at}"));
            }
        }
    }
    for cut in 0..bytes.len() {
        check(&bytes[..cut], &format!("cut at {cut}"));
    }
    cases
}

#[test]
fn every_changed_byte_and_cut_of_the_keys_file_is_refused_or_loads_the_same_keys() {
    let mut file = KeysFile::default();
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    file.activate(KeyKind::Encryption, Some(key(1)), now);
    file.activate(KeyKind::Encryption, Some(key(2)), now);
    file.activate(
        KeyKind::Communication,
        Some(Key::from_bytes(
            KeyKind::Communication,
            [9; 32].map(|b: u8| b ^ 0x5a).map({
                let mut i = 0u8;
                move |b| {
                    i = i.wrapping_add(7);
                    b ^ i
                }
            }),
        )),
        now,
    );
    let text = file.to_toml().to_string();
    let expected = keys_of(&file);
    let path = Path::new("/home/keys.toml");
    let cases = sweep(
        "keys.toml",
        &text,
        |data| KeysFile::parse(path, data).map_err(|e| e.to_string()),
        |loaded| keys_of(loaded) == expected,
    );
    eprintln!("keys file tamper cases: {cases}");
}

#[test]
fn every_changed_byte_and_cut_of_the_credentials_file_is_refused_or_the_same() {
    let ring = Keyring::new(&key(1), &[]);
    let mut file = CredentialsFile::default();
    let now = jiff::Timestamp::from_second(1_700_000_000).expect("time");
    for (name, user) in [
        (keyturn::store::credentials::CredentialName::Git, "qa-bot"),
        (keyturn::store::credentials::CredentialName::Smtp, "alerts@example.test"),
    ] {
        file.set(keyturn::store::credentials::Credential {
            name,
            user: user.into(),
            secret: ring.seal(b"s3cret"),
            updated: now,
        });
    }
    let text = file.to_toml();
    let path = Path::new("/home/credentials.toml");
    let cases = sweep(
        "credentials.toml",
        &text,
        |data| CredentialsFile::parse(path, data).map_err(|e| e.to_string()),
        // A changed secret token is a different token: it must then not open
        // as the same value under the ring (it is tampered or malformed).
        |loaded| {
            loaded.entries.len() == file.entries.len()
                && loaded
                    .entries
                    .iter()
                    .zip(&file.entries)
                    .all(|(l, f)| l.name == f.name && (l.secret == f.secret || ring.open(&l.secret).is_err()))
        },
    );
    eprintln!("credentials file tamper cases: {cases}");
}
