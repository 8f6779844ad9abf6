//! Burned-in text of the clips the encoder cuts (`clips.text`), read from the frames the
//! encoder is given: no clip file is decoded again. While a clip is encoded, a few of its
//! frames are kept (shared references: nothing is copied on the encoder's thread); when it
//! closes, the ones nearest its evenly spread positions (first, middle, last by default) go to
//! a pool of Tesseract readers that makes their grey pictures and reads them while encoding
//! goes on.
//!
//! A clip's length is only known when it closes, so its frames are kept at a stride that
//! doubles whenever more than [`KEPT`] are held (a frame at offset 0 always is; the last frame
//! is taken when the clip closes). A spread position is read from the kept frame nearest
//! to it: exact for the first and last frames, within 1/[`KEPT`] of the clip for the others.
//! Clips follow the encoder's roles exactly as `media::clip_mux::ClipCutter` cuts them: a clip
//! starts at a `ClipStart` frame and ends at a `ClipEnd` frame or before the next start; one
//! without an end when the video ends, or outside the cutter's length range, gets no file and
//! is not read.
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::normalize::{Canvas, NormFrame};
use crate::clips::plan::spread;
use crate::config::TextScoring;
use crate::error::{Error, Result};
use crate::media::clip_mux::FrameRole;
use crate::ocr::{self, GreyPicture, ReadText};
use crate::output::clip_record::TextScore;

/// Most frames kept per open clip (a 1080p yuv420p frame is 3 MB).
const KEPT: usize = 16;

/// Tesseract's settings for `clips.text`.
pub fn reader_settings(text: &TextScoring) -> ocr::TextSettings {
    ocr::TextSettings {
        language: text.language.clone(),
        min_confidence: text.min_confidence,
        ..ocr::TextSettings::default()
    }
}

/// The encode stage's text reading: the open clip's kept frames and the reader pool.
pub struct ClipTextReading {
    /// The output video (named in errors).
    output: std::path::PathBuf,
    frames_per_clip: u32,
    /// The clip lengths (frames) the cutter writes.
    lengths: std::ops::RangeInclusive<u64>,
    open: Option<OpenClip>,
    /// The last frame given while a clip is open (the clip's last when the next one starts).
    previous: Option<Arc<NormFrame>>,
    jobs: Option<Sender<ClipFrames>>,
    workers: Vec<JoinHandle<ReaderResult>>,
}

/// What a reader thread returns: each clip's text by its first frame, or why it stopped.
type ReaderResult = std::result::Result<Vec<(u64, TextScore)>, String>;

struct OpenClip {
    start: u64,
    stride: u64,
    /// (offset in the clip, frame), offsets ascending.
    kept: Vec<(u64, Arc<NormFrame>)>,
}

/// A closed clip's frames to read.
struct ClipFrames {
    start: u64,
    frames: Vec<Arc<NormFrame>>,
}

impl ClipTextReading {
    /// Starts one reader per core (each makes its Tesseract engine on its first clip).
    pub fn start(
        output: &std::path::Path,
        settings: &TextScoring,
        (min_frames, max_frames): (u64, u64),
    ) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let (tx, rx) = crossbeam_channel::bounded::<ClipFrames>(workers);
        let reader = reader_settings(settings);
        let workers = (0..workers)
            .map(|i| {
                let (rx, reader) = (rx.clone(), reader.clone());
                std::thread::Builder::new()
                    .name(format!("clip-text-{i}"))
                    .spawn(move || read_clips(&rx, &reader))
                    .expect("spawning a text reader")
            })
            .collect();
        ClipTextReading {
            output: output.to_path_buf(),
            frames_per_clip: settings.frames,
            lengths: min_frames..=max_frames,
            open: None,
            previous: None,
            jobs: Some(tx),
            workers,
        }
    }

    /// The next output frame, coded as `role`.
    pub fn frame(&mut self, norm: &Arc<NormFrame>, role: FrameRole) -> Result<()> {
        if role == FrameRole::ClipStart {
            if let Some(previous) = self.previous.take() {
                self.close(&previous)?;
            }
            self.open = Some(OpenClip {
                start: norm.index,
                stride: 1,
                kept: Vec::new(),
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let offset = norm.index - open.start;
        if offset.is_multiple_of(open.stride) {
            keep(&mut open.kept, &mut open.stride, offset, Arc::clone(norm));
        }
        if role == FrameRole::ClipEnd {
            self.previous = None;
            return self.close(norm);
        }
        self.previous = Some(Arc::clone(norm));
        Ok(())
    }

    /// Ends the open clip at `last` and hands its frames to the readers.
    fn close(&mut self, last: &Arc<NormFrame>) -> Result<()> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let frames = last.index - open.start + 1;
        if !self.lengths.contains(&frames) {
            return Ok(());
        }
        let offsets: Vec<u64> = open.kept.iter().map(|(o, _)| *o).collect();
        let frames = choose(&offsets, frames, self.frames_per_clip)
            .into_iter()
            .map(|choice| match choice {
                Choice::Kept(i) => Arc::clone(&open.kept[i].1),
                Choice::Last => Arc::clone(last),
            })
            .collect();
        let job = ClipFrames {
            start: open.start,
            frames,
        };
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            // Every reader stopped: one failed, and `finish` reports why.
            self.jobs = None;
        }
        Ok(())
    }

    /// Waits for the readers; each read clip's text by its first frame, in frame order. A clip
    /// still open (no end before the video ended) gets no file and is not read.
    pub fn finish(mut self) -> Result<Vec<(u64, TextScore)>> {
        self.jobs = None;
        let mut all = Vec::new();
        let mut failure = None;
        for worker in self.workers.drain(..) {
            match worker.join() {
                Ok(Ok(read)) => all.extend(read),
                Ok(Err(message)) => failure = failure.or(Some(message)),
                Err(_) => {
                    return Err(Error::StagePanicked {
                        stage: "clip text",
                        message: "a text reader panicked".into(),
                    })
                }
            }
        }
        if let Some(message) = failure {
            return Err(Error::input(
                &self.output,
                format!("reading clips' burned-in text: {message}"),
            ));
        }
        all.sort_by_key(|&(start, _)| start);
        Ok(all)
    }
}

/// Keeps `item` at `offset` (a multiple of `stride`); past [`KEPT`] items, doubles the stride
/// and keeps only the items on it.
fn keep<T>(kept: &mut Vec<(u64, T)>, stride: &mut u64, offset: u64, item: T) {
    kept.push((offset, item));
    if kept.len() > KEPT {
        *stride *= 2;
        let s = *stride;
        kept.retain(|(o, _)| o.is_multiple_of(s));
    }
}

/// Which frame serves a spread position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    /// The kept frame at this index of the kept list.
    Kept(usize),
    /// The clip's last frame.
    Last,
}

/// The frames read for a clip of `frames` frames, `count` spread positions: the last frame
/// for the last position, else the kept frame (`offsets`, ascending) nearest each; a frame
/// serving two positions is read once.
fn choose(offsets: &[u64], frames: u64, count: u32) -> Vec<Choice> {
    let mut out: Vec<Choice> = Vec::new();
    for position in spread(frames, count) {
        let choice = if position == frames - 1 {
            Choice::Last
        } else {
            match (0..offsets.len()).min_by_key(|&i| offsets[i].abs_diff(position)) {
                Some(i) => Choice::Kept(i),
                None => continue,
            }
        };
        if !out.contains(&choice) {
            out.push(choice);
        }
    }
    out
}

/// The grey picture text is read from, made from the frame's luma plane.
fn grey(norm: &NormFrame, max_width: u32) -> std::result::Result<GreyPicture, String> {
    let Canvas::Host(frame) = &norm.frame else {
        return Err("clip text needs frames in host memory, got a device canvas".into());
    };
    Ok(ocr::grey_from_luma(
        frame.data(0),
        frame.width(),
        frame.height(),
        frame.stride(0),
        max_width,
    ))
}

/// One reader's work: clips from `jobs` until they end; stops at the first failure.
fn read_clips(jobs: &Receiver<ClipFrames>, settings: &ocr::TextSettings) -> ReaderResult {
    let mut reader: Option<ocr::TextReader> = None;
    let mut out = Vec::new();
    for clip in jobs {
        let reader = match &mut reader {
            Some(r) => r,
            None => reader.insert(ocr::TextReader::new(settings).map_err(|e| e.to_string())?),
        };
        let reads = clip
            .frames
            .iter()
            .map(|f| {
                let picture = grey(f, settings.max_width)?;
                reader.read_grey(&picture).map_err(|e| e.to_string())
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| format!("clip from output frame {}: {e}", clip.start))?;
        out.push((clip.start, score(&reads)));
    }
    Ok(out)
}

/// A clip's text from its frames' reads: the largest area and word count of one frame, and
/// each frame's distinct text in order.
fn score(reads: &[ReadText]) -> TextScore {
    let mut texts: Vec<&str> = Vec::new();
    for read in reads {
        if !read.text.is_empty() && !texts.contains(&read.text.as_str()) {
            texts.push(&read.text);
        }
    }
    TextScore {
        area: reads.iter().map(|r| r.area).fold(0.0, f64::max),
        words: reads.iter().map(|r| r.words).max().unwrap_or(0),
        text: texts
            .join(" / ")
            .chars()
            .take(ocr::MAX_TEXT_CHARS)
            .collect(),
        unread: reads.iter().map(|r| u32::from(r.gave_up)).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(area: f64, words: u32, text: &str, gave_up: bool) -> ReadText {
        ReadText {
            area,
            words,
            text: text.into(),
            gave_up,
        }
    }

    /// The kept frames of a clip of `frames` frames, by offset.
    fn kept_offsets(frames: u64) -> Vec<u64> {
        let (mut kept, mut stride) = (Vec::new(), 1);
        for offset in 0..frames {
            if offset.is_multiple_of(stride) {
                keep(&mut kept, &mut stride, offset, ());
            }
        }
        kept.into_iter().map(|(o, ())| o).collect()
    }

    #[test]
    fn kept_frames_stay_few_and_spread_positions_are_met_closely() {
        for frames in [1, 2, 3, 16, 17, 90, 120, 300, 1000, 9000] {
            let kept = kept_offsets(frames);
            assert!(kept.len() <= KEPT, "{frames}: {kept:?}");
            assert_eq!(kept[0], 0);
            for count in 1..=5 {
                let positions = spread(frames, count);
                let chosen = choose(&kept, frames, count);
                for &p in &positions {
                    let served = chosen.iter().any(|c| match *c {
                        Choice::Last => p == frames - 1,
                        Choice::Kept(i) => kept[i].abs_diff(p) * KEPT as u64 <= frames,
                    });
                    assert!(
                        served,
                        "{frames} frames, position {p}: {chosen:?} of {kept:?}"
                    );
                }
            }
        }
        assert_eq!(choose(&kept_offsets(90), 90, 3).len(), 3);
        assert_eq!(choose(&[0], 1, 3), [Choice::Last]);
    }

    #[test]
    fn a_clips_score_takes_the_largest_frame_and_each_text_once() {
        let s = score(&[
            read(0.01, 3, "GOAL", false),
            read(0.03, 2, "GOAL", false),
            read(0.0, 0, "", true),
            read(0.02, 5, "2 - 1", false),
        ]);
        assert_eq!(s.area, 0.03);
        assert_eq!(s.words, 5);
        assert_eq!(s.text, "GOAL / 2 - 1");
        assert_eq!(s.unread, 1);
    }
}
