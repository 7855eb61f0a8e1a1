//! The text of a project file in the encodings tokens live in: UTF-8 (or
//! any ASCII-compatible encoding) and UTF-16 with a byte-order mark, as
//! Windows tools save XML. Tokens are ASCII, so each is found and replaced
//! in the file's own encoding, and every other byte stays as it was.

use std::ops::Range;

use serde::Serialize;

use crate::token;

/// How a text file is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 or another encoding where ASCII is one byte a character.
    Utf8,
    /// UTF-16 little-endian, starting with the mark FF FE.
    Utf16Le,
    /// UTF-16 big-endian, starting with the mark FE FF.
    Utf16Be,
}

impl Encoding {
    /// The encoding a file's first bytes announce: a UTF-16 byte-order mark,
    /// else UTF-8.
    pub fn sniff(bytes: &[u8]) -> Encoding {
        match bytes {
            [0xFF, 0xFE, ..] => Encoding::Utf16Le,
            [0xFE, 0xFF, ..] => Encoding::Utf16Be,
            _ => Encoding::Utf8,
        }
    }
}

/// One token candidate in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Where it is, in the file's bytes.
    pub bytes: Range<usize>,
    /// Its text (tokens are ASCII in every encoding).
    pub text: String,
    /// The line it starts on, counting from 1.
    pub line: usize,
}

/// Where each token candidate is in `text` (UTF-8): every run starting
/// `ktsec:`, up to the first byte outside the token alphabet, the third `:`
/// after the prefix (a token has three fields, version, key id and body, so
/// a colon after the body is the text's own: YAML `key: TOKEN:` or
/// `TOKEN:8080`), or the next `ktsec:` (two tokens glued together are two
/// tokens; a token's body holds no `:`, so this never cuts a real one).
/// Candidates never overlap. No boundary is required before one
/// (`user:TOKEN@host`, `x=TOKEN`): a missed token would be a lost value
/// after a purge, a look-alike is only reported.
pub fn find_tokens(text: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut starts = memchr::memmem::find_iter(text, token::PREFIX.as_bytes()).peekable();
    std::iter::from_fn(move || {
        let start = starts.next()?;
        let mut colons = 0;
        let body = start + token::PREFIX.len();
        let len = text[body..]
            .iter()
            .take_while(|b| match **b {
                b':' => {
                    colons += 1;
                    colons <= 2
                }
                b => is_token_byte(b),
            })
            .count();
        let end = starts.peek().map_or(body + len, |next| (body + len).min(*next));
        Some(start..end)
    })
}

/// [`find_tokens`] with the line (from 1) each candidate starts on.
pub fn find_tokens_with_lines(text: &[u8]) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
    let (mut line, mut counted_to) = (1, 0);
    find_tokens(text).map(move |range| {
        line += memchr::memchr_iter(b'\n', &text[counted_to..range.start]).count();
        counted_to = range.start;
        (range, line)
    })
}

pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':'
}

/// The UTF-16 code units of `body` as bytes: ASCII units as themselves,
/// every other unit as 0xFF (never part of a token, never a line break).
fn ascii_projection(body: &[u8], encoding: Encoding) -> Vec<u8> {
    body.chunks_exact(2)
        .map(|pair| {
            let unit = match encoding {
                Encoding::Utf16Be => u16::from_be_bytes([pair[0], pair[1]]),
                _ => u16::from_le_bytes([pair[0], pair[1]]),
            };
            u8::try_from(unit).ok().filter(u8::is_ascii).unwrap_or(0xFF)
        })
        .collect()
}

/// Every token candidate in a file of `encoding`.
pub fn tokens(bytes: &[u8], encoding: Encoding) -> Vec<Found> {
    match encoding {
        Encoding::Utf8 => find_tokens_with_lines(bytes)
            .map(|(range, line)| Found {
                text: String::from_utf8_lossy(&bytes[range.clone()]).into_owned(),
                bytes: range,
                line,
            })
            .collect(),
        Encoding::Utf16Le | Encoding::Utf16Be => {
            let projection = ascii_projection(&bytes[2..], encoding);
            find_tokens_with_lines(&projection)
                .map(|(units, line)| Found {
                    text: String::from_utf8_lossy(&projection[units.clone()]).into_owned(),
                    bytes: 2 + 2 * units.start..2 + 2 * units.end,
                    line,
                })
                .collect()
        }
    }
}

/// `token` (ASCII) in `encoding`.
pub fn encode(token: &str, encoding: Encoding, out: &mut Vec<u8>) {
    match encoding {
        Encoding::Utf8 => out.extend_from_slice(token.as_bytes()),
        Encoding::Utf16Le => out.extend(token.bytes().flat_map(|b| [b, 0])),
        Encoding::Utf16Be => out.extend(token.bytes().flat_map(|b| [0, b])),
    }
}

/// The token texts in a file that is not read as text (binary, no
/// byte-order mark): UTF-8 runs and UTF-16 runs of either byte order.
pub fn tokens_in_binary(bytes: &[u8]) -> Vec<String> {
    let mut found: Vec<String> = find_tokens(bytes).map(|r| String::from_utf8_lossy(&bytes[r]).into_owned()).collect();
    // `k\0t\0s\0e\0c\0:` is in every UTF-16 `ktsec:`, little- or big-endian,
    // once; the characters that follow are at every second byte.
    let wide: Vec<u8> = token::PREFIX.bytes().flat_map(|b| [b, 0]).collect();
    let wide = &wide[..wide.len() - 1];
    for start in memchr::memmem::find_iter(bytes, wide) {
        let mut text = String::new();
        let mut at = start;
        while at < bytes.len() && is_token_byte(bytes[at]) && (at == start || bytes[at - 1] == 0) {
            text.push(char::from(bytes[at]));
            at += 2;
        }
        found.push(text);
    }
    found
}

/// How many token prefixes, in UTF-8 or UTF-16, `bytes` holds: for files
/// too large to read whole, counted chunk by chunk.
pub fn count_prefixes(bytes: &[u8]) -> usize {
    let wide: Vec<u8> = token::PREFIX.bytes().flat_map(|b| [b, 0]).collect();
    memchr::memmem::find_iter(bytes, token::PREFIX.as_bytes()).count()
        + memchr::memmem::find_iter(bytes, &wide[..wide.len() - 1]).count()
}

/// The longest a prefix can be, in bytes: chunks overlap by this less one.
pub const PREFIX_BYTES: usize = 2 * token::PREFIX.len();

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, encoding: Encoding) -> Vec<u8> {
        let mut out = match encoding {
            Encoding::Utf16Le => vec![0xFF, 0xFE],
            _ => vec![0xFE, 0xFF],
        };
        for unit in text.encode_utf16() {
            out.extend(if encoding == Encoding::Utf16Le { unit.to_le_bytes() } else { unit.to_be_bytes() });
        }
        out
    }

    #[test]
    fn finds_tokens_in_utf16_of_both_byte_orders() {
        for encoding in [Encoding::Utf16Le, Encoding::Utf16Be] {
            let bytes = utf16("<a p=\"ktsec:1:ab\"/>\r\nü€😀 ktsec:x_y-z\n", encoding);
            assert_eq!(Encoding::sniff(&bytes), encoding);
            let found = tokens(&bytes, encoding);
            let texts: Vec<(&str, usize)> = found.iter().map(|f| (f.text.as_str(), f.line)).collect();
            assert_eq!(texts, vec![("ktsec:1:ab", 1), ("ktsec:x_y-z", 2)]);
            let mut again = Vec::new();
            encode(&found[0].text, encoding, &mut again);
            assert_eq!(&bytes[found[0].bytes.clone()], again.as_slice());
            // The same tokens are seen in the file read as binary.
            let mut binary = tokens_in_binary(&bytes[2..]);
            binary.sort();
            assert_eq!(binary, vec!["ktsec:1:ab".to_string(), "ktsec:x_y-z".to_string()]);
            assert_eq!(count_prefixes(&bytes), 2);
        }
    }

    #[test]
    fn a_non_ascii_unit_is_never_a_token_character() {
        // U+016B has the low byte 0x6B ('k'): not a token start.
        let bytes = utf16("\u{016B}tsec: ktsec:a", Encoding::Utf16Le);
        let texts: Vec<String> = tokens(&bytes, Encoding::Utf16Le).into_iter().map(|f| f.text).collect();
        assert_eq!(texts, vec!["ktsec:a".to_string()]);
    }
}
