//! The `burned_in_text` rule's part of the one decode pass: a frame every `every_seconds` read
//! with Tesseract (the reader `clips.text` uses), keeping the frame with the most text.
use std::path::Path;

use ffmpeg_next as ff;

use super::rules::TextRule;
use crate::error::{Error, Result};
use crate::media::RgbFrames;
use crate::ocr::{ReadText, TextReader, TextSettings};

/// What the rule found.
#[derive(Debug, Clone)]
pub struct TextScan {
    /// Frames read.
    pub frames: usize,
    /// Frames Tesseract gave up on at its deadline.
    pub unread: usize,
    /// The frame with the largest text area: its time and what was read.
    pub worst: Option<(f64, ReadText)>,
}

pub struct TextSampler {
    reader: TextReader,
    rgb: Option<RgbFrames>,
    bytes: Vec<u8>,
    every: f64,
    next: f64,
    scan: TextScan,
}

impl TextSampler {
    /// Starts Tesseract; a missing language file is an error naming it.
    pub fn new(path: &Path, rule: &TextRule) -> Result<Self> {
        let settings = TextSettings {
            language: rule.language.clone(),
            min_confidence: rule.min_confidence,
            ..TextSettings::default()
        };
        let reader = TextReader::new(&settings)
            .map_err(|e| Error::input(path, format!("burned_in_text: {e}")))?;
        Ok(TextSampler {
            reader,
            rgb: None,
            bytes: Vec::new(),
            every: rule.every_seconds,
            next: 0.0,
            scan: TextScan {
                frames: 0,
                unread: 0,
                worst: None,
            },
        })
    }

    /// Reads the frame when it is the first at or after the next sampling time.
    pub fn push(&mut self, path: &Path, time: f64, frame: &ff::frame::Video) -> Result<()> {
        if time + 1e-9 < self.next {
            return Ok(());
        }
        self.next = time + self.every;
        let (w, h) = (frame.width(), frame.height());
        let rgb = self
            .rgb
            .get_or_insert_with(|| RgbFrames::new(w, h, ff::software::scaling::Flags::BILINEAR));
        self.bytes.clear();
        let (width, height) = rgb
            .append(frame, None, &mut self.bytes)
            .map_err(|e| Error::ffmpeg(path, "converting a frame for burned_in_text", e))?;
        let read = self
            .reader
            .read(&self.bytes, width, height, width as usize * 3)
            .map_err(|e| Error::input(path, format!("burned_in_text: {e}")))?;
        self.scan.frames += 1;
        self.scan.unread += usize::from(read.gave_up);
        let larger = self
            .scan
            .worst
            .as_ref()
            .is_none_or(|(_, w)| read.area > w.area);
        if larger && read.area > 0.0 {
            self.scan.worst = Some((time, read));
        }
        Ok(())
    }

    pub fn finish(self) -> TextScan {
        self.scan
    }
}
