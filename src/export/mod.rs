//! `framepipe export`: finished outputs' clips (`clips.jsonl`, the clip MP4s, embeddings,
//! latents) packed into training shards, WebDataset tars ([`webdataset`]) or Parquet tables
//! ([`parquet`]).
//!
//! This module finds the output folders, reads and checks everything before a byte is written
//! (records, keys, clip files, embedding sizes), orders the clips (folders by path, clips in
//! file order), cuts them into shards and commits the shards: each is written to a hidden
//! temporary in the target folder, and only when all are complete are they renamed into place
//! and the stale shards of an earlier, larger export of the same format removed. A failure
//! removes the temporaries and leaves the folder as it was.
pub mod card;
pub mod error;
pub mod features;
pub mod latents;
pub mod npy;
pub mod parquet;
pub mod webdataset;

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

pub use error::ExportError;

use crate::output::clip_record::ClipRecord;
use crate::output::files::CLIPS_FILE;
use crate::output::files::{Marker, DONE_MARKER};

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `shard-NNNNNN.tar`: per clip `<key>.mp4`, `<key>.json`, `<key>.npy`, `<key>.latents.npy`.
    Webdataset,
    /// `clips-NNNNN.parquet`: one row per clip, typed columns, no video bytes.
    Parquet,
}

impl Format {
    /// The shard's file name (also what makes an older shard of this format recognizable).
    fn shard_name(self, index: usize) -> String {
        match self {
            Format::Webdataset => format!("shard-{index:06}.tar"),
            Format::Parquet => format!("clips-{index:05}.parquet"),
        }
    }

    /// True for `name` as [`Format::shard_name`] makes them, whatever the index.
    fn is_shard_name(self, name: &str) -> bool {
        let (prefix, digits, suffix) = match self {
            Format::Webdataset => ("shard-", 6, ".tar"),
            Format::Parquet => ("clips-", 5, ".parquet"),
        };
        name.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|n| n.len() >= digits && n.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// What to export, and where.
pub struct ExportRequest<'a> {
    /// Output folders, or roots searched recursively for them.
    pub dirs: &'a [PathBuf],
    pub out: &'a Path,
    pub format: Format,
    /// At least 1.
    pub clips_per_shard: usize,
    /// Also the clips `clips.filters` dropped (by default only kept clips are exported).
    pub include_dropped: bool,
    /// A `duplicates.jsonl`: the non-kept members of its groups are left out.
    pub dedup: Option<&'a Path>,
}

/// One clip of a finished output, as it goes into a shard.
#[derive(Debug)]
pub struct Clip {
    /// The clip id made safe as a WebDataset key (see [`key`]).
    pub key: String,
    pub record: ClipRecord,
    /// Its line in `clips.jsonl` (from 1), for messages.
    pub line: usize,
}

/// A finished output folder that takes part.
#[derive(Debug)]
pub struct Output {
    pub dir: PathBuf,
    pub marker: Marker,
    pub clips: Vec<Clip>,
}

/// A clip with the output it belongs to: what the format writers get.
#[derive(Clone, Copy)]
pub struct ClipRef<'a> {
    pub output: &'a Output,
    pub clip: &'a Clip,
}

/// What an export did.
#[derive(Debug)]
pub struct Summary {
    pub outputs: usize,
    pub clips: usize,
    pub shards: usize,
    pub bytes: u64,
    pub seconds: f64,
    /// Folders left out (also logged as warnings).
    pub skipped: Vec<Skipped>,
}

/// A folder left out of the export, and why.
#[derive(Debug)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

/// Runs an export: everything is read and checked first, then the shards are written and
/// committed together.
pub fn export(request: &ExportRequest) -> Result<Summary, ExportError> {
    let start = Instant::now();
    if request.clips_per_shard == 0 {
        return Err(ExportError::Usage(
            "--clips-per-shard must be at least 1".into(),
        ));
    }
    let left_out = match request.dedup {
        Some(path) => crate::dedup::groups::left_out(path)?,
        None => Default::default(),
    };
    let (outputs, skipped) = collect(request.dirs)?;
    let clips: Vec<ClipRef> = outputs
        .iter()
        .flat_map(|output| {
            output
                .clips
                .iter()
                .filter(|clip| request.include_dropped || clip.record.kept())
                .filter(|clip| !left_out.contains(&clip.record.id))
                .map(move |clip| ClipRef { output, clip })
        })
        .collect();
    if clips.is_empty() {
        return Err(nothing_to_export(request, &outputs));
    }
    check_keys(&clips)?;
    check_clip_files(&clips)?;
    let parquet_layout = match request.format {
        Format::Parquet => Some(parquet::Layout::of(&clips)?),
        Format::Webdataset => {
            webdataset::check_latents(&outputs)?;
            None
        }
    };
    std::fs::create_dir_all(request.out).map_err(|e| {
        ExportError::Usage(format!(
            "{}: cannot create the export folder: {e}",
            request.out.display()
        ))
    })?;
    let members = match request.format {
        Format::Webdataset => webdataset::Members::of(&clips)?,
        Format::Parquet => Default::default(),
    };
    let mut staged = Staged::new(request.out, request.format);
    for (index, shard) in clips.chunks(request.clips_per_shard).enumerate() {
        let tmp = staged.add(index);
        match &parquet_layout {
            Some(layout) => parquet::write_shard(&tmp, layout, shard)?,
            None => webdataset::write_shard(&tmp, shard, members)?,
        }
    }
    describe(
        &mut staged,
        request,
        (&outputs, &clips),
        parquet_layout.as_ref(),
        (&members, &left_out),
    )?;
    let bytes = staged.bytes()?;
    let shards = staged.commit()?;
    Ok(Summary {
        outputs: outputs.len(),
        clips: clips.len(),
        shards,
        bytes,
        seconds: start.elapsed().as_secs_f64(),
        skipped,
    })
}

/// Writes the dataset card and `schema.json` beside the shards (committed with them).
fn describe(
    staged: &mut Staged,
    request: &ExportRequest,
    (outputs, clips): (&[Output], &[ClipRef]),
    parquet_layout: Option<&parquet::Layout>,
    (members, left_out): (&webdataset::Members, &std::collections::HashSet<String>),
) -> Result<(), ExportError> {
    let columns = match parquet_layout {
        Some(layout) => layout.columns(),
        None => card::webdataset_members(),
    };
    let described = card::Described {
        format: request.format,
        outputs,
        clips,
        shards: staged.shards.len(),
        columns: &columns,
        include_dropped: request.include_dropped,
        deduplicated: deduplicated(outputs, left_out),
        dataset_info: (request.format == Format::Webdataset)
            .then(|| features::webdataset_yaml(clips, members)),
    };
    staged.add_file(card::SCHEMA_FILE, described.schema_json())?;
    staged.add_file(card::CARD_FILE, described.card())?;
    Ok(())
}

/// Why an export found nothing to write: no finished output with clips, or only dropped clips.
fn nothing_to_export(request: &ExportRequest, outputs: &[Output]) -> ExportError {
    let given = join_paths(request.dirs);
    ExportError::Usage(if outputs.is_empty() {
        format!("no finished output with clips under {given}")
    } else {
        let dropped = outputs
            .iter()
            .flat_map(|o| &o.clips)
            .filter(|c| !c.record.kept())
            .count();
        format!(
            "the finished outputs under {given} ({}) have no {}clips{}",
            outputs.len(),
            if request.include_dropped { "" } else { "kept " },
            match dropped {
                0 => String::new(),
                n => format!(" ({n} dropped by clips.filters; --include-dropped exports them)"),
            }
        )
    })
}

/// The clips of `outputs` a `duplicates.jsonl` left out.
fn deduplicated(outputs: &[Output], left_out: &std::collections::HashSet<String>) -> usize {
    outputs
        .iter()
        .flat_map(|o| &o.clips)
        .filter(|c| left_out.contains(&c.record.id))
        .count()
}

/// The finished outputs under `dirs` (sorted by path, each once) and the folders left out.
pub(crate) fn collect(dirs: &[PathBuf]) -> Result<(Vec<Output>, Vec<Skipped>), ExportError> {
    let mut found = Vec::new();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(ExportError::input(dir, "not a folder"));
        }
        find_candidates(dir, &mut found);
    }
    found.sort();
    // The same folder reached through two arguments (a root and one of its outputs) counts once.
    let mut seen = std::collections::HashSet::new();
    found.retain(|dir| seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone())));
    let mut outputs = Vec::new();
    let mut skipped = Vec::new();
    for dir in found {
        match read_output(&dir)? {
            Ok(output) => outputs.push(output),
            Err(reason) => {
                tracing::warn!(output = %dir.display(), "skipped {}: {reason}", dir.display());
                skipped.push(Skipped { path: dir, reason });
            }
        }
    }
    Ok((outputs, skipped))
}

/// Folders under `dir` (itself included) that hold `clips.jsonl` or a done marker; their own
/// subfolders (`clips/`, `latents/`) are not searched.
fn find_candidates(dir: &Path, found: &mut Vec<PathBuf>) {
    if dir.join(CLIPS_FILE).is_file() || dir.join(DONE_MARKER).is_file() {
        found.push(dir.to_path_buf());
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            find_candidates(&entry.path(), found);
        }
    }
}

/// The output in `dir`; `Ok(Err(reason))` when it is to be skipped (unfinished, no clips
/// section), `Err` when it looks finished but cannot be read.
fn read_output(dir: &Path) -> Result<Result<Output, String>, ExportError> {
    let marker_path = dir.join(DONE_MARKER);
    if !marker_path.is_file() {
        return Ok(Err(format!(
            "unfinished (no {DONE_MARKER}: still running, or the run stopped)"
        )));
    }
    if moved_aside(dir) {
        return Ok(Err(
            "a previous output that an interrupted rerun moved aside".into(),
        ));
    }
    let clips_path = dir.join(CLIPS_FILE);
    if !clips_path.is_file() {
        return Ok(Err(format!(
            "no {CLIPS_FILE}: the pipeline had no clips section"
        )));
    }
    let marker: Marker = std::fs::read(&marker_path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| e.to_string()))
        .map_err(|e| ExportError::input(&marker_path, format!("unreadable done marker: {e}")))?;
    let text = std::fs::read_to_string(&clips_path)
        .map_err(|e| ExportError::input(&clips_path, e.to_string()))?;
    let mut clips = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record = parse_record(line).map_err(|message| {
            ExportError::input(&clips_path, format!("line {}: {message}", i + 1))
        })?;
        clips.push(Clip {
            key: key(&record.id),
            record,
            line: i + 1,
        });
    }
    Ok(Ok(Output {
        dir: dir.to_path_buf(),
        marker,
        clips,
    }))
}

/// One line of `clips.jsonl`; the error names the field (`frames: invalid type: ...`). One
/// pass of serde_path_to_error: the file is written by `run`, so `strict_json`'s extra check for
/// hand-written files (an array where an object belongs), which parses twice more, is left out;
/// with 512-d embeddings it was most of the export's own time.
fn parse_record(line: &str) -> Result<ClipRecord, String> {
    let mut de = serde_json::Deserializer::from_str(line);
    let record: ClipRecord = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        // serde_json counts lines within the one line it was given.
        let inner = e
            .inner()
            .to_string()
            .replace(" at line 1 column ", " at column ");
        match e.path().to_string().as_str() {
            "" | "." => format!("the record: {inner}"),
            path => format!("{path}: {inner}"),
        }
    })?;
    de.end().map_err(|e| format!("after the record: {e}"))?;
    Ok(record)
}

/// `OUT/<stem>.old-<pid>`: what `job.rs` moves a finished output to while a rerun's result is
/// renamed into place; left behind only when the process died between the two renames.
fn moved_aside(dir: &Path) -> bool {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    name.rsplit_once(".old-")
        .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// The clip id as a WebDataset key: WebDataset splits a member's name at the first '.' of its
/// base name (the key before, the extension after) and keys may not hold a folder, so '.' and
/// '/' become '_'.
pub fn key(id: &str) -> String {
    id.replace(['.', '/'], "_")
}

/// Two clips with one key would be one sample: refused, naming both folders.
fn check_keys(clips: &[ClipRef]) -> Result<(), ExportError> {
    let mut seen: HashMap<&str, ClipRef> = HashMap::new();
    for &c in clips {
        if c.clip.key.is_empty() {
            return Err(ExportError::input(
                c.output.dir.join(CLIPS_FILE),
                format!("line {}: the clip id is empty", c.clip.line),
            ));
        }
        if let Some(first) = seen.insert(&c.clip.key, c) {
            return Err(ExportError::Usage(format!(
                "key {}: clip {} of {} and clip {} of {} have the same key ('.' and '/' in ids become '_')",
                c.clip.key,
                first.clip.record.id,
                first.output.dir.display(),
                c.clip.record.id,
                c.output.dir.display()
            )));
        }
    }
    Ok(())
}

/// Every clip MP4 a record names exists (both formats: Parquet stores the path).
fn check_clip_files(clips: &[ClipRef]) -> Result<(), ExportError> {
    for c in clips {
        if let Some(file) = &c.clip.record.file {
            let path = inside(&c.output.dir, file, &c.clip.record.id, "clip file")?;
            if !path.is_file() {
                return Err(ExportError::input(
                    &path,
                    format!(
                        "clip {} ({} line {}): the clip file is missing",
                        c.clip.record.id,
                        c.output.dir.join(CLIPS_FILE).display(),
                        c.clip.line
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `dir/relative`, refusing a path that would leave the output folder.
pub(crate) fn inside(
    dir: &Path,
    relative: &str,
    clip: &str,
    what: &str,
) -> Result<PathBuf, ExportError> {
    let path = Path::new(relative);
    if path
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ExportError::input(
            dir.join(CLIPS_FILE),
            format!("clip {clip}: {what} {relative:?} is not a path inside the output folder"),
        ));
    }
    Ok(dir.join(path))
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shards of this export, written under temporary names until [`Staged::commit`]; dropped
/// uncommitted (an error), it removes them.
struct Staged<'a> {
    dir: &'a Path,
    format: Format,
    /// (temporary, final) per shard.
    shards: Vec<(PathBuf, PathBuf)>,
    /// (temporary, final) of the card and the schema, committed with the shards.
    files: Vec<(PathBuf, PathBuf)>,
    committed: bool,
}

impl<'a> Staged<'a> {
    fn new(dir: &'a Path, format: Format) -> Self {
        Staged {
            dir,
            format,
            shards: Vec::new(),
            files: Vec::new(),
            committed: false,
        }
    }

    /// Writes `text` as `name` beside the shards, committed with them.
    fn add_file(&mut self, name: &str, text: String) -> Result<(), ExportError> {
        let tmp = self.dir.join(temporary_name(name));
        std::fs::write(&tmp, text).map_err(|e| ExportError::write(&tmp, "writing", e))?;
        self.files.push((tmp, self.dir.join(name)));
        Ok(())
    }

    /// Registers shard `index`; returns where to write it.
    fn add(&mut self, index: usize) -> PathBuf {
        let name = self.format.shard_name(index);
        let tmp = self.dir.join(temporary_name(&name));
        self.shards.push((tmp.clone(), self.dir.join(name)));
        tmp
    }

    fn bytes(&self) -> Result<u64, ExportError> {
        self.shards.iter().try_fold(0, |sum, (tmp, _)| {
            std::fs::metadata(tmp)
                .map(|m| sum + m.len())
                .map_err(|e| ExportError::write(tmp, "reading the written shard", e))
        })
    }

    /// Renames every shard into place, then removes the shards (and leftover temporaries) of
    /// this format that this export did not write. Returns the number of shards.
    fn commit(mut self) -> Result<usize, ExportError> {
        for (tmp, path) in self.shards.iter().chain(&self.files) {
            std::fs::rename(tmp, path)
                .map_err(|e| ExportError::write(path, "renaming the shard into place", e))?;
        }
        self.committed = true;
        let ours: std::collections::HashSet<_> = self.shards.iter().map(|(_, p)| p).collect();
        let entries = std::fs::read_dir(self.dir)
            .map_err(|e| ExportError::write(self.dir, "listing the export folder", e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale_shard = self.format.is_shard_name(&name) && !ours.contains(&path);
            let stale_tmp = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".tmp"))
                .is_some_and(|n| self.format.is_shard_name(n));
            if stale_shard || stale_tmp {
                std::fs::remove_file(&path)
                    .map_err(|e| ExportError::write(&path, "removing a stale shard", e))?;
            }
        }
        Ok(self.shards.len())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.committed {
            for (tmp, _) in self.shards.iter().chain(&self.files) {
                let _ = std::fs::remove_file(tmp);
            }
        }
    }
}

/// `.shard-000000.tar.tmp` for `shard-000000.tar`: hidden, and never a shard name.
fn temporary_name(name: &str) -> String {
    format!(".{name}.tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_no_dot_or_slash() {
        assert_eq!(key("talk.v2_0003"), "talk_v2_0003");
        assert_eq!(key("a/b_0001"), "a_b_0001");
        assert_eq!(key("plain_0000"), "plain_0000");
    }

    #[test]
    fn shard_names_are_recognized() {
        let w = Format::Webdataset;
        assert_eq!(w.shard_name(7), "shard-000007.tar");
        assert!(w.is_shard_name("shard-000007.tar"));
        assert!(w.is_shard_name("shard-1234567.tar"));
        assert!(!w.is_shard_name("shard-7.tar"));
        assert!(!w.is_shard_name("shard-000007.tar.tmp"));
        assert!(!w.is_shard_name("clips-00000.parquet"));
        let p = Format::Parquet;
        assert_eq!(p.shard_name(3), "clips-00003.parquet");
        assert!(p.is_shard_name("clips-00003.parquet"));
        assert!(!p.is_shard_name("shard-000003.tar"));
    }

    #[test]
    fn uncommitted_shards_are_removed_and_committed_ones_replace_stale_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("shard-000005.tar"), "old").unwrap();
        {
            let mut staged = Staged::new(d, Format::Webdataset);
            std::fs::write(staged.add(0), "new").unwrap();
            assert!(d.join(".shard-000000.tar.tmp").is_file());
            // Dropped without commit: an error happened.
        }
        assert_eq!(names(d), ["shard-000005.tar"]);
        let mut staged = Staged::new(d, Format::Webdataset);
        std::fs::write(staged.add(0), "new").unwrap();
        assert_eq!(staged.bytes().unwrap(), 3);
        assert_eq!(staged.commit().unwrap(), 1);
        assert_eq!(names(d), ["shard-000000.tar"]);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn moved_aside_outputs_are_recognized() {
        assert!(moved_aside(Path::new("out/talk.old-1234")));
        assert!(!moved_aside(Path::new("out/talk.old-")));
        assert!(!moved_aside(Path::new("out/talk.older")));
    }
}
