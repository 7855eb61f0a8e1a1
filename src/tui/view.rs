//! Drawing: a pure function of the state. One view per tab, dialogs over
//! them, a status line and a key-hint line on every screen.

mod key_tab;
mod machines_tab;
mod rotation_tab;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::app::{App, Dialog, InputPurpose, Tab};
use super::keymap;
use super::theme::Theme;
use crate::keys::KeyKind;

/// The smallest terminal the wizard draws in.
pub const MIN_WIDTH: u16 = 80;
pub const MIN_HEIGHT: u16 = 24;

/// Draws the whole screen.
pub fn render(app: &App, theme: &Theme, frame: &mut Frame<'_>) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let text = format!(
            "keyturn needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {}x{}. Enlarge it, or press q to quit.",
            area.width, area.height
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let [tabs, body, status, hints] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1), Constraint::Length(2), Constraint::Length(1)])
            .areas(area);
    render_tabs(app, theme, frame, tabs);
    if let Some(error) = &app.store_error {
        let text =
            format!("The store cannot be used: {error}\n\nkeyturn changes nothing until this is fixed; q quits.");
        let inner = Rect { x: body.x + 1, width: body.width.saturating_sub(2), ..body };
        frame.render_widget(Paragraph::new(text).style(theme.bad()).wrap(Wrap { trim: true }), inner);
    } else {
        match app.tab {
            Tab::Encryption | Tab::Communication => key_tab::render(app, theme, frame, body),
            Tab::Rotation => rotation_tab::render(app, theme, frame, body),
            Tab::Machines => machines_tab::render(app, theme, frame, body),
        }
    }
    let status = Rect { x: status.x + 1, width: status.width.saturating_sub(2), ..status };
    // Work under way speaks on the status line, with its counts.
    let text = match &app.work {
        Some(work) => match counts(&work.progress) {
            Some((done, total)) => format!("{} {}: {}", bar(done, total), work.label, work.progress),
            None => format!("... {}: {}", work.label, work.progress),
        },
        None => app.status.clone(),
    };
    // Errors and progress may carry a project's paths or a machine's words.
    let text = crate::display::escaped(&text);
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), status);
    let hint = keymap::hints(app.hint());
    frame.render_widget(Paragraph::new(format!(" {hint}")).style(theme.disabled()), hints);
    if let Some(dialog) = &app.dialog {
        render_dialog(app, dialog, theme, frame, body);
    }
}

fn render_tabs(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let mut spans = vec![Span::styled(" keyturn ", theme.title())];
    for tab in Tab::ALL {
        let (text, style) = if tab == app.tab {
            (format!("[{}]", tab.title()), theme.selected())
        } else {
            (format!(" {} ", tab.title()), Style::new())
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(text, style));
    }
    spans.push(Span::raw("   ? keys"));
    frame.render_widget(Line::from(spans), area);
}

/// The first `done/total` in a progress message.
fn counts(progress: &str) -> Option<(usize, usize)> {
    progress.split_whitespace().find_map(|word| {
        let (done, total) = word.trim_end_matches([',', ':']).split_once('/')?;
        Some((done.parse().ok()?, total.parse().ok().filter(|t| *t > 0)?))
    })
}

/// A gauge in plain characters (it reads the same in ASCII mode):
/// `[######      ]`.
fn bar(done: usize, total: usize) -> String {
    const WIDTH: usize = 20;
    let filled = (done.min(total) * WIDTH) / total.max(1);
    format!("[{}{}]", "#".repeat(filled), " ".repeat(WIDTH - filled))
}

/// A button as text: `[ Label ]`, focused `[>Label<]`, unavailable
/// `[-Label-]`: the state reads without colour.
pub fn button<'a>(label: &str, focused: bool, enabled: bool, theme: &Theme) -> Span<'a> {
    match (enabled, focused) {
        (false, _) => Span::styled(format!("[-{label}-]"), theme.disabled()),
        (true, true) => Span::styled(format!("[>{label}<]"), theme.focused()),
        (true, false) => Span::raw(format!("[ {label} ]")),
    }
}

/// A bordered block with a title, in the theme's border set.
pub fn block<'a>(title: &'a str, theme: &Theme) -> Block<'a> {
    Block::bordered().border_set(theme.border()).title(Span::styled(title, theme.title()))
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

fn render_dialog(app: &App, dialog: &Dialog, theme: &Theme, frame: &mut Frame<'_>, body: Rect) {
    if let Dialog::Show { kind, text, .. } = dialog {
        render_show(app, *kind, text, theme, frame, body);
        return;
    }
    let mut cursor: Option<(u16, usize)> = None;
    let (title, lines, height): (&str, Vec<Line<'_>>, u16) = match dialog {
        Dialog::Help => ("Keys", help_lines(), 15),
        Dialog::Show { .. } => return,
        Dialog::Confirm { key, multi, lines, .. } => {
            let mut out: Vec<Line<'_>> = lines.iter().map(|l| Line::raw(l.clone())).collect();
            out.push(Line::raw(""));
            let choice = |on: bool| if on { "(*)" } else { "( )" };
            out.push(Line::raw(format!(
                "Setup:  {} Single machine   {} Multiple machines",
                choice(!*multi),
                choice(*multi)
            )));
            out.push(Line::raw(""));
            out.push(Line::raw(format!(
                "Enter: {} and start the rotation.   Esc: cancel.",
                if key.is_some() { "import" } else { "reset" }
            )));
            let title = if key.is_some() { "Import the key?" } else { "Reset to the default key?" };
            let height = u16::try_from(out.len()).unwrap_or(12) + 4;
            (title, out, height)
        }
        Dialog::Input { purpose, value, error } => {
            let kind = app.rotation.as_ref().map_or("KIND", |r| r.kind.name());
            let (title, prompt) = match purpose {
                InputPurpose::SkipReason { .. } => {
                    ("Skip the step", "Why is this step skipped? (recorded in the audit log)".to_string())
                }
                InputPurpose::Fingerprint { .. } => (
                    "Verify the machine",
                    format!("The fingerprint that machine shows (keyturn fingerprint {kind}, run there):"),
                ),
                InputPurpose::AbortReason => (
                    "Abort the rotation",
                    "Why? The key is not rolled back. Enter aborts, Esc keeps going.".to_string(),
                ),
            };
            // Inside the borders, after "> ".
            let (shown, column) = value.window(usize::from(body.width.saturating_sub(5)));
            cursor = Some((2, 3 + column));
            let error = match error {
                Some(e) => Line::styled(e.clone(), theme.bad()),
                None => Line::raw(""),
            };
            (
                title,
                vec![Line::raw(prompt), Line::raw(""), Line::styled(format!("> {shown}"), theme.focused()), error],
                8,
            )
        }
        Dialog::Credential { name, user, secret, on_secret, error } => {
            let field = |label: &str, value: String, focused: bool| {
                let text = format!("{label:<10}{value}");
                if focused { Line::styled(text, theme.focused()) } else { Line::raw(text) }
            };
            let (user_shown, user_column) = user.window(usize::from(body.width.saturating_sub(13)));
            // Masked: never the secret, not even its length.
            let mask = if secret.is_empty() { String::new() } else { "********".into() };
            cursor = Some(if *on_secret { (3, 11 + mask.len()) } else { (2, 11 + user_column) });
            (
                "Re-enter the credential",
                vec![
                    Line::raw(format!("The {name} credential, stored sealed under the new key.")),
                    Line::raw(""),
                    field("User:", user_shown, !on_secret),
                    field("Secret:", mask, *on_secret),
                    match error {
                        Some(e) => Line::styled(e.clone(), theme.bad()),
                        None => Line::raw(""),
                    },
                    Line::raw("Tab: other field   Enter: next field, then store   Esc: cancel"),
                ],
                10,
            )
        }
    };
    // As wide as the screen: nothing of the tab below shows at its sides.
    let area = centered(body, body.width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block(title, theme)), area);
    // The terminal's cursor where typing goes: (row, column) inside the box.
    if let Some((row, column)) = cursor {
        let x = area.x + 1 + u16::try_from(column).unwrap_or(0);
        let y = area.y + 1 + row;
        frame.set_cursor_position(Position { x: x.min(area.right().saturating_sub(2)), y });
    }
}

/// The key, shown over the whole body with nothing else on its row, so
/// that selecting the row with the terminal's own selection takes exactly
/// the key.
fn render_show(app: &App, kind: KeyKind, text: &str, theme: &Theme, frame: &mut Frame<'_>, body: Rect) {
    let fingerprint = app
        .panes
        .iter()
        .find(|p| p.kind == kind)
        .and_then(|p| p.status.as_ref())
        .map(|s| s.fingerprint.to_string())
        .unwrap_or_default();
    frame.render_widget(Clear, body);
    let lines = vec![
        Line::styled(format!(" Show key: the {kind} key ({fingerprint})"), theme.title()),
        Line::styled(" Anyone who sees it can use it. Clear your screen and scrollback when done.", theme.warn()),
        Line::raw(" Select the line below to copy it. Any key hides it; it hides itself in 60 s."),
        Line::raw(""),
        Line::raw(text.to_string()),
        Line::raw(""),
    ];
    frame.render_widget(Paragraph::new(lines), body);
}

fn help_lines() -> Vec<Line<'static>> {
    keymap::help_lines().iter().copied().map(Line::raw).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_counts_draw_a_gauge() {
        assert_eq!(counts("upgrade, checking: 120/1000 files, 4000 tokens"), Some((120, 1000)));
        assert_eq!(counts("3/7: exec-01"), Some((3, 7)));
        assert_eq!(counts("pushing the key to 3 machines"), None);
        assert_eq!(bar(5, 10), format!("[{}{}]", "#".repeat(10), " ".repeat(10)));
        assert_eq!(bar(0, 0), format!("[{}]", " ".repeat(20)));
    }
}
