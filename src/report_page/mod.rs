//! `framepipe report OUTDIR... -o DIR` (and `run`/`batch --report`): one self-contained HTML page
//! over finished outputs, to look at what a run made without any tool but a browser.
//!
//! This module finds the outputs (folders holding the done marker; unfinished `.partial`
//! folders are listed as skipped), reads each one's typed report, `clips.jsonl` and TransNetV2
//! probabilities, has [`thumbnails`] decode a few frames per scene from the output's own encoded
//! video (never the source), and hands everything to [`html`]. Links are relative paths from
//! `DIR` to the outputs, so the page works offline and wherever `DIR` is, and nothing big is
//! copied: only the thumbnails are written next to `index.html`.
pub mod frame_picker;
pub mod html;
pub mod thumbnails;

use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::clip_record::ClipRecord;
use crate::output::files::CLIPS_FILE;
use crate::output::files::{DONE_MARKER, THUMBS_DIR};
use crate::output::report::Report;

/// What the page shows of one finished output.
pub struct Entry {
    /// The output folder as found.
    pub dir: PathBuf,
    /// A name unique within the page (the folder's path below the root it was found under).
    pub name: String,
    /// The output folder relative to the page's folder (for links).
    pub link: PathBuf,
    pub report: Report,
    /// `clips.jsonl`, when the output has one.
    pub clips: Option<Vec<ClipRecord>>,
    /// TransNetV2's single-frame probabilities: (source frame index, probability).
    pub transitions: Option<Vec<(i64, f32)>>,
    /// Per scene, the first, middle and last frame's JPEG (relative to the page's folder), when
    /// the output has a readable video.
    pub thumbnails: Vec<Option<[PathBuf; 3]>>,
    /// Why the scenes have no thumbnails or something else is missing (no video, video file
    /// missing, unreadable clips file, ...).
    pub notes: Vec<String>,
}

/// A folder under the inputs that is not reported, and why.
pub struct Skipped {
    pub dir: PathBuf,
    pub reason: String,
}

/// Everything the page shows.
pub struct Page {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

/// What writing the page did.
#[derive(Debug, serde::Serialize)]
pub struct Written {
    pub index: PathBuf,
    pub outputs: usize,
    pub scenes: usize,
    pub thumbnails: usize,
    pub skipped: usize,
}

/// Writes `out/index.html` (and its thumbnails) for the finished outputs found under `roots`.
/// No finished output at all is an input error (exit 1); an output that cannot be read, or
/// whose video is missing, is named on the page and the rest are reported.
pub fn write(roots: &[PathBuf], out: &Path) -> Result<Written> {
    let mut found = Vec::new();
    let mut skipped = Vec::new();
    for root in roots {
        if !root.is_dir() {
            return Err(Error::input(root, "not a folder"));
        }
        walk(root, root, &mut found, &mut skipped);
    }
    if found.is_empty() {
        let names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        return Err(Error::input(
            names.join(", "),
            format!(
                "no finished framepipe output (a folder holding {DONE_MARKER}) under it{}",
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(" ({} unfinished or unreadable)", skipped.len())
                }
            ),
        ));
    }
    write_outputs(found, skipped, out)
}

/// Writes the page for output folders already known (what `run`/`batch --report` just made).
pub fn write_for(outputs: &[PathBuf], out: &Path) -> Result<Written> {
    let found = outputs
        .iter()
        .map(|dir| {
            let name = dir.file_name().unwrap_or_default().to_string_lossy().into();
            (dir.clone(), name)
        })
        .collect();
    write_outputs(found, Vec::new(), out)
}

fn write_outputs(
    mut found: Vec<(PathBuf, String)>,
    mut skipped: Vec<Skipped>,
    out: &Path,
) -> Result<Written> {
    found.sort();
    found.dedup();
    disambiguate(&mut found);
    std::fs::create_dir_all(out.join(THUMBS_DIR))
        .map_err(|e| Error::io(out, "creating the report folder", e))?;
    let page_dir =
        std::fs::canonicalize(out).map_err(|e| Error::io(out, "resolving the report folder", e))?;

    let mut entries = Vec::new();
    for (dir, name) in found {
        let report_file = crate::search::corpus::report_path(&dir);
        let report = match Report::read(&report_file) {
            Ok(r) => r,
            Err(e) => {
                skipped.push(Skipped {
                    dir,
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let link = std::fs::canonicalize(&dir)
            .map(|abs| relative(&abs, &page_dir))
            .unwrap_or_else(|_| dir.clone());
        let mut notes = Vec::new();
        let clips = read_clips(&dir, &mut notes);
        let transitions =
            report
                .transitions
                .as_ref()
                .and_then(|t| match read_transitions(&dir.join(&t.file)) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        notes.push(format!("{}: {e}", t.file));
                        None
                    }
                });
        entries.push(Entry {
            dir,
            name,
            link,
            thumbnails: vec![None; report.scenes.len()],
            report,
            clips,
            transitions,
            notes,
        });
    }

    let thumbnails = thumbnails::make_all(&mut entries, out, Path::new(THUMBS_DIR));
    let page = Page { entries, skipped };
    let index = out.join("index.html");
    std::fs::write(&index, html::render(&page))
        .map_err(|e| Error::io(&index, "writing the report page", e))?;
    Ok(Written {
        index,
        outputs: page.entries.len(),
        scenes: page.entries.iter().map(|e| e.report.scenes.len()).sum(),
        thumbnails,
        skipped: page.skipped.len(),
    })
}

/// Finished outputs (folders holding the done marker) and unfinished ones (`.partial`) under
/// `dir`, named by their path below `root`.
fn walk(root: &Path, dir: &Path, found: &mut Vec<(PathBuf, String)>, skipped: &mut Vec<Skipped>) {
    if dir.join(DONE_MARKER).is_file() {
        let below = dir.strip_prefix(root).unwrap_or(dir);
        let name = if below.as_os_str().is_empty() {
            dir.file_name().unwrap_or_default().to_string_lossy().into()
        } else {
            below.to_string_lossy().into_owned()
        };
        found.push((dir.to_path_buf(), name));
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for path in dirs {
        if path.extension().is_some_and(|e| e == "partial") {
            skipped.push(Skipped {
                dir: path,
                reason: "unfinished (still running, or its run failed)".into(),
            });
        } else {
            walk(root, &path, found, skipped);
        }
    }
}

/// Names made unique (two roots may each hold an `a/`): later ones get `#2`, `#3`, ...
fn disambiguate(found: &mut [(PathBuf, String)]) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for (_, name) in found.iter_mut() {
        let n = seen.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            name.push_str(&format!(" #{n}"));
        }
    }
}

fn read_clips(dir: &Path, notes: &mut Vec<String>) -> Option<Vec<ClipRecord>> {
    let path = dir.join(CLIPS_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let mut clips = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<ClipRecord>(line) {
            Ok(c) => clips.push(c),
            Err(e) => {
                notes.push(format!("{CLIPS_FILE} line {}: {e}", n + 1));
                return None;
            }
        }
    }
    Some(clips)
}

/// `single` (f16) against `frame_index` (i64) of a `transitions.safetensors`.
pub fn read_transitions(path: &Path) -> std::result::Result<Vec<(i64, f32)>, String> {
    use safetensors::{Dtype, SafeTensors};
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| e.to_string())?;
    let single = st
        .tensor(crate::output::tensors::SINGLE)
        .map_err(|e| format!("single: {e}"))?;
    let index = st
        .tensor(crate::output::tensors::FRAME_INDEX)
        .map_err(|e| format!("frame_index: {e}"))?;
    if single.dtype() != Dtype::F16 || index.dtype() != Dtype::I64 {
        return Err(format!(
            "expected single f16 and frame_index i64, found {:?} and {:?}",
            single.dtype(),
            index.dtype()
        ));
    }
    let p = single
        .data()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32());
    let i = index
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")));
    if single.shape() != index.shape() {
        return Err(format!(
            "single {:?} and frame_index {:?} differ in shape",
            single.shape(),
            index.shape()
        ));
    }
    Ok(i.zip(p).collect())
}

/// `target` relative to `base` (both absolute): `../../out/a` and the like.
pub fn relative(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<Component> = target.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut rel = PathBuf::new();
    for _ in common..b.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c.as_os_str());
    }
    if rel.as_os_str().is_empty() {
        rel.push(".");
    }
    rel
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_folder() {
        assert_eq!(
            relative(Path::new("/a/out/x"), Path::new("/a/page")),
            PathBuf::from("../out/x")
        );
        assert_eq!(
            relative(Path::new("/a/page/x"), Path::new("/a/page")),
            PathBuf::from("x")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/a")),
            PathBuf::from(".")
        );
    }
}
