//! Projects: finding the tokens in a project's text files and upgrading them
//! (re-encrypting under the active key) without touching a byte around them.
//!
//! An upgrade works in two passes. The first reads every file, one at a time,
//! and determines which tokens are current, which can be upgraded and which
//! cannot be opened; nothing is written. The second rewrites, one file at a
//! time and crash-safely, only the files holding tokens to upgrade, decided
//! again from their content. A crash at any point leaves every file either as
//! it was or upgraded, both readable through the keyring, so a rerun finishes
//! the job, and a run after a complete one writes nothing.

use std::fs;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::store::atomic;
use crate::token::{self, Keyring, ParsedToken, TokenError};

/// Files larger than this are not scanned (they are not the XML, CSV and
/// JSON files tokens live in).
pub const MAX_FILE: u64 = 32 * 1024 * 1024;
/// A file with a NUL byte in its first this many bytes is binary.
const BINARY_PROBE: usize = 8 * 1024;
/// Version-control folders, never scanned.
const SKIPPED_DIRS: [&str; 3] = [".git", ".svn", ".hg"];

/// Where each token candidate is in `text`: every run starting `ktsec:`, up
/// to the first byte outside the token alphabet. No boundary is required
/// before it (`user:TOKEN@host`, `x=TOKEN`): a missed token would be a lost
/// value after a purge, a look-alike is only reported.
pub fn find_tokens(text: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    memchr::memmem::find_iter(text, token::PREFIX.as_bytes()).map(move |start| {
        let len = text[start..].iter().take_while(|b| is_token_byte(**b)).count();
        start..start + len
    })
}

/// [`find_tokens`] with the line (from 1) each candidate starts on.
pub fn find_tokens_with_lines(text: &[u8]) -> impl Iterator<Item = (Range<usize>, usize)> + '_ {
    let (mut line, mut counted_to) = (1, 0);
    find_tokens(text).map(move |range| {
        line += memchr::memchr_iter(b'\n', &text[counted_to..range.start]).count();
        counted_to = range.start;
        (range, line)
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b':'
}

/// A token that could not be opened: a password step to re-record or a
/// connection string to re-enter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    /// The file, relative to the project.
    pub file: PathBuf,
    /// The line, counting from 1.
    pub line: usize,
    /// Why it cannot be opened.
    #[serde(serialize_with = "display")]
    pub reason: TokenError,
}

fn display<S: serde::Serializer, T: std::fmt::Display>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

/// What an upgrade found and did in one project.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ProjectReport {
    /// The project's directory.
    pub project: PathBuf,
    /// Text files read.
    pub files_scanned: usize,
    /// Files not read: binary, too large, links, not regular files.
    pub files_skipped: usize,
    /// Token candidates found.
    pub tokens: usize,
    /// Tokens already under the active key, left byte for byte.
    pub current: usize,
    /// Tokens re-encrypted under the active key (in a dry run: that would be).
    pub upgraded: usize,
    /// Files rewritten (in a dry run: that would be).
    pub files_rewritten: usize,
    /// Tokens that cannot be opened, each with its place and reason.
    pub unreadable: Vec<Unreadable>,
}

/// Progress of a long upgrade, for a progress bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Which pass: 1 checks, 2 writes.
    pub pass: u8,
    /// Files done in this pass.
    pub files_done: usize,
    /// Files in this pass.
    pub files_total: usize,
    /// Tokens seen so far in this pass.
    pub tokens: usize,
}

/// Why an upgrade stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not a directory; name a project directory", path.display())]
    NotADirectory { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError + '_ {
    move |source| ProjectError::Io { path: path.to_path_buf(), source }
}

/// The text files of a project, and how many files were skipped.
pub fn text_files(root: &Path) -> Result<(Vec<PathBuf>, usize), ProjectError> {
    if !root.is_dir() {
        return Err(ProjectError::NotADirectory { path: root.to_path_buf() });
    }
    let mut files = Vec::new();
    let mut skipped = 0;
    let walk = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && SKIPPED_DIRS.iter().any(|d| e.file_name() == *d)));
    for entry in walk {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            ProjectError::Io { path, source: e.into() }
        })?;
        let kind = entry.file_type();
        if kind.is_dir() {
            continue;
        }
        // Links are never followed: one may lead out of the project. A
        // writer's temporary file, left by a kill, is not part of it.
        if !kind.is_file() || atomic::is_temporary(entry.file_name()) {
            skipped += 1;
            continue;
        }
        let len = entry
            .metadata()
            .map_err(|e| ProjectError::Io { path: entry.path().to_path_buf(), source: e.into() })?
            .len();
        if len > MAX_FILE {
            skipped += 1;
            continue;
        }
        files.push(entry.into_path());
    }
    Ok((files, skipped))
}

/// Reads a text file, `None` when it is binary or has grown too large.
fn read_text(path: &Path) -> Result<Option<Vec<u8>>, ProjectError> {
    let file = fs::File::open(path).map_err(io(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(io(path))?;
    let probe = &bytes[..bytes.len().min(BINARY_PROBE)];
    if bytes.len() as u64 > MAX_FILE || memchr::memchr(0, probe).is_some() {
        return Ok(None);
    }
    Ok(Some(bytes))
}

enum Verdict {
    Current,
    Upgrade,
    Unreadable(TokenError),
}

fn judge(ring: &Keyring, candidate: &[u8]) -> Verdict {
    let Ok(text) = std::str::from_utf8(candidate) else {
        return Verdict::Unreadable(TokenError::Malformed("not text"));
    };
    let parsed = match ParsedToken::parse(text) {
        Ok(parsed) => parsed,
        Err(e) => return Verdict::Unreadable(e),
    };
    if ring.is_current(&parsed) {
        return Verdict::Current;
    }
    match ring.open(text) {
        Ok(_) => Verdict::Upgrade,
        Err(e) => Verdict::Unreadable(e),
    }
}

/// Re-encrypts every token under a retired key in the projects at `roots`
/// under the ring's active key. With `dry_run` nothing is written. The
/// caller holds the store's lock.
pub fn upgrade(
    roots: &[PathBuf],
    ring: &Keyring,
    dry_run: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<ProjectReport>, ProjectError> {
    let mut reports = Vec::new();
    let mut plans = Vec::new();
    // Pass 1: find out what can and cannot be decrypted; write nothing.
    let mut listed = Vec::new();
    for root in roots {
        let (files, skipped) = text_files(root)?;
        listed.push((root, files, skipped));
    }
    let total: usize = listed.iter().map(|(_, files, _)| files.len()).sum();
    let (mut done, mut tokens_seen) = (0, 0);
    for (root, files, skipped) in listed {
        let mut report = ProjectReport { project: root.clone(), files_skipped: skipped, ..Default::default() };
        let mut to_rewrite = Vec::new();
        for path in files {
            done += 1;
            let Some(bytes) = read_text(&path)? else {
                report.files_skipped += 1;
                continue;
            };
            report.files_scanned += 1;
            let tokens_before = report.tokens;
            let mut upgrades = 0;
            for (range, line) in find_tokens_with_lines(&bytes) {
                report.tokens += 1;
                match judge(ring, &bytes[range]) {
                    Verdict::Current => report.current += 1,
                    Verdict::Upgrade => upgrades += 1,
                    Verdict::Unreadable(reason) => {
                        let file = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                        report.unreadable.push(Unreadable { file, line, reason });
                    }
                }
            }
            tokens_seen += report.tokens - tokens_before;
            if upgrades > 0 {
                report.upgraded += upgrades;
                report.files_rewritten += 1;
                to_rewrite.push(path);
            }
            progress(Progress { pass: 1, files_done: done, files_total: total, tokens: tokens_seen });
        }
        reports.push(report);
        plans.push(to_rewrite);
    }
    if dry_run {
        return Ok(reports);
    }
    // Pass 2: rewrite what needs it, deciding again from the file's content.
    // A few writers at once: each file's flush waits on the disk, and the
    // waits overlap.
    let total: usize = plans.iter().map(Vec::len).sum();
    let mut cleaned = std::collections::HashSet::new();
    for dir in plans.iter().flatten().filter_map(|p| p.parent()) {
        if cleaned.insert(dir.to_path_buf()) {
            // Left by an upgrade that was killed mid-write.
            atomic::remove_stale_temporaries(dir);
        }
    }
    let (mut done, mut tokens_seen) = (0, 0);
    for (report, files) in reports.iter_mut().zip(plans) {
        report.upgraded = 0;
        report.files_rewritten = 0;
        let next = AtomicUsize::new(0);
        let mut failure = None;
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::channel();
            for _ in 0..WRITERS.min(files.len()) {
                let sender = sender.clone();
                let (next, files) = (&next, &files);
                scope.spawn(move || {
                    while let Some(path) = files.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let result = upgrade_file(path, ring);
                        let failed = result.is_err();
                        if sender.send(result).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            // The writers report here, so progress is told on this thread.
            for result in receiver {
                match result {
                    Ok(upgraded) => {
                        done += 1;
                        tokens_seen += upgraded;
                        if upgraded > 0 {
                            report.upgraded += upgraded;
                            report.files_rewritten += 1;
                        }
                        progress(Progress { pass: 2, files_done: done, files_total: total, tokens: tokens_seen });
                    }
                    Err(e) => {
                        // The others finish the file they are on, then stop.
                        next.store(usize::MAX / 2, Ordering::SeqCst);
                        failure.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
    }
    Ok(reports)
}

/// Where tokens sealed under one key are found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// How many tokens.
    pub count: usize,
    /// The first few places, as `file:line`.
    pub places: Vec<String>,
}

/// How many places [`Usage`] keeps per key.
const USAGE_PLACES: usize = 10;

/// Which keys the tokens in the projects at `roots` were sealed under.
pub fn key_usage(roots: &[PathBuf]) -> Result<std::collections::BTreeMap<token::KeyId, Usage>, ProjectError> {
    let mut usage = std::collections::BTreeMap::<token::KeyId, Usage>::new();
    for root in roots {
        let (files, _) = text_files(root)?;
        for path in files {
            let Some(bytes) = read_text(&path)? else { continue };
            for (range, line) in find_tokens_with_lines(&bytes) {
                let Some(id) = std::str::from_utf8(&bytes[range])
                    .ok()
                    .and_then(|t| ParsedToken::parse(t).ok())
                    .map(|p| p.key_id())
                else {
                    continue;
                };
                let entry = usage.entry(id).or_default();
                entry.count += 1;
                if entry.places.len() < USAGE_PLACES {
                    entry.places.push(format!("{}:{line}", crate::display::path(&path)));
                }
            }
        }
    }
    Ok(usage)
}

/// How many files pass 2 rewrites at once.
const WRITERS: usize = 4;

/// Rewrites one file if it holds tokens to upgrade; how many it upgraded.
fn upgrade_file(path: &Path, ring: &Keyring) -> Result<usize, ProjectError> {
    let Some(bytes) = read_text(path)? else { return Ok(0) };
    let (rewritten, upgraded) = rewrite(&bytes, ring);
    if upgraded > 0 {
        write_like(path, &rewritten)?;
    }
    Ok(upgraded)
}

/// `bytes` with every upgradable token re-encrypted under the active key and
/// every other byte as it was; and how many tokens were re-encrypted.
pub fn rewrite(bytes: &[u8], ring: &Keyring) -> (Vec<u8>, usize) {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut copied_to = 0;
    let mut upgraded = 0;
    for range in find_tokens(bytes) {
        let Ok(text) = std::str::from_utf8(&bytes[range.clone()]) else { continue };
        let current = ParsedToken::parse(text).map(|p| ring.is_current(&p)).unwrap_or(true);
        if current {
            continue;
        }
        if let Ok(value) = ring.open(text) {
            out.extend_from_slice(&bytes[copied_to..range.start]);
            out.extend_from_slice(ring.seal(&value).as_bytes());
            copied_to = range.end;
            upgraded += 1;
        }
    }
    out.extend_from_slice(&bytes[copied_to..]);
    (out, upgraded)
}

/// Replaces a project file crash-safely, keeping its permissions (and its
/// owner, where keyturn runs as root on Unix).
fn write_like(path: &Path, bytes: &[u8]) -> Result<(), ProjectError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    atomic::write_with(path, bytes, |tmp| {
        fs::set_permissions(tmp, meta.permissions())?;
        keep_owner(tmp, &meta)
    })
    .map_err(io(path))
}

#[cfg(unix)]
fn keep_owner(tmp: &Path, meta: &fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if rustix::process::geteuid().is_root() {
        let uid = rustix::fs::Uid::from_raw(meta.uid());
        let gid = rustix::fs::Gid::from_raw(meta.gid());
        rustix::fs::chown(tmp, Some(uid), Some(gid))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_owner(_tmp: &Path, _meta: &fs::Metadata) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, KeyKind};

    fn key(seed: u8) -> Key {
        crate::keys::test_key(KeyKind::Encryption, seed)
    }

    #[test]
    fn finds_tokens_in_any_text_format() {
        let old = Keyring::new(&key(1), &[]);
        let t = old.seal(b"pw");
        let text = format!(
            "<Step Password=\"{t}\"/>\n{{\"cs\":\"Server=x;Password={t};\"}}\n{t},next\nhttps://qa:{t}@host\nktsec:broken.\n"
        );
        let found: Vec<&[u8]> = find_tokens(text.as_bytes()).map(|r| &text.as_bytes()[r]).collect();
        assert_eq!(found, vec![t.as_bytes(), t.as_bytes(), t.as_bytes(), t.as_bytes(), b"ktsec:broken".as_slice()]);
    }

    #[test]
    fn rewrite_keeps_every_other_byte() {
        let old = Keyring::new(&key(1), &[]);
        let new = Keyring::new(&key(2), &[key(1)]);
        let a = old.seal("pässwörd".as_bytes());
        let current = new.seal(b"already");
        let text = format!("héllo\r\n<a p=\"{a}\"/>\r\n{current}\r\nktsec:junk end");
        let (out, n) = rewrite(text.as_bytes(), &new);
        assert_eq!(n, 1);
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("héllo\r\n<a p=\"ktsec:1:"));
        assert!(out.ends_with(&format!("\"/>\r\n{current}\r\nktsec:junk end")));
        let upgraded: Vec<_> = find_tokens(out.as_bytes()).map(|r| out[r].to_string()).collect();
        assert_eq!(new.open(&upgraded[0]).expect("opens").as_slice(), "pässwörd".as_bytes());
        let (again, n) = rewrite(out.as_bytes(), &new);
        assert_eq!((again.as_slice(), n), (out.as_bytes(), 0));
    }
}
