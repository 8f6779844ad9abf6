//! Chosen frames of a video file as packed RGB24 pictures, decoded from its start. For reading a
//! few frames of a short file (a clip's first, middle and last, for its text), where seeking
//! would save little: decoding stops after the last wanted frame.
use std::cell::Cell;
use std::path::Path;

use ffmpeg_next as ff;

use super::decode::{SourceFrame, VideoDecoder};
use super::RgbFrames;
use crate::error::{Error, Result};

/// One decoded frame at its own size.
#[derive(Debug, Clone)]
pub struct RgbPicture {
    /// 0-based index among the file's decoded frames.
    pub index: u64,
    pub width: u32,
    pub height: u32,
    /// `width * 3` bytes per row, no padding.
    pub rgb: Vec<u8>,
}

/// The frames of `path`'s first video stream whose indexes are in `wanted` (ascending), in
/// order; a wanted index past the file's end is left out.
pub fn rgb_frames_at(path: &Path, wanted: &[u64]) -> Result<Vec<RgbPicture>> {
    let Some(&last) = wanted.iter().max() else {
        return Ok(Vec::new());
    };
    let mut input = ff::format::input(&path)
        .map_err(|e| Error::input(path, format!("cannot open as media: {e}")))?;
    let stream = input
        .streams()
        .best(ff::media::Type::Video)
        .map(|s| s.index())
        .ok_or_else(|| Error::input(path, "no video stream"))?;
    let mut decoder = VideoDecoder::open(path, &input, stream, 0, 0)?;
    let mut rgb: Option<RgbFrames> = None;
    let mut out = Vec::new();
    let done = Cell::new(false);
    let mut sink = |f: SourceFrame| -> Result<()> {
        if done.get() || !wanted.contains(&f.index) {
            done.set(done.get() || f.index >= last);
            return Ok(());
        }
        let (w, h) = (f.frame.width(), f.frame.height());
        let scaler =
            rgb.get_or_insert_with(|| RgbFrames::new(w, h, ff::software::scaling::Flags::BILINEAR));
        let mut bytes = Vec::with_capacity(w as usize * h as usize * 3);
        let (width, height) = scaler
            .append(&f.frame, None, &mut bytes)
            .map_err(|e| Error::ffmpeg(path, format!("converting frame {}", f.index), e))?;
        out.push(RgbPicture {
            index: f.index,
            width,
            height,
            rgb: bytes,
        });
        done.set(f.index >= last);
        Ok(())
    };
    decoder.decode_all(&mut input, &mut sink, &|| done.get())?;
    Ok(out)
}

/// `count` frame indexes spread evenly over `frames` frames, first and last included (one: the
/// middle); fewer when the clip has fewer frames.
pub fn spread(frames: u64, count: u32) -> Vec<u64> {
    if frames == 0 || count == 0 {
        return Vec::new();
    }
    if count == 1 {
        return vec![(frames - 1) / 2];
    }
    let mut out: Vec<u64> = (0..u64::from(count))
        .map(|i| i * (frames - 1) / (u64::from(count) - 1))
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::spread;

    #[test]
    fn spread_takes_first_middle_and_last() {
        assert_eq!(spread(75, 3), [0, 37, 74]);
        assert_eq!(spread(75, 1), [37]);
        assert_eq!(spread(2, 3), [0, 1]);
        assert_eq!(spread(1, 3), [0]);
        assert_eq!(spread(0, 3), Vec::<u64>::new());
        assert_eq!(spread(10, 4), [0, 3, 6, 9]);
    }
}
