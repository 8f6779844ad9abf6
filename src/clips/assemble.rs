//! The finished clip list of one input: the planned clips of the final scene list, each with
//! its scores (motion, blank, frozen, text, heads), the reasons `clips.filters` drops it for, its tags
//! and mean embedding, its latent frames and its file (the one the encoder cut, renamed to its
//! id; a dropped clip's file is removed). What this returns is what
//! `clips.jsonl` and the report's `clips` block say. It works on plain descriptions of what the
//! run made (scenes, cut files, shard frame ranges, a tagger): it knows no stage.
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use super::filters::{self, ClipScores, DropReason};
use super::motion::MotionSeries;
use super::plan::{plan_clips, ClipRules, DroppedFrames, PlannedClip};
use crate::caption::Outcome;
use crate::config::ClipsConfig;
use crate::error::{Error, Result};
use crate::media::clip_mux::WrittenClip;
use crate::output::clip_record::{
    CaptionCounts, ClipLatents, ClipRecord, ClipsReport, DroppedSeconds, TextScore,
};
use crate::output::files::{CLIPS_DIR, CLIPS_FILE};
use crate::output::scene::{Scene, Tag};

/// A clip's tags and mean embedding from the embeddings of its frames `Range` (both `None`
/// when no sampled frame lies inside it).
pub type Tagger<'a> = &'a dyn Fn(Range<u64>) -> (Option<Vec<Tag>>, Option<Vec<f32>>);

/// Every `clips.heads` model's score of a clip's embedding, by head name.
pub type HeadScorer<'a> = &'a dyn Fn(&[f32]) -> Result<BTreeMap<String, f64>>;

/// The latent shards a run wrote, as clips name them.
#[derive(Debug, Clone, Copy)]
pub struct LatentShards<'a> {
    /// Shard files, relative to the output folder.
    pub files: &'a [String],
    /// The first and last output frame of each shard in `files`.
    pub shard_frames: &'a [(u64, u64)],
    /// One latent every this many frames.
    pub every_n_frames: u32,
}

/// What a run produced that clips are made from.
pub struct ClipSources<'a> {
    /// The output folder's name: clip ids are `<output_id>_<NNNN>`.
    pub output_id: &'a str,
    pub scenes: &'a [Scene],
    pub rules: ClipRules,
    pub config: &'a ClipsConfig,
    /// The output's nominal frame rate.
    pub fps: f64,
    pub motion: &'a MotionSeries,
    /// Files the encoder cut (`None` without `encode`).
    pub written: Option<&'a [WrittenClip]>,
    /// Tags clips from their frames' image embeddings (tagging runs only).
    pub tagger: Option<Tagger<'a>>,
    /// The burned-in text read from each file of `written`, in its order (`clips.text`).
    pub texts: Option<&'a [TextScore]>,
    /// The caption outcome of each file of `written`, in its order (`caption`).
    pub captions: Option<&'a [Outcome]>,
    /// Scores clips' embeddings with `clips.heads` (when configured).
    pub heads: Option<HeadScorer<'a>>,
    /// The latent shards (vae runs only).
    pub latents: Option<LatentShards<'a>>,
}

/// The clips of an input; renames the cut files in `dir` (the output folder) to their ids and
/// removes the files of clips that were dropped.
pub fn assemble(src: &ClipSources, dir: &Path) -> Result<(Vec<ClipRecord>, ClipsReport)> {
    let (planned, dropped) = plan_clips(src.scenes, &src.rules);
    let mut records = Vec::new();
    let mut filtered = Filtered::default();
    let mut without_file = 0;
    let mut used = vec![false; src.written.map_or(0, |w| w.len())];
    for clip in planned {
        let written = src.written.and_then(|w| {
            w.iter()
                .position(|c| c.start_frame == clip.frames.start && c.end_frame == clip.frames.end)
        });
        let text = written.zip(src.texts).map(|(i, texts)| texts[i].clone());
        let (mut record, reasons) = scored(
            src,
            &clip,
            written.map(|i| &src.written.expect("found in it")[i]),
            text,
        )?;
        record.id = format!("{}_{:04}", src.output_id, records.len());
        // A dropped clip keeps the caption it was given while its file was cut.
        set_caption(&mut record, written.zip(src.captions).map(|(i, c)| &c[i]));
        // A dropped clip's file goes with the unused ones.
        record.file = match written {
            _ if !reasons.is_empty() => None,
            Some(i) => {
                used[i] = true;
                Some(name_file(
                    &src.written.expect("found in it")[i],
                    &record.id,
                    dir,
                )?)
            }
            None => {
                without_file += usize::from(src.written.is_some());
                None
            }
        };
        filtered.count(&reasons, record.frames);
        records.push(record);
    }
    remove_unused(src.written.unwrap_or(&[]), &used)?;
    let summary = summarize(
        &records,
        dropped,
        &filtered,
        without_file,
        (src.fps, src.captions),
    );
    Ok((records, summary))
}

/// A planned clip's record with its scores and the reasons the filters drop it for (its id and
/// file are the caller's); `written`: the file the encoder cut for it, `text`: what was read
/// from that file.
fn scored(
    src: &ClipSources,
    clip: &PlannedClip,
    written: Option<&WrittenClip>,
    text: Option<TextScore>,
) -> Result<(ClipRecord, Vec<DropReason>)> {
    let (start_time, end_time) = match written {
        Some(w) => (w.start_time, w.end_time),
        None => times(clip, src.scenes, src.fps),
    };
    let frames = clip.frames.end - clip.frames.start;
    let (motion, motion_source) = src.motion.score(start_time, end_time);
    let (blank, frozen) = src.motion.looks(start_time, end_time);
    let (tags, embedding) = src
        .tagger
        .map_or((None, None), |tag| tag(clip.frames.clone()));
    let heads = match (src.heads, &embedding) {
        (Some(score), Some(e)) => score(e)?,
        _ => BTreeMap::new(),
    };
    let reasons = filters::judge(
        src.config,
        &ClipScores {
            motion,
            blank,
            frozen,
            text_area: text.as_ref().map(|t| t.area),
            heads: &heads,
        },
    );
    let record = ClipRecord {
        id: String::new(),
        file: None,
        scene: clip.scene,
        start_frame: clip.frames.start,
        end_frame: clip.frames.end,
        start_time,
        end_time,
        frames,
        motion,
        motion_source,
        tags,
        embedding,
        latents: src.latents.map(|l| latents_of(clip, l)),
        blank: Some(blank),
        frozen: Some(frozen),
        phash: src.motion.signature(start_time, end_time),
        text,
        heads,
        dropped: reasons.iter().map(ToString::to_string).collect(),
        caption: None,
        caption_model: None,
        caption_settings: None,
        caption_error: None,
    };
    Ok((record, reasons))
}

/// The clips the filters dropped, by reason.
#[derive(Default)]
struct Filtered {
    clips: usize,
    /// Frames of clips dropped for low motion (the report's `dropped.low_motion`).
    low_motion_frames: u64,
    by_reason: BTreeMap<String, usize>,
}

impl Filtered {
    fn count(&mut self, reasons: &[DropReason], frames: u64) {
        if reasons.is_empty() {
            return;
        }
        self.clips += 1;
        for r in reasons {
            if matches!(r, DropReason::Motion { .. }) {
                self.low_motion_frames += frames;
            }
            *self.by_reason.entry(r.key()).or_default() += 1;
        }
    }
}

/// Renames a cut file to `clips/<id>.mp4`; returns that name.
fn name_file(written: &WrittenClip, id: &str, dir: &Path) -> Result<String> {
    let name = format!("{CLIPS_DIR}/{id}.mp4");
    let to = dir.join(&name);
    std::fs::rename(&written.path, &to)
        .map_err(|e| Error::io(&to, "naming a clip file after its id", e))?;
    Ok(name)
}

/// The shards holding a clip's frames, and how many latents it has.
fn latents_of(clip: &PlannedClip, shards: LatentShards) -> ClipLatents {
    let every = u64::from(shards.every_n_frames.max(1));
    let files = shards
        .files
        .iter()
        .zip(shards.shard_frames)
        .filter(|(_, &(first, last))| first < clip.frames.end && last >= clip.frames.start)
        .map(|(f, _)| f.clone())
        .collect();
    let multiples_below = |n: u64| n.div_ceil(every);
    ClipLatents {
        files,
        frames: multiples_below(clip.frames.end) - multiples_below(clip.frames.start),
    }
}

/// Windows the encoder cut that are no clip of the final list (dropped for motion, or a
/// boundary the final scene list moved) leave no file behind.
fn remove_unused(written: &[WrittenClip], used: &[bool]) -> Result<()> {
    for (w, _) in written.iter().zip(used).filter(|(_, &used)| !used) {
        std::fs::remove_file(&w.path)
            .map_err(|e| Error::io(&w.path, "removing a dropped clip file", e))?;
    }
    Ok(())
}

/// The report's `clips` block.
fn summarize(
    records: &[ClipRecord],
    dropped: DroppedFrames,
    filtered: &Filtered,
    without_file: usize,
    (fps, captions): (f64, Option<&[Outcome]>),
) -> ClipsReport {
    let seconds = |f: u64| f as f64 / fps.max(1e-9);
    let DroppedFrames {
        transitions,
        trims,
        too_short,
        truncated,
    } = dropped;
    let kept = || records.iter().filter(|r| r.kept());
    ClipsReport {
        file: CLIPS_FILE.into(),
        count: kept().count(),
        frames: kept().map(|r| r.frames).sum(),
        seconds: kept().map(|r| r.end_time - r.start_time).sum(),
        dropped: DroppedSeconds {
            transitions: seconds(transitions),
            trims: seconds(trims),
            too_short: seconds(too_short),
            truncated: seconds(truncated),
            low_motion: seconds(filtered.low_motion_frames),
        },
        without_file,
        filtered: filtered.clips,
        filtered_by: filtered.by_reason.clone(),
        captions: captions.map(caption_counts),
    }
}

/// A clip's seconds without a file to take them from: from its scene's start time at the
/// nominal rate.
fn times(clip: &PlannedClip, scenes: &[Scene], fps: f64) -> (f64, f64) {
    let scene = &scenes[clip.scene];
    let at = |f: u64| {
        if f >= scene.end_frame {
            scene.end_time
        } else {
            scene.start_time + (f - scene.start_frame) as f64 / fps.max(1e-9)
        }
    };
    (at(clip.frames.start), at(clip.frames.end))
}

/// Sets a record's caption fields from its caption request's outcome (`None`: none was asked
/// for).
pub fn set_caption(record: &mut ClipRecord, outcome: Option<&Outcome>) {
    (
        record.caption,
        record.caption_model,
        record.caption_settings,
        record.caption_error,
    ) = match outcome {
        Some(Outcome::Captioned { caption, .. }) => (
            Some(caption.caption.clone()),
            Some(caption.model.clone()),
            Some(caption.settings.clone()),
            None,
        ),
        Some(Outcome::Failed { error, .. }) => (None, None, None, Some(error.clone())),
        None => (None, None, None, None),
    };
}

/// The report's account of captions: clips captioned (from the cache too), failed, requests.
pub fn caption_counts<'a>(outcomes: impl IntoIterator<Item = &'a Outcome>) -> CaptionCounts {
    let mut counts = CaptionCounts::default();
    for outcome in outcomes {
        match outcome {
            Outcome::Captioned {
                from_cache,
                attempts,
                ..
            } => {
                counts.captioned += 1;
                counts.from_cache += usize::from(*from_cache);
                counts.requests += u64::from(*attempts);
            }
            Outcome::Failed { attempts, .. } => {
                counts.failed += 1;
                counts.requests += u64::from(*attempts);
            }
        }
    }
    counts
}

/// Writes `clips.jsonl` (one record per line) into `dir`.
pub fn write_jsonl(dir: &Path, records: &[ClipRecord]) -> Result<()> {
    let path = dir.join(CLIPS_FILE);
    let mut text = String::new();
    for r in records {
        text.push_str(&serde_json::to_string(r).expect("a clip record serializes"));
        text.push('\n');
    }
    std::fs::write(&path, text).map_err(|e| Error::io(&path, "writing the clips list", e))
}

/// Rewrites a finished output's `clips.jsonl`: written beside it under a temporary name and
/// renamed over it, so a reader sees the old list or the new one, never half of one.
pub fn write_jsonl_atomically(dir: &Path, records: &[ClipRecord]) -> Result<()> {
    let tmp = dir.join(format!(".{CLIPS_FILE}.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, "making a temporary folder", e))?;
    let written = write_jsonl(&tmp, records).and_then(|()| {
        let path = dir.join(CLIPS_FILE);
        std::fs::rename(tmp.join(CLIPS_FILE), &path)
            .map_err(|e| Error::io(&path, "replacing the clips list", e))
    });
    let _ = std::fs::remove_dir_all(&tmp);
    written
}
