//! The folder an input is written into, `OUT/<stem>.partial/`: removed if the job fails, renamed
//! into place only when everything in it is written.
//!
//! One file outlives a failed or killed job: the caption cache ([`CAPTIONS_FILE`]), which holds
//! answers already paid for. A failed job leaves the folder with only that file in it (nothing
//! that looks finished), and the next job of the same output starts from it.
use std::path::{Path, PathBuf};

use crate::caption::cache::CAPTIONS_FILE;
use crate::error::{Error, Result};

/// `OUT/<stem>.partial/`: removed on drop unless committed (renamed to its final name).
pub struct PartialDir {
    pub path: PathBuf,
    committed: bool,
}

impl PartialDir {
    /// A fresh partial folder; a stale one's files are removed, its caption cache kept.
    pub fn create(path: PathBuf) -> Result<PartialDir> {
        if path.exists() {
            clear_keeping_captions(&path)
                .map_err(|e| Error::io(&path, "removing a stale partial output", e))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(&path, "creating the output folder", e))?;
        Ok(PartialDir {
            path,
            committed: false,
        })
    }

    /// The caption cache inside this folder.
    pub fn captions_file(&self) -> PathBuf {
        self.path.join(CAPTIONS_FILE)
    }

    /// Replaces `final_dir` (if a previous run left one) with this folder.
    pub fn commit(mut self, final_dir: &Path) -> Result<()> {
        let old = PathBuf::from(format!(
            "{}.old-{}",
            final_dir.display(),
            std::process::id()
        ));
        let had_old = final_dir.exists();
        if had_old {
            std::fs::rename(final_dir, &old)
                .map_err(|e| Error::io(final_dir, "moving the previous output aside", e))?;
        }
        std::fs::rename(&self.path, final_dir)
            .map_err(|e| Error::io(final_dir, "renaming the finished output into place", e))?;
        self.committed = true;
        if had_old {
            let _ = std::fs::remove_dir_all(&old);
        }
        Ok(())
    }
}

impl Drop for PartialDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = clear_keeping_captions(&self.path);
        }
    }
}

/// Removes everything in `dir` except a non-empty caption cache; removes `dir` too when that
/// leaves it empty.
fn clear_keeping_captions(dir: &Path) -> std::io::Result<()> {
    let mut kept = false;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let is_cache = entry.file_name() == CAPTIONS_FILE
            && entry.metadata().is_ok_and(|m| m.is_file() && m.len() > 0);
        if is_cache {
            kept = true;
        } else if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    if !kept {
        std::fs::remove_dir(dir)?;
    }
    Ok(())
}
