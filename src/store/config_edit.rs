//! Edits of `keyturn.toml` by keyturn's commands, keeping the operator's
//! comments and layout (through `toml_edit`).

use std::path::Path;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, value};

use super::StoreError;
use super::atomic;
use super::config::{CONFIG_FILE, Config, Role};
use super::file::{self, Guard, text};
use super::lock::Lock;

/// Applies `change` to the document; it returns whether it changed anything.
/// The result must still be a valid configuration before it is written.
fn edit(home: &Path, doing: &str, change: impl FnOnce(&mut DocumentMut) -> bool) -> Result<bool, StoreError> {
    let _lock = Lock::for_change(home, doing)?;
    let path = home.join(CONFIG_FILE);
    let bytes = file::read(&path, Guard::Trusted)?.unwrap_or_default();
    let original = text(&path, &bytes)?;
    let Some(edited) =
        edited(original, change).map_err(|problem| StoreError::Config { path: path.clone(), problem })?
    else {
        return Ok(false);
    };
    atomic::write(&path, edited.as_bytes(), atomic::Access::Shared)
        .map_err(|source| StoreError::Io { path: path.clone(), source })?;
    Ok(true)
}

/// `original` with `change` applied, keeping every other byte (comments and
/// layout); `None` when `change` changes nothing. Refused when `original`
/// is not TOML or the result would not be a valid configuration.
pub fn edited(original: &str, change: impl FnOnce(&mut DocumentMut) -> bool) -> Result<Option<String>, String> {
    let mut doc: DocumentMut = original.parse().map_err(|e: toml_edit::TomlError| e.message().to_string())?;
    if !change(&mut doc) {
        return Ok(None);
    }
    let edited = line_endings_kept(original, &doc.to_string());
    toml::from_str::<Config>(&edited)
        .map_err(|e| format!("the edit would make it invalid ({}); nothing was written", e.message()))?;
    Ok(Some(edited))
}

/// `edited` with the line endings of `original` kept: toml_edit writes
/// line feeds, but a file edited in Notepad has CRLF, and one edited by
/// several tools may mix both. Each line of `edited` found in order among
/// the original's lines keeps that line's ending; a new line takes the
/// ending most of the original's lines have.
fn line_endings_kept(original: &str, edited: &str) -> String {
    let old: Vec<(&str, &str)> = original
        .split_inclusive('\n')
        .map(|l| match l.strip_suffix("\r\n") {
            Some(body) => (body, "\r\n"),
            None => l.strip_suffix('\n').map_or((l, ""), |body| (body, "\n")),
        })
        .collect();
    let crlf = old.iter().filter(|(_, end)| *end == "\r\n").count();
    let lf = old.iter().filter(|(_, end)| *end == "\n").count();
    let usual = if crlf > lf { "\r\n" } else { "\n" };
    let mut next = 0;
    let mut out = String::with_capacity(edited.len() + crlf);
    for line in edited.split_inclusive('\n') {
        let (body, ends) = match line.strip_suffix('\n') {
            Some(body) => (body.strip_suffix('\r').unwrap_or(body), true),
            None => (line, false),
        };
        out.push_str(body);
        if !ends {
            continue;
        }
        match old[next.min(old.len())..].iter().position(|(b, _)| *b == body) {
            Some(at) => {
                let (_, end) = old[next + at];
                out.push_str(if end.is_empty() { usual } else { end });
                next += at + 1;
            }
            None => out.push_str(usual),
        }
    }
    out
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether a `[[projects]]` path as written (relative paths from `home`)
/// names the folder `dir`: resolved the same way, without Windows'
/// `\\?\` prefix, and on Windows without regard to case, so one folder is
/// one project however it was written.
pub fn names_folder(home: &Path, written: &str, dir: &Path) -> bool {
    let resolve = |path: &Path| {
        dunce::canonicalize(path).unwrap_or_else(|_| {
            dunce::simplified(&std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())).to_path_buf()
        })
    };
    // Both joined to the home: on Windows a root-relative path (`\srv\a`)
    // then takes the home's drive on both sides, not the current one.
    same_path(&resolve(&home.join(written)), &resolve(&home.join(dir)))
}

fn same_path(a: &Path, b: &Path) -> bool {
    if cfg!(windows) {
        let text = |p: &Path| p.to_string_lossy().replace('/', "\\").trim_end_matches('\\').to_lowercase();
        text(a) == text(b)
    } else {
        a == b
    }
}

/// Adds a `[[projects]]` entry for `dir` unless one is there; returns
/// whether it was added.
pub fn add_project(home: &Path, dir: &Path) -> Result<bool, StoreError> {
    let wanted = path_text(dir);
    edit(home, "projects add", |doc| add_project_matching(doc, &wanted, &|p| names_folder(home, p, dir)))
}

/// Adds a `[[projects]]` entry with `path` to `doc` unless one is there.
pub fn add_project_entry(doc: &mut DocumentMut, path: &str) -> bool {
    add_project_matching(doc, path, &|p| p == path)
}

/// Adds a `[[projects]]` entry with `path` unless one whose path is `same`
/// is there.
fn add_project_matching(doc: &mut DocumentMut, path: &str, same: &dyn Fn(&str) -> bool) -> bool {
    let projects = doc.entry("projects").or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(projects) = projects.as_array_of_tables_mut() else { return false };
    if projects.iter().any(|t| t.get("path").and_then(Item::as_str).is_some_and(same)) {
        return false;
    }
    let mut entry = Table::new();
    entry["path"] = value(path);
    projects.push(entry);
    true
}

/// Removes the `[[projects]]` entry for `dir`; returns whether one was there.
pub fn remove_project(home: &Path, dir: &Path) -> Result<bool, StoreError> {
    let wanted = path_text(dir);
    edit(home, "projects remove", |doc| {
        remove_matching(doc, "projects", "path", &|p| p == wanted || names_folder(home, p, dir))
    })
}

/// Removes the first entry of the array of tables `array` whose `field` is
/// `wanted`; returns whether one was there.
pub fn remove_entry(doc: &mut DocumentMut, array: &str, field: &str, wanted: &str) -> bool {
    remove_matching(doc, array, field, &|v| v == wanted)
}

/// Removes the first entry of `array` whose `field` satisfies `wanted`.
fn remove_matching(doc: &mut DocumentMut, array: &str, field: &str, wanted: &dyn Fn(&str) -> bool) -> bool {
    let Some(entries) = doc.get_mut(array).and_then(Item::as_array_of_tables_mut) else { return false };
    let Some(index) = entries.iter().position(|t| t.get(field).and_then(Item::as_str).is_some_and(wanted)) else {
        return false;
    };
    // Comments above an entry belong to it in toml_edit; keep them on the
    // next entry, or at the end, rather than lose the operator's words.
    let comments = entries.get(index).and_then(|t| t.decor().prefix()).and_then(|p| p.as_str()).map(String::from);
    entries.remove(index);
    match (comments.filter(|c| c.contains('#')), entries.get_mut(index)) {
        (Some(comments), Some(next)) => {
            let own = next.decor().prefix().and_then(|p| p.as_str()).unwrap_or_default().to_string();
            next.decor_mut().set_prefix(format!("{comments}{own}"));
        }
        (Some(comments), None) => {
            let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
            doc.set_trailing(format!("{comments}{trailing}"));
        }
        (None, _) => {}
    }
    if doc.get(array).and_then(Item::as_array_of_tables).is_some_and(|p| p.is_empty()) {
        doc.remove(array);
    }
    true
}

/// Adds a `[[machines]]` entry; refused (false) when one has that name.
pub fn add_machine(home: &Path, name: &str, roles: &[Role], command: Option<&[String]>) -> Result<bool, StoreError> {
    edit(home, "machines add", |doc| add_machine_entry(doc, name, roles, command))
}

/// Adds a `[[machines]]` entry to `doc`; false when one has that name.
pub fn add_machine_entry(doc: &mut DocumentMut, name: &str, roles: &[Role], command: Option<&[String]>) -> bool {
    let machines = doc.entry("machines").or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    let Some(machines) = machines.as_array_of_tables_mut() else { return false };
    if machines.iter().any(|t| t.get("name").and_then(Item::as_str) == Some(name)) {
        return false;
    }
    let mut entry = Table::new();
    entry["name"] = value(name);
    let mut list = toml_edit::Array::new();
    for role in roles {
        list.push(format!("{role:?}").to_lowercase());
    }
    entry["roles"] = value(list);
    if let Some(command) = command {
        entry["command"] = value(command.iter().map(String::as_str).collect::<toml_edit::Array>());
    }
    machines.push(entry);
    true
}

/// Removes the `[[machines]]` entry `name`; returns whether one was there.
pub fn remove_machine(home: &Path, name: &str) -> Result<bool, StoreError> {
    edit(home, "machines remove", |doc| remove_entry(doc, "machines", "name", name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_keeps_each_lines_ending_crlf_lf_or_mixed() {
        for original in [
            "# a\r\n[[projects]]\r\npath = \"/a\"\r\n",
            "# a\n[[projects]]\npath = \"/a\"\n",
            "# a\r\n\n# b\n[[projects]]\r\npath = \"/a\"\n# end",
        ] {
            let added = edited(original, |doc| add_project_entry(doc, "/b")).expect("valid").expect("changed");
            assert!(added.starts_with(original.trim_end_matches("# end")), "{original:?} -> {added:?}");
            let removed =
                edited(&added, |doc| remove_entry(doc, "projects", "path", "/b")).expect("valid").expect("changed");
            assert_eq!(removed, original, "an add then a remove gives back every byte");
        }
    }

    #[test]
    fn keeps_comments_and_layout() {
        let home = tempfile::tempdir().expect("tempdir");
        let original =
            "# Machine sched-01\n\n[[publish]]  # for the scheduler\nkind = \"communication\"\npath = \"c.key\"\n";
        std::fs::write(home.path().join(CONFIG_FILE), original).expect("write");
        assert!(add_project(home.path(), Path::new("/srv/projects/a")).expect("add"));
        assert!(!add_project(home.path(), Path::new("/srv/projects/a")).expect("add again"));
        let edited = std::fs::read_to_string(home.path().join(CONFIG_FILE)).expect("read");
        assert!(edited.starts_with(original), "{edited}");
        assert!(edited.contains("[[projects]]\npath = \"/srv/projects/a\""));
        assert!(remove_project(home.path(), Path::new("/srv/projects/a")).expect("remove"));
        assert_eq!(std::fs::read_to_string(home.path().join(CONFIG_FILE)).expect("read"), original);
    }

    /// One folder is one project however it is written: relative to the
    /// home, absolute, with `.` parts (and on Windows with `\\?\` or
    /// another case).
    #[test]
    fn the_same_folder_is_one_project() {
        let home = tempfile::tempdir().expect("tempdir");
        let project = home.path().join("Projects").join("Checkout");
        std::fs::create_dir_all(&project).expect("mkdir");
        std::fs::write(home.path().join(CONFIG_FILE), "[[projects]]\npath = \"Projects/Checkout\"\n").expect("write");
        let canonical = dunce::canonicalize(&project).expect("canonical");
        assert!(!add_project(home.path(), &canonical).expect("add"), "already there, written relative");
        assert!(!add_project(home.path(), &home.path().join("Projects").join(".").join("Checkout")).expect("add"));
        if cfg!(windows) {
            let upper = std::path::PathBuf::from(canonical.to_string_lossy().to_uppercase());
            assert!(!add_project(home.path(), &upper).expect("add"), "Windows paths ignore case");
            let verbatim = std::path::PathBuf::from(format!("\\\\?\\{}", canonical.display()));
            assert!(names_folder(home.path(), &verbatim.to_string_lossy(), &canonical));
        }
        assert!(remove_project(home.path(), &canonical).expect("remove"), "removed, though written otherwise");
        assert!(!std::fs::read_to_string(home.path().join(CONFIG_FILE)).expect("read").contains("Checkout"));
    }
}
