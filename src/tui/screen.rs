//! The terminal backend the wizard draws on: crossterm's, except that it
//! never asks the terminal where its cursor is. The wizard's input is read
//! on its own thread, blocked in crossterm's reader; a cursor-position query
//! (ratatui's `Terminal::clear` makes one, for Ctrl-L) would wait on that
//! same reader and time out. The wizard always knows where it put the
//! cursor, so that is the answer.
//!
//! Nothing here panics on a terminal that went away (a dropped SSH
//! session): ratatui's `restore` and its terminal's drop print their
//! failures with `eprintln!`, which panics on a dead terminal, and a panic
//! in the panic hook aborts the process, in the middle of the demo's
//! cleanup.

use std::io::{self, Stdout};

use ratatui::Terminal;
use ratatui::backend::{Backend, ClearType, CrosstermBackend, WindowSize};
use ratatui::buffer::Cell;
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Position, Size};

/// Raw mode, the alternate screen, a panic hook that gives the terminal
/// back, and a terminal to draw on.
pub fn init() -> io::Result<Terminal<KnownCursor>> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
    terminal::enable_raw_mode()?;
    execute!(io::stdout(), terminal::EnterAlternateScreen)?;
    Terminal::new(KnownCursor::stdout())
}

/// Leaves raw mode and the alternate screen, as far as the terminal is
/// still there.
pub fn restore() {
    let _ = terminal::disable_raw_mode();
    let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

/// Crossterm on stdout, with the cursor's position remembered.
pub struct KnownCursor {
    inner: CrosstermBackend<Stdout>,
    cursor: Position,
}

impl KnownCursor {
    /// The backend on this process's stdout.
    pub fn stdout() -> KnownCursor {
        KnownCursor { inner: CrosstermBackend::new(io::stdout()), cursor: Position::ORIGIN }
    }
}

impl Backend for KnownCursor {
    type Error = io::Error;

    fn draw<'a, I>(&mut self, content: I) -> io::Result<()>
    where
        I: Iterator<Item = (u16, u16, &'a Cell)>,
    {
        self.inner.draw(content)
    }

    fn hide_cursor(&mut self) -> io::Result<()> {
        self.inner.hide_cursor()
    }

    fn show_cursor(&mut self) -> io::Result<()> {
        // Never an error: ratatui's terminal, dropped with a hidden cursor,
        // would retry and print the failure with `eprintln!`.
        let _ = self.inner.show_cursor();
        Ok(())
    }

    fn get_cursor_position(&mut self) -> io::Result<Position> {
        Ok(self.cursor)
    }

    fn set_cursor_position<P: Into<Position>>(&mut self, position: P) -> io::Result<()> {
        let position = position.into();
        self.inner.set_cursor_position(position)?;
        self.cursor = position;
        Ok(())
    }

    fn clear(&mut self) -> io::Result<()> {
        self.inner.clear()
    }

    fn clear_region(&mut self, clear_type: ClearType) -> io::Result<()> {
        self.inner.clear_region(clear_type)
    }

    fn size(&self) -> io::Result<Size> {
        self.inner.size()
    }

    fn window_size(&mut self) -> io::Result<WindowSize> {
        self.inner.window_size()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
