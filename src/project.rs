//! Projects: finding the tokens in a project's text files and upgrading them
//! (re-encrypting under the active key) without touching a byte around them.
//!
//! An upgrade works in two passes. The first reads every file, a few at a
//! time on threads (results added in walk order), and determines which tokens are current, which are under a retired key
//! of the ring and which cannot be opened (malformed, unknown key); nothing
//! is written. The second rewrites, crash-safely, only the files holding
//! tokens to upgrade, decided again from their content, and opens each of
//! those tokens there, once: one that does not open (tampered with) is
//! reported then. A dry run opens every token in the first pass. A crash at any point leaves every file either as
//! it was or upgraded, both readable through the keyring, so a rerun finishes
//! the job, and a run after a complete one writes nothing.

pub mod archive;
pub mod files;
pub mod inventory;
pub mod sample;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::fault;
use crate::store::atomic;
use crate::token::{self, Keyring, ParsedToken, TokenError};
use files::{FileId, Outcome, Refused};
pub use text::{Encoding, find_tokens, find_tokens_with_lines};

/// Files larger than this are not read as text (they are not the XML, CSV
/// and JSON files tokens live in); they are still searched for tokens.
pub const MAX_FILE: u64 = 32 * 1024 * 1024;
/// A file with a NUL byte in its first this many bytes is binary (unless it
/// starts with a UTF-16 byte-order mark).
const BINARY_PROBE: usize = 8 * 1024;
/// Version-control folders, never scanned.
const SKIPPED_DIRS: [&str; 3] = [".git", ".svn", ".hg"];

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

/// Why a file was not read or not rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SkipReason {
    /// A NUL byte and no UTF-16 byte-order mark.
    Binary,
    /// Larger than [`MAX_FILE`].
    TooLarge,
    /// A symbolic link (or a Windows reparse point): never followed.
    Link,
    /// A device, pipe or socket.
    NotRegular,
    /// Replaced by a link or another file while the upgrade ran.
    Swapped,
    /// Changed by another program while the upgrade ran.
    Changed,
    /// Inside a zip where keyturn does not rewrite (`file!/entry`).
    InArchive,
    /// In a folder keyturn cannot write into.
    ReadOnlyFolder,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SkipReason::Binary => "binary: it has a NUL byte and no UTF-16 byte-order mark",
            SkipReason::TooLarge => "larger than 32 MiB",
            SkipReason::Link => "a link, never followed",
            SkipReason::NotRegular => "not a regular file",
            SkipReason::Swapped => "replaced by a link or another file while the upgrade ran; run it again",
            SkipReason::Changed => "changed by another program while the upgrade ran; run it again",
            SkipReason::InArchive => {
                "inside a zip archive keyturn does not rewrite (it rewrites the XML parts of .xlsx workbooks only): move the value out of the archive, or re-enter it there sealed under the active key (keyturn encrypt)"
            }
            SkipReason::ReadOnlyFolder => {
                "its folder is read-only, so the file cannot be replaced (a source-control server workspace?): make the folder writable (or check the file out) and run the upgrade again"
            }
        })
    }
}

/// A file the upgrade did not read or did not rewrite, which holds tokens
/// (or may: one swapped or changed meanwhile).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The file, relative to the project.
    pub file: PathBuf,
    /// Why it was skipped.
    pub reason: SkipReason,
    /// How many token prefixes it holds (UTF-8 or UTF-16).
    pub tokens: usize,
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
    /// Skipped files that hold tokens, and files swapped or changed while
    /// the upgrade ran: work that remains.
    pub skipped: Vec<SkippedFile>,
    /// Rewritten files that had other hard links: those other names keep
    /// the old content (a rewrite replaces the file, not the link).
    pub hard_links_broken: Vec<PathBuf>,
}

impl ProjectReport {
    /// Whether work remains for a person: tokens that cannot be opened, or
    /// skipped files that hold tokens.
    pub fn unfinished(&self) -> bool {
        !self.unreadable.is_empty() || !self.skipped.is_empty()
    }
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

/// A file found by the walk: where, and what it and its directory were.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The file.
    pub path: PathBuf,
    id: FileId,
    dir_id: FileId,
}

/// A project's files: the regular files to read, and the others.
struct Walk {
    /// The directory walked (the project, with links in its path resolved).
    root: PathBuf,
    entries: Vec<Entry>,
    /// Links and special files: never opened.
    others: Vec<(PathBuf, SkipReason)>,
}

/// Lists a project's files without following a link.
fn walk(root: &Path) -> Result<Walk, ProjectError> {
    if !root.is_dir() {
        return Err(ProjectError::NotADirectory { path: root.to_path_buf() });
    }
    // The project's own path may lead through links (a registered path);
    // inside it, nothing is followed.
    let real = dunce::canonicalize(root).map_err(io(root))?;
    let mut dirs: HashMap<PathBuf, FileId> = HashMap::new();
    let mut walk = Walk { root: real.clone(), entries: Vec::new(), others: Vec::new() };
    let entries = walkdir::WalkDir::new(&real)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.file_type().is_dir() && SKIPPED_DIRS.iter().any(|d| e.file_name() == *d)));
    for entry in entries {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            ProjectError::Io { path, source: e.into() }
        })?;
        let kind = entry.file_type();
        let meta =
            || entry.metadata().map_err(|e| ProjectError::Io { path: entry.path().to_path_buf(), source: e.into() });
        if kind.is_dir() {
            dirs.insert(entry.path().to_path_buf(), FileId::of(&meta()?));
            continue;
        }
        // A writer's temporary file, left by a kill, is not part of it.
        if atomic::is_temporary(entry.file_name()) && kind.is_file() {
            continue;
        }
        if kind.is_symlink() {
            walk.others.push((entry.into_path(), SkipReason::Link));
            continue;
        }
        if !kind.is_file() {
            walk.others.push((entry.into_path(), SkipReason::NotRegular));
            continue;
        }
        // A file moved away since it was listed is not part of the project.
        let id = match entry.metadata() {
            Ok(meta) => FileId::of(&meta),
            Err(e) if e.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => continue,
            Err(e) => return Err(ProjectError::Io { path: entry.path().to_path_buf(), source: e.into() }),
        };
        let Some(dir_id) = entry.path().parent().and_then(|d| dirs.get(d)).copied() else { continue };
        walk.entries.push(Entry { path: entry.into_path(), id, dir_id });
    }
    Ok(walk)
}

/// What one look at a file found.
enum Look {
    /// Text, with its encoding, as read.
    Text(Box<files::Opened>, Encoding),
    /// Not read as text: why, and the token texts found in it anyway.
    Skipped(SkipReason, Vec<String>),
    /// A zip archive (a workbook, an image store), as read.
    Zip(Box<files::Opened>),
}

/// Opens a file the walk found (never through a link) and tells text from
/// the rest; tokens in the rest are still found.
fn look(entry: &Entry) -> Result<Look, ProjectError> {
    let path = &entry.path;
    let (file, opened) = match files::open(path, &entry.id, &entry.dir_id, MAX_FILE).map_err(io(path))? {
        Outcome::Done(done) => done,
        Outcome::Refused(_) => return Ok(Look::Skipped(SkipReason::Swapped, Vec::new())),
    };
    if opened.bytes.len() as u64 > MAX_FILE {
        let count = count_rest(file, &opened.bytes).map_err(io(path))?;
        return Ok(Look::Skipped(SkipReason::TooLarge, vec![String::new(); count]));
    }
    if archive::is_zip(&opened.bytes) {
        return Ok(Look::Zip(Box::new(opened)));
    }
    let encoding = Encoding::sniff(&opened.bytes);
    let probe = &opened.bytes[..opened.bytes.len().min(BINARY_PROBE)];
    if encoding == Encoding::Utf8 && memchr::memchr(0, probe).is_some() {
        return Ok(Look::Skipped(SkipReason::Binary, text::tokens_in_binary(&opened.bytes)));
    }
    Ok(Look::Text(Box::new(opened), encoding))
}

/// Counts the token prefixes in a large file, `start` then the rest of
/// `file`, a chunk at a time.
fn count_rest(mut file: std::fs::File, start: &[u8]) -> std::io::Result<usize> {
    const CHUNK: usize = 1 << 20;
    let keep = text::PREFIX_BYTES - 1;
    let mut count = text::count_prefixes(start);
    let mut buffer = start[start.len().saturating_sub(keep)..].to_vec();
    loop {
        let carried = buffer.len();
        buffer.resize(carried + CHUNK, 0);
        let n = file.read(&mut buffer[carried..])?;
        buffer.truncate(carried + n);
        if n == 0 {
            return Ok(count);
        }
        // Only prefixes that end in the new bytes: the carried ones counted.
        count += text::count_prefixes(&buffer) - text::count_prefixes(&buffer[..carried]);
        buffer.drain(..buffer.len().saturating_sub(keep));
    }
}

enum Verdict {
    Current,
    Upgrade,
    Unreadable(TokenError),
}

fn judge(ring: &Keyring, candidate: &str, open: bool) -> Verdict {
    let parsed = match ParsedToken::parse(candidate) {
        Ok(parsed) => parsed,
        Err(e) => return Verdict::Unreadable(e),
    };
    if ring.is_current(&parsed) {
        return Verdict::Current;
    }
    // Without `open`, a token under a key of the ring is taken as
    // upgradable; pass 2 opens it (once) and reports it if it does not open.
    if !open && ring.holds(&parsed) {
        return Verdict::Upgrade;
    }
    match ring.open(candidate) {
        Ok(_) => Verdict::Upgrade,
        Err(e) => Verdict::Unreadable(e),
    }
}

/// Where tokens sealed under one key are found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// How many tokens.
    pub count: usize,
    /// The first few places, as `file:line` (or the file, for a skipped one).
    pub places: Vec<String>,
}

impl Usage {
    fn add(&mut self, place: impl FnOnce() -> String) {
        self.count += 1;
        if self.places.len() < USAGE_PLACES {
            self.places.push(place());
        }
    }

    /// Adds `other`, found after these.
    fn merge(&mut self, other: Usage) {
        self.count += other.count;
        let room = USAGE_PLACES.saturating_sub(self.places.len());
        self.places.extend(other.places.into_iter().take(room));
    }
}

/// How many places [`Usage`] keeps per key.
const USAGE_PLACES: usize = 10;

/// What pass 1 found: the reports, the files to rewrite, and which keys the
/// tokens were sealed under (what a purge decides from).
#[derive(Debug, Default)]
pub struct Scan {
    /// One report per project.
    pub reports: Vec<ProjectReport>,
    /// Per project, the files holding tokens to upgrade.
    plans: Vec<Vec<Entry>>,
    /// Per key id, the tokens sealed under it.
    pub usage: BTreeMap<token::KeyId, Usage>,
    /// Tokens in skipped files whose key cannot be told (a file too large
    /// to read, a token cut): they may be under any key.
    pub unknown: Usage,
}

/// Pass 1: reads every file of the projects at `roots`, a few at a time, and
/// finds out which tokens are current, which can be upgraded and which
/// cannot be opened, and which skipped files hold tokens; writes nothing.
pub fn scan(roots: &[PathBuf], ring: &Keyring, progress: &mut dyn FnMut(Progress)) -> Result<Scan, ProjectError> {
    scan_with(roots, ring, true, progress)
}

/// [`scan`]; with `open` false, tokens of text files under a retired key of
/// the ring are not opened (decrypted) here but in pass 2, which rewrites
/// them: each token is decrypted once, and one that does not open is
/// reported by pass 2. Files in read-only folders, whose tokens pass 2 does
/// not see, and zip entries are still opened here.
fn scan_with(
    roots: &[PathBuf],
    ring: &Keyring,
    open: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Scan, ProjectError> {
    let mut scan = Scan::default();
    let mut walks = Vec::new();
    for root in roots {
        walks.push((root, walk(root)?));
    }
    let total: usize = walks.iter().map(|(_, w)| w.entries.len()).sum();
    let (mut done, mut tokens_seen) = (0, 0);
    for (root, walk) in walks {
        let relative = |path: &Path| path.strip_prefix(&walk.root).unwrap_or(path).to_path_buf();
        let mut report = ProjectReport { project: root.clone(), ..Default::default() };
        report.files_skipped = walk.others.len();
        let mut to_rewrite = Vec::new();
        let relative = &relative;
        // The files are read and judged on a few threads, a chunk at a
        // time, and what each found is added in walk order, so the report
        // is the same as one thread's; reading writes nothing, so it is
        // safe on any thread.
        for chunk in walk.entries.chunks(WRITERS * 8) {
            let next = AtomicUsize::new(0);
            let mut found: Vec<Option<Result<Checked, ProjectError>>> = (0..chunk.len()).map(|_| None).collect();
            std::thread::scope(|scope| {
                let workers: Vec<_> = (0..WRITERS.min(chunk.len()))
                    .map(|_| {
                        let next = &next;
                        scope.spawn(move || {
                            let mut mine = Vec::new();
                            loop {
                                let i = next.fetch_add(1, Ordering::SeqCst);
                                let Some(entry) = chunk.get(i) else { break };
                                mine.push((i, check_entry(entry, relative, ring, open)));
                            }
                            mine
                        })
                    })
                    .collect();
                for worker in workers {
                    // A reader that panicked leaves its files to this thread.
                    for (i, result) in worker.join().unwrap_or_default() {
                        found[i] = Some(result);
                    }
                }
            });
            for (entry, result) in chunk.iter().zip(found) {
                done += 1;
                let checked = match result {
                    Some(result) => result?,
                    // A reader that panicked: read it here.
                    None => check_entry(entry, relative, ring, open)?,
                };
                tokens_seen += checked.report.tokens;
                if checked.merge_into(&mut report, &mut scan) {
                    to_rewrite.push(entry.clone());
                }
                progress(Progress { pass: 1, files_done: done, files_total: total, tokens: tokens_seen });
            }
        }
        // Links and special files are never opened: their tokens (if any)
        // are in the files they name, which are scanned where they are
        // inside a project.
        scan.reports.push(report);
        scan.plans.push(to_rewrite);
    }
    Ok(scan)
}

/// What pass 1 found in one file: its share of the project's report and of
/// the key usage, and whether it is to be rewritten.
struct Checked {
    report: ProjectReport,
    scan: Scan,
    rewrite: bool,
}

impl Checked {
    /// Adds this file's findings to the project's `report` and to `scan`;
    /// whether the file is to be rewritten.
    fn merge_into(self, report: &mut ProjectReport, scan: &mut Scan) -> bool {
        let mine = self.report;
        report.files_scanned += mine.files_scanned;
        report.files_skipped += mine.files_skipped;
        report.tokens += mine.tokens;
        report.current += mine.current;
        report.upgraded += mine.upgraded;
        report.files_rewritten += mine.files_rewritten;
        report.unreadable.extend(mine.unreadable);
        report.skipped.extend(mine.skipped);
        for (id, usage) in self.scan.usage {
            scan.usage.entry(id).or_default().merge(usage);
        }
        scan.unknown.merge(self.scan.unknown);
        self.rewrite
    }
}

/// Pass 1 for one file: reads it (never through a link) and judges its
/// tokens; `relative` names it in its project.
fn check_entry(
    entry: &Entry,
    relative: &dyn Fn(&Path) -> PathBuf,
    ring: &Keyring,
    open: bool,
) -> Result<Checked, ProjectError> {
    let mut report = ProjectReport::default();
    let mut scan = Scan::default();
    let mut rewrite = false;
    match look(entry)? {
        Look::Skipped(reason, tokens) => {
            report.files_skipped += 1;
            let file = relative(&entry.path);
            for t in &tokens {
                let id = ParsedToken::parse(t).ok().map(|p| p.key_id());
                let place = || format!("{} (skipped: {reason})", crate::display::path(&entry.path));
                match id {
                    Some(id) => scan.usage.entry(id).or_default().add(place),
                    None => scan.unknown.add(place),
                }
            }
            if !tokens.is_empty() || reason == SkipReason::Swapped {
                report.skipped.push(SkippedFile { file, reason, tokens: tokens.len() });
            }
        }
        Look::Text(opened, encoding) => {
            report.files_scanned += 1;
            let mut upgrades = 0;
            let writable = writable_dir(&entry.path);
            for found in text::tokens(&opened.bytes, encoding) {
                report.tokens += 1;
                if let Ok(id) = ParsedToken::parse(&found.text).map(|p| p.key_id()) {
                    let place = || format!("{}:{}", crate::display::path(&entry.path), found.line);
                    scan.usage.entry(id).or_default().add(place);
                }
                match judge(ring, &found.text, open || !writable) {
                    Verdict::Current => report.current += 1,
                    Verdict::Upgrade => upgrades += 1,
                    Verdict::Unreadable(reason) => {
                        let file = relative(&entry.path);
                        report.unreadable.push(Unreadable { file, line: found.line, reason });
                    }
                }
            }
            if upgrades > 0 && !writable {
                let file = relative(&entry.path);
                report.skipped.push(SkippedFile { file, reason: SkipReason::ReadOnlyFolder, tokens: upgrades });
            } else if upgrades > 0 {
                report.upgraded += upgrades;
                report.files_rewritten += 1;
                rewrite = true;
            }
        }
        Look::Zip(opened) => {
            let rel = relative(&entry.path);
            if check_archive(&entry.path, &rel, &opened.bytes, ring, &mut report, &mut scan) {
                rewrite = true;
            }
        }
    }
    Ok(Checked { report, scan, rewrite })
}

/// Judges the tokens inside the zip `bytes` (the file at `path`, `rel` in
/// its project) into `report` and `scan`; whether the file is to be
/// rewritten. Tokens where keyturn does not rewrite are listed as skipped
/// per entry (`file!/entry`); a zip keyturn cannot read is skipped like any
/// binary file, with the tokens its raw bytes show.
fn check_archive(
    path: &Path,
    rel: &Path,
    bytes: &[u8],
    ring: &Keyring,
    report: &mut ProjectReport,
    scan: &mut Scan,
) -> bool {
    let Ok(found) = archive::scan(path, bytes) else {
        report.files_skipped += 1;
        let tokens = text::tokens_in_binary(bytes);
        if !tokens.is_empty() {
            report.skipped.push(SkippedFile {
                file: rel.to_path_buf(),
                reason: SkipReason::Binary,
                tokens: tokens.len(),
            });
        }
        for t in tokens {
            let place = || format!("{} (skipped: {})", crate::display::path(path), SkipReason::Binary);
            match ParsedToken::parse(&t).ok().map(|p| p.key_id()) {
                Some(id) => scan.usage.entry(id).or_default().add(place),
                None => scan.unknown.add(place),
            }
        }
        return false;
    };
    report.files_scanned += 1;
    let writable = writable_dir(path);
    let mut upgrades = 0;
    let mut stuck: BTreeMap<(String, SkipReason), usize> = BTreeMap::new();
    for found in found.tokens {
        report.tokens += 1;
        let place = archive::place(path, &found.entry);
        if let Ok(id) = ParsedToken::parse(&found.token).map(|p| p.key_id()) {
            let place = || format!("{}:{}", crate::display::path(&place), found.line);
            scan.usage.entry(id).or_default().add(place);
        }
        // A token keyturn cannot rewrite is work for a person whatever its key.
        if !found.rewritable {
            *stuck.entry((found.entry.clone(), SkipReason::InArchive)).or_default() += 1;
            continue;
        }
        match judge(ring, &found.token, true) {
            Verdict::Current => report.current += 1,
            Verdict::Upgrade if !writable => {
                *stuck.entry((found.entry.clone(), SkipReason::ReadOnlyFolder)).or_default() += 1;
            }
            Verdict::Upgrade => upgrades += 1,
            Verdict::Unreadable(reason) => {
                let file = archive::place(rel, &found.entry);
                report.unreadable.push(Unreadable { file, line: found.line, reason });
            }
        }
    }
    for ((entry, reason), tokens) in stuck {
        report.skipped.push(SkippedFile { file: archive::place(rel, &entry), reason, tokens });
    }
    if upgrades > 0 {
        report.upgraded += upgrades;
        report.files_rewritten += 1;
    }
    upgrades > 0
}

/// Whether keyturn can replace a file in the folder of `path`: a rename
/// into a read-only folder fails, so such a file is listed, not written.
#[cfg(unix)]
fn writable_dir(path: &Path) -> bool {
    path.parent().is_none_or(|dir| rustix::fs::access(dir, rustix::fs::Access::WRITE_OK).is_ok())
}

/// On Windows a folder's read-only attribute does not stop a rename into
/// it; the ACL decides, and the rename reports it.
#[cfg(not(unix))]
fn writable_dir(_path: &Path) -> bool {
    true
}

/// Re-encrypts every token under a retired key in the projects at `roots`
/// under the ring's active key. With `dry_run` nothing is written. The
/// caller holds the store's lock and read the ring under it.
pub fn upgrade(
    roots: &[PathBuf],
    ring: &Keyring,
    dry_run: bool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<ProjectReport>, ProjectError> {
    // A dry run opens every token in pass 1, to report what would happen;
    // an upgrade leaves opening the ones it rewrites to pass 2.
    let scan = scan_with(roots, ring, dry_run, progress)?;
    if dry_run {
        return Ok(scan.reports);
    }
    fault::hold("upgrade scanned");
    write(scan, ring, progress)
}

/// What pass 2 did with one file.
enum Rewritten {
    /// Tokens re-encrypted (0: nothing to do any more), whether the file
    /// had other hard links, and the tokens that did not open (line, why).
    Done(usize, bool, Vec<(usize, TokenError)>),
    /// Left as it is.
    Skipped(SkipReason, usize),
}

/// Pass 2: rewrites, one file at a time and crash-safely, the files holding
/// tokens to upgrade, deciding again from their content. A few writers at
/// once: each file's flush waits on the disk, and the waits overlap.
fn write(scan: Scan, ring: &Keyring, progress: &mut dyn FnMut(Progress)) -> Result<Vec<ProjectReport>, ProjectError> {
    let Scan { mut reports, plans, .. } = scan;
    let total: usize = plans.iter().map(Vec::len).sum();
    let mut cleaned = std::collections::HashSet::new();
    for dir in plans.iter().flatten().filter_map(|e| e.path.parent()) {
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
        let pending = files::Pending::default();
        let mut failure = None;
        let mut resort = false;
        std::thread::scope(|scope| {
            let (sender, receiver) = std::sync::mpsc::channel();
            for _ in 0..WRITERS.min(files.len()) {
                let sender = sender.clone();
                let (next, files, pending) = (&next, &files, &pending);
                scope.spawn(move || {
                    while let Some(entry) = files.get(next.fetch_add(1, Ordering::SeqCst)) {
                        let result = upgrade_file(entry, ring, pending);
                        let failed = result.is_err();
                        if sender.send((entry, result)).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            // The writers report here, so progress is told on this thread.
            for (entry, result) in receiver {
                let file = || {
                    let root = dunce::canonicalize(&report.project).unwrap_or_else(|_| report.project.clone());
                    entry.path.strip_prefix(&root).unwrap_or(&entry.path).to_path_buf()
                };
                match result {
                    Ok(rewritten) => {
                        done += 1;
                        match rewritten {
                            Rewritten::Done(upgraded, linked, unopened) => {
                                tokens_seen += upgraded;
                                for (line, reason) in unopened {
                                    report.unreadable.push(Unreadable { file: file(), line, reason });
                                    resort = true;
                                }
                                if upgraded > 0 {
                                    report.upgraded += upgraded;
                                    report.files_rewritten += 1;
                                    if linked {
                                        report.hard_links_broken.push(file());
                                    }
                                }
                            }
                            Rewritten::Skipped(reason, tokens) => {
                                report.skipped.push(SkippedFile { file: file(), reason, tokens });
                            }
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
        // Each directory renamed into is flushed once, now, before this
        // project's report (or the error that stopped it) is given: see
        // `files::Pending` for why that keeps the crash guarantee.
        let flushed = pending.flush().map_err(|e| {
            let root = report.project.clone();
            ProjectError::Io { path: root, source: e }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        flushed?;
        report.skipped.sort_by(|a, b| a.file.cmp(&b.file));
        report.hard_links_broken.sort();
        if resort {
            report.unreadable.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        }
    }
    Ok(reports)
}

/// Which keys the tokens in the projects at `roots` were sealed under.
pub fn key_usage(roots: &[PathBuf], ring: &Keyring) -> Result<Scan, ProjectError> {
    scan(roots, ring, &mut |_| {})
}

/// How many files pass 2 rewrites at once.
const WRITERS: usize = 4;

/// Rewrites one file if it still holds tokens to upgrade: read, rewrite,
/// then replace, if the name still holds the file that was read.
fn upgrade_file(entry: &Entry, ring: &Keyring, pending: &files::Pending) -> Result<Rewritten, ProjectError> {
    let (opened, (rewritten, upgraded), unopened) = match look(entry)? {
        Look::Text(opened, encoding) => {
            let (bytes, upgraded, unopened) = rewrite_found(&opened.bytes, encoding, ring);
            (opened, (bytes, upgraded), unopened)
        }
        Look::Zip(opened) if archive::is_workbook(&entry.path) => {
            let path = &entry.path;
            let rewritten = archive::rewrite(path, &opened.bytes, ring)
                .map_err(|e| ProjectError::Io { path: path.clone(), source: std::io::Error::other(e) })?;
            (opened, rewritten, Vec::new())
        }
        Look::Zip(_) => return Ok(Rewritten::Done(0, false, Vec::new())),
        Look::Skipped(reason, tokens) => return Ok(Rewritten::Skipped(reason, tokens.len())),
    };
    if upgraded == 0 {
        return Ok(Rewritten::Done(0, false, unopened));
    }
    match files::replace(&entry.path, &opened, &rewritten).map_err(io(&entry.path))? {
        Outcome::Done(()) => {
            pending.note(&entry.dir_id, &opened).map_err(io(&entry.path))?;
            Ok(Rewritten::Done(upgraded, hard_linked(&opened.meta), unopened))
        }
        Outcome::Refused(Refused::Swapped) => Ok(Rewritten::Skipped(SkipReason::Swapped, upgraded)),
        Outcome::Refused(Refused::Changed) => Ok(Rewritten::Skipped(SkipReason::Changed, upgraded)),
    }
}

#[cfg(unix)]
fn hard_linked(meta: &std::fs::Metadata) -> bool {
    std::os::unix::fs::MetadataExt::nlink(meta) > 1
}

#[cfg(not(unix))]
fn hard_linked(_meta: &std::fs::Metadata) -> bool {
    false
}

/// `bytes` (UTF-8) with every upgradable token re-encrypted under the active
/// key and every other byte as it was; and how many tokens were re-encrypted.
pub fn rewrite(bytes: &[u8], ring: &Keyring) -> (Vec<u8>, usize) {
    rewrite_in(bytes, Encoding::Utf8, ring)
}

/// [`rewrite`] for a file in `encoding`: the new tokens are written in it.
pub fn rewrite_in(bytes: &[u8], encoding: Encoding, ring: &Keyring) -> (Vec<u8>, usize) {
    let (out, upgraded, _) = rewrite_found(bytes, encoding, ring);
    (out, upgraded)
}

/// [`rewrite_in`], with the tokens under a key of the ring that did not open
/// (line, why): each token is opened once, here.
fn rewrite_found(bytes: &[u8], encoding: Encoding, ring: &Keyring) -> (Vec<u8>, usize, Vec<(usize, TokenError)>) {
    let mut unopened = Vec::new();
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8);
    let mut copied_to = 0;
    let mut upgraded = 0;
    for found in text::tokens(bytes, encoding) {
        // Malformed tokens and unknown keys were reported by pass 1.
        let to_open = ParsedToken::parse(&found.text).map(|p| !ring.is_current(&p) && ring.holds(&p)).unwrap_or(false);
        if !to_open {
            continue;
        }
        match ring.open(&found.text) {
            Ok(value) => {
                out.extend_from_slice(&bytes[copied_to..found.bytes.start]);
                text::encode(&ring.seal(&value), encoding, &mut out);
                copied_to = found.bytes.end;
                upgraded += 1;
            }
            Err(e) => unopened.push((found.line, e)),
        }
    }
    out.extend_from_slice(&bytes[copied_to..]);
    (out, upgraded, unopened)
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

    #[test]
    fn a_colon_after_a_token_is_the_texts_own() {
        let ring = Keyring::new(&key(1), &[]);
        let t = ring.seal(b"pw");
        let text = format!("password: {t}:\nurl: db://{t}:5432/x\nend: {t}.\n");
        let found: Vec<&[u8]> = find_tokens(text.as_bytes()).map(|r| &text.as_bytes()[r]).collect();
        assert_eq!(found, vec![t.as_bytes(); 3]);
        let new = Keyring::new(&key(2), &[key(1)]);
        let (out, n) = rewrite(text.as_bytes(), &new);
        assert_eq!(n, 3);
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.starts_with("password: ktsec:1:") && out.contains(":\nurl: db://ktsec:1:"));
        assert!(out.contains(":5432/x\nend: ktsec:1:") && out.ends_with(".\n"));
        // A look-alike with too many fields ends at its third colon too.
        let odd: Vec<&[u8]> = find_tokens(b"ktsec:1:2:3:4").map(|r| &b"ktsec:1:2:3:4"[r]).collect();
        assert_eq!(odd, vec![b"ktsec:1:2:3".as_slice()]);
        // Glued tokens are two candidates that do not overlap, both found.
        let glued = format!("{t}{t}:ktsec:{t}");
        let found: Vec<&str> = find_tokens(glued.as_bytes()).map(|r| &glued[r]).collect();
        assert_eq!(found, vec![t.as_str(), t.as_str(), "ktsec:", t.as_str()]);
    }
}
