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

/// Shrinks frames to a small packed grey picture (`width` x `height` luma bytes, no padding):
/// what blank and frozen tests measure (`check`'s rules and clips' scores alike).
pub struct SmallGray {
    width: u32,
    height: u32,
    scaler: super::Scaler,
    out: ff::frame::Video,
    packed: Vec<u8>,
}

impl SmallGray {
    pub fn new(width: u32, height: u32) -> Self {
        SmallGray {
            width,
            height,
            // Two-tap bilinear: point-like samples are enough for ratios and means, and cheapest.
            scaler: super::Scaler::new(Pixel::GRAY8, width, height, scaling::Flags::FAST_BILINEAR),
            out: ff::frame::Video::new(Pixel::GRAY8, width, height),
            packed: Vec::with_capacity((width * height) as usize),
        }
    }

    /// The grey bytes of `src`, row after row without the stride's padding.
    pub fn convert(&mut self, src: &ff::frame::Video) -> Result<&[u8], ff::Error> {
        self.scaler.run(src, &mut self.out)?;
        self.packed.clear();
        let stride = self.out.stride(0);
        for row in self.out.data(0).chunks(stride).take(self.height as usize) {
            self.packed.extend_from_slice(&row[..self.width as usize]);
        }
        Ok(&self.packed)
    }
}
