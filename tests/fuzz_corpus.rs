//! Replays the fuzz corpus and every input that ever crashed a fuzz target
//! (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`) through the same
//! entry points the fuzzers drive (src/fuzzing.rs). CI does not fuzz; this
//! keeps what fuzzing found from coming back.

use std::path::Path;

#[test]
fn every_kept_input_parses_or_is_refused_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut replayed = 0;
    let mut failures = Vec::new();
    for (name, target) in keyturn::fuzzing::TARGETS {
        for dir in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(data) = std::fs::read(&path) else { continue };
                replayed += 1;
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failures.push(path.display().to_string());
                }
            }
        }
    }
    eprintln!("replayed {replayed} kept fuzz inputs");
    assert!(replayed >= 7, "the seed corpus is there ({replayed} inputs)");
    assert!(failures.is_empty(), "these inputs panic: {failures:#?}");
}
