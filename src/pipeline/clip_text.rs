//! Burned-in text of the clips the encoder cuts (`clips.text`), read from the frames the
//! encoder is given ([`super::clip_frames`]): when a clip closes, its frames nearest the evenly
//! spread positions (first, middle, last by default) go to a pool of Tesseract readers that
//! makes their grey pictures and reads them while encoding goes on.
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use super::clip_frames::ClosedClip;
use super::normalize::{Canvas, NormFrame};
use crate::config::TextScoring;
use crate::error::{Error, Result};
use crate::ocr::{self, GreyPicture, ReadText};
use crate::output::clip_record::TextScore;

/// Tesseract's settings for `clips.text`.
pub fn reader_settings(text: &TextScoring) -> ocr::TextSettings {
    ocr::TextSettings {
        language: text.language.clone(),
        min_confidence: text.min_confidence,
        ..ocr::TextSettings::default()
    }
}

/// The encode stage's text reading: the reader pool.
pub struct ClipTextReading {
    /// The output video (named in errors).
    output: std::path::PathBuf,
    frames_per_clip: u32,
    jobs: Option<Sender<ClipFrames>>,
    workers: Vec<JoinHandle<ReaderResult>>,
}

/// What a reader thread returns: each clip's text by its first frame, or why it stopped.
type ReaderResult = std::result::Result<Vec<(u64, TextScore)>, String>;

/// A closed clip's frames to read.
struct ClipFrames {
    start: u64,
    frames: Vec<Arc<NormFrame>>,
}

impl ClipTextReading {
    /// Starts one reader per core (each makes its Tesseract engine on its first clip).
    pub fn start(output: &std::path::Path, settings: &TextScoring) -> Self {
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
            jobs: Some(tx),
            workers,
        }
    }

    /// Hands a closed clip's frames to the readers.
    pub fn clip(&mut self, clip: &ClosedClip) {
        let job = ClipFrames {
            start: clip.start,
            frames: clip.spread(self.frames_per_clip),
        };
        let sent = self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if !sent {
            // Every reader stopped: one failed, and `finish` reports why.
            self.jobs = None;
        }
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
