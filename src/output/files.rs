//! The names of what an output folder `OUT/<stem>/` holds, and the marker that says it is
//! finished. Writers and readers (search, export, report page, batch) take them from here.
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Written last into a finished output folder: what made it (config hash, tool version), so
/// reruns can skip it or see that it is stale. A folder without it is not an output.
pub const DONE_MARKER: &str = ".framepipe-done.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Marker {
    pub input: String,
    pub config_hash: String,
    pub tool_version: String,
    pub frames: u64,
    pub wall_seconds: f64,
}

/// `OUT/a/b.partial` for `OUT/a/b`.
pub fn partial_path(final_dir: &Path) -> PathBuf {
    let mut name = final_dir.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    final_dir.with_file_name(name)
}

/// CLIP image embeddings of the sampled frames, next to the report.
pub const EMBEDDINGS_FILE: &str = "embeddings.safetensors";

/// TransNetV2's per-frame probabilities (`shots` runs).
pub const TRANSITIONS_FILE: &str = "transitions.safetensors";

/// The per-frame reconstruction PSNRs in an output folder.
pub const RECONSTRUCTION_FILE: &str = "reconstruction.safetensors";

/// The folder holding the scenes' thumbnails (`scenes.thumbnails`).
pub const THUMBS_DIR: &str = "thumbs";

/// The clips file inside a finished output folder.
pub const CLIPS_FILE: &str = "clips.jsonl";

/// Clip files inside a finished output folder (`clips/<id>.mp4`).
pub const CLIPS_DIR: &str = "clips";
