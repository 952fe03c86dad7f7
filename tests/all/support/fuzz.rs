//! The saved inputs of a cargo-fuzz target, for the regression tests that replay them without
//! cargo-fuzz: `fuzz/regressions/<target>/` (inputs that once crashed or hung it) and
//! `fuzz/seeds/<target>/` (a sample of its corpus).

use std::path::PathBuf;

/// Every saved input of `target`, sorted by path (READMEs and dot files skipped).
pub fn saved_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out: Vec<(PathBuf, Vec<u8>)> = ["regressions", "seeds"]
        .iter()
        .flat_map(|kind| {
            let dir = root.join(kind).join(target);
            std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        })
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".md")
        })
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    out.sort();
    out
}

/// Runs `check` on every saved input of `target`, naming each first (a panic then says which).
pub fn replay(target: &str, min: usize, mut check: impl FnMut(&[u8])) {
    let inputs = saved_inputs(target);
    assert!(inputs.len() >= min, "the {target} fuzz seeds are missing");
    for (path, input) in &inputs {
        println!("replaying {}", path.display());
        check(input);
    }
}
