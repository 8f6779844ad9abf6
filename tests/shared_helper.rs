//! A user's clone has no `../shared`: the tests reach it only through `tests/common/shared.rs`
//! (which honours `FRAMEPIPE_SHARED=none`), so hiding it shows what a user's clone runs.
//! This test fails when a test of either crate builds a path into the shared folder itself.
mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Lines of code (not comments) that name the shared folder in a string literal.
fn direct_uses(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.trim_start();
            !code.starts_with("//")
                && [
                    "\"../shared",
                    "../shared/",
                    "/shared/media",
                    "/shared/models",
                ]
                .iter()
                .any(|needle| code.contains(needle))
        })
        .map(|(n, line)| (n + 1, line.trim().to_string()))
        .collect()
}

#[test]
fn detects_direct_paths() {
    assert_eq!(
        direct_uses("// ../shared/media in a comment\nlet p = root.join(\"../shared/media\");\n")
            .len(),
        1
    );
    assert!(direct_uses("let v = shared_media(\"bikes.mp4\");").is_empty());
}

#[test]
fn tests_reach_the_shared_folder_only_through_the_helper() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("tests"), &mut files);
    rust_files(&root.join("crates/framepipe-torch/tests"), &mut files);
    rust_files(&root.join("benches"), &mut files);
    let helper = root.join("tests/common/shared.rs");
    let this = root.join("tests/shared_helper.rs");
    let offenders: Vec<String> = files
        .iter()
        .filter(|f| **f != helper && **f != this)
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            direct_uses(&text)
                .into_iter()
                .map(move |(n, line)| format!("{}:{n}: {line}", f.display()))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "use tests/common/shared.rs (shared_dir/shared_media/shared_model) instead:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn framepipe_shared_none_hides_the_folder() {
    // Only this process's environment changes; the helper reads it on every call.
    std::env::set_var("FRAMEPIPE_SHARED", "none");
    assert_eq!(shared_dir(), None);
    assert_eq!(shared_media("bikes.mp4"), None);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("media")).unwrap();
    std::fs::write(dir.path().join("media/x.mp4"), b"").unwrap();
    std::env::set_var("FRAMEPIPE_SHARED", dir.path());
    assert_eq!(shared_media("x.mp4"), Some(dir.path().join("media/x.mp4")));
    assert_eq!(shared_media("y.mp4"), None);
}
