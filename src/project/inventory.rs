//! The secrets a project holds, found without printing one: keyturn's own
//! tokens, Test Studio's own encrypted password steps (which keyturn cannot
//! open: after a re-generated key the original says to re-record them),
//! password steps stored in plain text (a finding to fix in Test Studio),
//! connection strings of data-driven tests, and the passwords in
//! `Settings.aiis`.
//!
//! Test Studio's project files (`.tstest`, `.aiilist`, `Settings.aiis`) are
//! JSON of the shape `{"__type": "...", "__value": {...}}`. A password step
//! is a `SetTextActionDescriptor` with `RawText`, `IsPassword`, `Encrypt`,
//! `_canEncrypt` and `_cipher`: encrypted, `RawText` is empty and `_cipher`
//! holds Test Studio's ciphertext; not encrypted, the password is `RawText`.
//! Connection strings are `DataInfo.__value.ConnectionString`. Each item
//! names the file, the line, the test's title and the step's description
//! (with any plain-text password in it masked), never the value.

use std::ops::Range;
use std::path::{Path, PathBuf};

use jsonc_parser::ast::{ObjectProp, Value};
use jsonc_parser::common::Ranged;
use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
use serde::Serialize;

use super::{Encoding, Look, ProjectError, archive, look, text};
use crate::token::{Keyring, ParsedToken};

/// The file that makes a folder a Test Studio project.
pub const SETTINGS_FILE: &str = "Settings.aiis";
/// Test Studio's JSON files.
const JSON_FILES: [&str; 3] = ["tstest", "aiilist", "aiis"];
/// What a masked value looks like, as Test Studio masks an encrypted step.
const MASK: &str = "*****";
/// A value shorter than this is not masked inside descriptions (it would
/// garble them and reveals next to nothing).
const MASK_MIN: usize = 3;

/// Whether `dir` is a Test Studio project (it has a `Settings.aiis`).
pub fn is_test_studio_project(dir: &Path) -> bool {
    dir.join(SETTINGS_FILE).is_file()
}

/// What kind of secret an item is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A keyturn token.
    KeyturnToken,
    /// A password step Test Studio encrypted itself (`_cipher`).
    TestStudioCipher,
    /// A password step stored in plain text (`IsPassword`, not `Encrypt`).
    PlaintextPassword,
    /// A data-driven test's connection string.
    ConnectionString,
    /// A password in `Settings.aiis`.
    SettingsPassword,
}

impl Kind {
    /// The name used in the JSON and the text report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KeyturnToken => "keyturn-token",
            Kind::TestStudioCipher => "test-studio-cipher",
            Kind::PlaintextPassword => "plaintext-password",
            Kind::ConnectionString => "connection-string",
            Kind::SettingsPassword => "settings-password",
        }
    }
}

/// One secret, by its place; never its value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// The project's directory.
    pub project: PathBuf,
    /// The file, relative to the project (`file!/entry` inside a zip).
    pub file: PathBuf,
    /// The line, counting from 1.
    pub line: usize,
    pub kind: Kind,
    /// The test's title, when the file is a test.
    pub test: Option<String>,
    /// The step's description (plain-text passwords masked), when it is in a step.
    pub step: Option<String>,
    /// The property holding it (`_cipher`, `RawText`, `ConnectionString`, `QcPassword`).
    pub field: Option<String>,
    /// For a keyturn token: the fingerprint of the key that sealed it.
    pub key: Option<String>,
    /// For a keyturn token: whether this machine's keyring opens it.
    pub readable: Option<bool>,
    /// What to know or do about it.
    pub note: String,
}

/// One project's part of an inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProjectInfo {
    pub path: PathBuf,
    /// Whether it has a `Settings.aiis`.
    pub test_studio: bool,
}

/// The secrets of some projects.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub projects: Vec<ProjectInfo>,
    pub items: Vec<Item>,
    /// Test Studio files that are not JSON keyturn can read: their password
    /// steps and connection strings are not in the list.
    pub unparsed: Vec<PathBuf>,
}

impl Inventory {
    /// The items of one kind.
    pub fn of(&self, kind: Kind) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| i.kind == kind)
    }
}

impl Item {
    /// One line for a person: `/project/file:line  kind  test > step  [field]  (note)`.
    pub fn line_text(&self) -> String {
        self.text(&self.project.join(&self.file))
    }

    /// [`Item::line_text`] with the file relative to its project.
    pub fn line_text_relative(&self) -> String {
        self.text(&self.file)
    }

    fn text(&self, file: &Path) -> String {
        let mut text = format!("{}:{}  {}", crate::display::path(file), self.line, self.kind.name());
        let context: Vec<&str> = [&self.test, &self.step].into_iter().flatten().map(String::as_str).collect();
        if !context.is_empty() {
            text.push_str("  ");
            text.push_str(&context.join(" > "));
        }
        if let Some(field) = &self.field {
            text.push_str(&format!("  [{field}]"));
        }
        text.push_str(&format!("  ({})", self.note));
        text
    }
}

/// Lists the secrets in the projects at `roots`; keyturn tokens are judged
/// against `ring`.
pub fn inventory(roots: &[PathBuf], ring: &Keyring) -> Result<Inventory, ProjectError> {
    let mut inventory = Inventory::default();
    for root in roots {
        let walked = super::walk(root)?;
        inventory.projects.push(ProjectInfo { path: root.clone(), test_studio: is_test_studio_project(root) });
        for entry in &walked.entries {
            let path = &entry.path;
            let rel = path.strip_prefix(&walked.root).unwrap_or(path).to_path_buf();
            let base = Item {
                project: root.clone(),
                file: rel.clone(),
                line: 0,
                kind: Kind::KeyturnToken,
                test: None,
                step: None,
                field: None,
                key: None,
                readable: None,
                note: String::new(),
            };
            match look(entry)? {
                Look::Text(opened, encoding) => {
                    let (items, parsed) = scan_text(&base, &opened.bytes, encoding, ring);
                    inventory.items.extend(items);
                    if !parsed {
                        inventory.unparsed.push(path.clone());
                    }
                }
                Look::Skipped(reason, tokens) => {
                    for token in tokens.iter().filter(|t| !t.is_empty()) {
                        let mut item = token_item(&base, token, ring);
                        item.note.push_str(&format!("; in a file keyturn does not rewrite ({reason})"));
                        inventory.items.push(item);
                    }
                }
                Look::Zip(opened) => {
                    let Ok(scan) = archive::scan(path, &opened.bytes) else { continue };
                    for found in scan.tokens {
                        let mut item = token_item(&base, &found.token, ring);
                        item.file = archive::place(&rel, &found.entry);
                        item.line = found.line;
                        if !found.rewritable {
                            item.note.push_str("; inside a zip keyturn does not rewrite: an upgrade cannot reach it");
                        }
                        inventory.items.push(item);
                    }
                }
            }
        }
    }
    Ok(inventory)
}

/// What the re-generated key's manual steps list (`rotation::procedure::Facts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChecklistLines {
    /// Password steps encrypted by Test Studio itself or stored in plain text.
    pub password_steps: Vec<String>,
    /// Connection strings and settings passwords.
    pub connection_strings: Vec<String>,
}

/// The inventory of the projects at `roots` as lines for the checklist; a
/// project that cannot be read gives a line that says so.
pub fn for_checklist(roots: &[PathBuf], ring: &Keyring) -> ChecklistLines {
    let readable: Vec<PathBuf> = roots.iter().filter(|r| r.is_dir()).cloned().collect();
    let mut lines = ChecklistLines::default();
    match inventory(&readable, ring) {
        Ok(found) => {
            for item in &found.items {
                match item.kind {
                    Kind::TestStudioCipher | Kind::PlaintextPassword => lines.password_steps.push(item.line_text()),
                    Kind::ConnectionString | Kind::SettingsPassword => lines.connection_strings.push(item.line_text()),
                    Kind::KeyturnToken => {}
                }
            }
            // Files that are not JSON (older or hand-made tests) are named
            // where there is something to redo anyway; alone they do not
            // make a step (`projects secrets` warns of them).
            for file in &found.unparsed {
                let line =
                    format!("{}: not JSON keyturn can read: check it in Test Studio", crate::display::path(file));
                for list in [&mut lines.password_steps, &mut lines.connection_strings] {
                    if !list.is_empty() {
                        list.push(line.clone());
                    }
                }
            }
        }
        Err(e) => {
            let line = format!("the projects could not be read ({e}): run keyturn projects secrets");
            lines.password_steps.push(line.clone());
            lines.connection_strings.push(line);
        }
    }
    lines
}

/// A keyturn-token item for `token`, with its key and whether it opens.
fn token_item(base: &Item, token: &str, ring: &Keyring) -> Item {
    let mut item = Item { kind: Kind::KeyturnToken, ..base.clone() };
    match ParsedToken::parse(token) {
        Err(e) => {
            item.readable = Some(false);
            item.note = e.to_string();
        }
        Ok(parsed) => {
            item.key = Some(parsed.key_id().to_string());
            let current = ring.is_current(&parsed);
            match ring.open(token) {
                Ok(_) if current => {
                    item.readable = Some(true);
                    item.note = "under the active key".into();
                }
                Ok(_) => {
                    item.readable = Some(true);
                    item.note = "under a retired key: keyturn upgrade re-encrypts it".into();
                }
                Err(e) => {
                    item.readable = Some(false);
                    item.note = e.to_string();
                }
            }
        }
    }
    item
}

/// The items in one text file, and whether a Test Studio JSON file parsed.
fn scan_text(base: &Item, bytes: &[u8], encoding: Encoding, ring: &Keyring) -> (Vec<Item>, bool) {
    let lines = LineIndex::new(bytes);
    let name = base.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let is_json = base
        .file
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|ext| JSON_FILES.iter().any(|j| ext.eq_ignore_ascii_case(j)));
    let mut found = Found::default();
    let mut parsed = true;
    // Test Studio writes its JSON in UTF-8; a UTF-16 one is still searched
    // for tokens.
    if is_json && encoding == Encoding::Utf8 {
        let (offset, body) = match bytes.strip_prefix(b"\xEF\xBB\xBF") {
            Some(body) => (3, body),
            None => (0, bytes),
        };
        parsed = match std::str::from_utf8(body) {
            // The parser and the walk recurse: a file nested deeper than
            // any real test is not parsed, rather than overflow the stack.
            Ok(_) if nesting(body) > MAX_NESTING => false,
            Ok(text) => match parse_to_ast(text, &CollectOptions::default(), &ParseOptions::default()) {
                Ok(result) => {
                    if let Some(value) = &result.value {
                        let settings = name.eq_ignore_ascii_case(SETTINGS_FILE);
                        found.test = test_title(value);
                        walk(value, &mut found, None, settings, offset);
                    }
                    true
                }
                Err(_) => false,
            },
            Err(_) => false,
        };
    }
    let test = found
        .test
        .clone()
        .or_else(|| base.file.extension().is_some_and(|e| e.eq_ignore_ascii_case("tstest")).then(|| stem(&base.file)));
    let masks = found.masks();
    let clean = |text: &str| display_text(text, &masks);
    let mut items = Vec::new();
    for candidate in text::tokens(bytes, encoding) {
        let mut item = token_item(base, &candidate.text, ring);
        item.line = candidate.line;
        item.test = test.as_deref().map(clean);
        item.step = found.step_at(candidate.bytes.start).map(clean);
        items.push(item);
    }
    for secret in &found.secrets {
        items.push(Item {
            line: lines.line(secret.at),
            kind: secret.kind,
            test: if secret.kind == Kind::SettingsPassword { None } else { test.as_deref().map(clean) },
            step: secret.step.as_deref().map(clean),
            field: Some(secret.field.clone()),
            note: secret.kind_note().into(),
            ..base.clone()
        });
    }
    items.sort_by_key(|i| (i.line, i.kind));
    (items, parsed)
}

fn stem(file: &Path) -> String {
    file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Text from a project file made safe to show: every plain-text secret of
/// the file masked, then what would act on a terminal or draw nothing (an
/// escape sequence in a test title) escaped by the one display filter.
fn display_text(text: &str, masks: &[String]) -> String {
    let mut out = text.to_string();
    for secret in masks {
        out = out.replace(secret.as_str(), MASK);
    }
    crate::display::escaped(&out)
}

/// A secret found in the JSON, by byte offset.
struct Secret {
    at: usize,
    kind: Kind,
    field: String,
    step: Option<String>,
}

impl Secret {
    fn kind_note(&self) -> &'static str {
        match self.kind {
            Kind::TestStudioCipher => {
                "encrypted by Test Studio itself: keyturn cannot open it; after a re-generated key re-record this step"
            }
            Kind::PlaintextPassword => {
                "a password step stored in plain text: turn on Encrypt for it in Test Studio (or seal it with keyturn encrypt)"
            }
            Kind::ConnectionString => "a data-driven test's connection string: after a re-generated key re-enter it",
            Kind::SettingsPassword => "a password in the project settings: after a re-generated key re-enter it",
            Kind::KeyturnToken => "",
        }
    }
}

/// What the walk of one JSON file found.
#[derive(Default)]
struct Found {
    test: Option<String>,
    /// Steps by the byte range of their object, with their description.
    steps: Vec<(Range<usize>, String)>,
    secrets: Vec<Secret>,
    /// Plain-text values never to show (plain-text passwords, connection
    /// strings, settings passwords).
    values: Vec<String>,
}

impl Found {
    /// The description of the innermost step around byte `at`.
    fn step_at(&self, at: usize) -> Option<&str> {
        self.steps
            .iter()
            .filter(|(range, _)| range.contains(&at))
            .min_by_key(|(range, _)| range.len())
            .map(|(_, description)| description.as_str())
    }

    fn masks(&self) -> Vec<String> {
        let mut masks: Vec<String> = self.values.iter().filter(|v| v.chars().count() >= MASK_MIN).cloned().collect();
        // Longest first, so a value containing another is masked whole.
        masks.sort_by_key(|v| std::cmp::Reverse(v.len()));
        masks.dedup();
        masks
    }
}

/// The test's title: `Title` (or `Name`) of the root object's `__value`.
fn test_title(root: &Value<'_>) -> Option<String> {
    let object = inner(root.as_object()?);
    ["Title", "Name"]
        .iter()
        .find_map(|name| object.get_string(name).map(|s| s.value.to_string()))
        .filter(|t| !t.is_empty())
}

/// The object itself, or its `__value` when it is a typed wrapper.
fn inner<'b, 'a>(object: &'b jsonc_parser::ast::Object<'a>) -> &'b jsonc_parser::ast::Object<'a> {
    object.get_object("__value").unwrap_or(object)
}

fn string_prop<'b, 'a>(object: &'b jsonc_parser::ast::Object<'a>, name: &str) -> Option<&'b ObjectProp<'a>> {
    object.get(name).filter(|p| p.value.as_string_lit().is_some())
}

fn walk(value: &Value<'_>, found: &mut Found, step: Option<&str>, settings: bool, offset: usize) {
    match value {
        Value::Array(array) => {
            for element in &array.elements {
                walk(element, found, step, settings, offset);
            }
        }
        Value::Object(object) => {
            // A step: a description beside the step's descriptor.
            let mut step = step.map(str::to_string);
            if object.get("Step").is_some()
                && let Some(description) = object.get_string("Description")
            {
                let custom = object.get_string("CustomDescription").map(|s| s.value.trim()).unwrap_or("");
                let text = if custom.is_empty() { description.value.to_string() } else { custom.to_string() };
                let range = object.range.start + offset..object.range.end + offset;
                found.steps.push((range, text.clone()));
                step = Some(text);
            }
            check_object(object, found, step.as_deref(), settings, offset);
            for prop in &object.properties {
                walk(&prop.value, found, step.as_deref(), settings, offset);
            }
        }
        _ => {}
    }
}

/// The secrets among one object's own properties.
fn check_object(
    object: &jsonc_parser::ast::Object<'_>,
    found: &mut Found,
    step: Option<&str>,
    settings: bool,
    offset: usize,
) {
    let flag = |name: &str| object.get_boolean(name).map(|b| b.value);
    let push = |prop: &ObjectProp<'_>, kind: Kind, found: &mut Found| {
        found.secrets.push(Secret {
            at: prop.value.start() + offset,
            kind,
            field: prop.name.as_str().to_string(),
            step: step.map(str::to_string),
        });
    };
    if let Some(cipher) = string_prop(object, "_cipher")
        && cipher.value.as_string_lit().is_some_and(|s| !s.value.is_empty())
        && flag("Encrypt") != Some(false)
    {
        push(cipher, Kind::TestStudioCipher, found);
    }
    if flag("IsPassword") == Some(true)
        && flag("Encrypt") != Some(true)
        && let Some(raw) = string_prop(object, "RawText")
        && let Some(text) = raw.value.as_string_lit().map(|s| s.value.to_string())
        && !text.is_empty()
        && !is_only_token(&text)
    {
        push(raw, Kind::PlaintextPassword, found);
        found.values.push(text);
    }
    for prop in &object.properties {
        let Some(text) = prop.value.as_string_lit().map(|s| s.value.to_string()) else { continue };
        if text.trim().is_empty() {
            continue;
        }
        let name = prop.name.as_str();
        if name == "ConnectionString" {
            push(prop, Kind::ConnectionString, found);
            found.values.push(text);
        } else if settings && name.ends_with("Password") {
            push(prop, Kind::SettingsPassword, found);
            found.values.push(text);
        }
    }
}

/// A value that is one keyturn token and nothing else (sealed: not plain text).
fn is_only_token(text: &str) -> bool {
    let mut found = super::find_tokens(text.as_bytes());
    found.next().is_some_and(|r| r == (0..text.len()))
}

/// Real tests nest a few dozen levels; this is far beyond.
const MAX_NESTING: usize = 256;

/// How deep `[` and `{` nest in the JSON text `bytes` (outside strings).
fn nesting(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Byte offsets to lines.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(bytes: &[u8]) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', bytes).map(|i| i + 1));
        LineIndex { starts }
    }

    /// The line (from 1) byte `at` is on.
    fn line(&self, at: usize) -> usize {
        self.starts.partition_point(|&start| start <= at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Key, KeyKind};

    fn key(seed: u8) -> Key {
        crate::keys::test_key(KeyKind::Encryption, seed)
    }

    /// The item a file's findings start from, in project `/p`.
    fn base_item(file: &str) -> Item {
        Item {
            project: PathBuf::from("/p"),
            file: PathBuf::from(file),
            line: 0,
            kind: Kind::KeyturnToken,
            test: None,
            step: None,
            field: None,
            key: None,
            readable: None,
            note: String::new(),
        }
    }

    #[test]
    fn finds_each_kind_in_a_test_without_its_value() {
        let ring = Keyring::new(&key(1), &[]);
        let token = ring.seal(b"conn-pass");
        let test = format!(
            "{{\r\n  \"__type\": \"ArtOfTest.WebAii.Design.ProjectModel.Test\",\r\n  \"__value\": {{\r\n    \"Title\": \"Login\",\r\n    \"DataInfo\": {{ \"__type\": \"DataInfo\", \"__value\": {{ \"ConnectionString\": \"Server=db;Password={token};\", \"DataProvider\": \"\" }} }},\r\n    \"Steps\": [\r\n      {{ \"__value\": {{ \"Description\": \"Enter text '*****' in 'Password'\", \"CustomDescription\": \"\", \"Step\": {{ \"__value\": {{\r\n        \"RawText\": \"\", \"IsPassword\": true, \"Encrypt\": true, \"_canEncrypt\": true, \"_cipher\": \"q2Vx3LmN0pRsTuVwXyZaBc==\" }} }} }} }},\r\n      {{ \"__value\": {{ \"Description\": \"Enter text 'Hunter2!x' in 'Pin'\", \"Step\": {{ \"__value\": {{\r\n        \"RawText\": \"Hunter2!x\", \"IsPassword\": true, \"Encrypt\": false, \"_canEncrypt\": true, \"_cipher\": \"\" }} }} }} }}\r\n    ]\r\n  }}\r\n}}\r\n"
        );
        let base = base_item("Tests/Login.tstest");
        let (items, parsed) = scan_text(&base, test.as_bytes(), Encoding::Utf8, &ring);
        assert!(parsed);
        let got: Vec<(usize, Kind, Option<&str>)> = items.iter().map(|i| (i.line, i.kind, i.step.as_deref())).collect();
        assert_eq!(
            got,
            vec![
                (5, Kind::KeyturnToken, None),
                (5, Kind::ConnectionString, None),
                (8, Kind::TestStudioCipher, Some("Enter text '*****' in 'Password'")),
                (10, Kind::PlaintextPassword, Some("Enter text '*****' in 'Pin'")),
            ]
        );
        assert!(items.iter().all(|i| i.test.as_deref() == Some("Login")));
        let shown = format!("{items:?}");
        assert!(!shown.contains("Hunter2!x") && !shown.contains("q2Vx3LmN") && !shown.contains("Server=db"));
        assert_eq!(items[0].readable, Some(true));
    }

    #[test]
    fn settings_passwords_and_line_index() {
        let ring = Keyring::new(&key(1), &[]);
        let settings = "\u{FEFF}{\n \"__type\": \"Settings\",\n \"__value\": {\n  \"QcPassword\": \"qc-secret\",\n  \"TfsPassword\": \"\",\n  \"TpPassword\": \"tp-secret\"\n }\n}\n";
        let base = base_item(SETTINGS_FILE);
        let (items, parsed) = scan_text(&base, settings.as_bytes(), Encoding::Utf8, &ring);
        assert!(parsed);
        let got: Vec<(usize, Kind, Option<&str>)> =
            items.iter().map(|i| (i.line, i.kind, i.field.as_deref())).collect();
        assert_eq!(
            got,
            vec![(4, Kind::SettingsPassword, Some("QcPassword")), (6, Kind::SettingsPassword, Some("TpPassword"))]
        );
        let (_, parsed) = scan_text(&base, b"{ not json", Encoding::Utf8, &ring);
        assert!(!parsed);
        // Hostile nesting is refused before the parser recurses into it.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let (_, parsed) = scan_text(&base, deep.as_bytes(), Encoding::Utf8, &ring);
        assert!(!parsed);
        assert_eq!(nesting(br#"{"a": "[[[{", "b": [{"c": "\"]"}]}"#), 3);
        let index = LineIndex::new(b"a\nb\r\nc");
        assert_eq!((index.line(0), index.line(2), index.line(5)), (1, 2, 3));
    }
}
