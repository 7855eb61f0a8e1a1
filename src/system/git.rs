//! Asking Git about a project's work tree: the questions a rotation's
//! source-control steps need, never a prompt for a password.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::command::{Commands, SystemCommands};

/// Which commits to count against the upstream branch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Range {
    /// Committed here, not pushed.
    Unpushed,
    /// On the upstream, not here.
    Behind,
}

/// Why Git gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("git could not run: {0}")]
    Spawn(String),
    #[error("git {what} failed: {tail}")]
    Failed { what: &'static str, tail: String },
    #[error("no upstream branch to compare with: set one, or confirm by hand")]
    NoUpstream,
    #[error("git printed no commit count")]
    Garbled,
}

/// Git, for one work tree at a time.
pub trait Git: Send + Sync {
    /// Whether the work tree has uncommitted changes.
    fn dirty(&self, dir: &Path) -> Result<bool, GitError>;
    /// Fetches from the upstream.
    fn fetch(&self, dir: &Path) -> Result<(), GitError>;
    /// How many commits are in `range`.
    fn count(&self, dir: &Path, range: Range) -> Result<u64, GitError>;
    /// Pulls, fast-forward only.
    fn pull(&self, dir: &Path) -> Result<(), GitError>;
}

/// The `git` program, run through `commands` for at most `timeout`.
pub struct SystemGit {
    pub commands: Arc<dyn Commands>,
    pub timeout: Duration,
}

impl Default for SystemGit {
    fn default() -> SystemGit {
        SystemGit { commands: Arc::new(SystemCommands), timeout: Duration::from_secs(120) }
    }
}

impl SystemGit {
    fn git(&self, dir: &Path, what: &'static str, args: &[&str]) -> Result<String, GitError> {
        let argv: Vec<String> = ["git".to_string(), "-C".to_string(), dir.display().to_string()]
            .into_iter()
            .chain(args.iter().map(|s| s.to_string()))
            .collect();
        let out = self
            .commands
            .run(&argv, &[("GIT_TERMINAL_PROMPT", "0")], self.timeout)
            .map_err(|e| GitError::Spawn(e.to_string()))?;
        if out.success() { Ok(out.stdout) } else { Err(GitError::Failed { what, tail: out.tail() }) }
    }
}

impl Git for SystemGit {
    fn dirty(&self, dir: &Path) -> Result<bool, GitError> {
        Ok(!self.git(dir, "status", &["status", "--porcelain"])?.trim().is_empty())
    }

    fn fetch(&self, dir: &Path) -> Result<(), GitError> {
        self.git(dir, "fetch", &["fetch", "--quiet"]).map(|_| ())
    }

    fn count(&self, dir: &Path, range: Range) -> Result<u64, GitError> {
        let range = match range {
            Range::Unpushed => "@{u}..HEAD",
            Range::Behind => "HEAD..@{u}",
        };
        let out = self.git(dir, "rev-list", &["rev-list", "--count", range]).map_err(|_| GitError::NoUpstream)?;
        out.trim().parse().map_err(|_| GitError::Garbled)
    }

    fn pull(&self, dir: &Path) -> Result<(), GitError> {
        self.git(dir, "pull", &["pull", "--ff-only", "--quiet"]).map(|_| ())
    }
}

/// Git for tests: every work tree answers the same.
#[derive(Debug, Default)]
pub struct FakeGit {
    pub dirty: bool,
    pub unpushed: u64,
    pub behind: u64,
    /// When set, every question fails so.
    pub error: Option<GitError>,
}

impl FakeGit {
    fn answer<T>(&self, value: T) -> Result<T, GitError> {
        match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(value),
        }
    }
}

impl Git for FakeGit {
    fn dirty(&self, _dir: &Path) -> Result<bool, GitError> {
        self.answer(self.dirty)
    }

    fn fetch(&self, _dir: &Path) -> Result<(), GitError> {
        self.answer(())
    }

    fn count(&self, _dir: &Path, range: Range) -> Result<u64, GitError> {
        self.answer(match range {
            Range::Unpushed => self.unpushed,
            Range::Behind => self.behind,
        })
    }

    fn pull(&self, _dir: &Path) -> Result<(), GitError> {
        self.answer(())
    }
}
