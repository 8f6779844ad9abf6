//! Scene thumbnails as files: a frame scaled to [`WIDTH`] pixels (height by the aspect ratio)
//! and written as a JPEG. Shared by the run's thumbs stage and `framepipe report` (which makes
//! them for outputs written before runs saved their own).
use std::path::Path;

use ffmpeg_next as ff;

use super::RgbFrames;
use crate::error::{Error, Result};

/// Thumbnail width in pixels (height follows the video's aspect ratio).
pub const WIDTH: u32 = 192;

const JPEG_QUALITY: u8 = 82;

/// A thumbnail's size for a `width` x `height` picture: [`WIDTH`] wide, the height following
/// the aspect ratio (even, at least 2).
pub fn size_for(width: u32, height: u32) -> (u32, u32) {
    let h =
        (u64::from(WIDTH) * u64::from(height.max(1)) / u64::from(width.max(1))).max(2) as u32 & !1;
    (WIDTH, h)
}

/// Scales `frame` with `rgb` and writes it to `path` as a JPEG.
pub fn write_jpeg(rgb: &mut RgbFrames, frame: &ff::frame::Video, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    let (w, h) = rgb
        .append(frame, None, &mut bytes)
        .map_err(|e| Error::ffmpeg(path, "scaling a thumbnail", e))?;
    // jpeg-encoder (SIMD): a quarter of the `image` encoder's time at this size, which matters
    // when `run` makes three per scene.
    let mut jpeg = Vec::with_capacity(bytes.len() / 4);
    jpeg_encoder::Encoder::new(&mut jpeg, JPEG_QUALITY)
        .encode(&bytes, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Error::io(path, "encoding a thumbnail", std::io::Error::other(e)))?;
    // One write of the whole file: a full disk is an error here, not lost in a buffer's drop.
    std::fs::write(path, jpeg).map_err(|e| Error::io(path, "writing a thumbnail", e))
}
