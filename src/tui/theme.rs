//! Styles and symbols. State is always carried by text markers too, so the
//! wizard reads the same without colour (`NO_COLOR`) and, with `--ascii`, on
//! a console that cannot draw box characters.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

/// How the wizard draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Colours on (off with `NO_COLOR`).
    pub color: bool,
    /// ASCII only: no box characters, no symbols outside ASCII.
    pub ascii: bool,
}

const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

impl Theme {
    /// The theme for this process: `NO_COLOR`, `--ascii`, and ASCII when the
    /// locale is not UTF-8.
    pub fn from_environment(ascii_flag: bool) -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme { color: !no_color, ascii: ascii_flag || !locale_is_utf8() }
    }

    /// Borders of blocks.
    pub fn border(&self) -> border::Set<'static> {
        if self.ascii { ASCII_BORDER } else { border::PLAIN }
    }

    /// A focused control: reversed, so it shows without colour too (and the
    /// control's text carries `>` `<` markers as well).
    pub fn focused(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    }

    /// A control that cannot be used now (its text also says so).
    pub fn disabled(&self) -> Style {
        if self.color { Style::new().fg(Color::DarkGray) } else { Style::new().add_modifier(Modifier::DIM) }
    }

    /// Good news: a custom key, a done step.
    pub fn good(&self) -> Style {
        if self.color { Style::new().fg(Color::Green) } else { Style::new() }
    }

    /// A warning: the default key, a waiting or failed step.
    pub fn warn(&self) -> Style {
        if self.color { Style::new().fg(Color::Yellow) } else { Style::new() }
    }

    /// An error.
    pub fn bad(&self) -> Style {
        if self.color {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new().add_modifier(Modifier::BOLD)
        }
    }

    /// Titles and headings.
    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    /// The selected row of a list.
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    /// The arrow between fingerprints.
    pub fn arrow(&self) -> &'static str {
        if self.ascii { "->" } else { "→" }
    }

    /// The bullet of a note.
    pub fn bullet(&self) -> &'static str {
        if self.ascii { "-" } else { "•" }
    }
}

fn locale_is_utf8() -> bool {
    if cfg!(windows) {
        return true;
    }
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .is_some_and(|l| l.to_ascii_uppercase().replace('-', "").contains("UTF8"))
}
