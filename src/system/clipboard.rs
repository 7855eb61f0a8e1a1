//! The clipboard: the system's (copypasta) where there is one, else the
//! terminal's OSC 52. No terminal confirms an OSC 52 copy, so it is reported
//! as sent, never as done, and its clear is never claimed where it cannot be
//! known.
//!
//! Inside tmux the sequence goes plain: tmux takes it into a paste buffer
//! (with `set-clipboard on`) and hands it on to the outer terminal; a DCS
//! passthrough would be dropped by tmux 3.3 and later unless
//! `allow-passthrough` is on. GNU screen has no OSC 52 of its own, so there
//! it goes through screen's passthrough. Clearing follows KeePassXC's rule,
//! only what is still ours: the system clipboard if it still holds the key;
//! tmux's paste buffers that hold the key (read back and deleted with the
//! `tmux` command); a terminal's clipboard cannot be read, so it is left
//! alone and the operator is told.

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine as _;
use zeroize::Zeroizing;

/// Where a copy went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copied {
    /// The system clipboard took it.
    System,
    /// Sent to the terminal (OSC 52); the terminal may or may not allow it.
    Terminal,
    /// Sent to tmux (OSC 52): in its paste buffer with `set-clipboard on`,
    /// and on to the terminal where tmux passes it.
    Tmux,
}

/// What clearing found and did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cleared {
    /// Nothing had been copied.
    Nothing,
    /// The copy was still there and is gone.
    Cleared,
    /// Something else was copied since: left alone.
    NotOurs,
    /// What keyturn removed, and where a copy may remain that it cannot
    /// see, with how to remove it (one sentence for the operator).
    MayRemain(String),
}

impl Cleared {
    /// What to tell the operator, if anything.
    pub fn message(&self) -> Option<String> {
        match self {
            Cleared::Nothing => None,
            Cleared::Cleared => Some("The clipboard was cleared.".into()),
            Cleared::NotOurs => Some("The clipboard holds something copied since: left alone.".into()),
            Cleared::MayRemain(note) => Some(note.clone()),
        }
    }
}

/// A clipboard keyturn can put a key on and take it off again.
pub trait Clipboard {
    /// Copies `text`.
    fn copy(&mut self, text: &str) -> Result<Copied, String>;
    /// Takes `text` off again where it is still there and keyturn can tell.
    fn clear_if_holds(&mut self, text: &str) -> Cleared;
}

/// The OSC 52 sequence that puts `text` on the terminal's clipboard.
pub fn osc52(text: &str) -> Zeroizing<String> {
    let mut sequence = Zeroizing::new(String::from("\x1b]52;c;"));
    base64::engine::general_purpose::STANDARD.encode_string(text, &mut sequence);
    sequence.push('\x07');
    sequence
}

/// The multiplexer between keyturn and the terminal, which decides how an
/// OSC 52 sequence must be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Multiplexer {
    None,
    /// tmux: plain OSC 52 (tmux understands it itself).
    Tmux,
    /// GNU screen: wrapped in its DCS passthrough.
    Screen,
}

impl Multiplexer {
    /// The multiplexer the variables say this process runs in.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Multiplexer {
        let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
        if set("TMUX") {
            Multiplexer::Tmux
        } else if set("STY") {
            Multiplexer::Screen
        } else {
            Multiplexer::None
        }
    }

    /// The bytes that copy `text` through this multiplexer.
    pub fn wrap(self, text: &str) -> Zeroizing<String> {
        let sequence = osc52(text);
        match self {
            Multiplexer::None | Multiplexer::Tmux => sequence,
            Multiplexer::Screen => Zeroizing::new(format!("\x1bP{}\x1b\\", sequence.as_str())),
        }
    }
}

/// The real clipboard of this session.
pub struct SystemClipboard {
    over_ssh: bool,
    multiplexer: Multiplexer,
    used: Option<Copied>,
    terminal: Box<dyn Write + Send>,
}

impl std::fmt::Debug for SystemClipboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemClipboard")
            .field("over_ssh", &self.over_ssh)
            .field("multiplexer", &self.multiplexer)
            .finish()
    }
}

impl SystemClipboard {
    /// The clipboard for this process, writing OSC 52 to `terminal`.
    pub fn new(terminal: Box<dyn Write + Send>) -> SystemClipboard {
        let var = |name: &str| std::env::var(name).ok();
        let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
        SystemClipboard {
            over_ssh: set("SSH_CONNECTION") || set("SSH_TTY") || set("SSH_CLIENT"),
            multiplexer: Multiplexer::from_env(var),
            used: None,
            terminal,
        }
    }

    fn send_osc52(&mut self, text: &str) -> Result<Copied, String> {
        let sequence = self.multiplexer.wrap(text);
        self.terminal
            .write_all(sequence.as_bytes())
            .and_then(|()| self.terminal.flush())
            .map_err(|e| format!("the terminal could not be written: {e}"))?;
        Ok(if self.multiplexer == Multiplexer::Tmux { Copied::Tmux } else { Copied::Terminal })
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

    fn clear_if_holds(&mut self, text: &str) -> Cleared {
        match self.used.take() {
            None => Cleared::Nothing,
            Some(Copied::System) if system::get().is_some_and(|held| *held == *text) => match system::set("") {
                Ok(()) => Cleared::Cleared,
                Err(e) => Cleared::MayRemain(format!(
                    "The clipboard could not be cleared ({e}): it may still hold the key; copy something else over it."
                )),
            },
            Some(Copied::System) => Cleared::NotOurs,
            Some(Copied::Terminal) => Cleared::MayRemain(
                "keyturn cannot see your terminal's clipboard (OSC 52): it may still hold the key; copy something else over it.".into(),
            ),
            Some(Copied::Tmux) => {
                let removed = tmux::delete_buffers_holding(text);
                let tmux = match removed {
                    Ok(0) => "tmux held no copy of the key".to_string(),
                    Ok(n) => format!("The key was deleted from tmux ({n} paste buffer{})", if n == 1 { "" } else { "s" }),
                    Err(e) => format!("tmux's paste buffers could not be checked ({e}; remove it with `tmux delete-buffer`)"),
                };
                Cleared::MayRemain(format!(
                    "{tmux}; your terminal's own clipboard may still hold it: copy something else over it."
                ))
            }
        }
    }
}

/// tmux's paste buffers, through the `tmux` command of the session keyturn
/// runs in (`$TMUX` names its server). Contents come back on a pipe, never
/// in an argument.
mod tmux {
    use super::*;

    fn tmux(args: &[&str]) -> Result<Zeroizing<Vec<u8>>, String> {
        let out = Command::new("tmux")
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("tmux cannot be run: {e}"))?;
        let stdout = Zeroizing::new(out.stdout);
        if out.status.success() { Ok(stdout) } else { Err(format!("tmux {} failed", args[0])) }
    }

    /// Deletes every paste buffer that holds exactly `text`; returns how many.
    pub fn delete_buffers_holding(text: &str) -> Result<usize, String> {
        let names = tmux(&["list-buffers", "-F", "#{buffer_name}"])?;
        let names = String::from_utf8_lossy(&names).lines().map(str::to_string).collect::<Vec<_>>();
        let mut deleted = 0;
        for name in names {
            let held = tmux(&["show-buffer", "-b", &name])?;
            if held.as_slice() == text.as_bytes() {
                tmux(&["delete-buffer", "-b", &name])?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(not(windows))]
mod system {
    use copypasta::{ClipboardContext, ClipboardProvider};

    pub fn set(text: &str) -> Result<(), String> {
        let mut ctx = ClipboardContext::new().map_err(|e| e.to_string())?;
        ctx.set_contents(text.to_string()).map_err(|e| e.to_string())
    }

    pub fn get() -> Option<zeroize::Zeroizing<String>> {
        ClipboardContext::new().ok()?.get_contents().ok().map(zeroize::Zeroizing::new)
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

    pub fn get() -> Option<zeroize::Zeroizing<String>> {
        let _open = Clipboard::new_attempts(10).ok()?;
        // clipboard-win 5 writes the text as UTF-8 bytes.
        let mut bytes = zeroize::Zeroizing::new(Vec::new());
        raw::get_string(&mut bytes).ok()?;
        String::from_utf8(std::mem::take(&mut *bytes)).ok().map(zeroize::Zeroizing::new)
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

    fn clear_if_holds(&mut self, text: &str) -> Cleared {
        match self.held.as_deref() {
            None => Cleared::Nothing,
            Some(held) if held == text => {
                self.held = None;
                Cleared::Cleared
            }
            Some(_) => Cleared::NotOurs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn osc52_goes_plain_to_tmux_and_through_screens_passthrough() {
        assert_eq!(osc52("hi").as_str(), "\x1b]52;c;aGk=\x07");
        assert_eq!(Multiplexer::None.wrap("hi").as_str(), "\x1b]52;c;aGk=\x07");
        // tmux takes OSC 52 itself; its DCS passthrough is off by default.
        assert_eq!(Multiplexer::Tmux.wrap("hi").as_str(), "\x1b]52;c;aGk=\x07");
        assert_eq!(Multiplexer::Screen.wrap("hi").as_str(), "\x1bP\x1b]52;c;aGk=\x07\x1b\\");
        let var = |set: &'static str| move |name: &str| (name == set).then(|| "x".to_string());
        assert_eq!(Multiplexer::from_env(var("TMUX")), Multiplexer::Tmux);
        assert_eq!(Multiplexer::from_env(var("STY")), Multiplexer::Screen);
        assert_eq!(Multiplexer::from_env(var("HOME")), Multiplexer::None);
    }

    #[test]
    fn a_terminal_copy_is_never_claimed_cleared() {
        let mut clipboard = SystemClipboard {
            over_ssh: true,
            multiplexer: Multiplexer::None,
            used: None,
            terminal: Box::new(Vec::new()),
        };
        assert_eq!(clipboard.clear_if_holds("x"), Cleared::Nothing);
        assert_eq!(clipboard.copy("x"), Ok(Copied::Terminal));
        let cleared = clipboard.clear_if_holds("x");
        assert!(matches!(&cleared, Cleared::MayRemain(note) if note.contains("may still hold")), "{cleared:?}");
        assert_ne!(cleared.message().as_deref(), Some("The clipboard was cleared."));
    }

    #[test]
    fn no_display_is_no_crash() {
        // Without a display the system clipboard fails and OSC 52 is used.
        let mut clipboard = SystemClipboard::new(Box::new(Vec::new()));
        assert!(clipboard.copy("x").is_ok());
        let _ = clipboard.clear_if_holds("x");
    }
}
