//! Tokens: encrypted values that sit unchanged inside project files.
//!
//! Grammar (format version 1), frozen by the known-answer test below:
//!
//! ```text
//! token   = "ktsec:" version ":" key-id ":" body
//! version = "1"
//! key-id  = 16 lowercase hex digits    (the sealing key's fingerprint bytes)
//! body    = base64url without padding of nonce(12) || ciphertext || tag(16)
//! ```
//!
//! Only letters, digits, `-`, `_` and `:` appear, so a token survives XML,
//! JSON, TOML, YAML, CSV and `Password=TOKEN;` unchanged, and it ends at the
//! first character outside base64url. The header `ktsec:1:<key-id>:` is the
//! AES-256-GCM associated data. The cipher key is HMAC-SHA256 of the
//! encryption key over `"keyturn token key v1\0"`, so the key itself is never
//! used directly as an AES key.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::keys::{Fingerprint, Key, KeyKind};

/// Every token starts with this.
pub const PREFIX: &str = "ktsec:";
/// The one format version this keyturn writes and reads.
pub const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = PREFIX.len() + 2 + 16 + 1;

/// Identifies the key that sealed a token: the key's fingerprint bytes.
pub type KeyId = Fingerprint;

/// Why a token could not be opened. Four distinct causes.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("not a valid token: {0}")]
    Malformed(&'static str),
    #[error("sealed under key {0}, which is not in this machine's keyring; import that key or re-enter the value")]
    UnknownKeyId(KeyId),
    #[error("sealed under key {token}, not under the given key {given}")]
    WrongKey { token: KeyId, given: KeyId },
    #[error("the token was altered or damaged: it does not authenticate under key {0}; re-enter the value")]
    Tampered(KeyId),
}

/// An encryption key made ready to seal and open tokens.
#[derive(Clone)]
pub struct SealingKey {
    id: KeyId,
    cipher: Aes256Gcm,
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealingKey({})", self.id)
    }
}

impl SealingKey {
    /// Prepares `key` (an encryption key) for tokens.
    pub fn new(key: &Key) -> SealingKey {
        debug_assert_eq!(key.kind(), KeyKind::Encryption);
        let cipher_key = key.mac(&[b"keyturn token key v1\0"]);
        SealingKey {
            id: key.fingerprint(),
            cipher: Aes256Gcm::new_from_slice(cipher_key.as_slice()).expect("AES-256 takes 32 bytes"),
        }
    }

    /// The id written into the tokens this key seals.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Seals `value` with a fresh random nonce.
    pub fn seal(&self, value: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        self.seal_with_nonce(value, nonce)
    }

    fn seal_with_nonce(&self, value: &[u8], nonce: [u8; NONCE_LEN]) -> String {
        let mut token = String::with_capacity(HEADER_LEN + (NONCE_LEN + value.len() + TAG_LEN).div_ceil(3) * 4);
        token.push_str(PREFIX);
        token.push(char::from(b'0' + VERSION));
        token.push(':');
        for byte in self.id.0 {
            token.push(hex_digit(byte >> 4));
            token.push(hex_digit(byte & 0xF));
        }
        token.push(':');
        let mut body = Zeroizing::new(Vec::with_capacity(NONCE_LEN + value.len() + TAG_LEN));
        body.extend_from_slice(&nonce);
        body.extend_from_slice(value);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), token.as_bytes(), &mut body[NONCE_LEN..])
            .expect("AES-GCM encrypts any value shorter than 64 GiB");
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode_string(body.as_slice(), &mut token);
        token
    }

    /// Opens a token sealed under this very key.
    pub fn open(&self, token: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let parsed = ParsedToken::parse(token)?;
        if parsed.key_id != self.id {
            return Err(TokenError::WrongKey { token: parsed.key_id, given: self.id });
        }
        parsed.open_with(self)
    }
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        _ => digit - b'a' + 10,
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble)])
}

/// A token split into its parts, not yet authenticated.
#[derive(Debug)]
pub struct ParsedToken<'a> {
    header: &'a str,
    key_id: KeyId,
    body: Vec<u8>,
}

impl<'a> ParsedToken<'a> {
    /// Splits `token` by the grammar, refusing anything else as malformed.
    pub fn parse(token: &'a str) -> Result<ParsedToken<'a>, TokenError> {
        let rest = token.strip_prefix(PREFIX).ok_or(TokenError::Malformed("it does not start with ktsec:"))?;
        let (version, rest) = rest.split_once(':').ok_or(TokenError::Malformed("no format version"))?;
        if version != "1" {
            return Err(TokenError::Malformed("unknown format version (made by a newer keyturn?)"));
        }
        let (id_hex, body) = rest.split_once(':').ok_or(TokenError::Malformed("no key id"))?;
        if id_hex.len() != 16 || !id_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(TokenError::Malformed("the key id is not 16 lowercase hex digits"));
        }
        let mut id = [0u8; 8];
        for (byte, pair) in id.iter_mut().zip(id_hex.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        let body =
            URL_SAFE_NO_PAD.decode(body).map_err(|_| TokenError::Malformed("the body is not canonical base64url"))?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(TokenError::Malformed("the body is too short (truncated?)"));
        }
        Ok(ParsedToken { header: &token[..HEADER_LEN], key_id: Fingerprint(id), body })
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    fn open_with(self, key: &SealingKey) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let mut body = Zeroizing::new(self.body);
        let (nonce, rest) = body.split_at_mut(NONCE_LEN);
        let (value, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                self.header.as_bytes(),
                value,
                aes_gcm::Tag::from_slice(tag),
            )
            .map_err(|_| TokenError::Tampered(self.key_id))?;
        let end = body.len() - TAG_LEN;
        body.copy_within(NONCE_LEN..end, 0);
        body.truncate(end - NONCE_LEN);
        Ok(body)
    }
}

/// The encryption keys a machine can open tokens with: the active key, which
/// seals, and the retired keys, which only open.
#[derive(Clone, Debug)]
pub struct Keyring {
    active: SealingKey,
    retired: Vec<SealingKey>,
}

impl Keyring {
    /// A ring sealing under `active` and also opening under `retired`.
    pub fn new(active: &Key, retired: &[Key]) -> Keyring {
        Keyring { active: SealingKey::new(active), retired: retired.iter().map(SealingKey::new).collect() }
    }

    /// The key new tokens are sealed under.
    pub fn active(&self) -> &SealingKey {
        &self.active
    }

    /// Seals `value` under the active key.
    pub fn seal(&self, value: &[u8]) -> String {
        self.active.seal(value)
    }

    /// Opens a token sealed under any key of the ring.
    pub fn open(&self, token: &str) -> Result<Zeroizing<Vec<u8>>, TokenError> {
        let parsed = ParsedToken::parse(token)?;
        let key = self.find(parsed.key_id).ok_or(TokenError::UnknownKeyId(parsed.key_id))?;
        parsed.open_with(key)
    }

    /// Whether the ring holds the key the token says it is sealed under
    /// (whether it then opens is another matter: it may be tampered with).
    pub fn holds(&self, token: &ParsedToken<'_>) -> bool {
        self.find(token.key_id).is_some()
    }

    /// Whether the token's key is the active one (so it needs no upgrade).
    pub fn is_current(&self, token: &ParsedToken<'_>) -> bool {
        token.key_id == self.active.id
    }

    fn find(&self, id: KeyId) -> Option<&SealingKey> {
        std::iter::once(&self.active).chain(&self.retired).find(|k| k.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(seed: u8) -> Key {
        crate::keys::test_key(KeyKind::Encryption, seed)
    }

    #[test]
    fn known_answer_token() {
        let sealing = SealingKey::new(&key(1));
        let token = sealing.seal_with_nonce(b"P@ssw0rd!", [7; NONCE_LEN]);
        assert_eq!(token, "ktsec:1:c9774e737fb5c79f:BwcHBwcHBwcHBwcHCJzC4eX4tprTLyidjW5a79TqSzbtl7LxUQ");
        assert_eq!(sealing.open(&token).expect("opens").as_slice(), b"P@ssw0rd!");
    }

    #[test]
    fn four_distinct_errors() {
        let ring = Keyring::new(&key(1), &[key(2)]);
        let token = ring.seal(b"secret");
        assert_eq!(ring.open(&token).expect("opens").as_slice(), b"secret");
        let other = SealingKey::new(&key(3));
        assert!(matches!(other.open(&token), Err(TokenError::WrongKey { .. })));
        let foreign = other.seal(b"secret");
        assert_eq!(ring.open(&foreign), Err(TokenError::UnknownKeyId(other.id())));
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).expect("ascii");
        assert_eq!(ring.open(&tampered), Err(TokenError::Tampered(ring.active().id())));
        for bad in [
            "",
            "ktsec:",
            "ktsec:2:0011223344556677:AAAA",
            "ktsec:1:XYZ:AAAA",
            "ktsec:1:0011223344556677:AA=A",
            "ktsec:1:0011223344556677:AAAA",
        ] {
            assert!(matches!(ring.open(bad), Err(TokenError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn retired_keys_open_but_do_not_seal() {
        let old = SealingKey::new(&key(2));
        let token = old.seal(b"old value");
        let ring = Keyring::new(&key(1), &[key(2)]);
        assert_eq!(ring.open(&token).expect("opens").as_slice(), b"old value");
        assert!(!ring.is_current(&ParsedToken::parse(&token).expect("parses")));
        assert!(ring.is_current(&ParsedToken::parse(&ring.seal(b"x")).expect("parses")));
    }

    #[test]
    fn tokens_sit_in_any_text_format() {
        let token = SealingKey::new(&key(1)).seal(&[0xFF; 300]);
        assert!(token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)));
    }

    proptest! {
        #[test]
        fn any_value_round_trips(value in proptest::collection::vec(any::<u8>(), 0..512)) {
            let ring = Keyring::new(&key(1), &[]);
            let token = ring.seal(&value);
            let opened = ring.open(&token).expect("opens");
            prop_assert_eq!(opened.as_slice(), value.as_slice());
        }

        #[test]
        fn any_changed_byte_is_refused(value in proptest::collection::vec(any::<u8>(), 0..64), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let ring = Keyring::new(&key(1), &[]);
            let token = ring.seal(&value);
            let mut bytes = token.clone().into_bytes();
            let i = pos.index(bytes.len());
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            // Bytes that are not even text cannot be passed as a token.
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert!(ring.open(&changed).is_err());
            }
        }

        #[test]
        fn a_token_under_another_key_is_refused(value in proptest::collection::vec(any::<u8>(), 0..64), a in 1u8..50, b in 51u8..100) {
            let token = SealingKey::new(&key(a)).seal(&value);
            let other = SealingKey::new(&key(b));
            let wrong = matches!(other.open(&token), Err(TokenError::WrongKey { .. }));
            prop_assert!(wrong);
            let ring = Keyring::new(&key(b), &[]);
            let unknown = matches!(ring.open(&token), Err(TokenError::UnknownKeyId(_)));
            prop_assert!(unknown);
        }
    }
}
