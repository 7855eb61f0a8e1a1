//! The Machines tab: the roster. The fleet view (fingerprints, rollout,
//! convergence) comes with the many-machines work; until then a machine's
//! step is checked off on the Rotation tab by the fingerprint it shows.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::block;
use crate::tui::app::App;
use crate::tui::theme::Theme;

pub fn render(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let mut lines = vec![Line::raw(format!(" {} machines in keyturn.toml:", app.machines.len())), Line::raw("")];
    if app.machines.is_empty() {
        lines.push(Line::raw(" None. Add [[machines]] entries (name, roles, command) for a multiple-machines"));
        lines.push(Line::raw(" rotation."));
    }
    for (name, roles) in &app.machines {
        lines.push(Line::raw(format!(" {name:<24} {roles}")));
    }
    lines.push(Line::raw(""));
    lines.push(Line::raw(" Each machine's step is checked off on the Rotation tab with the fingerprint"));
    lines.push(Line::raw(" that machine shows (keyturn fingerprint KIND, run there)."));
    frame.render_widget(Paragraph::new(lines).block(block("Machines", theme)), area);
}
