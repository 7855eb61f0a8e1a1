//! A one-line text field that edits like readline: a cursor that Left/Right,
//! Home/End (Ctrl-A/E) move, Backspace and Delete, Ctrl-U (to the start)
//! and Ctrl-W (the word before the cursor). The text is wiped when dropped:
//! the key field and the credential's secret are fields like this one.

use zeroize::Zeroizing;

use super::keymap::Action;

/// The text and the cursor (a character index, `0..=len`). No `Debug` of
/// the text: a field may hold a key or a secret.
#[derive(Default, Clone)]
pub struct LineEdit {
    text: Zeroizing<String>,
    cursor: usize,
    limit: usize,
}

impl std::fmt::Debug for LineEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineEdit").field("chars", &self.len()).field("cursor", &self.cursor).finish()
    }
}

impl LineEdit {
    /// An empty field that holds at most `limit` bytes.
    pub fn new(limit: usize) -> LineEdit {
        LineEdit { text: Zeroizing::new(String::new()), cursor: 0, limit }
    }

    /// The text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The cursor, in characters from the start.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Replaces the text; the cursor goes to the end.
    pub fn set(&mut self, text: &str) {
        self.text.clear();
        self.cursor = 0;
        self.insert(text);
    }

    /// Empties it.
    pub fn clear(&mut self) {
        self.set("");
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    /// The byte offset of character `at`.
    fn byte(&self, at: usize) -> usize {
        self.text.char_indices().nth(at).map_or(self.text.len(), |(i, _)| i)
    }

    /// Inserts `text` at the cursor (control characters never: the field is
    /// drawn on the terminal).
    pub fn insert(&mut self, text: &str) {
        for c in text.chars().filter(|c| !c.is_control()) {
            if self.text.len() + c.len_utf8() > self.limit {
                break;
            }
            let at = self.byte(self.cursor);
            self.text.insert(at, c);
            self.cursor += 1;
        }
    }

    /// Applies an editing action; returns false for actions that are not
    /// editing (the caller handles them).
    pub fn edit(&mut self, action: &Action) -> bool {
        match action {
            Action::Char(c) => self.insert(c.encode_utf8(&mut [0; 4])),
            Action::Left => self.cursor = self.cursor.saturating_sub(1),
            Action::Right => self.cursor = (self.cursor + 1).min(self.len()),
            Action::LineStart => self.cursor = 0,
            Action::LineEnd => self.cursor = self.len(),
            Action::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.remove(self.cursor, self.cursor + 1);
            }
            Action::Delete if self.cursor < self.len() => self.remove(self.cursor, self.cursor + 1),
            Action::KillToStart => {
                self.remove(0, self.cursor);
                self.cursor = 0;
            }
            Action::KillWord => {
                let chars: Vec<char> = self.text.chars().take(self.cursor).collect();
                let mut start = chars.len();
                while start > 0 && chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                while start > 0 && !chars[start - 1].is_whitespace() {
                    start -= 1;
                }
                self.remove(start, self.cursor);
                self.cursor = start;
            }
            Action::Backspace | Action::Delete => {}
            _ => return false,
        }
        true
    }

    fn remove(&mut self, from: usize, to: usize) {
        let (a, b) = (self.byte(from), self.byte(to));
        // Rebuilt rather than drained: the old buffer is wiped on drop.
        let mut rest = Zeroizing::new(String::with_capacity(self.text.len()));
        rest.push_str(&self.text[..a]);
        rest.push_str(&self.text[b..]);
        self.text = rest;
    }

    /// What shows of the text in `width` cells with the cursor in view,
    /// and the cursor's column: all of it when it fits, else a window with
    /// `<` where text is cut off on the left.
    pub fn window(&self, width: usize) -> (String, usize) {
        let chars: Vec<char> = self.text.chars().collect();
        if chars.len() < width || width < 3 {
            return (chars.iter().take(width).collect(), self.cursor.min(width.saturating_sub(1)));
        }
        let room = width - 1;
        let start = (self.cursor + 1).saturating_sub(room);
        if start == 0 {
            return (chars[..width].iter().collect(), self.cursor);
        }
        let end = (start + room).min(chars.len());
        (std::iter::once('<').chain(chars[start..end].iter().copied()).collect(), 1 + self.cursor - start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> LineEdit {
        let mut field = LineEdit::new(100);
        for c in text.chars() {
            field.edit(&Action::Char(c));
        }
        field
    }

    #[test]
    fn readline_keys_edit_in_place() {
        let mut f = typed("scheduler storage in this lab");
        f.edit(&Action::LineStart);
        f.edit(&Action::Right);
        f.edit(&Action::Delete);
        assert_eq!(f.text(), "sheduler storage in this lab");
        f.edit(&Action::Char('c'));
        assert_eq!((f.text(), f.cursor()), ("scheduler storage in this lab", 2));
        f.edit(&Action::LineEnd);
        f.edit(&Action::KillWord);
        assert_eq!(f.text(), "scheduler storage in this ");
        f.edit(&Action::KillWord);
        assert_eq!(f.text(), "scheduler storage in ");
        f.edit(&Action::Left);
        f.edit(&Action::Left);
        f.edit(&Action::KillToStart);
        assert_eq!((f.text(), f.cursor()), ("n ", 0));
        f.edit(&Action::Backspace);
        assert_eq!(f.text(), "n ");
        assert!(!f.edit(&Action::Activate));
    }

    #[test]
    fn a_long_text_shows_a_window_round_the_cursor() {
        let mut f = typed("abcdefghij");
        assert_eq!(f.window(20), ("abcdefghij".to_string(), 10));
        assert_eq!(f.window(6), ("<ghij".to_string(), 5));
        f.edit(&Action::LineStart);
        assert_eq!(f.window(6), ("abcdef".to_string(), 0));
        for _ in 0..7 {
            f.edit(&Action::Right);
        }
        assert_eq!(f.window(6), ("<defgh".to_string(), 5));
        assert!(!format!("{f:?}").contains("abc"));
    }

    #[test]
    fn the_limit_and_control_characters_hold() {
        // The limit is in bytes: é takes two.
        let mut f = LineEdit::new(4);
        f.insert("ab\x1b[c\u{e9}");
        assert_eq!(f.text(), "ab[c");
        f.set("ab\u{e9}y");
        assert_eq!(f.text(), "ab\u{e9}");
        f.set("x\u{e9}y");
        f.edit(&Action::Left);
        f.edit(&Action::Left);
        assert_eq!(f.window(10), ("x\u{e9}y".to_string(), 1));
        f.edit(&Action::Backspace);
        assert_eq!(f.text(), "\u{e9}y");
    }
}
