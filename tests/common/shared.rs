//! The one way the tests of both crates reach `../shared` (real media and models that live beside
//! the project's clone on project machines, never in a user's clone): every test that uses it
//! goes through [`shared_dir`], so `FRAMEPIPE_SHARED=none` shows what a user's clone runs, and
//! `tests/shared_helper.rs` checks that no test reads the folder another way.
//!
//! `FRAMEPIPE_SHARED`: unset = `../shared` beside the workspace root when it is there; `none` =
//! absent; any other value = that folder.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The workspace root: the nearest folder above this crate holding `Cargo.lock`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .unwrap_or(manifest)
        .to_path_buf()
}

/// The shared folder, or `None` (with a SKIP line naming why) when it is hidden or absent.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = match std::env::var_os("FRAMEPIPE_SHARED") {
        Some(v) if v == "none" => {
            eprintln!("SKIP: FRAMEPIPE_SHARED=none hides the shared folder");
            return None;
        }
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => workspace_root().join("../shared"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIP: {} is absent (the shared folder is only on project machines)",
            dir.display()
        );
        None
    }
}

/// `<shared>/<relative>` when it exists; `None` (with a SKIP line) otherwise.
pub fn shared_path(relative: &str) -> Option<PathBuf> {
    let path = shared_dir()?.join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("SKIP: {} is absent", path.display());
        None
    }
}

/// A real video of the shared folder's `media/`.
pub fn shared_media(name: &str) -> Option<PathBuf> {
    shared_path(&format!("media/{name}"))
}

/// A real model folder of the shared folder's `models/` (taef2, the CLIP tokenizer).
pub fn shared_model(name: &str) -> Option<PathBuf> {
    shared_path(&format!("models/{name}"))
}
