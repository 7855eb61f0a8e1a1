//! `keyturn copy <kind>`: the key to the clipboard, a countdown in the
//! foreground (an X11 selection dies with the process that owns it), then
//! the clipboard is cleared if it still holds the key.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use color_eyre::eyre;
use keyturn::keys::KeyKind;
use keyturn::store::Store;
use keyturn::system::clipboard::{Clipboard, Copied, SystemClipboard};
use keyturn::tui::app::CLIPBOARD_SECONDS;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::terminal;

/// Where OSC 52 goes: the controlling terminal, not stdout (which scripts read).
fn terminal_writer() -> Box<dyn Write + Send> {
    #[cfg(unix)]
    if let Ok(tty) = std::fs::OpenOptions::new().write(true).open("/dev/tty") {
        return Box::new(tty);
    }
    Box::new(std::io::stderr())
}

pub fn copy(store: &Store, kind: KeyKind) -> eyre::Result<()> {
    let key = store.active_key(kind);
    if key.is_default() {
        eyre::bail!(
            "the {kind} key is the built-in default, which cannot be shown or copied; generate and import a custom key"
        );
    }
    let text = key.to_text();
    let mut clipboard = SystemClipboard::new(terminal_writer());
    match clipboard.copy(&text) {
        Ok(Copied::System) => eprintln!("The {kind} key ({}) is on the clipboard.", key.fingerprint()),
        Ok(Copied::Terminal) => eprintln!(
            "The {kind} key ({}) was sent to your terminal's clipboard (OSC 52). No terminal confirms this: if nothing arrived, use `keyturn show {kind}`.",
            key.fingerprint()
        ),
        Ok(Copied::Tmux) => eprintln!(
            "The {kind} key ({}) was sent to tmux (OSC 52), which keeps it in a paste buffer with `set-clipboard on` and passes it to your terminal. If nothing arrived, use `keyturn show {kind}`.",
            key.fingerprint()
        ),
        Err(e) => eyre::bail!("no clipboard can be used here ({e}); use `keyturn show {kind}` and select the line"),
    }
    countdown();
    let cleared = clipboard.clear_if_holds(&text);
    eprintln!("\r{}                              ", cleared.message().unwrap_or_default());
    Ok(())
}

/// Waits the clipboard's time, or until any key on a terminal.
fn countdown() {
    let interactive = std::io::stdin().is_terminal() && terminal::enable_raw_mode().is_ok();
    let end = Instant::now() + Duration::from_secs(CLIPBOARD_SECONDS);
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        eprint!(
            "\rPaste it now; cleared in {:2} s{}",
            left.as_secs() + 1,
            if interactive { " (any key: clear now)" } else { "" }
        );
        let _ = std::io::stderr().flush();
        let step = left.min(Duration::from_secs(1));
        if interactive {
            if let Ok(true) = event::poll(step)
                && let Ok(Event::Key(k)) = event::read()
                && k.kind == KeyEventKind::Press
            {
                break;
            }
        } else {
            std::thread::sleep(step);
        }
    }
    if interactive {
        let _ = terminal::disable_raw_mode();
    }
}
