//! `framepipe caption`: captions added to (or refreshed on) finished outputs, from their clip
//! files, for when the server was not up during `run` or a new prompt or model is wanted.
//!
//! Every clip with a file is taken whose record has no caption made with the current settings
//! (all of them with `refresh`); its file is decoded in a pool worker and
//! `caption.frames` frames spread over it are sent, its picture (the report's content
//! rectangle) only. All outputs share one pool, so small outputs keep the server busy too.
//! An output's `clips.jsonl` is rewritten (to a temporary, then renamed) only when all of its
//! clips have their outcome; with `on_error: fail` a failure writes no `clips.jsonl` at all,
//! and the answers already paid for wait in each output's `captions.jsonl`.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ffmpeg_next as ff;

use crate::caption::cache::{CaptionCache, CAPTIONS_FILE};
use crate::caption::images::JpegMaker;
use crate::caption::pool::{CaptionPool, ClipJob, ClipPictures};
use crate::caption::{Captioner, Outcome};
use crate::clips::assemble::{caption_counts, set_caption, write_jsonl_atomically};
use crate::clips::plan::spread;
use crate::error::{Error, Result};
use crate::export::{Output, Skipped};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::normalize::Rect;
use crate::output::clip_record::{CaptionCounts, ClipRecord};

/// What `framepipe caption` did.
#[derive(Debug, Default)]
pub struct CaptionSummary {
    pub outputs: usize,
    /// Clips whose caption was asked for (from the cache or the server).
    pub asked: usize,
    /// Clips left as they were: captioned with these settings before.
    pub current: usize,
    pub counts: CaptionCounts,
    pub skipped: Vec<Skipped>,
    pub seconds: f64,
}

/// A clip file's frames, decoded by a pool worker.
struct ClipFile {
    path: PathBuf,
    /// The clip's frames per its record.
    frames: u64,
    count: u32,
    picture: Option<Rect>,
}

impl ClipPictures for ClipFile {
    fn jpegs(&self, maker: &mut JpegMaker, size: u32) -> std::result::Result<Vec<Vec<u8>>, String> {
        let frames =
            decode_spread(&self.path, self.frames, self.count).map_err(|e| e.to_string())?;
        frames
            .iter()
            .map(|f| {
                let picture = self.picture.unwrap_or(Rect {
                    x: 0,
                    y: 0,
                    width: f.width(),
                    height: f.height(),
                });
                maker.jpeg(f, picture, size)
            })
            .collect()
    }
}

/// The frames of `path` at `count` positions spread over its `frames` frames (the file's last
/// frame for a position past its end).
fn decode_spread(path: &Path, frames: u64, count: u32) -> Result<Vec<ff::frame::Video>> {
    let mut input =
        ff::format::input(path).map_err(|e| Error::ffmpeg(path, "opening the clip file", e))?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .map(|s| s.index())
        .ok_or_else(|| Error::input(path, "the clip file has no video stream"))?;
    let mut decoder = VideoDecoder::open(path, &input, stream, 1, 0)?;
    let mut positions = spread(frames.max(1), count);
    positions.dedup();
    let mut picked: Vec<ff::frame::Video> = Vec::new();
    let mut last: Option<ff::frame::Video> = None;
    let done = std::cell::Cell::new(false);
    let mut sink = |f: SourceFrame| -> Result<()> {
        if positions.get(picked.len()) == Some(&f.index) {
            picked.push(f.frame.clone());
            done.set(picked.len() == positions.len());
        }
        last = Some(f.frame);
        Ok(())
    };
    decoder.decode_all(&mut input, &mut sink, &|| done.get())?;
    while picked.len() < positions.len() {
        match &last {
            Some(frame) => picked.push(frame.clone()),
            None => return Err(Error::input(path, "no frame of the clip file decodes")),
        }
    }
    Ok(picked)
}

/// An output being captioned: its records and which pool numbers are its clips.
struct Pending {
    dir: PathBuf,
    records: Vec<ClipRecord>,
    /// (pool number, index in `records`).
    asked: Vec<(u64, usize)>,
}

/// Captions the clips of `outputs` that need one (all with a file when `refresh`).
pub fn caption_outputs(
    captioner: &Arc<Captioner>,
    outputs: Vec<Output>,
    skipped: Vec<Skipped>,
    refresh: bool,
) -> Result<CaptionSummary> {
    let start = std::time::Instant::now();
    let mut summary = CaptionSummary {
        outputs: outputs.len(),
        skipped,
        ..Default::default()
    };
    let mut pool = CaptionPool::start(Arc::clone(captioner));
    let mut pending = Vec::new();
    let mut number = 0u64;
    for output in outputs {
        let cache = Arc::new(CaptionCache::open(&output.dir.join(CAPTIONS_FILE), &[])?);
        let picture = picture_of(&output.dir);
        let mut this = Pending {
            dir: output.dir.clone(),
            records: output.clips.into_iter().map(|c| c.record).collect(),
            asked: Vec::new(),
        };
        for (i, record) in this.records.iter().enumerate() {
            let Some(file) = &record.file else { continue };
            let current = record.caption.is_some()
                && record.caption_settings.as_deref() == Some(captioner.settings_id());
            if current && !refresh {
                summary.current += 1;
                continue;
            }
            let job = ClipJob {
                number,
                name: format!("clip {} ({})", record.id, this.dir.display()),
                cache: Arc::clone(&cache),
                pictures: Box::new(ClipFile {
                    path: this.dir.join(file),
                    frames: record.frames,
                    count: captioner.config.frames,
                    picture,
                }),
            };
            pool.submit(job, &|| false)
                .map_err(|why| Error::input(&this.dir, format!("captioning {why}")))?;
            this.asked.push((number, i));
            number += 1;
        }
        pending.push(this);
    }
    let outcomes = pool.finish().map_err(|why| {
        Error::input(
            Path::new(&captioner.config.endpoint),
            format!("captioning {why}"),
        )
    })?;
    summary.asked = outcomes.len();
    summary.counts = caption_counts(outcomes.iter().map(|(_, o)| o));
    for output in pending {
        write_captions(output, &outcomes)?;
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Sets each asked clip's caption fields and rewrites `clips.jsonl` when any was asked.
fn write_captions(mut output: Pending, outcomes: &[(u64, Outcome)]) -> Result<()> {
    if output.asked.is_empty() {
        return Ok(());
    }
    for &(number, i) in &output.asked {
        let outcome = outcomes
            .binary_search_by_key(&number, |(n, _)| *n)
            .map(|k| &outcomes[k].1)
            .map_err(|_| Error::input(&output.dir, "a clip's caption outcome is missing"))?;
        set_caption(&mut output.records[i], Some(outcome));
    }
    write_jsonl_atomically(&output.dir, &output.records)
}

/// The picture's place on the canvas, from the output's report (the whole frame without one).
fn picture_of(dir: &Path) -> Option<Rect> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).ok()?;
    let report: crate::output::report::Report = serde_json::from_str(&text).ok()?;
    report.output.content
}
