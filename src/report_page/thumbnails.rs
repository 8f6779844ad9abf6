//! Scene thumbnails for the report page: the first, middle and last frame of every scene,
//! decoded from the output's own encoded video (never the source again), scaled to
//! [`WIDTH`] pixels and written as JPEG.
//!
//! Frames are picked by time, as a player shows them: a scene's first frame is the last one
//! starting at or before its `start_time`, the middle one the frame shown at the scene's middle,
//! the last one the last frame starting before `end_time` (a quarter frame of tolerance on each).
//! The video is decoded forward through short scenes (their frames would be decoded after any
//! seek anyway, keyframes being at scene starts at best) and a seek to the keyframe before the
//! next wanted frame skips any stretch longer than [`SEEK_GAP`]. Outputs are worked on in
//! parallel, one decoder thread each.
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ff::Rescale;
use ffmpeg_next as ff;

use super::Entry;
use crate::error::{Error, Result};
use crate::media::decode::{SourceFrame, VideoDecoder};
use crate::media::{probe, RgbFrames};
use crate::pipeline::scenes::Scene;

/// Thumbnail width in pixels (height follows the video's aspect ratio).
pub const WIDTH: u32 = 192;

/// Seconds of video between two wanted frames beyond which seeking beats decoding through.
pub const SEEK_GAP: f64 = 4.0;

const JPEG_QUALITY: u8 = 82;

/// Fills each entry's `thumbnails` (files under `out/thumbs_rel/`, paths relative to `out`), or
/// notes why it has none. Returns how many thumbnails were written.
pub fn make_all(entries: &mut [Entry], out: &Path, thumbs_rel: &Path) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let with_video: Vec<usize> = (0..entries.len())
        .filter(|&i| video_of(&entries[i]).is_ok())
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
                let made = video_of(entry).and_then(|video| {
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
    for entry in entries.iter_mut() {
        if let Err(note) = video_of(entry) {
            entry.notes.push(note);
        }
    }
    let mut written = 0;
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

/// The output's video file, or why there is none to take thumbnails from.
fn video_of(entry: &Entry) -> std::result::Result<PathBuf, String> {
    match &entry.report.output.video {
        None => {
            Err("no video (the pipeline had no `encode`): scenes listed without thumbnails".into())
        }
        Some(name) => {
            let path = entry.dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "video file {name} is missing from the output folder: no thumbnails, no playback"
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

/// One wanted frame: the last frame starting at or before `limit` seconds.
struct Target {
    limit: f64,
    scene: usize,
    /// 0 first, 1 middle, 2 last.
    which: usize,
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
    let tolerance = 0.25 / fps;
    let mut targets = Vec::new();
    for (i, s) in scenes.iter().enumerate() {
        if s.end_frame <= s.start_frame {
            continue;
        }
        let middle = 0.5 * (s.start_time + s.end_time);
        let limits = [
            s.start_time + tolerance,
            middle + tolerance,
            (s.end_time - tolerance).max(s.start_time + tolerance),
        ];
        for (which, limit) in limits.into_iter().enumerate() {
            targets.push(Target {
                limit,
                scene: i,
                which,
            });
        }
    }
    targets.sort_by(|a, b| a.limit.total_cmp(&b.limit));
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
    let height = (u64::from(WIDTH) * u64::from(info.height.max(1)) / u64::from(info.width.max(1)))
        .max(2) as u32
        & !1;
    let mut rgb = RgbFrames::new(WIDTH, height, ff::software::scaling::Flags::AREA);

    let next = Cell::new(0usize);
    let seek_to: Cell<Option<f64>> = Cell::new(None);
    // The last decoded frame, numbered so that a frame wanted twice is written once.
    let mut prev: Option<(u64, ff::frame::Video)> = None;
    let mut last_written: Option<(u64, PathBuf)> = None;
    let mut serial = 0u64;
    let mut write = |frame: &ff::frame::Video, id: u64, t: &Target| -> Result<()> {
        let name = folder.join(format!("s{:05}-{}.jpg", t.scene, t.which));
        match &last_written {
            Some((written, path)) if *written == id => {
                std::fs::copy(out.join(path), out.join(&name))
                    .map_err(|e| Error::io(out.join(&name), "writing a thumbnail", e))?;
            }
            _ => {
                write_jpeg(&mut rgb, frame, &out.join(&name))?;
            }
        }
        last_written = Some((id, name.clone()));
        files[t.scene][t.which] = Some(name);
        Ok(())
    };
    loop {
        let mut decoder =
            VideoDecoder::open(video, &input, info.video_stream_index, threads, offset)?;
        seek_to.set(None);
        let mut sink = |f: SourceFrame| -> Result<()> {
            serial += 1;
            while let Some(t) = targets.get(next.get()).filter(|t| f.time > t.limit) {
                // Right after a seek there may be no earlier frame: the first one is the nearest.
                match &prev {
                    Some((id, frame)) => write(frame, *id, t)?,
                    None => write(&f.frame, serial, t)?,
                }
                next.set(next.get() + 1);
            }
            prev = Some((serial, f.frame));
            if let Some(t) = targets.get(next.get()) {
                if t.limit > f.time + SEEK_GAP {
                    seek_to.set(Some(t.limit));
                }
            }
            Ok(())
        };
        decoder.decode_all(&mut input, &mut sink, &|| {
            seek_to.get().is_some() || next.get() >= targets.len()
        })?;
        let Some(time) = seek_to.get() else { break };
        prev = None;
        // A little before the wanted frame, so the keyframe found is not after it.
        let at = start_us + ((time - 1.0 / fps).max(0.0) * f64::from(ff::ffi::AV_TIME_BASE)) as i64;
        input
            .seek(at, ..at)
            .map_err(|e| Error::ffmpeg(video, "seeking", e))?;
    }
    // The end of the video: what is still wanted is its last frame.
    if let Some((id, frame)) = &prev {
        while let Some(t) = targets.get(next.get()) {
            write(frame, *id, t)?;
            next.set(next.get() + 1);
        }
    }
    Ok(files
        .into_iter()
        .map(|[a, b, c]| Some([a?, b?, c?]))
        .collect())
}

fn write_jpeg(rgb: &mut RgbFrames, frame: &ff::frame::Video, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    let (w, h) = rgb
        .append(frame, None, &mut bytes)
        .map_err(|e| Error::ffmpeg(path, "scaling a thumbnail", e))?;
    let image = image::RgbImage::from_raw(w, h, bytes)
        .ok_or_else(|| Error::input(path, "thumbnail buffer of the wrong size"))?;
    let file =
        std::fs::File::create(path).map_err(|e| Error::io(path, "writing a thumbnail", e))?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, JPEG_QUALITY)
        .encode_image(&image)
        .map_err(|e| Error::io(path, "encoding a thumbnail", std::io::Error::other(e)))
}
