//! Replays the fuzz corpus and every input that ever crashed a fuzz target
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) through the same
//! entry points the fuzzers drive (src/fuzzing.rs), properties included.
//! CI does not fuzz; this keeps what fuzzing found from coming back, and
//! keeps the targets, their binaries and their corpus in step.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each target's committed corpus: at least this many inputs. A corpus may
/// grow; one that shrinks below this (a lost folder, a bad merge) fails.
/// After `cargo fuzz cmin`, lower the figure in the same commit.
const KEPT: [(&str, usize); 13] = [
    ("key_text", 84),
    ("token", 127),
    ("keys_file", 594),
    ("credentials_file", 675),
    ("config", 583),
    ("rotation_state", 1308),
    ("remote_answer", 944),
    ("project_rewrite", 117),
    ("remote_output", 355),
    ("published_file", 179),
    ("audit_log", 265),
    ("config_edit", 27),
    ("paste", 58),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> =
        entries.flatten().map(|e| e.path()).filter(|p| p.is_file() && !is_hidden_name(p)).collect();
    files.sort();
    files
}

fn is_hidden_name(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

#[test]
fn every_target_has_a_binary_a_source_and_its_committed_corpus() {
    let names: BTreeSet<&str> = keyturn::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
    let kept: BTreeSet<&str> = KEPT.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, kept, "src/fuzzing.rs TARGETS and this test's KEPT name the same targets");
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let manifest: toml::Value = toml::from_str(&manifest).expect("fuzz/Cargo.toml is TOML");
    let bins: BTreeSet<&str> = manifest["bin"]
        .as_array()
        .expect("fuzz/Cargo.toml has [[bin]]s")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(bins, names, "fuzz/Cargo.toml has one [[bin]] per target");
    let dirs: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("corpus"))
        .expect("fuzz/corpus")
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.iter().map(String::as_str).collect::<BTreeSet<_>>(), names, "one corpus folder per target");
    let mut short = Vec::new();
    for (name, at_least) in KEPT {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&source).unwrap_or_default();
        assert!(
            text.contains(&format!("keyturn::fuzzing::{name}(")),
            "{} drives keyturn::fuzzing::{name}",
            source.display()
        );
        let found = files(&fuzz_dir().join("corpus").join(name)).len();
        if found < at_least {
            short.push(format!("{name}: {found} inputs, {at_least} committed"));
        }
    }
    assert!(short.is_empty(), "corpus folders with fewer inputs than committed: {short:#?}");
}

#[test]
fn every_kept_input_holds_its_targets_property() {
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, target) in keyturn::fuzzing::TARGETS {
        for dir in ["corpus", "artifacts"] {
            for path in files(&fuzz_dir().join(dir).join(name)) {
                let Ok(data) = std::fs::read(&path) else { continue };
                replayed += 1;
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failures.push(path.display().to_string());
                }
            }
        }
    }
    eprintln!("replayed {replayed} kept fuzz inputs");
    let committed: usize = KEPT.iter().map(|(_, n)| n).sum();
    assert!(replayed >= committed, "{replayed} inputs replayed, {committed} committed");
    assert!(failures.is_empty(), "these inputs break their target's property: {failures:#?}");
}
