//! Frame geometry: every source frame becomes a yuv420p canvas of exactly the target size
//! (1280x720 or 1920x1080), with the sample aspect ratio and the display rotation honoured, in
//! `fit` (scale + pad), `fill` (scale + center crop) or `stretch` mode.
//!
//! One swscale pass does the resampling (and the 8/10-bit, range and chroma conversions); the
//! rotation, crop and pad are then plain plane copies on the already small result.
use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;
use serde::Serialize;

use crate::config::FitMode;

/// Where the picture sits on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The plan for one input: what swscale produces and how it lands on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub canvas_width: u32,
    pub canvas_height: u32,
    /// swscale's output size, in stored (unrotated) orientation.
    pub scaled_width: u32,
    pub scaled_height: u32,
    /// Clockwise rotation applied after scaling.
    pub rotation: u32,
    /// The part of the rotated, scaled picture that is kept (crop for `fill`).
    pub crop: Rect,
    /// Where the kept part goes on the canvas (pad for `fit`).
    pub placed: Rect,
}

fn even(v: f64) -> u32 {
    ((v / 2.0).round() as u32 * 2).max(2)
}

impl Geometry {
    /// Plans the geometry for a source of `width`x`height` coded pixels with sample aspect ratio
    /// `sar` and clockwise display `rotation`, onto a `canvas` of the target size.
    pub fn plan(
        width: u32,
        height: u32,
        sar: (i32, i32),
        rotation: u32,
        canvas: (u32, u32),
        mode: FitMode,
    ) -> Geometry {
        let (cw, ch) = canvas;
        let sar = if sar.0 > 0 && sar.1 > 0 {
            f64::from(sar.0) / f64::from(sar.1)
        } else {
            1.0
        };
        let stored_display_w = f64::from(width) * sar;
        let (disp_w, disp_h) = if rotation % 180 == 90 {
            (f64::from(height), stored_display_w)
        } else {
            (stored_display_w, f64::from(height))
        };
        let (rotated_w, rotated_h) = match mode {
            FitMode::Stretch => (cw, ch),
            FitMode::Fit => {
                let s = (f64::from(cw) / disp_w).min(f64::from(ch) / disp_h);
                (even(disp_w * s).min(cw), even(disp_h * s).min(ch))
            }
            FitMode::Fill => {
                let s = (f64::from(cw) / disp_w).max(f64::from(ch) / disp_h);
                (even(disp_w * s).max(cw), even(disp_h * s).max(ch))
            }
        };
        let kept_w = rotated_w.min(cw);
        let kept_h = rotated_h.min(ch);
        let crop = Rect {
            x: (rotated_w - kept_w) / 4 * 2,
            y: (rotated_h - kept_h) / 4 * 2,
            width: kept_w,
            height: kept_h,
        };
        let placed = Rect {
            x: (cw - kept_w) / 4 * 2,
            y: (ch - kept_h) / 4 * 2,
            width: kept_w,
            height: kept_h,
        };
        let (scaled_width, scaled_height) = if rotation % 180 == 90 {
            (rotated_h, rotated_w)
        } else {
            (rotated_w, rotated_h)
        };
        Geometry {
            canvas_width: cw,
            canvas_height: ch,
            scaled_width,
            scaled_height,
            rotation,
            crop,
            placed,
        }
    }

    /// The same plan (canvas, rotation, `mode`, `sar`) for a source that is now
    /// `width`x`height` (a mid-stream size change).
    pub fn for_source_size(
        &self,
        width: u32,
        height: u32,
        sar: (i32, i32),
        mode: FitMode,
    ) -> Geometry {
        Geometry::plan(
            width,
            height,
            sar,
            self.rotation,
            (self.canvas_width, self.canvas_height),
            mode,
        )
    }

    /// The plan of a finished `width`x`height` canvas onto itself: nothing scaled, turned,
    /// cropped or padded.
    pub fn identity(width: u32, height: u32) -> Geometry {
        Geometry::plan(width, height, (1, 1), 0, (width, height), FitMode::Stretch)
    }

    /// True when swscale's output is the canvas itself (no rotation, crop or pad).
    fn is_direct(&self) -> bool {
        self.rotation == 0
            && self.scaled_width == self.canvas_width
            && self.scaled_height == self.canvas_height
    }
}

/// Turns source frames into canvases. A mid-stream change of the source size replans the
/// picture (the canvas size never changes).
pub struct Normalizer {
    geometry: Geometry,
    mode: FitMode,
    sar: (i32, i32),
    scaler: super::Scaler,
    scratch: Option<ff::frame::Video>,
}

impl Normalizer {
    pub fn new(geometry: Geometry, mode: FitMode, sar: (i32, i32)) -> Self {
        let scaler = super::Scaler::new(
            Pixel::YUV420P,
            geometry.scaled_width,
            geometry.scaled_height,
            scaling::Flags::BICUBIC,
        );
        Normalizer {
            geometry,
            mode,
            sar,
            scaler,
            scratch: None,
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Produces the canvas for one decoded frame.
    pub fn normalize(&mut self, src: &ff::frame::Video) -> Result<ff::frame::Video, ff::Error> {
        if let Some((_, width, height)) = self.scaler.last_input() {
            if (width, height) != (src.width(), src.height()) {
                self.geometry =
                    self.geometry
                        .for_source_size(src.width(), src.height(), self.sar, self.mode);
                self.scaler
                    .set_output_size(self.geometry.scaled_width, self.geometry.scaled_height);
                self.scratch = None;
            }
        }
        let g = self.geometry;
        let mut canvas = ff::frame::Video::new(Pixel::YUV420P, g.canvas_width, g.canvas_height);
        if g.is_direct() {
            self.scaler.run(src, &mut canvas)?;
        } else {
            let scratch = self.scratch.get_or_insert_with(|| {
                ff::frame::Video::new(Pixel::YUV420P, g.scaled_width, g.scaled_height)
            });
            self.scaler.run(src, scratch)?;
            fill_black(&mut canvas);
            for plane in 0..3 {
                let shift = u32::from(plane > 0);
                blit_rotated(scratch, plane, &mut canvas, &g, shift);
            }
        }
        canvas.set_color_range(ff::color::Range::MPEG);
        canvas.set_color_space(src.color_space());
        canvas.set_color_primaries(src.color_primaries());
        canvas.set_color_transfer_characteristic(src.color_transfer_characteristic());
        Ok(canvas)
    }
}

/// Limited-range black: Y 16, U and V 128.
fn fill_black(frame: &mut ff::frame::Video) {
    frame.data_mut(0).fill(16);
    frame.data_mut(1).fill(128);
    frame.data_mut(2).fill(128);
}

/// Copies the kept part of one plane of the scaled picture onto the canvas, rotating clockwise by
/// `g.rotation`. `shift` is the plane's subsampling (1 for 4:2:0 chroma).
fn blit_rotated(
    src: &ff::frame::Video,
    plane: usize,
    dst: &mut ff::frame::Video,
    g: &Geometry,
    shift: u32,
) {
    let src_stride = src.stride(plane);
    let (src_w, src_h) = (g.scaled_width >> shift, g.scaled_height >> shift);
    let crop_x = (g.crop.x >> shift) as usize;
    let crop_y = (g.crop.y >> shift) as usize;
    let (kept_w, kept_h) = (
        (g.crop.width >> shift) as usize,
        (g.crop.height >> shift) as usize,
    );
    let (dst_x, dst_y) = (
        (g.placed.x >> shift) as usize,
        (g.placed.y >> shift) as usize,
    );
    let dst_stride = dst.stride(plane);
    let src_data = src.data(plane);
    let dst_data = dst.data_mut(plane);
    let (sw, sh) = (src_w as usize, src_h as usize);
    for y in 0..kept_h {
        let ry = y + crop_y;
        let row = &mut dst_data[(dst_y + y) * dst_stride + dst_x..][..kept_w];
        match g.rotation {
            0 => row.copy_from_slice(&src_data[ry * src_stride + crop_x..][..kept_w]),
            _ => {
                for (x, out) in row.iter_mut().enumerate() {
                    let rx = x + crop_x;
                    let (sx, sy) = match g.rotation {
                        90 => (ry, sh - 1 - rx),
                        180 => (sw - 1 - rx, sh - 1 - ry),
                        _ => (sw - 1 - ry, rx),
                    };
                    *out = src_data[sy * src_stride + sx];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P720: (u32, u32) = (1280, 720);

    #[test]
    fn fit_16_9_is_direct() {
        let g = Geometry::plan(1920, 1080, (1, 1), 0, P720, FitMode::Fit);
        assert_eq!((g.scaled_width, g.scaled_height), (1280, 720));
        assert!(g.is_direct());
    }

    #[test]
    fn fit_portrait_is_pillarboxed() {
        // A phone video stored 1920x1080 with rotation 90 displays as 1080x1920.
        let g = Geometry::plan(1920, 1080, (1, 1), 90, P720, FitMode::Fit);
        assert_eq!(
            g.placed,
            Rect {
                x: 436,
                y: 0,
                width: 406,
                height: 720
            }
        );
        assert_eq!((g.scaled_width, g.scaled_height), (720, 406));
    }

    #[test]
    fn fit_wide_is_letterboxed_and_sar_honoured() {
        let g = Geometry::plan(640, 272, (1, 1), 0, P720, FitMode::Fit);
        assert_eq!(
            g.placed,
            Rect {
                x: 0,
                y: 88,
                width: 1280,
                height: 544
            }
        );
        // Anamorphic 720x576 with SAR 64:45 displays as 1024x576 = 16:9.
        let g = Geometry::plan(720, 576, (64, 45), 0, P720, FitMode::Fit);
        assert_eq!(
            g.placed,
            Rect {
                x: 0,
                y: 0,
                width: 1280,
                height: 720
            }
        );
    }

    #[test]
    fn fill_crops_center_and_stretch_ignores_aspect() {
        let g = Geometry::plan(1000, 1000, (1, 1), 0, P720, FitMode::Fill);
        assert_eq!((g.scaled_width, g.scaled_height), (1280, 1280));
        assert_eq!(
            g.crop,
            Rect {
                x: 0,
                y: 280,
                width: 1280,
                height: 720
            }
        );
        assert_eq!(
            g.placed,
            Rect {
                x: 0,
                y: 0,
                width: 1280,
                height: 720
            }
        );
        let g = Geometry::plan(333, 77, (1, 1), 0, P720, FitMode::Stretch);
        assert!(g.is_direct());
    }

    #[test]
    fn odd_sizes_plan_even_pictures() {
        for (w, h) in [(333, 199), (17, 1001), (4095, 3)] {
            for mode in [FitMode::Fit, FitMode::Fill, FitMode::Stretch] {
                let g = Geometry::plan(w, h, (1, 1), 0, P720, mode);
                for v in [
                    g.scaled_width,
                    g.scaled_height,
                    g.placed.x,
                    g.placed.y,
                    g.placed.width,
                    g.placed.height,
                ] {
                    assert_eq!(v % 2, 0, "{w}x{h} {mode:?}: {g:?}");
                }
                assert!(g.placed.x + g.placed.width <= 1280 && g.placed.y + g.placed.height <= 720);
            }
        }
    }

    fn gray_frame(w: u32, h: u32, f: impl Fn(usize, usize) -> u8) -> ff::frame::Video {
        let mut frame = ff::frame::Video::new(Pixel::YUV420P, w, h);
        let stride = frame.stride(0);
        let data = frame.data_mut(0);
        for y in 0..h as usize {
            for x in 0..w as usize {
                data[y * stride + x] = f(x, y);
            }
        }
        frame.data_mut(1).fill(128);
        frame.data_mut(2).fill(128);
        frame
    }

    #[test]
    fn rotation_turns_clockwise() {
        crate::media::init();
        // Stored 4x2 picture, bright top-left corner; rotated 90 clockwise onto a 2x4 canvas
        // with stretch, the bright corner must end up top-right.
        let src = gray_frame(4, 2, |x, y| if x == 0 && y == 0 { 235 } else { 16 });
        let g = Geometry::plan(4, 2, (1, 1), 90, (2, 4), FitMode::Stretch);
        let mut n = Normalizer::new(g, FitMode::Stretch, (1, 1));
        let out = n.normalize(&src).unwrap();
        let (stride, y) = (out.stride(0), out.data(0));
        let at = |x: usize, yy: usize| y[yy * stride + x];
        assert!(
            at(1, 0) > 128,
            "top-right should be bright: {:?}",
            [at(0, 0), at(1, 0), at(0, 3), at(1, 3)]
        );
        assert!(at(0, 3) < 128);
    }
}
