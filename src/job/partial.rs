//! The folder an input is written into, `OUT/<stem>.partial/`: removed if the job fails, renamed
//! into place only when everything in it is written.
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `OUT/<stem>.partial/`: removed on drop unless committed (renamed to its final name).
pub struct PartialDir {
    pub path: PathBuf,
    committed: bool,
}

impl PartialDir {
    pub fn create(path: PathBuf) -> Result<PartialDir> {
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| Error::io(&path, "removing a stale partial output", e))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::io(&path, "creating the output folder", e))?;
        Ok(PartialDir {
            path,
            committed: false,
        })
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
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
