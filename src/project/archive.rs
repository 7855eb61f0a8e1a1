//! Tokens inside zip containers: `.xlsx` data sources (Test Studio binds
//! data-driven tests to workbooks), `.imgstore` image stores and any other
//! zip-based file in a project.
//!
//! Every entry of every zip is scanned. Only the XML parts of an Office Open
//! XML workbook (`.xlsx`, `.xlsm`, `.xltx`, `.xltm`: the shared strings in
//! `xl/sharedStrings.xml`, inline strings in `xl/worksheets/*.xml`) are
//! rewritten; a token anywhere else in a zip is found and reported, because
//! keyturn does not know that format well enough to change it. A rewrite
//! keeps every other entry's compressed bytes, order and metadata (they are
//! copied raw) and changes only the entries holding a token to upgrade; the
//! caller writes the new archive crash-safely like any other file.

use std::borrow::Cow;
use std::io::{Cursor, Read, Write};
use std::ops::Range;
use std::path::Path;

use zip::result::ZipError;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use super::{MAX_FILE, find_tokens_with_lines};
use crate::token::{Keyring, ParsedToken};

/// An entry decompressing to more than this is not scanned (a zip bomb, or
/// not where secrets are kept).
pub const MAX_ENTRY: u64 = MAX_FILE;
/// All entries of one archive together decompress to at most this; the rest
/// are not scanned.
const MAX_TOTAL: u64 = 8 * MAX_FILE;
/// Extensions of the workbooks whose XML parts keyturn rewrites.
const WORKBOOKS: [&str; 4] = ["xlsx", "xlsm", "xltx", "xltm"];

/// Whether `bytes` look like a zip archive (a local file header first, or
/// the end record of an empty one).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// Whether keyturn rewrites tokens inside the zip at `path` (a workbook).
pub fn is_workbook(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|ext| WORKBOOKS.iter().any(|w| ext.eq_ignore_ascii_case(w)))
}

/// Why an archive cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Not a zip keyturn can read (damaged, or a format it does not know).
    #[error("not a zip archive keyturn can read ({0}); repair or re-save it")]
    Zip(#[from] ZipError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A token candidate inside one entry of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The entry's name inside the archive.
    pub entry: String,
    /// The line in the entry, counting from 1.
    pub line: usize,
    /// The candidate's text (a token is ASCII by its grammar).
    pub token: String,
    /// Whether keyturn can rewrite it where it sits.
    pub rewritable: bool,
}

/// What a scan of one archive found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Every token candidate, in entry order.
    pub tokens: Vec<Found>,
    /// Entries not scanned: encrypted, too large, or unreadable.
    pub entries_skipped: usize,
}

/// How a place inside an archive is named in reports: `file!/entry`, as
/// Java names a file inside a jar.
pub fn place(file: &Path, entry: &str) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push("!/");
    name.push(entry);
    name.into()
}

fn entry_rewritable(workbook: bool, name: &str, method: CompressionMethod) -> bool {
    workbook
        && (name.ends_with(".xml") || name.ends_with(".rels"))
        && matches!(method, CompressionMethod::Stored | CompressionMethod::Deflated)
}

/// Reads an entry's content, at most [`MAX_ENTRY`] bytes; `None` when it is
/// encrypted, larger, or compressed in a way keyturn does not read.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut ZipArchive<R>,
    index: usize,
    budget: &mut u64,
) -> Result<Option<(String, CompressionMethod, Vec<u8>)>, ArchiveError> {
    let file = match archive.by_index(index) {
        Ok(file) => file,
        // Encrypted, or a compression method keyturn is not built with.
        Err(ZipError::UnsupportedArchive(_) | ZipError::InvalidPassword) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if file.is_dir() || file.size() > MAX_ENTRY || file.size() > *budget {
        return Ok(None);
    }
    let name = file.name().map(Cow::into_owned)?;
    let method = file.compression();
    let mut content = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    // The declared size is not trusted: read one byte past the limit.
    file.take(MAX_ENTRY + 1).read_to_end(&mut content)?;
    if content.len() as u64 > MAX_ENTRY {
        return Ok(None);
    }
    *budget = budget.saturating_sub(content.len() as u64);
    Ok(Some((name, method, content)))
}

/// Every token candidate in the archive `bytes` (the file at `path`).
pub fn scan(path: &Path, bytes: &[u8]) -> Result<Scan, ArchiveError> {
    let workbook = is_workbook(path);
    let mut archive = ZipArchive::new(Cursor::new(bytes))?;
    let mut scan = Scan::default();
    let mut budget = MAX_TOTAL;
    for index in 0..archive.len() {
        let Some((name, method, content)) = read_entry(&mut archive, index, &mut budget)? else {
            if !archive.by_index_raw(index).is_ok_and(|f| f.is_dir()) {
                scan.entries_skipped += 1;
            }
            continue;
        };
        let rewritable = entry_rewritable(workbook, &name, method);
        for (range, line) in find_tokens_with_lines(&content) {
            let token = String::from_utf8_lossy(&content[range]).into_owned();
            scan.tokens.push(Found { entry: name.clone(), line, token, rewritable });
        }
    }
    Ok(scan)
}

/// The archive `bytes` (the workbook at `path`) with every upgradable token
/// in its rewritable entries re-encrypted under the ring's active key, and
/// how many were. Entries without such a token are copied raw (compressed
/// bytes, order, names, times, modes, comments); a changed entry keeps its
/// name, place, compression method, time and mode. With nothing to upgrade,
/// the archive is returned unchanged.
pub fn rewrite(path: &Path, bytes: &[u8], ring: &Keyring) -> Result<(Vec<u8>, usize), ArchiveError> {
    let workbook = is_workbook(path);
    let mut archive = ZipArchive::new(Cursor::new(bytes))?;
    let mut changed: Vec<Option<Vec<u8>>> = Vec::with_capacity(archive.len());
    let mut upgraded = 0;
    let mut budget = MAX_TOTAL;
    for index in 0..archive.len() {
        let mut new = None;
        if let Some((name, method, content)) = read_entry(&mut archive, index, &mut budget)?
            && entry_rewritable(workbook, &name, method)
            && needs_upgrade(&content, ring)
        {
            let (rewritten, n) = super::rewrite(&content, ring);
            if n > 0 {
                upgraded += n;
                new = Some(rewritten);
            }
        }
        changed.push(new);
    }
    if upgraded == 0 {
        return Ok((bytes.to_vec(), 0));
    }
    let mut writer = ZipWriter::new(Cursor::new(Vec::with_capacity(bytes.len() + 4096)));
    for (index, new) in changed.into_iter().enumerate() {
        let file = archive.by_index_raw(index)?;
        match new {
            None => writer.raw_copy_file(file)?,
            Some(content) => {
                let mut options = SimpleFileOptions::default()
                    .compression_method(file.compression())
                    .last_modified_time(file.last_modified().unwrap_or_default())
                    .large_file(content.len() as u64 >= u64::from(u32::MAX));
                if let Some(mode) = file.unix_mode() {
                    options = options.unix_permissions(mode);
                }
                let name = file.name()?.into_owned();
                drop(file);
                writer.start_file(name, options)?;
                writer.write_all(&content)?;
            }
        }
    }
    writer.set_raw_comment(archive.comment().into())?;
    Ok((writer.finish()?.into_inner(), upgraded))
}

fn needs_upgrade(content: &[u8], ring: &Keyring) -> bool {
    super::find_tokens(content).any(|range: Range<usize>| {
        std::str::from_utf8(&content[range])
            .ok()
            .and_then(|t| ParsedToken::parse(t).ok())
            .is_some_and(|p| !ring.is_current(&p))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, KeyKind};

    fn key(seed: u8) -> Key {
        crate::keys::test_key(KeyKind::Encryption, seed)
    }

    fn zip_of(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
        let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content, method) in entries {
            let options = SimpleFileOptions::default()
                .compression_method(*method)
                .last_modified_time(zip::DateTime::from_date_and_time(2024, 3, 1, 9, 30, 0).expect("date"));
            writer.start_file(*name, options).expect("start");
            writer.write_all(content).expect("write");
        }
        writer.set_comment("made by a test").expect("comment");
        writer.finish().expect("finish").into_inner()
    }

    #[test]
    fn rewrites_only_the_entries_that_change() {
        let old = Keyring::new(&key(1), &[]);
        let ring = Keyring::new(&key(2), &[key(1)]);
        let shared = format!("<sst><si><t>{}</t></si><si><t>plain</t></si></sst>", old.seal(b"db-pass"));
        let sheet =
            b"<worksheet><sheetData><row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c></row></sheetData></worksheet>";
        let image = [0u8, 1, 2, 3, 255, 254];
        let bytes = zip_of(&[
            ("[Content_Types].xml", b"<Types/>", CompressionMethod::Deflated),
            ("xl/worksheets/sheet1.xml", sheet, CompressionMethod::Deflated),
            ("xl/sharedStrings.xml", shared.as_bytes(), CompressionMethod::Deflated),
            ("xl/media/image1.png", &image, CompressionMethod::Stored),
        ]);
        let path = Path::new("Data/Data.xlsx");
        let (new, n) = rewrite(path, &bytes, &ring).expect("rewrites");
        assert_eq!(n, 1);
        let mut before = ZipArchive::new(Cursor::new(bytes.as_slice())).expect("old");
        let mut after = ZipArchive::new(Cursor::new(new.as_slice())).expect("new");
        assert_eq!(after.comment(), b"made by a test");
        assert_eq!(before.len(), after.len());
        for i in 0..before.len() {
            let (a, b) = (before.by_index_raw(i).expect("a"), after.by_index_raw(i).expect("b"));
            assert_eq!(a.name().expect("name"), b.name().expect("name"), "order kept");
            assert_eq!(a.compression(), b.compression());
            assert_eq!(a.last_modified(), b.last_modified());
            let name = a.name().expect("name").into_owned();
            let raw = |mut f: zip::read::ZipFile<'_, _>| {
                let mut v = Vec::new();
                f.read_to_end(&mut v).expect("raw");
                v
            };
            if name != "xl/sharedStrings.xml" {
                assert_eq!(raw(a), raw(b), "{name}: compressed bytes kept");
            }
        }
        let mut text = String::new();
        after.by_name("xl/sharedStrings.xml").expect("entry").read_to_string(&mut text).expect("read");
        let found = scan(path, &new).expect("scan");
        assert_eq!(found.tokens.len(), 1);
        assert!(found.tokens[0].rewritable);
        assert_eq!(ring.open(&found.tokens[0].token).expect("opens").as_slice(), b"db-pass");
        assert!(text.starts_with("<sst><si><t>ktsec:1:") && text.ends_with("</t></si><si><t>plain</t></si></sst>"));
        // A second pass changes nothing.
        let (again, n) = rewrite(path, &new, &ring).expect("again");
        assert_eq!((n, again == new), (0, true));
    }

    #[test]
    fn tokens_elsewhere_are_found_but_not_rewritable() {
        let old = Keyring::new(&key(1), &[]);
        let ring = Keyring::new(&key(2), &[key(1)]);
        let token = old.seal(b"x");
        let inner = format!("header\n{token}\n");
        let bytes = zip_of(&[("img/meta.txt", inner.as_bytes(), CompressionMethod::Deflated)]);
        let store = Path::new("Pages/Login.imgstore");
        let found = scan(store, &bytes).expect("scan");
        assert_eq!(
            found.tokens,
            vec![Found { entry: "img/meta.txt".into(), line: 2, token: token.clone(), rewritable: false }]
        );
        let (same, n) = rewrite(store, &bytes, &ring).expect("nothing to do");
        assert_eq!((n, same == bytes), (0, true));
        assert!(is_zip(&bytes) && !is_zip(b"\x89PNG"));
        assert!(scan(Path::new("x.xlsx"), b"PK\x03\x04 broken").is_err());
        assert_eq!(place(Path::new("a/b.xlsx"), "xl/s.xml"), Path::new("a/b.xlsx!/xl/s.xml"));
    }
}
