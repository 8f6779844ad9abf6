//! How the frames of a model call are laid out in the bytes that travel by pointer: packed
//! RGB24 (converted by swscale on the host), or the YUV 4:2:0 planes of the normalized canvas
//! (converted on the model's device, with the source's matrix and range), of which the model
//! may see only a part (`crop`).
use serde::{Deserialize, Serialize};

/// One frame's layout; a batch of `n` frames is `n * bytes_per_frame()` bytes, frame after frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameLayout {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PixelFormat {
    /// `height` rows of `width` RGB pixels.
    Rgb24,
    /// Y (`width` x `height`), then U, then V (half size each way).
    Yuv420p {
        matrix: Matrix,
        full_range: bool,
        /// The part of the frame the model sees; `None`: all of it.
        crop: Option<Crop>,
    },
}

/// A rectangle of a frame, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

/// The YUV matrix of a picture (untagged video is BT.601, as in swscale and `ffmpeg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Matrix {
    Bt709,
    #[default]
    Bt601,
    Bt2020,
    Fcc,
    Smpte240m,
}

impl Matrix {
    /// (Kr, Kb) of the matrix.
    pub fn kr_kb(self) -> (f64, f64) {
        match self {
            Matrix::Bt709 => (0.2126, 0.0722),
            Matrix::Bt601 => (0.299, 0.114),
            Matrix::Bt2020 => (0.2627, 0.0593),
            Matrix::Fcc => (0.30, 0.11),
            Matrix::Smpte240m => (0.212, 0.087),
        }
    }
}

impl FrameLayout {
    pub fn rgb24(width: u32, height: u32) -> FrameLayout {
        FrameLayout {
            width,
            height,
            format: PixelFormat::Rgb24,
        }
    }

    /// YUV 4:2:0 planes of a `width` x `height` frame whose `crop` part the model sees (no crop
    /// when that is the whole frame).
    pub fn yuv420p(
        (width, height): (u32, u32),
        matrix: Matrix,
        full_range: bool,
        crop: Option<Crop>,
    ) -> FrameLayout {
        let whole = Crop {
            x: 0,
            y: 0,
            width,
            height,
        };
        FrameLayout {
            width,
            height,
            format: PixelFormat::Yuv420p {
                matrix,
                full_range,
                crop: crop.filter(|c| *c != whole),
            },
        }
    }

    pub fn bytes_per_frame(&self) -> usize {
        let pixels = self.width as usize * self.height as usize;
        match self.format {
            PixelFormat::Rgb24 => pixels * 3,
            PixelFormat::Yuv420p { .. } => pixels * 3 / 2,
        }
    }

    /// The size (width, height) of the RGB picture the model sees: the crop, or the frame.
    pub fn picture_size(&self) -> (u32, u32) {
        match self.format {
            PixelFormat::Yuv420p { crop: Some(c), .. } => (c.width, c.height),
            _ => (self.width, self.height),
        }
    }

    /// `rgb24` or `yuv420p`.
    pub fn format_name(&self) -> &'static str {
        match self.format {
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Yuv420p { .. } => "yuv420p",
        }
    }

    /// Refuses layouts no frame has: empty sides, odd sides for 4:2:0, a crop outside the frame.
    pub fn check(&self) -> Result<(), String> {
        let (w, h) = (self.width, self.height);
        if w == 0 || h == 0 {
            return Err(format!("frames of {w}x{h}: both sides must be positive"));
        }
        if let PixelFormat::Yuv420p { crop, .. } = self.format {
            if w % 2 != 0 || h % 2 != 0 {
                return Err(format!("yuv420p frames need even sides, got {w}x{h}"));
            }
            if let Some(c) = crop {
                let inside = c.width > 0
                    && c.height > 0
                    && u64::from(c.x) + u64::from(c.width) <= u64::from(w)
                    && u64::from(c.y) + u64::from(c.height) <= u64::from(h);
                if !inside {
                    return Err(format!(
                        "crop [{}, {}, {}, {}] is outside the {w}x{h} frame",
                        c.x, c.y, c.width, c.height
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_format_and_crop() {
        let rgb = FrameLayout::rgb24(4, 2);
        assert_eq!((rgb.bytes_per_frame(), rgb.picture_size()), (24, (4, 2)));
        let crop = Crop {
            x: 0,
            y: 2,
            width: 4,
            height: 2,
        };
        let yuv = FrameLayout::yuv420p((4, 6), Matrix::Bt709, false, Some(crop));
        assert_eq!((yuv.bytes_per_frame(), yuv.picture_size()), (36, (4, 2)));
        assert!(yuv.check().is_ok());
        let whole = Crop {
            y: 0,
            height: 6,
            ..crop
        };
        let uncropped = FrameLayout::yuv420p((4, 6), Matrix::Bt709, false, Some(whole));
        assert_eq!(
            uncropped.format,
            PixelFormat::Yuv420p {
                matrix: Matrix::Bt709,
                full_range: false,
                crop: None
            }
        );
    }

    #[test]
    fn impossible_layouts_are_refused() {
        let odd = FrameLayout::yuv420p((3, 2), Matrix::Bt601, false, None);
        assert!(odd.check().unwrap_err().contains("even"));
        let crop = Crop {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        let outside = FrameLayout::yuv420p((2, 2), Matrix::Bt601, false, Some(crop));
        assert!(outside.check().unwrap_err().contains("outside"));
        assert!(FrameLayout::rgb24(0, 2).check().is_err());
    }

    #[test]
    fn layouts_travel_as_json() {
        let yuv = FrameLayout::yuv420p((4, 2), Matrix::Smpte240m, true, None);
        let text = serde_json::to_string(&yuv).unwrap();
        assert_eq!(
            text,
            r#"{"width":4,"height":2,"format":{"yuv420p":{"matrix":"smpte240m","full_range":true,"crop":null}}}"#
        );
        assert_eq!(serde_json::from_str::<FrameLayout>(&text).unwrap(), yuv);
        let rgb = serde_json::to_string(&FrameLayout::rgb24(2, 2)).unwrap();
        assert_eq!(rgb, r#"{"width":2,"height":2,"format":"rgb24"}"#);
    }
}
