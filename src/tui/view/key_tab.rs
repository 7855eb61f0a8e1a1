//! The Encryption and Communication tabs: the original's Current Key and
//! Replace Key groups, the note, and the status line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, button};
use crate::keys::KeyKind;
use crate::tui::app::{App, KeyControl, KeyPane};
use crate::tui::theme::Theme;

const PLACEHOLDER: &str = "Generate new or enter a pre-generated key.";

pub fn render(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let Some(pane) = app.pane() else { return };
    let [heading, current, replace, note] =
        Layout::vertical([Constraint::Length(1), Constraint::Length(5), Constraint::Length(3), Constraint::Fill(1)])
            .areas(area);
    let title = match pane.kind {
        KeyKind::Encryption => "Encryption Key",
        KeyKind::Communication => "Communication Key",
    };
    let scope = if app.home.machine_wide { "machine-wide store" } else { "user store, not machine-wide" };
    frame.render_widget(
        Line::from(vec![Span::styled(format!(" {title}"), theme.title()), Span::raw(format!("   ({scope})"))]),
        heading,
    );
    render_current(app, pane, theme, frame, current);
    render_replace(app, pane, theme, frame, replace);
    render_note(pane.kind, theme, frame, note);
}

fn control<'a>(app: &App, pane: &KeyPane, c: KeyControl, theme: &Theme) -> Span<'a> {
    button(c.label(), pane.focus == c, app.enabled(pane, c), theme)
}

fn render_current(app: &App, pane: &KeyPane, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let mut buttons = vec![
        Span::raw(" "),
        control(app, pane, KeyControl::Copy, theme),
        Span::raw("  "),
        control(app, pane, KeyControl::Show, theme),
    ];
    if pane.kind == KeyKind::Communication {
        buttons.push(Span::raw("  "));
        buttons.push(control(app, pane, KeyControl::Reset, theme));
    }
    let (state, note) = match &pane.status {
        Some(s) if s.custom => {
            let when = s.created.map(|t| format!("imported {}", t.strftime("%Y-%m-%d"))).unwrap_or_default();
            (
                Line::from(vec![
                    Span::styled(" [x] Custom Key Loaded.", theme.good()),
                    Span::raw(format!("  Fingerprint {}", s.fingerprint)),
                ]),
                Line::raw(format!("     {when}")),
            )
        }
        Some(s) => (
            Line::from(vec![
                Span::styled(" [!] Default Key Loaded.", theme.warn()),
                Span::raw(format!("  Fingerprint {}", s.fingerprint)),
            ]),
            Line::raw("     Anyone with keyturn has the default key: import a custom key."),
        ),
        None => (Line::raw(" (the store could not be read)"), Line::raw("")),
    };
    frame
        .render_widget(Paragraph::new(vec![Line::from(buttons), state, note]).block(block("Current Key", theme)), area);
}

fn render_replace(app: &App, pane: &KeyPane, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let generate = control(app, pane, KeyControl::Generate, theme);
    let import = control(app, pane, KeyControl::Import, theme);
    // What is left of the row between the two buttons, inside the borders.
    let width = usize::from(area.width.saturating_sub(2)).saturating_sub(generate.width() + import.width() + 6);
    let focused = pane.focus == KeyControl::Field;
    let inner = width.saturating_sub(2);
    // The end of a long key shows (that is where typing happens), or
    // wherever the cursor was moved.
    let (text, column) =
        if pane.field.is_empty() { (PLACEHOLDER.chars().take(inner).collect(), 0) } else { pane.field.window(inner) };
    // Focus shows as `>` `<` around the field and the terminal's cursor in
    // it: a focus move then rewrites two cells, not the whole field.
    let (open, close) = if focused { ('>', '<') } else { ('[', ']') };
    let field_text = format!("{open}{text:<inner$}{close}");
    let field_style = if pane.field.is_empty() { theme.disabled() } else { ratatui::style::Style::new() };
    let line = Line::from(vec![
        Span::raw(" "),
        generate,
        Span::raw("  "),
        Span::styled(field_text, field_style),
        Span::raw("  "),
        import,
    ]);
    frame.render_widget(Paragraph::new(line).block(block("Replace Key", theme)), area);
    if focused && app.dialog.is_none() {
        let x = area.x
            + 1
            + 1
            + u16::try_from(pane_button_width(app, pane, theme)).unwrap_or(0)
            + 2
            + 1
            + u16::try_from(column).unwrap_or(0);
        frame.set_cursor_position(Position { x: x.min(area.right().saturating_sub(2)), y: area.y + 1 });
    }
}

fn pane_button_width(app: &App, pane: &KeyPane, theme: &Theme) -> usize {
    control(app, pane, KeyControl::Generate, theme).width()
}

fn render_note(kind: KeyKind, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let b = theme.bullet();
    let lines: Vec<Line<'_>> = match kind {
        KeyKind::Encryption => vec![
            Line::styled(" (!) About the Encryption Key", theme.title()),
            Line::raw(" The encryption key secures sensitive data across your Test Studio projects:"),
            Line::raw(format!("  {b} passwords for source control and bug tracking, database connection strings")),
            Line::raw(format!("  {b} password steps recorded in automated tests when encryption is enabled")),
            Line::raw(" The same key must be imported on every machine where Test Studio or Test"),
            Line::raw(" Studio Runtime is used. The old key is kept, so no encrypted data is lost."),
        ],
        KeyKind::Communication => vec![
            Line::styled(" (!) About the Communication Key", theme.title()),
            Line::raw(" The communication key connects all Test Studio services and clients, so a new"),
            Line::raw(" communication key must be imported on each connected machine."),
            Line::raw(" Ensure that the system clocks of all connected Test Studio scheduling machines"),
            Line::raw(" are synchronized."),
        ],
    };
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), area);
}
