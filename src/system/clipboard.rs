//! The clipboard: the system's (copypasta) where there is one, else the
//! terminal's OSC 52, wrapped for tmux. No terminal confirms an OSC 52 copy,
//! so it is reported as sent, never as done.

use std::io::Write;

use base64::Engine as _;

/// Where a copy went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    /// The system clipboard took it.
    System,
    /// Sent to the terminal (OSC 52); the terminal may or may not allow it.
    Terminal,
}

/// A clipboard keyturn can put a key on and take it off again.
pub trait Clipboard {
    /// Copies `text`.
    fn copy(&mut self, text: &str) -> Result<Copied, String>;
    /// Clears the clipboard if it still holds `text` (for OSC 52, which
    /// cannot be read back, sends an empty copy).
    fn clear_if_holds(&mut self, text: &str);
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard,
/// wrapped in tmux's passthrough when `tmux` (so tmux hands it on).
pub fn osc52(text: &str, tmux: bool) -> String {
    let sequence = format!("\x1b]52;c;{}\x07", base64::engine::general_purpose::STANDARD.encode(text));
    if tmux { format!("\x1bPtmux;{}\x1b\\", sequence.replace('\x1b', "\x1b\x1b")) } else { sequence }
}

/// The real clipboard of this session.
pub struct SystemClipboard {
    over_ssh: bool,
    tmux: bool,
    used: Option<Copied>,
    terminal: Box<dyn Write + Send>,
}

impl std::fmt::Debug for SystemClipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClipboard").field("over_ssh", &self.over_ssh).field("tmux", &self.tmux).finish()
    }
}

impl SystemClipboard {
    /// The clipboard for this process, writing OSC 52 to `terminal`.
    pub fn new(terminal: Box<dyn Write + Send>) -> SystemClipboard {
        let var = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        SystemClipboard {
            over_ssh: var("SSH_CONNECTION") || var("SSH_TTY") || var("SSH_CLIENT"),
            tmux: var("TMUX"),
            used: None,
            terminal,
        }
    }

    fn send_osc52(&mut self, text: &str) -> Result<Copied, String> {
        let sequence = osc52(text, self.tmux);
        self.terminal
            .write_all(sequence.as_bytes())
            .and_then(|()| self.terminal.flush())
            .map_err(|e| format!("the terminal could not be written: {e}"))?;
        Ok(Copied::Terminal)
    }
}

impl Clipboard for SystemClipboard {
    fn copy(&mut self, text: &str) -> Result<Copied, String> {
        // Over SSH the system clipboard is the server's, which nobody sees.
        let copied = if self.over_ssh {
            self.send_osc52(text)
        } else {
            match system::set(text) {
                Ok(()) => Ok(Copied::System),
                Err(_) => self.send_osc52(text),
            }
        };
        if let Ok(how) = copied {
            self.used = Some(how);
        }
        copied
    }

    fn clear_if_holds(&mut self, text: &str) {
        match self.used {
            Some(Copied::System) if system::get().is_some_and(|held| held == text) => {
                let _ = system::set("");
            }
            Some(Copied::System) => {}
            Some(Copied::Terminal) => {
                let _ = self.send_osc52("");
            }
            None => {}
        }
    }
}

#[cfg(not(windows))]
mod system {
    use copypasta::{ClipboardContext, ClipboardProvider};

    pub fn set(text: &str) -> Result<(), String> {
        let mut ctx = ClipboardContext::new().map_err(|e| e.to_string())?;
        ctx.set_contents(text.to_string()).map_err(|e| e.to_string())
    }

    pub fn get() -> Option<String> {
        ClipboardContext::new().ok()?.get_contents().ok()
    }
}

/// Windows: the copy is marked to stay out of clipboard history and cloud
/// sync, with the clipboard formats Windows defines for that.
#[cfg(windows)]
mod system {
    use clipboard_win::{Clipboard, formats, raw};

    pub fn set(text: &str) -> Result<(), String> {
        let _open = Clipboard::new_attempts(10).map_err(|e| e.to_string())?;
        raw::empty().map_err(|e| e.to_string())?;
        let mut utf16: Vec<u8> = text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes).collect();
        raw::set_without_clear(formats::CF_UNICODETEXT, &utf16).map_err(|e| e.to_string())?;
        utf16.iter_mut().for_each(|b| *b = 0);
        for name in [
            "ExcludeClipboardContentFromMonitorProcessing",
            "CanIncludeInClipboardHistory",
            "CanUploadToCloudClipboard",
        ] {
            if let Some(format) = raw::register_format(name) {
                let _ = raw::set_without_clear(format.get(), &0u32.to_le_bytes());
            }
        }
        Ok(())
    }

    pub fn get() -> Option<String> {
        let _open = Clipboard::new_attempts(10).ok()?;
        // clipboard-win 5 writes the text as UTF-8 bytes.
        let mut bytes = Vec::new();
        raw::get_string(&mut bytes).ok()?;
        String::from_utf8(bytes).ok()
    }
}

/// A clipboard for tests: remembers what it holds.
#[derive(Debug, Default)]
pub struct FakeClipboard {
    /// What it holds.
    pub held: Option<String>,
    /// How copies are reported.
    pub via_terminal: bool,
}

impl Clipboard for FakeClipboard {
    fn copy(&mut self, text: &str) -> Result<Copied, String> {
        self.held = Some(text.to_string());
        Ok(if self.via_terminal { Copied::Terminal } else { Copied::System })
    }

    fn clear_if_holds(&mut self, text: &str) {
        if self.held.as_deref() == Some(text) {
            self.held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_bytes_and_tmux_wrapping() {
        assert_eq!(osc52("hi", false), "\x1b]52;c;aGk=\x07");
        assert_eq!(osc52("hi", true), "\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\");
    }

    #[test]
    fn no_display_is_no_crash() {
        // Without a display the system clipboard fails and OSC 52 is used.
        let mut clipboard = SystemClipboard::new(Box::new(Vec::new()));
        assert!(clipboard.copy("x").is_ok());
        clipboard.clear_if_holds("x");
    }
}
