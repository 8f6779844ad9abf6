//! Small BGR copies of frames for the scene detector: one swscale pass from the decoded frame
//! straight to the detector's size, so the detector never pays for full-size conversions.
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

/// Shrinks frames to `width`x`height` packed BGR24 (OpenCV's layout).
pub struct SmallFrames {
    width: u32,
    height: u32,
    scaler: super::Scaler,
    out: ff::frame::Video,
}

impl SmallFrames {
    pub fn new(width: u32, height: u32) -> Self {
        SmallFrames {
            width,
            height,
            // Two-tap bilinear without an anti-alias pre-filter: what PySceneDetect's
            // cv2.resize(INTER_LINEAR) does, and the cheapest swscale path.
            scaler: super::Scaler::new(Pixel::BGR24, width, height, scaling::Flags::FAST_BILINEAR),
            out: ff::frame::Video::new(Pixel::BGR24, width, height),
        }
    }

    pub fn size(&self) -> (usize, usize) {
        (self.width as usize, self.height as usize)
    }

    /// The BGR bytes of `src` at the small size and their row stride.
    pub fn convert(&mut self, src: &ff::frame::Video) -> Result<(&[u8], usize), ff::Error> {
        self.scaler.run(src, &mut self.out)?;
        Ok((self.out.data(0), self.out.stride(0)))
    }
}
