//! Key material, its text form, its fingerprint and the built-in default keys.
//!
//! Text form (version 1), frozen by the known-answer tests below:
//!
//! ```text
//! kt1:enc:<48 characters of standard base64>      encryption key
//! kt1:com:<48 characters of standard base64>      communication key
//! ```
//!
//! The base64 body is the 32 key bytes followed by a 4-byte checksum, the first
//! four bytes of SHA-256(`"keyturn key text v1\0"` || tag || key), so a mistyped
//! character, a cut paste or a paste of the other kind is told apart. 56
//! characters in all.
//!
//! Fingerprint: the first 8 bytes of HMAC-SHA256 keyed with the key over
//! `"keyturn fingerprint v1\0"` || tag, written as four groups of four
//! uppercase hex digits. It identifies a key without revealing it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

/// The number of bytes in a key.
pub const KEY_LEN: usize = 32;
const CHECKSUM_LEN: usize = 4;
const BODY_CHARS: usize = 48;
/// The text form's version prefix.
pub const TEXT_PREFIX: &str = "kt1:";
/// Length of a key's text form in characters.
pub const TEXT_LEN: usize = TEXT_PREFIX.len() + 4 + BODY_CHARS;
/// Input longer than this is refused before it is parsed.
pub const MAX_INPUT: usize = 64 * 1024;

/// Which of the two machine-wide keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// Protects stored secrets: tokens in projects and the machine's credentials.
    Encryption,
    /// Shared by the scheduling service and execution clients.
    Communication,
}

impl KeyKind {
    /// Both kinds, in display order.
    pub const ALL: [KeyKind; 2] = [KeyKind::Encryption, KeyKind::Communication];

    /// The tag in the text form.
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Encryption => "enc",
            KeyKind::Communication => "com",
        }
    }

    /// The name used in commands, files and messages.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::Encryption => "encryption",
            KeyKind::Communication => "communication",
        }
    }

    /// The name with a capital, to start a sentence.
    pub fn title(self) -> &'static str {
        match self {
            KeyKind::Encryption => "Encryption",
            KeyKind::Communication => "Communication",
        }
    }

    /// The kind named `name` (as in [`KeyKind::name`]).
    pub fn from_name(name: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.name() == name)
    }

    fn from_tag(tag: &str) -> Option<KeyKind> {
        KeyKind::ALL.into_iter().find(|k| k.tag() == tag)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A key: 32 secret bytes of one kind. No `Display`; `Debug` shows the
/// fingerprint only; the bytes are wiped on drop.
#[derive(Clone)]
pub struct Key {
    kind: KeyKind,
    bytes: Box<Zeroizing<[u8; KEY_LEN]>>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kind", &self.kind)
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        // Compared through the keyed fingerprint of both to avoid a
        // byte-by-byte early exit on the secret itself.
        self.kind == other.kind && self.bytes.as_slice() == other.bytes.as_slice()
    }
}
impl Eq for Key {}

/// Why a random key could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

impl Key {
    /// A new key from the operating system's CSPRNG.
    pub fn generate(kind: KeyKind) -> Result<Key, RandomError> {
        let mut bytes = Box::new(Zeroizing::new([0u8; KEY_LEN]));
        getrandom::fill(bytes.as_mut_slice()).map_err(|e| RandomError(e.to_string()))?;
        Ok(Key { kind, bytes })
    }

    /// A key of `kind` from raw bytes.
    pub fn from_bytes(kind: KeyKind, raw: [u8; KEY_LEN]) -> Key {
        let mut raw = raw;
        let key = Key { kind, bytes: Box::new(Zeroizing::new(raw)) };
        raw.zeroize();
        key
    }

    /// The built-in default key of `kind`: the same on every installation, so
    /// data under it is readable by anyone who has keyturn.
    pub fn default_for(kind: KeyKind) -> Key {
        let digest =
            Sha256::new().chain_update(b"keyturn built-in default key v1\0").chain_update(kind.tag()).finalize();
        let mut raw = [0u8; KEY_LEN];
        raw.copy_from_slice(&digest);
        Key::from_bytes(kind, raw)
    }

    /// Whether this is the built-in default key of its kind.
    pub fn is_default(&self) -> bool {
        *self == Key::default_for(self.kind)
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The secret bytes. Callers must not log, print or store them except
    /// where the operator asked for the key.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        let tag = self.mac(&[b"keyturn fingerprint v1\0", self.kind.tag().as_bytes()]);
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&tag[..8]);
        Fingerprint(fp)
    }

    /// HMAC-SHA256 keyed with this key over the concatenation of `parts`.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(self.bytes.as_slice()).expect("HMAC accepts keys of any length");
        for part in parts {
            mac.update(part);
        }
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// The text form, for the operator who asked for the key.
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; KEY_LEN + CHECKSUM_LEN]);
        raw[..KEY_LEN].copy_from_slice(self.bytes.as_slice());
        raw[KEY_LEN..].copy_from_slice(&checksum(self.kind, &self.bytes));
        let mut text = Zeroizing::new(String::with_capacity(TEXT_LEN));
        text.push_str(TEXT_PREFIX);
        text.push_str(self.kind.tag());
        text.push(':');
        STANDARD_NO_PAD.encode_string(raw.as_slice(), &mut text);
        text
    }

    /// Parses a pasted or typed key of the `expected` kind. Surrounding
    /// whitespace and line breaks (with the spaces a console pads wrapped
    /// lines with) are ignored; everything else is strict.
    pub fn parse(expected: KeyKind, input: &str) -> Result<Key, KeyTextError> {
        if input.len() > MAX_INPUT {
            return Err(KeyTextError::TooLarge { bytes: input.len() });
        }
        let compact = unwrapped(input);
        if compact.is_empty() {
            return Err(KeyTextError::Empty);
        }
        if compact.matches(TEXT_PREFIX).count() > 1 {
            return Err(KeyTextError::SeveralKeys);
        }
        let Some(rest) = compact.strip_prefix(TEXT_PREFIX) else {
            return Err(classify_foreign(&compact));
        };
        let (tag, body) = rest
            .split_once(':')
            .ok_or(KeyTextError::NotAKey { looks_like: "text that starts like a keyturn key but has no kind tag" })?;
        let found =
            KeyKind::from_tag(tag).ok_or(KeyTextError::NotAKey { looks_like: "text with an unknown kind tag" })?;
        if found != expected {
            return Err(KeyTextError::WrongKind { expected, found });
        }
        let raw = decode_body(body)?;
        let mut key_bytes = [0u8; KEY_LEN];
        key_bytes.copy_from_slice(&raw[..KEY_LEN]);
        let key = Key::from_bytes(found, key_bytes);
        key_bytes.zeroize();
        if checksum(found, &key.bytes) != raw[KEY_LEN..] {
            return Err(KeyTextError::ChecksumMismatch);
        }
        if key.bytes.iter().all(|b| *b == key.bytes[0]) {
            return Err(KeyTextError::Weak);
        }
        if key.is_default() {
            return Err(KeyTextError::DefaultKey { kind: found });
        }
        Ok(key)
    }
}

fn checksum(kind: KeyKind, key: &[u8; KEY_LEN]) -> [u8; CHECKSUM_LEN] {
    let digest =
        Sha256::new().chain_update(b"keyturn key text v1\0").chain_update(kind.tag()).chain_update(key).finalize();
    let mut out = [0u8; CHECKSUM_LEN];
    out.copy_from_slice(&digest[..CHECKSUM_LEN]);
    out
}

fn decode_body(body: &str) -> Result<Zeroizing<Vec<u8>>, KeyTextError> {
    let mut url_safe = false;
    for (i, c) in body.chars().enumerate() {
        match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' => {}
            '-' | '_' => url_safe = true,
            '=' => return Err(KeyTextError::StrayPadding),
            _ => return Err(KeyTextError::InvalidCharacter { position: TEXT_PREFIX.len() + 4 + i + 1 }),
        }
    }
    if url_safe {
        return Err(KeyTextError::MixedAlphabet);
    }
    let raw = match STANDARD_NO_PAD.decode(body) {
        Ok(raw) => Zeroizing::new(raw),
        Err(base64::DecodeError::InvalidLastSymbol(..)) => return Err(KeyTextError::TrailingBits),
        Err(base64::DecodeError::InvalidLength(_)) => {
            return Err(KeyTextError::BodyLength { chars: body.chars().count() });
        }
        Err(_) => return Err(KeyTextError::NotAKey { looks_like: "text that is not valid base64" }),
    };
    if raw.len() != KEY_LEN + CHECKSUM_LEN {
        return Err(KeyTextError::WrongLength { bytes: raw.len() });
    }
    Ok(raw)
}

fn classify_foreign(text: &str) -> KeyTextError {
    let looks_like = if text.starts_with("-----BEGIN") {
        "a PEM block (a certificate or an SSH/TLS key)"
    } else if text.starts_with("eyJ") && text.matches('.').count() == 2 {
        "a JSON Web Token"
    } else if text.starts_with("ktsec:") {
        "a keyturn token (an encrypted value), not a key"
    } else if text.starts_with("kt") && text.as_bytes().get(3) == Some(&b':') {
        "a key in a newer text format than this keyturn reads"
    } else {
        "text that is not a keyturn key"
    };
    KeyTextError::NotAKey { looks_like }
}

/// Why a key's text form was refused. Messages never repeat the input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyTextError {
    #[error("the input is {bytes} bytes, far more than a key: refused unread; paste only the key line")]
    TooLarge { bytes: usize },
    #[error("no key was given: the input is empty; paste the key line")]
    Empty,
    #[error("the input holds more than one key (pasted twice?); paste one key only")]
    SeveralKeys,
    #[error("this is {looks_like}; a keyturn key is one line starting with kt1:enc: or kt1:com:")]
    NotAKey { looks_like: &'static str },
    #[error(
        "this is {found_article} {found} key, not {expected_article} {expected} key; import it as {found} or paste the {expected} key",
        found_article = article(*found), expected_article = article(*expected)
    )]
    WrongKind { expected: KeyKind, found: KeyKind },
    #[error("the key has a character that base64 does not use at position {position}; paste the key again")]
    InvalidCharacter { position: usize },
    #[error(
        "the key mixes base64 alphabets ('-' or '_' from URL-safe base64); keyturn keys use standard base64: paste the key again"
    )]
    MixedAlphabet,
    #[error("the key has stray '=' padding; keyturn keys carry none: paste the key line exactly")]
    StrayPadding,
    #[error(
        "the key is truncated or damaged: its base64 is not canonical (the last character has trailing bits set); copy the whole line again"
    )]
    TrailingBits,
    #[error("{}", wrong_length_message(*bytes))]
    WrongLength { bytes: usize },
    /// A body no whole number of bytes can have: counted in characters,
    /// as the operator sees it.
    #[error("{}", body_length_message(*chars))]
    BodyLength { chars: usize },
    #[error("the key's checksum does not match: a character was mistyped or changed; copy the key again")]
    ChecksumMismatch,
    #[error("the key is all one repeated byte, which no generator makes; generate a real key")]
    Weak,
    #[error("this is the built-in default {kind} key, which everyone has; generate a custom key instead")]
    DefaultKey { kind: KeyKind },
}

fn article(kind: KeyKind) -> &'static str {
    match kind {
        KeyKind::Encryption => "an",
        KeyKind::Communication => "a",
    }
}

fn body_length_message(chars: usize) -> String {
    let want = (KEY_LEN + CHECKSUM_LEN).div_ceil(3) * 4;
    if chars < want {
        format!("the key is truncated: its body has {chars} characters, a key has {want}; copy the whole line again")
    } else {
        format!("the key is too long: its body has {chars} characters, a key has {want}; paste one key only")
    }
}

fn wrong_length_message(bytes: usize) -> String {
    let want = KEY_LEN + CHECKSUM_LEN;
    if bytes < want {
        format!("the key is truncated: its body decodes to {bytes} bytes, a key has {want}; copy the whole line again")
    } else {
        format!("the key is too long: its body decodes to {bytes} bytes, a key has {want}; paste one key only")
    }
}

/// Pasted or typed key text with what a console adds taken out: the line
/// breaks of a wrapped line (`\n`, `\r\n`, or a lone `\r` as terminals
/// send a bracketed paste) and the spaces around each line, such as the
/// padding before the break. The one normalisation shared by `Key::parse`
/// (the CLI) and the wizard's paste.
pub fn unwrapped(input: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(input.len().min(MAX_INPUT)));
    for line in input.split(['\n', '\r']) {
        out.push_str(line.trim());
    }
    out
}

/// Reads key text from raw input bytes: UTF-8 (with or without a byte-order
/// mark) or UTF-16 with a byte-order mark, as PowerShell 5.1 writes files.
pub fn text_from_bytes(bytes: &[u8]) -> Result<Zeroizing<String>, KeyTextError> {
    if bytes.len() > MAX_INPUT {
        return Err(KeyTextError::TooLarge { bytes: bytes.len() });
    }
    let utf16 = |le: bool, rest: &[u8]| -> Result<Zeroizing<String>, KeyTextError> {
        if !rest.len().is_multiple_of(2) {
            return Err(KeyTextError::NotAKey { looks_like: "damaged UTF-16 text" });
        }
        let units: Zeroizing<Vec<u16>> = Zeroizing::new(
            rest.chunks_exact(2)
                .map(|c| if le { u16::from_le_bytes([c[0], c[1]]) } else { u16::from_be_bytes([c[0], c[1]]) })
                .collect(),
        );
        String::from_utf16(&units)
            .map(Zeroizing::new)
            .map_err(|_| KeyTextError::NotAKey { looks_like: "damaged UTF-16 text" })
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(true, rest),
        [0xFE, 0xFF, rest @ ..] => utf16(false, rest),
        [0xEF, 0xBB, 0xBF, rest @ ..] => utf8(rest),
        _ => utf8(bytes),
    }
}

fn utf8(bytes: &[u8]) -> Result<Zeroizing<String>, KeyTextError> {
    std::str::from_utf8(bytes)
        .map(|s| Zeroizing::new(s.to_owned()))
        .map_err(|_| KeyTextError::NotAKey { looks_like: "binary data, not text" })
}

/// A key's fingerprint: identifies a key without revealing it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 8]);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{:02X}{:02X}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// Accepts `7F3A-91C0-55D2-0B8E` in either case, with or without dashes
    /// or spaces, as an operator types it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex: String = s.chars().filter(|c| !matches!(c, '-' | ' ')).collect();
        if hex.len() != 16 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(format!(
                "not a fingerprint: expected 16 hex digits like 7F3A-91C0-55D2-0B8E, got {} characters",
                hex.len()
            ));
        }
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Fingerprint(out))
    }
}

/// A fixed key for tests, different for each `seed`.
#[cfg(test)]
pub(crate) fn test_key(kind: KeyKind, seed: u8) -> Key {
    let mut raw = [0u8; KEY_LEN];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = seed.wrapping_mul(31).wrapping_add(i as u8);
    }
    Key::from_bytes(kind, raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: KeyKind) -> Key {
        let mut raw = [0u8; KEY_LEN];
        for (i, b) in raw.iter_mut().enumerate() {
            *b = i as u8;
        }
        Key::from_bytes(kind, raw)
    }

    #[test]
    fn known_answer_text_form() {
        assert_eq!(
            sample(KeyKind::Encryption).to_text().as_str(),
            "kt1:enc:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh//qdwW"
        );
        assert_eq!(
            sample(KeyKind::Communication).to_text().as_str(),
            "kt1:com:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8pXE3J"
        );
        assert_eq!(sample(KeyKind::Encryption).to_text().len(), TEXT_LEN);
        const { assert!(TEXT_LEN <= 64) };
    }

    #[test]
    fn known_answer_fingerprints() {
        assert_eq!(sample(KeyKind::Encryption).fingerprint().to_string(), "6030-2EF6-9E95-EFD4");
        assert_eq!(sample(KeyKind::Communication).fingerprint().to_string(), "4783-8108-A193-1646");
        assert_eq!(Key::default_for(KeyKind::Encryption).fingerprint().to_string(), "BF85-76AA-883D-FC91");
        assert_eq!(Key::default_for(KeyKind::Communication).fingerprint().to_string(), "565A-7B86-D266-00B6");
    }

    #[test]
    fn round_trip_and_paste_forgiveness() {
        let key = Key::generate(KeyKind::Encryption).expect("random");
        let text = key.to_text();
        assert_eq!(Key::parse(KeyKind::Encryption, &text), Ok(key.clone()));
        let wrapped = format!("  \r\n{}   \r\n{}\n\n", &text[..30], &text[30..]);
        assert_eq!(Key::parse(KeyKind::Encryption, &wrapped), Ok(key));
    }

    #[test]
    fn a_console_wrapped_paste_compacts_to_the_key() {
        // 30 characters, six padding spaces, the break (as a terminal sends
        // a bracketed paste: \r), the rest: what the wizard's field receives.
        let key = Key::generate(KeyKind::Communication).expect("random");
        let text = key.to_text();
        for newline in ["\n", "\r", "\r\n"] {
            let pasted = format!("{}      {newline}{}", &text[..30], &text[30..]);
            assert_eq!(unwrapped(&pasted).as_str(), text.as_str());
            assert_eq!(Key::parse(KeyKind::Communication, &pasted), Ok(key.clone()));
        }
        // Spaces inside a line are not a console's: still refused.
        let spaced = format!("{} {}", &text[..30], &text[30..]);
        assert!(matches!(
            Key::parse(KeyKind::Communication, &spaced),
            Err(KeyTextError::InvalidCharacter { position: 31 })
        ));
    }

    #[test]
    fn refusals_are_distinct() {
        let key = sample(KeyKind::Encryption);
        let text = key.to_text().to_string();
        let body = &text[8..];
        let parse = |s: &str| Key::parse(KeyKind::Encryption, s).expect_err("refused");
        assert_eq!(parse(""), KeyTextError::Empty);
        assert_eq!(parse(" \n\t\n"), KeyTextError::Empty);
        assert_eq!(
            parse(&sample(KeyKind::Communication).to_text()),
            KeyTextError::WrongKind { expected: KeyKind::Encryption, found: KeyKind::Communication }
        );
        assert!(matches!(parse(&text[..text.len() - 4]), KeyTextError::WrongLength { bytes: 33 }));
        assert!(matches!(parse(&format!("{text}AAAA")), KeyTextError::WrongLength { bytes: 39 }));
        // One character too many: said in characters, never "36 bytes, a key has 36".
        let one_more = parse(&format!("{text}A"));
        assert_eq!(one_more, KeyTextError::BodyLength { chars: 49 });
        assert_eq!(
            one_more.to_string(),
            "the key is too long: its body has 49 characters, a key has 48; paste one key only"
        );
        assert_eq!(parse(&format!("{text}==")), KeyTextError::StrayPadding);
        assert_eq!(parse(&text.replace('/', "_")), KeyTextError::MixedAlphabet);
        assert_eq!(parse(&format!("kt1:enc:{}/", &body[..46])), KeyTextError::TrailingBits);
        let mut typo = text.clone().into_bytes();
        typo[20] = if typo[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(parse(std::str::from_utf8(&typo).expect("ascii")), KeyTextError::ChecksumMismatch);
        assert!(matches!(
            parse("-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----"),
            KeyTextError::NotAKey { .. }
        ));
        assert!(matches!(parse("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"), KeyTextError::NotAKey { .. }));
        assert!(matches!(parse("hello world"), KeyTextError::NotAKey { .. }));
        assert!(matches!(parse(&"x".repeat(MAX_INPUT + 1)), KeyTextError::TooLarge { .. }));
        assert!(matches!(parse("kt1:enc:AAAA AAAA"), KeyTextError::InvalidCharacter { .. }));
        for byte in [0u8, 0x41] {
            let weak = Key::from_bytes(KeyKind::Encryption, [byte; KEY_LEN]).to_text();
            assert_eq!(parse(&weak), KeyTextError::Weak);
        }
        assert_eq!(
            parse(&Key::default_for(KeyKind::Encryption).to_text()),
            KeyTextError::DefaultKey { kind: KeyKind::Encryption }
        );
    }

    #[test]
    fn messages_never_repeat_the_input() {
        let text = sample(KeyKind::Communication).to_text().to_string();
        let err = Key::parse(KeyKind::Encryption, &text).expect_err("wrong kind");
        assert!(!err.to_string().contains(&text[8..20]));
        assert!(!format!("{:?}", sample(KeyKind::Encryption)).contains("AAEC"));
    }

    #[test]
    fn utf16_with_bom_as_powershell_writes() {
        let text = sample(KeyKind::Encryption).to_text();
        let mut le = vec![0xFF, 0xFE];
        for unit in format!("{}\r\n", text.as_str()).encode_utf16() {
            le.extend_from_slice(&unit.to_le_bytes());
        }
        let decoded = text_from_bytes(&le).expect("utf-16");
        assert_eq!(Key::parse(KeyKind::Encryption, &decoded), Ok(sample(KeyKind::Encryption)));
        let mut bom8 = vec![0xEF, 0xBB, 0xBF];
        bom8.extend_from_slice(text.as_bytes());
        assert_eq!(text_from_bytes(&bom8).expect("utf-8").as_str(), text.as_str());
    }

    #[test]
    fn fingerprint_parses_as_typed() {
        let fp = sample(KeyKind::Encryption).fingerprint();
        let typed = fp.to_string().to_lowercase().replace('-', " ");
        assert_eq!(typed.parse::<Fingerprint>(), Ok(fp));
        assert!("12-34".parse::<Fingerprint>().is_err());
    }
}
