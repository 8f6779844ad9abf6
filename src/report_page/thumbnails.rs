//! Scene thumbnails for the report page: the first, middle and last frame of every scene. An
//! output whose run saved them (`scenes[].thumbnails`, made by
//! [`crate::pipeline::thumbs`]) is only linked to; for older outputs they are decoded from the
//! output's own encoded video (never the source again) and written next to the page by
//! [`crate::media::thumbnail`].
//!
//! Frames are picked by time, as a player shows them: a scene's first frame is the last one
//! starting at or before its `start_time`, the middle one the frame shown at the scene's middle,
//! the last one the last frame starting before `end_time` (a quarter frame of tolerance on each).
//! The video is decoded forward through short scenes (their frames would be decoded after any
//! seek anyway, keyframes being at scene starts at best) and a seek to the keyframe before the
//! next wanted frame skips any stretch longer than
//! [`SEEK_GAP`](super::frame_picker::SEEK_GAP), unless a seek once failed to move forward
//! ([`super::frame_picker`] decides). Outputs are worked on in
//! parallel, one decoder thread each.
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ff::Rescale;
use ffmpeg_next as ff;

use super::frame_picker::{scene_targets, Picker, Step, Target};
use super::Entry;
use crate::error::{Error, Result};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::thumbnail::{size_for, write_jpeg};
use crate::media::{probe, RgbFrames};
use crate::output::scene::Scene;

/// Fills each entry's `thumbnails` (files under `out/thumbs_rel/`, paths relative to `out`), or
/// notes why it has none. Returns how many thumbnails were written.
pub fn make_all(entries: &mut [Entry], out: &Path, thumbs_rel: &Path) -> usize {
    // Outputs whose run made every scene's thumbnails (`scenes[].thumbnails`) only need links.
    let mut linked = 0;
    let mut from_run = vec![false; entries.len()];
    for (i, entry) in entries.iter_mut().enumerate() {
        if let Some(thumbs) = made_by_run(entry) {
            linked += 3 * thumbs.len();
            entry.thumbnails = thumbs.into_iter().map(Some).collect();
            from_run[i] = true;
        }
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let with_video: Vec<usize> = (0..entries.len())
        .filter(|&i| !from_run[i] && video_of(&entries[i], false).is_ok())
        .collect();
    let workers = cores.min(with_video.len()).max(1);
    // Several outputs at once: one decoder thread each; a single output: FFmpeg's choice.
    let threads = if workers > 1 { 1 } else { 0 };
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let job = {
                    let mut n = next.lock().expect("queue lock");
                    let job = with_video.get(*n).copied();
                    *n += 1;
                    job
                };
                let Some(i) = job else { break };
                let entry = &entries[i];
                let folder = thumbs_rel.join(format!("{i:04}-{}", file_safe(&entry.name)));
                let made = video_of(entry, false).and_then(|video| {
                    make(
                        &video,
                        &entry.report.scenes,
                        frame_rate(entry),
                        out,
                        &folder,
                        threads,
                    )
                    .map_err(|e| format!("thumbnails: {e}"))
                });
                results.lock().expect("results lock").push((i, made));
            });
        }
    });
    for (i, entry) in entries.iter_mut().enumerate() {
        if let Err(note) = video_of(entry, from_run[i]) {
            entry.notes.push(note);
        }
    }
    let mut written = linked;
    for (i, made) in results.into_inner().expect("results lock") {
        match made {
            Ok(thumbs) => {
                written += 3 * thumbs.iter().flatten().count();
                entries[i].thumbnails = thumbs;
            }
            Err(note) => entries[i].notes.push(note),
        }
    }
    written
}

/// The thumbnails the run saved in the output folder (paths from the page's folder), when every
/// scene has its three and the files are there; `None` sends the output to decoding.
fn made_by_run(entry: &Entry) -> Option<Vec<[PathBuf; 3]>> {
    let scenes = &entry.report.scenes;
    if scenes.is_empty() {
        return None;
    }
    scenes
        .iter()
        .map(|s| {
            let files = &s.thumbnails.as_ref()?.files;
            // Paths inside the output folder only (the report is read from disk).
            let safe = |f: &String| {
                Path::new(f)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
                    && entry.dir.join(f).is_file()
            };
            files
                .iter()
                .all(safe)
                .then(|| files.clone().map(|f| entry.link.join(f)))
        })
        .collect()
}

/// The output's video file, or why there is none (`thumbnails`: the run saved them, so only
/// playback is lost).
fn video_of(entry: &Entry, thumbnails: bool) -> std::result::Result<PathBuf, String> {
    match &entry.report.output.video {
        None => Err(format!(
            "no video (the pipeline had no `encode`): scenes listed without {}",
            if thumbnails { "playback" } else { "thumbnails" }
        )),
        Some(name) => {
            let path = entry.dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "video file {name} is missing from the output folder: {}",
                    if thumbnails {
                        "no playback"
                    } else {
                        "no thumbnails, no playback"
                    }
                ))
            }
        }
    }
}

fn frame_rate(entry: &Entry) -> f64 {
    let out = entry.report.output.fps.unwrap_or(entry.report.source.fps);
    if out.is_finite() && out > 0.0 {
        out
    } else {
        25.0
    }
}

/// A folder name made of the output's name: letters, digits, `.`, `-`, `_`.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The thumbnails of `scenes` from `video`, written under `out/folder/`.
fn make(
    video: &Path,
    scenes: &[Scene],
    fps: f64,
    out: &Path,
    folder: &Path,
    threads: u32,
) -> Result<Vec<Option<[PathBuf; 3]>>> {
    crate::media::init();
    std::fs::create_dir_all(out.join(folder))
        .map_err(|e| Error::io(out.join(folder), "creating the thumbnails folder", e))?;
    // Scenes without frames get no targets; the rest are numbered by their index in `scenes`.
    let kept: Vec<usize> = (0..scenes.len())
        .filter(|&i| scenes[i].end_frame > scenes[i].start_frame)
        .collect();
    let targets = scene_targets(
        kept.iter()
            .map(|&i| (scenes[i].start_time, scenes[i].end_time)),
        fps,
    );
    let mut files: Vec<[Option<PathBuf>; 3]> = vec![Default::default(); scenes.len()];

    let (mut input, info) = probe::open(video)?;
    // SAFETY: reading a plain field of the open format context.
    let start_us = match unsafe { (*input.as_ptr()).start_time } {
        ff::ffi::AV_NOPTS_VALUE => 0,
        t => t,
    };
    let time_base = input
        .stream(info.video_stream_index)
        .map(|s| s.time_base())
        .ok_or_else(|| Error::input(video, "no video stream"))?;
    let offset = start_us.rescale(ff::Rational::new(1, ff::ffi::AV_TIME_BASE), time_base);
    let (width, height) = size_for(info.width, info.height);
    let mut rgb = RgbFrames::new(width, height, ff::software::scaling::Flags::AREA);

    let mut picker = Picker::<ff::frame::Video>::new(targets);
    let mut last_written: Option<(u64, PathBuf)> = None;
    let mut keep = |frame: &ff::frame::Video, id: u64, t: &Target| -> Result<()> {
        let scene = kept[t.scene];
        let name = folder.join(format!("s{:05}-{}.jpg", scene, t.which));
        match &last_written {
            // The same frame wanted twice (a one-frame scene): copy the file written for it.
            Some((written, path)) if *written == id => {
                std::fs::copy(out.join(path), out.join(&name))
                    .map_err(|e| Error::io(out.join(&name), "writing a thumbnail", e))?;
            }
            _ => write_jpeg(&mut rgb, frame, &out.join(&name))?,
        }
        last_written = Some((id, name.clone()));
        files[scene][t.which] = Some(name);
        Ok(())
    };
    // Bounded: every round but the last ends in a seek, and the picker asks for at most one
    // seek per target (fewer once a seek fails to move forward).
    loop {
        let mut decoder =
            VideoDecoder::open(video, &input, info.video_stream_index, threads, offset)?;
        let step = Cell::new(Step::Continue);
        let mut sink = |f: SourceFrame| -> Result<()> {
            if step.get() == Step::Continue {
                step.set(picker.on_frame(f.time, f.frame, &mut keep)?);
            }
            Ok(())
        };
        decoder.decode_all(&mut input, &mut sink, &|| step.get() != Step::Continue)?;
        let Step::Seek(time) = step.get() else { break };
        // A little before the wanted frame, so the keyframe found is not after it.
        let at = start_us + ((time - 1.0 / fps).max(0.0) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
        input
            .seek(at, ..at)
            .map_err(|e| Error::ffmpeg(video, "seeking", e))?;
    }
    picker.finish(&mut keep)?;
    Ok(files
        .into_iter()
        .map(|[a, b, c]| Some([a?, b?, c?]))
        .collect())
}
