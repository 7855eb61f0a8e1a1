//! Keys to actions: a pure map, so it can be tested and rebound.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What the operator asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave the wizard.
    Quit,
    /// Next or previous tab.
    NextTab,
    PrevTab,
    /// A tab by number (1-4).
    Tab(usize),
    /// Next or previous control.
    FocusNext,
    FocusPrev,
    /// Up or down in a list or a choice.
    Up,
    Down,
    /// Press the focused control.
    Activate,
    /// Toggle the focused choice.
    Toggle,
    /// Back out of a dialog or a field.
    Back,
    /// Show the keys.
    Help,
    /// A typed character.
    Char(char),
    /// Delete the character before the cursor.
    Backspace,
    /// Pasted text (bracketed paste).
    Paste(String),
}

/// The action for `key`, if any. `typing` is true while a text field has
/// the focus: then letters are text, not commands. Only presses count
/// (Windows reports releases too).
pub fn map(key: KeyEvent, typing: bool) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Tab => Action::FocusNext,
        KeyCode::BackTab => Action::FocusPrev,
        KeyCode::Enter => Action::Activate,
        KeyCode::Esc => Action::Back,
        KeyCode::Up => Action::Up,
        KeyCode::Down => Action::Down,
        KeyCode::Backspace if typing => Action::Backspace,
        KeyCode::PageDown | KeyCode::F(6) => Action::NextTab,
        KeyCode::PageUp => Action::PrevTab,
        KeyCode::Right if !typing => Action::NextTab,
        KeyCode::Left if !typing => Action::PrevTab,
        KeyCode::F(n @ 1..=4) => Action::Tab(usize::from(n)),
        KeyCode::Char(c) if typing && !ctrl => Action::Char(c),
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Char(' ') => Action::Toggle,
        KeyCode::Char(n @ '1'..='4') => Action::Tab(n as usize - '0' as usize),
        _ => return None,
    })
}

/// What the key-hint line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// The tabs and their controls.
    Tabs,
    /// A text field has the keyboard.
    Field,
    /// A choice to confirm (import, reset).
    Choice,
    /// A one-line text dialog.
    Text,
    /// The credential form.
    Form,
    /// A dialog that any key closes (Show, the keys).
    Closes,
}

/// The key-hint line for `hint`.
pub fn hints(hint: Hint) -> &'static str {
    match hint {
        Hint::Tabs => "Tab/S-Tab move  Enter press  <-/-> or 1-4 tabs  ? keys  q quit",
        Hint::Field => "Tab/S-Tab move  Enter press  Esc leaves the field  Ctrl-C quit",
        Hint::Choice => "Space or arrows choose  Enter OK  Esc cancel  Ctrl-C quit",
        Hint::Text => "type  Enter OK  Esc cancel  Ctrl-C quit",
        Hint::Form => "type  Tab other field  Enter next / store  Esc cancel",
        Hint::Closes => "any key closes",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn q_quits_except_while_typing() {
        assert_eq!(map(press(KeyCode::Char('q')), false), Some(Action::Quit));
        assert_eq!(map(press(KeyCode::Char('q')), true), Some(Action::Char('q')));
        assert_eq!(map(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL), true), Some(Action::Quit));
    }

    #[test]
    fn only_presses_count() {
        let release = KeyEvent { kind: KeyEventKind::Release, state: KeyEventState::NONE, ..press(KeyCode::Enter) };
        assert_eq!(map(release, false), None);
        assert_eq!(map(press(KeyCode::Enter), false), Some(Action::Activate));
    }

    #[test]
    fn arrows_move_tabs_only_outside_fields() {
        assert_eq!(map(press(KeyCode::Right), false), Some(Action::NextTab));
        assert_eq!(map(press(KeyCode::Right), true), None);
        assert_eq!(map(press(KeyCode::Char('3')), false), Some(Action::Tab(3)));
        assert_eq!(map(press(KeyCode::Char('3')), true), Some(Action::Char('3')));
    }
}
