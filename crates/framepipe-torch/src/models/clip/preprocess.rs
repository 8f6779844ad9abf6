//! transformers' `CLIPImageProcessor` on batches of device tensors: resize the shortest side
//! (bicubic, antialiased), center crop, rescale, normalize with the CLIP mean and std.
//!
//! Settings come from the folder's `preprocessor_config.json` when present, transformers'
//! defaults otherwise. In transformers 5.x `CLIPImageProcessor` is the torchvision backend, so
//! the reference is torchvision's `resize` on uint8 tensors, which we follow step by step:
//! - uint8 on CPU: libtorch's native uint8 antialiased bicubic kernel (what torchvision calls);
//! - uint8 elsewhere (CUDA has no uint8 kernel): the same separable resize in fp32 with the
//!   uint8 kernel's saturation between passes, rounded at the end: within about one level of
//!   the CPU reference (torchvision's own GPU fallback, one 2-D float resize, is up to 4 off);
//! - float input is taken as already rescaled to [0, 1] and goes the same way without the
//!   final rounding.
//!
//! References (pinned):
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/models/clip/image_processing_clip.py>,
//! <https://github.com/huggingface/transformers/blob/v5.17.0/src/transformers/image_processing_backends.py>
//! (`TorchvisionBackend.resize`, `center_crop`, `rescale_and_normalize`).
use std::path::Path;

use tch::{Device, Kind, Tensor};

use super::ClipError;

/// OpenAI's CLIP normalization constants (transformers' `OPENAI_CLIP_MEAN` / `OPENAI_CLIP_STD`).
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

/// The preprocessing settings of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPreprocessor {
    pub do_resize: bool,
    /// Target of the shortest side (`size.shortest_edge`).
    pub shortest_edge: i64,
    pub do_center_crop: bool,
    /// `crop_size` as (height, width).
    pub crop_size: (i64, i64),
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
}

impl Default for ClipPreprocessor {
    fn default() -> Self {
        Self {
            do_resize: true,
            shortest_edge: 224,
            do_center_crop: true,
            crop_size: (224, 224),
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: OPENAI_CLIP_MEAN,
            image_std: OPENAI_CLIP_STD,
        }
    }
}

impl ClipPreprocessor {
    /// Settings for a square model input of `image_size` (224 for most CLIPs, 336 for L/14-336).
    pub fn for_image_size(image_size: i64) -> Self {
        Self {
            shortest_edge: image_size,
            crop_size: (image_size, image_size),
            ..Self::default()
        }
    }

    /// Reads `folder/preprocessor_config.json` when present; missing keys keep the defaults of
    /// [`Self::for_image_size`]. Both the old (`"size": 224`) and new
    /// (`"size": {"shortest_edge": 224}`) spellings are read.
    pub fn from_folder(folder: &Path, image_size: i64) -> Result<Self, ClipError> {
        let path = folder.join("preprocessor_config.json");
        let mut p = Self::for_image_size(image_size);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(p);
        };
        let err = |message: String| ClipError::Config {
            folder: folder.to_path_buf(),
            message,
        };
        let json: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| err(format!("preprocessor_config.json: {e}")))?;
        let flag = |key: &str, default: bool| json[key].as_bool().unwrap_or(default);
        p.do_resize = flag("do_resize", p.do_resize);
        p.do_center_crop = flag("do_center_crop", p.do_center_crop);
        p.do_rescale = flag("do_rescale", p.do_rescale);
        p.do_normalize = flag("do_normalize", p.do_normalize);
        if let Some(f) = json["rescale_factor"].as_f64() {
            p.rescale_factor = f;
        }
        match &json["size"] {
            serde_json::Value::Number(n) => p.shortest_edge = n.as_i64().unwrap_or(p.shortest_edge),
            serde_json::Value::Object(o) => {
                if let Some(s) = o.get("shortest_edge").and_then(|v| v.as_i64()) {
                    p.shortest_edge = s;
                } else if o.contains_key("height") || o.contains_key("width") {
                    return Err(err(format!(
                        "preprocessor_config.json size {:?} is not supported (expected shortest_edge)",
                        json["size"]
                    )));
                }
            }
            _ => {}
        }
        match &json["crop_size"] {
            serde_json::Value::Number(n) => {
                let s = n.as_i64().unwrap_or(p.crop_size.0);
                p.crop_size = (s, s);
            }
            serde_json::Value::Object(o) => {
                let h = o
                    .get("height")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(p.crop_size.0);
                let w = o
                    .get("width")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(p.crop_size.1);
                p.crop_size = (h, w);
            }
            _ => {}
        }
        for (key, dst) in [
            ("image_mean", &mut p.image_mean),
            ("image_std", &mut p.image_std),
        ] {
            if let Some(values) = json[key].as_array() {
                let v: Vec<f64> = values.iter().filter_map(|v| v.as_f64()).collect();
                *dst = <[f64; 3]>::try_from(v.as_slice()).map_err(|_| {
                    err(format!(
                        "preprocessor_config.json {key} must hold 3 numbers, found {values:?}"
                    ))
                })?;
            }
        }
        if p.shortest_edge <= 0 || p.crop_size.0 <= 0 || p.crop_size.1 <= 0 {
            return Err(err(format!(
                "preprocessor_config.json size {} / crop_size {:?} must be positive",
                p.shortest_edge, p.crop_size
            )));
        }
        Ok(p)
    }

    /// The (height, width) the resize step produces for an input of (height, width):
    /// shortest side to `shortest_edge`, the other scaled and truncated as transformers'
    /// `get_resize_output_image_size(default_to_square=False)` does.
    pub fn resized_size(&self, height: i64, width: i64) -> (i64, i64) {
        let (short, long) = if width <= height {
            (width, height)
        } else {
            (height, width)
        };
        let new_short = self.shortest_edge;
        let new_long = (new_short as f64 * long as f64 / short as f64) as i64;
        if width <= height {
            (new_long, new_short)
        } else {
            (new_short, new_long)
        }
    }

    /// Frames [N, 3, H, W] (uint8 in 0..=255, or float in [0, 1]) on any device to
    /// `pixel_values` [N, 3, crop_h, crop_w] fp32 on the same device.
    pub fn preprocess(&self, frames: &Tensor) -> Result<Tensor, ClipError> {
        let size = frames.size();
        if size.len() != 4 || size[1] != 3 || size[2] < 1 || size[3] < 1 {
            return Err(ClipError::Input(format!(
                "frames have shape {size:?}, expected [N, 3, H, W]"
            )));
        }
        let _guard = tch::no_grad_guard();
        let is_u8 = match frames.kind() {
            Kind::Uint8 => true,
            Kind::Float | Kind::Half | Kind::BFloat16 | Kind::Double => false,
            other => {
                return Err(ClipError::Input(format!(
                    "frames have kind {other:?}, expected Uint8 or a float kind"
                )))
            }
        };
        // Work in 0..255 units like the reference; float frames are scaled up and not rounded.
        let mut xs = if is_u8 {
            frames.shallow_clone()
        } else {
            frames.f_to_kind(Kind::Float)?.f_mul_scalar(255.0)?
        };
        if self.do_resize {
            xs = self.resize(&xs, is_u8)?;
        }
        if self.do_center_crop {
            xs = self.center_crop(&xs)?;
        }
        let xs = xs.f_to_kind(Kind::Float)?;
        self.rescale_and_normalize(&xs, frames.device())
    }

    fn resize(&self, xs: &Tensor, is_u8: bool) -> Result<Tensor, ClipError> {
        let (h, w) = (xs.size()[2], xs.size()[3]);
        let (nh, nw) = self.resized_size(h, w);
        if (nh, nw) == (h, w) {
            // torchvision returns the input untouched; so must we, for exactness.
            return Ok(xs.shallow_clone());
        }
        if is_u8 && xs.device() == Device::Cpu {
            return Ok(xs.f_contiguous()?.f_internal_upsample_bicubic2d_aa(
                [nh, nw],
                false,
                None,
                None,
            )?);
        }
        // Elsewhere (CUDA has no uint8 kernel; float frames), follow what the uint8 kernel does
        // rather than one 2-D float resize: it resizes width, then height, and saturates the
        // intermediate image to 0..=255. A single float resize keeps the bicubic overshoot of
        // the first pass and lands up to 4 levels away from the CPU reference at sharp edges;
        // the two clamped passes stay within about 1 level (tests/clip_preprocess.rs).
        let mut out = xs.f_to_kind(Kind::Float)?;
        if nw != w {
            out = out
                .f_internal_upsample_bicubic2d_aa([h, nw], false, None, None)?
                .f_clamp(0.0, 255.0)?;
        }
        if nh != h {
            out = out
                .f_internal_upsample_bicubic2d_aa([nh, nw], false, None, None)?
                .f_clamp(0.0, 255.0)?;
        }
        // uint8 frames end as integers like the reference; float frames keep their precision.
        if is_u8 {
            Ok(out.f_round()?)
        } else {
            Ok(out)
        }
    }

    /// torchvision-style center crop: offsets truncated toward zero, zero padding when the
    /// crop is larger than the image.
    fn center_crop(&self, xs: &Tensor) -> Result<Tensor, ClipError> {
        let (ch, cw) = self.crop_size;
        let (mut h, mut w) = (xs.size()[2], xs.size()[3]);
        let mut xs = xs.shallow_clone();
        if ch > h || cw > w {
            let pad_w = (cw - w).max(0);
            let pad_h = (ch - h).max(0);
            // [left, right, top, bottom] as torchvision's padding_ltrb.
            xs = xs.f_constant_pad_nd([pad_w / 2, (pad_w + 1) / 2, pad_h / 2, (pad_h + 1) / 2])?;
            h = xs.size()[2];
            w = xs.size()[3];
        }
        let top = (h - ch) / 2;
        let left = (w - cw) / 2;
        Ok(xs.f_narrow(2, top, ch)?.f_narrow(3, left, cw)?)
    }

    /// transformers fuses rescale into normalize: `(x - mean / factor) / (std / factor)` with
    /// the fused constants computed in fp32; doing the same keeps 224x224 input bit-exact.
    fn rescale_and_normalize(&self, xs: &Tensor, device: Device) -> Result<Tensor, ClipError> {
        let constant = |v: [f64; 3]| -> Result<Tensor, ClipError> {
            let t = Tensor::from_slice(&v.map(|x| x as f32)).f_to_device(device)?;
            let t = if self.do_rescale {
                t.f_mul_scalar(1.0 / self.rescale_factor)?
            } else {
                t
            };
            Ok(t.f_view([1, 3, 1, 1])?)
        };
        if self.do_normalize {
            Ok(xs
                .f_sub(&constant(self.image_mean)?)?
                .f_div(&constant(self.image_std)?)?)
        } else if self.do_rescale {
            Ok(xs.f_mul_scalar(self.rescale_factor)?)
        } else {
            Ok(xs.shallow_clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_truncates_like_transformers() {
        let p = ClipPreprocessor::default();
        assert_eq!(p.resized_size(720, 1280), (224, 398));
        assert_eq!(p.resized_size(144, 176), (224, 273));
        assert_eq!(p.resized_size(640, 360), (398, 224));
        assert_eq!(p.resized_size(224, 224), (224, 224));
    }

    #[test]
    fn square_input_at_crop_size_is_only_normalized() {
        let p = ClipPreprocessor::default();
        let frames = Tensor::arange(2 * 3 * 224 * 224, (Kind::Int64, Device::Cpu))
            .remainder(256)
            .to_kind(Kind::Uint8)
            .view([2, 3, 224, 224]);
        let out = p.preprocess(&frames).unwrap();
        let mean =
            Tensor::from_slice(&OPENAI_CLIP_MEAN.map(|x| x as f32)).view([1, 3, 1, 1]) * 255.0;
        let std = Tensor::from_slice(&OPENAI_CLIP_STD.map(|x| x as f32)).view([1, 3, 1, 1]) * 255.0;
        let expected = (frames.to_kind(Kind::Float) - mean) / std;
        assert_eq!(out.size(), [2, 3, 224, 224]);
        assert!(out.equal(&expected));
    }

    #[test]
    fn bad_frames_are_errors() {
        let p = ClipPreprocessor::default();
        assert!(p
            .preprocess(&Tensor::zeros([3, 10, 10], (Kind::Uint8, Device::Cpu)))
            .is_err());
        assert!(p
            .preprocess(&Tensor::zeros([1, 3, 10, 10], (Kind::Int64, Device::Cpu)))
            .is_err());
    }
}
