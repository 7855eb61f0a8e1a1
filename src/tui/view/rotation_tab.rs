//! The Rotation tab: the checklist with its markers, the selected step's
//! detail and evidence, and the step's actions.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};

use super::{block, button};
use crate::rotation::{Status, Step, StepKind, StepState};
use crate::tui::app::{App, RotationControl};
use crate::tui::theme::Theme;

pub fn render(app: &App, theme: &Theme, frame: &mut Frame<'_>, area: Rect) {
    let Some(rotation) = &app.rotation else {
        let text = vec![
            Line::styled(" No rotation yet.", theme.title()),
            Line::raw(""),
            Line::raw(" Generate or paste a key on the Encryption or Communication tab and press"),
            Line::raw(" Import: the rotation's checklist then appears here, step by step."),
        ];
        frame.render_widget(Paragraph::new(text), area);
        return;
    };
    let current = rotation.current().map(|s| s.id.clone());
    // The detail gets a third of a tall screen, seven rows at the least.
    let detail_rows = (area.height / 3).max(7);
    let [heading, list, detail, buttons] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Fill(1),
        Constraint::Length(detail_rows),
        Constraint::Length(1),
    ])
    .areas(area);
    let (setup, variant) = (rotation.setup.label(), rotation.variant.label());
    let status = match &rotation.status {
        Status::Open => "open".to_string(),
        Status::Finished { .. } => "finished".to_string(),
        Status::Aborted { reason, .. } => format!("aborted ({reason})"),
    };

    frame.render_widget(
        Paragraph::new(vec![
            Line::styled(
                format!(" {} key rotation, {setup}, {variant}: {status}", rotation.kind.title()),
                theme.title(),
            ),
            Line::raw(format!(" {} {} {}", rotation.old_fingerprint, theme.arrow(), rotation.new_fingerprint)),
        ]),
        heading,
    );
    let rows = usize::from(list.height.saturating_sub(2));
    let first = app.selected.saturating_sub(rows.saturating_sub(1));
    let lines: Vec<Line<'_>> = rotation
        .steps
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, step)| {
            let is_current = current.as_deref() == Some(step.id.as_str());
            let mark = step.marker(is_current);
            let style = match &step.state {
                StepState::Done { .. } => theme.good(),
                StepState::Failed { .. } | StepState::Waiting { .. } => theme.warn(),
                StepState::Skipped { .. } => theme.disabled(),
                StepState::Pending => ratatui::style::Style::new(),
            };
            let pointer = if i == app.selected { ">" } else { " " };
            let text = format!("{pointer}{mark} {:<22} {}", step.id, step.title);
            let line = Line::from(Span::styled(text, style));
            if i == app.selected && app.rotation_focus == RotationControl::Steps {
                line.style(theme.selected())
            } else {
                line
            }
        })
        .collect();
    let total = rotation.steps.len();
    let shown = format!(
        "Checklist: steps {}-{} of {total}{}",
        first + 1,
        (first + rows).min(total),
        if first + rows < total { " (more below)" } else { "" }
    );
    frame.render_widget(Paragraph::new(lines).block(block(&shown, theme)), list);
    if let Some(step) = rotation.steps.get(app.selected) {
        let seeds: Vec<String> = step.seed_steps.iter().map(ToString::to_string).collect();
        let mut text: Vec<Line> = step.detail.lines().map(|l| Line::raw(l.to_string())).collect();
        if let Some(evidence) = step.state.evidence() {
            let label = match step.state {
                StepState::Done { .. } => "Evidence",
                StepState::Skipped { .. } => "Skipped",
                StepState::Failed { .. } => "Failed",
                _ => "Seen",
            };
            text.push(Line::styled(format!("{label}: {}", crate::display::escape(evidence)), theme.title()));
        }
        if current.as_deref() == Some(step.id.as_str()) && rotation.is_open() {
            text.push(Line::raw(what_to_press(step)));
        }
        let kind = match step.kind {
            StepKind::Automatic => "automatic",
            StepKind::Restart => "restart",
            StepKind::Credential => "credential",
            StepKind::SourceControl => "source control",
            StepKind::PerMachine => "per machine",
            StepKind::Manual => "manual",
        };
        let plural = if seeds.len() == 1 { "step" } else { "steps" };
        let title = format!("{}: {kind}, original {plural} {}", step.id, seeds.join(", "));
        // Wrapped to the box; what does not fit scrolls (PgUp/PgDn), and
        // the box's bottom edge says there is more.
        let paragraph = Paragraph::new(text).wrap(Wrap { trim: true });
        let inner_rows = detail.height.saturating_sub(2);
        let total = u16::try_from(paragraph.line_count(detail.width.saturating_sub(2))).unwrap_or(u16::MAX);
        let max = total.saturating_sub(inner_rows);
        app.detail_view.set((max, inner_rows));
        let scroll = app.detail_scroll.min(max);
        let mut frame_block = block(&title, theme);
        if max > 0 {
            let more = match (scroll > 0, scroll < max) {
                (false, _) => "PgDn: more below",
                (true, true) => "PgUp/PgDn: more above and below",
                (true, false) => "PgUp: more above",
            };
            frame_block = frame_block.title_bottom(Line::styled(format!(" {more} "), theme.title()).right_aligned());
        }
        frame.render_widget(paragraph.scroll((scroll, 0)).block(frame_block), detail);
    }
    let control =
        |c: RotationControl, label: &str| button(label, app.rotation_focus == c, app.rotation_enabled(c), theme);
    let mut row = vec![
        Span::raw(" "),
        control(RotationControl::Run, "Run"),
        Span::raw(" "),
        control(RotationControl::Confirm, "Confirm"),
        Span::raw(" "),
        control(RotationControl::Skip, "Skip"),
        Span::raw(" "),
        control(RotationControl::Enter, app.enter_label()),
        Span::raw(" "),
        control(RotationControl::Abort, "Abort"),
    ];
    // A finished or aborted rotation can be rolled back.
    if !rotation.is_open() {
        row.extend([Span::raw(" "), control(RotationControl::Rollback, "Rollback")]);
    }
    let row = Line::from(row);
    frame.render_widget(row, buttons);
}

/// What the operator can press for the current step.
fn what_to_press(step: &Step) -> &'static str {
    match step.kind {
        StepKind::Manual if step.confirmable => "Press Confirm when it is done, or Skip with a reason.",
        StepKind::Manual => "Run runs its configured command; Skip with a reason if it does not apply.",
        StepKind::Credential => "Press Enter credential to re-enter it, then Run; or Skip with a reason.",
        StepKind::PerMachine => "Run pushes the key to the machines; or Type fingerprint that machine shows.",
        StepKind::Restart => "Run restarts it (its configured command) and checks; or Skip with a reason.",
        StepKind::SourceControl if step.confirmable => "Run checks git; press Confirm for projects without Git.",
        StepKind::SourceControl | StepKind::Automatic => "Press Run.",
    }
}
