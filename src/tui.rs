//! The terminal wizard: the original's tabs, keyboard only, for SSH and
//! Server Core consoles. The loop blocks on one channel fed by the terminal
//! and by a watch on the home (another shell's `rotation confirm` shows at
//! once), and wakes otherwise only for a running timer or for work
//! reporting progress; it draws only when something changed, so an idle
//! wizard costs nothing.

pub mod app;
pub mod field;
pub mod keymap;
pub mod screen;
pub mod theme;
pub mod view;

use std::io::{self, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use ratatui::crossterm::execute;

use app::{App, Options};
use theme::Theme;

use crate::store::home::Home;
use crate::system::clipboard::SystemClipboard;

/// How the wizard ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The operator quit (q).
    Quit,
    /// Ctrl-C: the caller exits with status 130, as shells expect.
    Interrupted,
}

/// Why this terminal cannot show the wizard, if it cannot: one without
/// cursor addressing (`TERM=dumb`, or no TERM at all on Unix), as whiptail
/// refuses it. The message names the commands that do the same work.
pub fn terminal_refusal(term: Option<&str>) -> Option<String> {
    let term = term.unwrap_or_default();
    let unusable = term == "dumb" || (cfg!(unix) && term.is_empty());
    unusable.then(|| {
        let shown = if term.is_empty() { "no TERM is set" } else { "TERM=dumb" };
        format!(
            "this terminal cannot move its cursor ({shown}), which the wizard needs; use the commands instead: \
             `keyturn status`, `keyturn generate KIND`, `keyturn import KIND`, `keyturn rotation start|status|run|confirm|skip`, \
             `keyturn machines status` (`keyturn --help` lists them all), or set TERM to your terminal's type (e.g. xterm-256color)"
        )
    })
}

/// What the loop waits on.
enum Input {
    /// The terminal: a key, a paste, a resize.
    Terminal(Event),
    /// The terminal could not be read.
    TerminalGone(io::Error),
    /// Something in the home changed (another keyturn wrote to it).
    Home,
}

/// Runs the wizard on `home` until the operator quits. Where a rotation is
/// left open, says on the way out where it stands and how to resume.
pub fn run(home: Home, ascii: bool, wait: Duration) -> io::Result<Ended> {
    let theme = Theme::from_environment(ascii);
    let clipboard = SystemClipboard::new(Box::new(io::stdout()));
    let (sender, inputs) = channel();
    // The watch lives as long as the wizard; without it the wizard still
    // works, it only follows other shells on the next key.
    let _watch = watch_home(&home.dir, sender.clone());
    let mut app = App::new(home, Box::new(clipboard), Options { background: true, wait });
    // ratatui::init: raw mode, alternate screen, and a panic hook that gives
    // the terminal back. No mouse capture: the terminal's own selection is
    // the operator's last resort for copying.
    // As ratatui::init (raw mode, alternate screen, a panic hook that gives
    // the terminal back), drawn through the backend that never queries the
    // cursor, and with nothing that panics on a terminal that went away.
    let mut terminal = screen::init()?;
    let _ = execute!(io::stdout(), EnableBracketedPaste);
    read_terminal(sender);
    let result = event_loop(&mut terminal, &mut app, &theme, &inputs);
    let cleared = app.shutdown();
    let _ = execute!(io::stdout(), DisableBracketedPaste);
    let _ = terminal.show_cursor();
    drop(terminal);
    screen::restore();
    let _ = io::stdout().flush();
    let mut stderr = io::stderr();
    if let Some(note) = cleared {
        let _ = writeln!(stderr, "keyturn: {note}");
    }
    if let Some(summary) = app.open_rotation_summary() {
        let _ = writeln!(stderr, "keyturn: {summary}");
    }
    result.map(|()| if app.interrupted { Ended::Interrupted } else { Ended::Quit })
}

/// Reads the terminal on its own thread, blocked in the read (no polling),
/// and hands every event to the loop.
fn read_terminal(sender: Sender<Input>) {
    std::thread::spawn(move || {
        loop {
            let input = match event::read() {
                Ok(event) => Input::Terminal(event),
                Err(e) => Input::TerminalGone(e),
            };
            let gone = matches!(input, Input::TerminalGone(_));
            if sender.send(input).is_err() || gone {
                return;
            }
        }
    });
}

/// Watches the home (inotify, ReadDirectoryChangesW, FSEvents through
/// `notify`) and says when a file that the wizard shows changed: the keys,
/// the rotation, the configuration. The lock file and the audit log change
/// with every write and are not shown, so they are not followed.
fn watch_home(dir: &Path, sender: Sender<Input>) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let shown = |path: &std::path::PathBuf| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            name != crate::store::lock::LOCK_FILE && name != "audit.log"
        };
        if matches!(event.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_))
            && (event.paths.is_empty() || event.paths.iter().any(shown))
        {
            let _ = sender.send(Input::Home);
        }
    })
    .ok()?;
    watcher.watch(dir, RecursiveMode::NonRecursive).ok()?;
    Some(watcher)
}

fn event_loop(
    terminal: &mut ratatui::Terminal<screen::KnownCursor>,
    app: &mut App,
    theme: &Theme,
    inputs: &Receiver<Input>,
) -> io::Result<()> {
    let mut dirty = true;
    while !app.quit {
        if app.repaint {
            // Ctrl-L: whatever wrote over the screen (a `wall` message) is
            // gone, and ratatui's idea of the screen matches it again.
            terminal.clear()?;
            app.repaint = false;
            dirty = true;
        }
        if dirty {
            terminal.draw(|frame| view::render(app, theme, frame))?;
            dirty = false;
        }
        let input = match app.next_wake(Instant::now()) {
            Some(timeout) => match inputs.recv_timeout(timeout.max(Duration::from_millis(1))) {
                Ok(input) => Some(input),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            },
            // Block: nothing else can change the screen.
            None => match inputs.recv() {
                Ok(input) => Some(input),
                Err(_) => return Ok(()),
            },
        };
        let mut home_changed = false;
        // Several file events come with one write: handle what is queued,
        // then read the home once.
        for input in input.into_iter().chain(std::iter::from_fn(|| inputs.try_recv().ok())) {
            match input {
                Input::Terminal(Event::Key(key)) => dirty |= app.key(key),
                Input::Terminal(Event::Paste(text)) => {
                    app.update(keymap::Action::Paste(text));
                    dirty = true;
                }
                Input::Terminal(Event::Resize(..)) => {
                    terminal.autoresize()?;
                    dirty = true;
                }
                Input::Terminal(_) => {}
                Input::TerminalGone(e) => return Err(e),
                Input::Home => home_changed = true,
            }
            if app.quit {
                return Ok(());
            }
        }
        if home_changed && app.work.is_none() {
            app.reload();
            dirty = true;
        }
        dirty |= app.tick(Instant::now());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_without_cursor_addressing_is_refused_with_the_commands() {
        let refusal = terminal_refusal(Some("dumb")).expect("refused");
        assert!(refusal.contains("TERM=dumb") && refusal.contains("keyturn rotation start"), "{refusal}");
        assert_eq!(terminal_refusal(Some("xterm-256color")), None);
        assert_eq!(terminal_refusal(Some("screen")), None);
        if cfg!(unix) {
            assert!(terminal_refusal(None).is_some());
        }
    }
}
