//! Keys to actions: one table of bindings, per mode, from which the key map
//! and the key-hint line are both drawn, so what the hint line says is what
//! the keys do. A pure map, so it can be tested and rebound.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What the operator asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave the wizard.
    Quit,
    /// Ctrl-C: leave the wizard, interrupted (exit status 130).
    Interrupt,
    /// Ctrl-L: repaint the whole screen.
    Repaint,
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
    /// Left or right: in a side-by-side choice, or the cursor in a field.
    Left,
    Right,
    /// The cursor to the start or the end of a field.
    LineStart,
    LineEnd,
    /// Scroll the detail box.
    ScrollUp,
    ScrollDown,
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
    /// Delete the character under the cursor.
    Delete,
    /// Ctrl-U: delete from the start of the field to the cursor.
    KillToStart,
    /// Ctrl-W: delete the word before the cursor.
    KillWord,
    /// Pasted text (bracketed paste).
    Paste(String),
}

/// Which keys apply: what has the keyboard, and what the hint line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hint {
    /// The tabs and their controls.
    Tabs,
    /// The Rotation tab: the tabs, and the detail box scrolls.
    Rotation,
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

impl Hint {
    /// Whether letters are text here.
    pub fn typing(self) -> bool {
        matches!(self, Hint::Field | Hint::Text | Hint::Form)
    }
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;

/// Modes, as sets.
const ALL: &[Hint] = &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Choice, Hint::Text, Hint::Form, Hint::Closes];
const TABS: &[Hint] = &[Hint::Tabs, Hint::Rotation];
const TYPING: &[Hint] = &[Hint::Field, Hint::Text, Hint::Form];
const MOVING: &[Hint] = &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form];

/// One binding: a key, the modes it holds in, its action, and what the hint
/// line says of it in which modes (one entry may speak for a pair of keys).
pub struct Binding {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
    pub modes: &'static [Hint],
    pub action: Action,
    pub hint: &'static [(Hint, &'static str)],
}

const fn bind(code: KeyCode, modifiers: KeyModifiers, modes: &'static [Hint], action: Action) -> Binding {
    Binding { code, modifiers, modes, action, hint: &[] }
}

const fn hinted(
    code: KeyCode,
    modifiers: KeyModifiers,
    modes: &'static [Hint],
    action: Action,
    hint: &'static [(Hint, &'static str)],
) -> Binding {
    Binding { code, modifiers, modes, action, hint }
}

/// Every binding, in the hint line's order. The first that matches wins.
pub const BINDINGS: &[Binding] = &[
    hinted(
        KeyCode::Tab,
        NONE,
        &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form, Hint::Choice],
        Action::FocusNext,
        &[
            (Hint::Tabs, "Tab/S-Tab move"),
            (Hint::Rotation, "Tab/S-Tab move"),
            (Hint::Field, "Tab/S-Tab move"),
            (Hint::Form, "Tab other field"),
        ],
    ),
    bind(
        KeyCode::BackTab,
        NONE,
        &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form, Hint::Choice],
        Action::FocusPrev,
    ),
    bind(
        KeyCode::BackTab,
        KeyModifiers::SHIFT,
        &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form, Hint::Choice],
        Action::FocusPrev,
    ),
    hinted(
        KeyCode::Char(' '),
        NONE,
        &[Hint::Tabs, Hint::Rotation, Hint::Choice],
        Action::Toggle,
        &[(Hint::Choice, "Space/arrows choose")],
    ),
    hinted(
        KeyCode::Enter,
        NONE,
        &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Choice, Hint::Text, Hint::Form],
        Action::Activate,
        &[
            (Hint::Tabs, "Enter press"),
            (Hint::Rotation, "Enter press"),
            (Hint::Field, "Enter press"),
            (Hint::Choice, "Enter OK"),
            (Hint::Text, "Enter OK"),
            (Hint::Form, "Enter next/store"),
        ],
    ),
    hinted(
        KeyCode::Left,
        NONE,
        TABS,
        Action::PrevTab,
        &[(Hint::Tabs, "<-/-> or 1-4 tabs"), (Hint::Rotation, "<-/-> tabs")],
    ),
    bind(KeyCode::Right, NONE, TABS, Action::NextTab),
    hinted(
        KeyCode::Left,
        NONE,
        TYPING,
        Action::Left,
        &[(Hint::Field, "<-/-> edit"), (Hint::Text, "<-/-> Home/End edit")],
    ),
    bind(KeyCode::Right, NONE, TYPING, Action::Right),
    bind(KeyCode::Left, NONE, &[Hint::Choice], Action::Left),
    bind(KeyCode::Right, NONE, &[Hint::Choice], Action::Right),
    bind(KeyCode::Up, NONE, &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form, Hint::Choice], Action::Up),
    bind(KeyCode::Down, NONE, &[Hint::Tabs, Hint::Rotation, Hint::Field, Hint::Form, Hint::Choice], Action::Down),
    hinted(KeyCode::PageDown, NONE, &[Hint::Rotation], Action::ScrollDown, &[(Hint::Rotation, "PgUp/PgDn detail")]),
    bind(KeyCode::PageUp, NONE, &[Hint::Rotation], Action::ScrollUp),
    bind(KeyCode::PageDown, NONE, &[Hint::Tabs, Hint::Field], Action::NextTab),
    bind(KeyCode::PageUp, NONE, &[Hint::Tabs, Hint::Field], Action::PrevTab),
    bind(KeyCode::F(6), NONE, MOVING, Action::NextTab),
    bind(KeyCode::F(1), NONE, MOVING, Action::Tab(1)),
    bind(KeyCode::F(2), NONE, MOVING, Action::Tab(2)),
    bind(KeyCode::F(3), NONE, MOVING, Action::Tab(3)),
    bind(KeyCode::F(4), NONE, MOVING, Action::Tab(4)),
    bind(KeyCode::Char('1'), NONE, TABS, Action::Tab(1)),
    bind(KeyCode::Char('2'), NONE, TABS, Action::Tab(2)),
    bind(KeyCode::Char('3'), NONE, TABS, Action::Tab(3)),
    bind(KeyCode::Char('4'), NONE, TABS, Action::Tab(4)),
    bind(KeyCode::Home, NONE, TYPING, Action::LineStart),
    bind(KeyCode::End, NONE, TYPING, Action::LineEnd),
    bind(KeyCode::Char('a'), CTRL, TYPING, Action::LineStart),
    bind(KeyCode::Char('e'), CTRL, TYPING, Action::LineEnd),
    bind(KeyCode::Char('u'), CTRL, TYPING, Action::KillToStart),
    bind(KeyCode::Char('w'), CTRL, TYPING, Action::KillWord),
    bind(KeyCode::Backspace, NONE, TYPING, Action::Backspace),
    bind(KeyCode::Delete, NONE, TYPING, Action::Delete),
    hinted(
        KeyCode::Esc,
        NONE,
        ALL,
        Action::Back,
        &[
            (Hint::Field, "Esc leave"),
            (Hint::Choice, "Esc cancel"),
            (Hint::Text, "Esc cancel"),
            (Hint::Form, "Esc cancel"),
        ],
    ),
    hinted(KeyCode::Char('?'), NONE, TABS, Action::Help, &[(Hint::Tabs, "? keys"), (Hint::Rotation, "? keys")]),
    bind(KeyCode::Char('l'), CTRL, ALL, Action::Repaint),
    hinted(
        KeyCode::Char('q'),
        NONE,
        &[Hint::Tabs, Hint::Rotation, Hint::Closes],
        Action::Quit,
        &[(Hint::Tabs, "q quit"), (Hint::Rotation, "q quit")],
    ),
    hinted(
        KeyCode::Char('c'),
        CTRL,
        ALL,
        Action::Interrupt,
        &[(Hint::Field, "Ctrl-C quit"), (Hint::Choice, "Ctrl-C quit"), (Hint::Text, "Ctrl-C quit")],
    ),
];

/// The action for `key` in `mode`, if any. Letters are text while typing;
/// only presses count (Windows reports releases too); any other key closes
/// a dialog that any key closes.
pub fn map(key: KeyEvent, mode: Hint) -> Option<Action> {
    if key.kind != KeyEventKind::Press {
        return None;
    }
    // Shift is part of the character, not of the binding (`?`, capitals).
    let modifiers = match key.code {
        KeyCode::Char(_) => key.modifiers - KeyModifiers::SHIFT,
        _ => key.modifiers,
    };
    let bound = BINDINGS
        .iter()
        .find(|b| b.code == key.code && b.modifiers == modifiers && b.modes.contains(&mode))
        .map(|b| b.action.clone());
    if bound.is_some() {
        return bound;
    }
    match key.code {
        KeyCode::Char(c) if mode.typing() && !modifiers.intersects(CTRL | KeyModifiers::ALT) => Some(Action::Char(c)),
        _ if mode == Hint::Closes => Some(Action::Back),
        _ => None,
    }
}

/// The key-hint line for `mode`, drawn from the bindings.
pub fn hints(mode: Hint) -> String {
    if mode == Hint::Closes {
        return "any key closes".into();
    }
    if mode == Hint::Text {
        // Typing first: a dialog's hint says what the field wants.
        let mut parts = vec!["type"];
        parts.extend(hint_parts(mode));
        return parts.join("  ");
    }
    hint_parts(mode).collect::<Vec<_>>().join("  ")
}

fn hint_parts(mode: Hint) -> impl Iterator<Item = &'static str> {
    BINDINGS.iter().flat_map(|b| b.hint.iter()).filter(move |(m, _)| *m == mode).map(|(_, text)| *text)
}

/// The help dialog's lines: every binding group, in words.
pub fn help_lines() -> &'static [&'static str] {
    &[
        "Tab / Shift-Tab     next / previous control",
        "Left / Right, 1-4   previous / next tab, or tab by number (F1-F4 in a field)",
        "Up / Down           move in a list or a choice",
        "PgUp / PgDn         scroll the step's detail (Rotation tab)",
        "Enter, Space        press the focused control; Space toggles a choice",
        "Esc                 back out of a field or a dialog",
        "In a field          <-/->, Home/End (Ctrl-A/E), Del, Ctrl-U, Ctrl-W",
        "Ctrl-L              repaint the screen",
        "q, Ctrl-C           quit (q not while typing)",
        "",
        "Paste a key with your terminal's paste (bracketed paste): the line breaks",
        "and padding a console added are dropped. Markers: [x] done  [>] current",
        "[ ] pending  [-] skipped  [!] failed.",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventState;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn q_quits_except_while_typing_and_ctrl_c_always_interrupts() {
        assert_eq!(map(press(KeyCode::Char('q')), Hint::Tabs), Some(Action::Quit));
        assert_eq!(map(press(KeyCode::Char('q')), Hint::Field), Some(Action::Char('q')));
        for mode in ALL {
            assert_eq!(map(ctrl('c'), *mode), Some(Action::Interrupt));
            assert_eq!(map(ctrl('l'), *mode), Some(Action::Repaint));
        }
    }

    #[test]
    fn only_presses_count() {
        let release = KeyEvent { kind: KeyEventKind::Release, state: KeyEventState::NONE, ..press(KeyCode::Enter) };
        assert_eq!(map(release, Hint::Tabs), None);
        assert_eq!(map(press(KeyCode::Enter), Hint::Tabs), Some(Action::Activate));
    }

    #[test]
    fn arrows_move_tabs_choices_or_the_cursor() {
        assert_eq!(map(press(KeyCode::Right), Hint::Tabs), Some(Action::NextTab));
        assert_eq!(map(press(KeyCode::Right), Hint::Field), Some(Action::Right));
        assert_eq!(map(press(KeyCode::Left), Hint::Choice), Some(Action::Left));
        assert_eq!(map(press(KeyCode::Char('3')), Hint::Tabs), Some(Action::Tab(3)));
        assert_eq!(map(press(KeyCode::Char('3')), Hint::Field), Some(Action::Char('3')));
        assert_eq!(map(press(KeyCode::PageDown), Hint::Rotation), Some(Action::ScrollDown));
        assert_eq!(map(press(KeyCode::PageDown), Hint::Tabs), Some(Action::NextTab));
    }

    #[test]
    fn fields_edit_like_readline() {
        assert_eq!(map(press(KeyCode::Home), Hint::Text), Some(Action::LineStart));
        assert_eq!(map(ctrl('a'), Hint::Field), Some(Action::LineStart));
        assert_eq!(map(ctrl('e'), Hint::Form), Some(Action::LineEnd));
        assert_eq!(map(ctrl('u'), Hint::Text), Some(Action::KillToStart));
        assert_eq!(map(ctrl('w'), Hint::Text), Some(Action::KillWord));
        assert_eq!(map(press(KeyCode::Delete), Hint::Field), Some(Action::Delete));
        // Not while no field has the keyboard, and no stray control letter is text.
        assert_eq!(map(ctrl('u'), Hint::Tabs), None);
        assert_eq!(map(ctrl('x'), Hint::Text), None);
        let capital = KeyEvent::new(KeyCode::Char('Q'), KeyModifiers::SHIFT);
        assert_eq!(map(capital, Hint::Text), Some(Action::Char('Q')));
    }

    #[test]
    fn a_closing_dialog_takes_any_key() {
        assert_eq!(map(press(KeyCode::Char('x')), Hint::Closes), Some(Action::Back));
        // q still quits over them.
        assert_eq!(map(press(KeyCode::Char('q')), Hint::Closes), Some(Action::Quit));
    }

    #[test]
    fn the_hint_line_is_drawn_from_the_bindings_and_fits_80_columns() {
        assert_eq!(hints(Hint::Tabs), "Tab/S-Tab move  Enter press  <-/-> or 1-4 tabs  ? keys  q quit");
        assert_eq!(hints(Hint::Text), "type  Enter OK  <-/-> Home/End edit  Esc cancel  Ctrl-C quit");
        // The field's hint shares the tabs' start, so a focus move into the
        // field rewrites one stretch of the line (at most 120 bytes in all).
        assert_eq!(hints(Hint::Field), "Tab/S-Tab move  Enter press  <-/-> edit  Esc leave  Ctrl-C quit");
        for mode in ALL {
            assert!(hints(*mode).len() < 79, "{mode:?}: {}", hints(*mode));
        }
        // A hint speaks only for a key bound in its mode.
        for binding in BINDINGS {
            for (mode, text) in binding.hint {
                assert!(binding.modes.contains(mode), "{text} is hinted where it is not bound");
            }
        }
    }
}
