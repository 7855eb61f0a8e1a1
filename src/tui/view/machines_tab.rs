//! The Machines tab: the fleet. One row per roster machine with its roles,
//! both fingerprints and whether each matches this machine's, keyturn
//! version, clock skew and rollout state; the convergence of each key; and
//! refresh, push to the selected machine, push to all.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, button};
use crate::keys::KeyKind;
use crate::tui::app::{App, MachinesControl};
use crate::tui::theme::Theme;

pub fn render(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    // A line more for the disagreement window once a rotation has one.
    let window = app.fleet.as_ref().and_then(|f| f.window.as_ref());
    let [list, detail, convergence, buttons] = Layout::vertical([
        Constraint::Fill(1),
        Constraint::Length(4),
        Constraint::Length(if window.is_some() { 3 } else { 2 }),
        Constraint::Length(1),
    ])
    .areas(area);
    let mut lines = vec![Line::styled(
        format!(
            "  {:<12} {:<10} {:<14} {:<14} {:<5} {:>5} {}",
            "machine", "roles", "encryption", "communic.", "ver.", "skew", "rollout"
        ),
        theme.title(),
    )];
    if app.machines.is_empty() {
        lines.push(Line::raw(" No machines: add them with `keyturn machines add NAME --role execution`"));
        lines.push(Line::raw(" (they are reached with ssh by default; see keyturn.toml [[machines]])."));
    }
    let rows = usize::from(list.height.saturating_sub(3));
    let first = app.machine_selected.saturating_sub(rows.saturating_sub(1));
    for (i, (name, roles)) in app.machines.iter().enumerate().skip(first).take(rows) {
        let row = app.fleet.as_ref().and_then(|f| f.machines.iter().find(|r| &r.name == name));
        let fp = |kind: KeyKind| match row
            .and_then(|r| r.status.as_ref().map(|s| (s.fingerprints.get(kind), r.matches[&kind])))
        {
            // The first two groups identify it; the marker says whether it matches.
            Some((fp, ok)) => {
                format!("{}{}", fp.to_string().get(..9).unwrap_or_default(), if ok { " [x]" } else { " [!]" })
            }
            None => "?".into(),
        };
        let (version, skew) = match row.and_then(|r| r.status.as_ref().map(|s| (s.keyturn.clone(), r.skew_seconds))) {
            Some((v, skew)) => (v, skew.map(|s| format!("{s:+}s")).unwrap_or_default()),
            None if row.is_some() => ("DOWN".into(), String::new()),
            None => ("-".into(), String::new()),
        };
        let rollout = app.rotation.as_ref().and_then(|r| r.machine_step(name)).map_or("-", |s| s.state.name());
        let pointer = if i == app.machine_selected { ">" } else { " " };
        let text = format!(
            "{pointer} {:<12} {:<10} {:<14} {:<14} {:<5} {:>5} {rollout}",
            truncate(name, 12),
            truncate(roles, 10),
            fp(KeyKind::Encryption),
            fp(KeyKind::Communication),
            truncate(&version, 5),
            skew
        );
        // Padded to the row's width, so the selection marks the whole row.
        let text = format!("{text:<width$}", width = usize::from(list.width.saturating_sub(2)));
        let style = if row.is_some_and(|r| r.status.is_none()) { theme.warn() } else { ratatui::style::Style::new() };
        let line = Line::styled(text, style);
        lines.push(if i == app.machine_selected && app.machines_focus == MachinesControl::List {
            line.style(theme.selected())
        } else {
            line
        });
    }
    frame.render_widget(Paragraph::new(lines).block(block("Machines", theme)), list);

    let selected = app.machines.get(app.machine_selected).map(|(n, _)| n.clone());
    let mut about = Vec::new();
    if let Some(name) = &selected {
        if let Some(row) = app.fleet.as_ref().and_then(|f| f.machines.iter().find(|r| &r.name == name)) {
            match (&row.status, &row.error) {
                (Some(s), _) => about.push(Line::raw(format!(
                    " {name}: {} {} / {} on {}{}",
                    s.fingerprints.encryption,
                    s.fingerprints.communication,
                    s.keyturn,
                    s.home,
                    if s.machine_wide { "" } else { " (FLAGGED: a user store)" }
                ))),
                (None, Some(e)) => about.push(Line::styled(format!(" {name}: {e}"), theme.warn())),
                _ => {}
            }
        }
        if let Some(step) = app.rotation.as_ref().and_then(|r| r.machine_step(name))
            && let Some(e) = step.state.evidence()
        {
            about.push(Line::raw(format!(" Rollout: {}", crate::display::escape(e))));
        }
    }
    if about.is_empty() {
        about.push(Line::raw(" Refresh asks every machine for its keys (keyturn status --json, through its command)."));
    }
    frame.render_widget(Paragraph::new(about).wrap(Wrap { trim: true }), detail);

    let mut convergence_lines: Vec<Line<'_>> = match &app.fleet {
        Some(fleet) => fleet
            .convergence
            .iter()
            .map(|(kind, c)| {
                let mark = if c.on == c.of { "[x]" } else { "[!]" };
                Line::raw(format!(" {mark} {kind}: {}/{} machines on {}", c.on, c.of, c.fingerprint))
            })
            .collect(),
        None => vec![Line::raw(" Not refreshed yet.")],
    };
    if let Some(w) = window {
        let so_far = if w.closed { "" } else { " so far" };
        convergence_lines.push(Line::raw(format!(
            " Disagreement window{so_far}: {}.{:03} s, first to last machine on the new key ({} machines)",
            w.milliseconds / 1000,
            w.milliseconds % 1000,
            w.machines
        )));
    }
    frame.render_widget(Paragraph::new(convergence_lines), convergence);
    let control =
        |c: MachinesControl, label: &str| button(label, app.machines_focus == c, app.machines_enabled(c), theme);
    frame.render_widget(
        Line::from(vec![
            Span::raw(" "),
            control(MachinesControl::Refresh, "Refresh"),
            Span::raw(" "),
            control(MachinesControl::PushOne, "Push to selected"),
            Span::raw(" "),
            control(MachinesControl::PushAll, "Push to all / retry"),
        ]),
        buttons,
    );
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
        out.push('~');
        out
    }
}
