//! The terminal wizard: the original's tabs, keyboard only, for SSH and
//! Server Core consoles. The loop blocks on input and wakes only for a
//! running timer or for work reporting progress; it draws only when
//! something changed, so an idle wizard costs nothing.

pub mod app;
pub mod keymap;
pub mod theme;
pub mod view;

use std::io::{self, Write};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, DisableBracketedPaste, EnableBracketedPaste, Event};
use ratatui::crossterm::execute;

use app::{App, Options};
use theme::Theme;

use crate::store::home::Home;
use crate::system::clipboard::SystemClipboard;

/// Runs the wizard on `home` until the operator quits.
pub fn run(home: Home, ascii: bool, wait: Duration) -> io::Result<()> {
    let theme = Theme::from_environment(ascii);
    let clipboard = SystemClipboard::new(Box::new(io::stdout()));
    let mut app = App::new(home, Box::new(clipboard), Options { background: true, wait });
    // ratatui::init: raw mode, alternate screen, and a panic hook that gives
    // the terminal back. No mouse capture: the terminal's own selection is
    // the operator's last resort for copying.
    let mut terminal = ratatui::try_init()?;
    let _ = execute!(io::stdout(), EnableBracketedPaste);
    let result = event_loop(&mut terminal, &mut app, &theme);
    app.shutdown();
    let _ = execute!(io::stdout(), DisableBracketedPaste);
    ratatui::restore();
    let _ = io::stdout().flush();
    result
}

fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App, theme: &Theme) -> io::Result<()> {
    let mut dirty = true;
    while !app.quit {
        if dirty {
            terminal.draw(|frame| view::render(app, theme, frame))?;
            dirty = false;
        }
        let ready = match app.next_wake(Instant::now()) {
            Some(timeout) => event::poll(timeout.max(Duration::from_millis(1)))?,
            None => true, // block on input: nothing else can change the screen
        };
        if !ready {
            dirty |= app.tick(Instant::now());
            continue;
        }
        match event::read()? {
            Event::Key(key) => dirty |= app.key(key),
            Event::Paste(text) => {
                app.update(keymap::Action::Paste(text));
                dirty = true;
            }
            Event::Resize(..) => {
                terminal.autoresize()?;
                dirty = true;
            }
            _ => {}
        }
        dirty |= app.tick(Instant::now());
    }
    Ok(())
}
