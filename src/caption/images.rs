//! A clip's frames as the server sees them: the picture (letterbox bars left out) scaled to
//! `caption.size` pixels on its long side, as JPEG. The whole canvas is scaled by the picture's
//! factor and the picture's part cut out, so swscale reads each frame once.
use ffmpeg_next as ff;

use crate::media::normalize::Rect;
use crate::media::RgbFrames;

/// JPEG quality of the frames sent (what VLM servers decode: detail matters, size hardly).
const QUALITY: u8 = 90;

/// Makes the JPEGs of one worker (its scaler is set up once per frame and picture size).
#[derive(Default)]
pub struct JpegMaker {
    scaler: Option<((u32, u32, u32), RgbFrames)>,
    rgb: Vec<u8>,
}

/// Where a picture lands when its canvas is scaled: the scaled canvas and picture.
fn scaled(canvas: (u32, u32), picture: Rect, size: u32) -> ((u32, u32), Rect) {
    let factor = f64::from(size) / f64::from(picture.width.max(picture.height).max(1));
    let s = |v: u32| ((f64::from(v) * factor).round() as u32).max(1);
    let canvas_scaled = (s(canvas.0).max(2), s(canvas.1).max(2));
    let x = s(picture.x).min(canvas_scaled.0 - 1) * u32::from(picture.x > 0);
    let y = s(picture.y).min(canvas_scaled.1 - 1) * u32::from(picture.y > 0);
    let rect = Rect {
        x,
        y,
        width: s(picture.width).min(canvas_scaled.0 - x),
        height: s(picture.height).min(canvas_scaled.1 - y),
    };
    (canvas_scaled, rect)
}

impl JpegMaker {
    /// `frame`'s `picture` part, `size` pixels on its long side, as JPEG.
    pub fn jpeg(
        &mut self,
        frame: &ff::frame::Video,
        picture: Rect,
        size: u32,
    ) -> Result<Vec<u8>, String> {
        let (canvas, rect) = scaled((frame.width(), frame.height()), picture, size);
        let setup = (canvas.0, canvas.1, frame.format() as u32);
        let rgb = match &mut self.scaler {
            Some((s, rgb)) if *s == setup => rgb,
            slot => {
                let made = RgbFrames::new(canvas.0, canvas.1, ff::software::scaling::Flags::AREA);
                &mut slot.insert((setup, made)).1
            }
        };
        self.rgb.clear();
        let (w, h) = rgb
            .append(frame, Some(rect), &mut self.rgb)
            .map_err(|e| format!("scaling a frame: {e}"))?;
        let mut jpeg = Vec::with_capacity(self.rgb.len() / 8);
        jpeg_encoder::Encoder::new(&mut jpeg, QUALITY)
            .encode(&self.rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| format!("encoding a frame as JPEG: {e}"))?;
        Ok(jpeg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn the_picture_gets_the_long_side_and_bars_stay_out() {
        // A 4:3 picture pillarboxed on a 1280x720 canvas.
        let (canvas, r) = scaled((1280, 720), rect(160, 0, 960, 720), 448);
        assert_eq!(r.width.max(r.height), 448);
        assert_eq!((r.width, r.height), (448, 336));
        assert!(r.x + r.width <= canvas.0 && r.y + r.height <= canvas.1);
        let (_, full) = scaled((1280, 720), rect(0, 0, 1280, 720), 448);
        assert_eq!((full.x, full.y, full.width, full.height), (0, 0, 448, 252));
    }
}
