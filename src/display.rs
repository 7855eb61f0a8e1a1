//! The one filter for text that came from another machine or from a file
//! (remote answers and their failures, step evidence, project paths, step
//! descriptions read from projects) before the wizard, the CLI or the JSON
//! shows it.
//!
//! Such text could otherwise drive the operator's terminal (escape
//! sequences), reorder what is shown (bidi overrides, embeddings and
//! isolates: the "Trojan Source" class) or hide part of it (zero-width and
//! other invisible characters). Each such character becomes a visible escape
//! such as `\u{202E}`, so the operator sees that it was there and where.

use std::borrow::Cow;
use std::fmt::Write;

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` is shown as an escape rather than as itself: controls (C0,
/// DEL, C1), format characters (Unicode category Cf: bidi embeddings,
/// overrides, isolates and marks, zero-width characters, the BOM, soft
/// hyphen, tag characters), line and paragraph separators, private-use,
/// unassigned and surrogate code points, and the other default-ignorable
/// characters that draw nothing (variation selectors, Hangul fillers,
/// the combining grapheme joiner, Mongolian free variation selectors).
pub fn is_hidden(c: char) -> bool {
    if c == ' ' {
        return false;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// `text` safe to show: every character [`is_hidden`] says would act on the
/// terminal or draw nothing becomes `\u{HEX}` (upper-case hex, as Rust
/// writes it); everything else is kept. Borrowed when nothing changes.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_hidden(c) {
            let _ = write!(out, "\\u{{{:X}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// [`escape`], owned: for fields kept in reports and rows.
pub fn escaped(text: &str) -> String {
    escape(text).into_owned()
}

/// A path, escaped for display.
pub fn path(path: &std::path::Path) -> String {
    escaped(&path.display().to_string())
}

/// `value` as pretty JSON for stdout, with every character [`is_hidden`]
/// says would act on the terminal or draw nothing written as a `\uXXXX`
/// escape (a surrogate pair above U+FFFF): the same string to a JSON reader,
/// nothing hidden on a terminal.
pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let text = serde_json::to_string_pretty(value)?;
    // Line breaks are the layout's: serde_json escapes those in strings.
    let hidden = |c: char| c != '\n' && is_hidden(c);
    if !text.chars().any(hidden) {
        return Ok(text);
    }
    // serde_json escapes only what JSON requires; any other hidden character
    // in its output sits inside a string, where an escape means the same.
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if hidden(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_passes_unchanged_and_borrowed() {
        for text in ["exec-01", "C:\\ProgramData\\keyturn", "7F3A-91C0-55D2-0B8E", "Schlüssel – 鍵 🦀", "a b"] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn controls_bidi_and_invisible_characters_become_visible_escapes() {
        let cases = [
            ("a\u{1b}[2Jb", "a\\u{1B}[2Jb"),
            ("a\nb\tc\r", "a\\u{A}b\\u{9}c\\u{D}"),
            ("\u{7f}\u{85}\u{9b}", "\\u{7F}\\u{85}\\u{9B}"),
            ("user\u{202E}gnp.exe", "user\\u{202E}gnp.exe"),
            ("\u{202A}\u{202B}\u{202C}\u{202D}", "\\u{202A}\\u{202B}\\u{202C}\\u{202D}"),
            ("\u{2066}\u{2067}\u{2068}\u{2069}", "\\u{2066}\\u{2067}\\u{2068}\\u{2069}"),
            ("\u{061C}\u{200E}\u{200F}", "\\u{61C}\\u{200E}\\u{200F}"),
            ("7F3A\u{200B}\u{200C}\u{200D}", "7F3A\\u{200B}\\u{200C}\\u{200D}"),
            ("\u{2060}\u{2061}\u{2062}\u{2063}\u{2064}", "\\u{2060}\\u{2061}\\u{2062}\\u{2063}\\u{2064}"),
            ("\u{FEFF}ok\u{AD}", "\\u{FEFF}ok\\u{AD}"),
            ("\u{2028}\u{2029}", "\\u{2028}\\u{2029}"),
            ("x\u{FE0F}\u{E0041}\u{E0100}\u{3164}", "x\\u{FE0F}\\u{E0041}\\u{E0100}\\u{3164}"),
            ("\u{E000}\u{10FFFF}", "\\u{E000}\\u{10FFFF}"),
        ];
        for (raw, shown) in cases {
            assert_eq!(escape(raw), shown, "{raw:?}");
        }
    }

    #[test]
    fn nothing_hidden_survives_and_escaping_twice_changes_nothing() {
        let all: String = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
        let once = escaped(&all);
        assert!(!once.chars().any(is_hidden));
        assert_eq!(escape(&once), once);
        for c in ['\u{202E}', '\u{2066}', '\u{200B}', '\u{FEFF}', '\u{1b}', '\u{9b}'] {
            assert!(is_hidden(c), "{c:?}");
        }
    }

    #[test]
    fn json_keeps_the_raw_string_behind_escapes() {
        let raw = "evil\u{202E}gnp\u{200B}\u{7f}\u{85}\u{E0041}\n";
        let text = json(&serde_json::json!({ "home": raw })).expect("serialises");
        assert!(!text.chars().any(|c| is_hidden(c) && c != '\n'), "{text:?}");
        assert!(text.contains("\\u202e") && text.contains("\\udb40\\udc41"), "{text}");
        let back: serde_json::Value = serde_json::from_str(&text).expect("parses");
        assert_eq!(back["home"], raw);
    }
}
