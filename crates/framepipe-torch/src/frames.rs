//! Frame batches as the stages send them, made into RGB on the model's device: packed RGB24
//! (converted by swscale on the CPU), or the YUV 4:2:0 planes of the normalized frames,
//! converted here. On a GPU the planes are half the bytes of RGB to upload and the conversion
//! costs the CPU nothing; the arithmetic follows swscale's (nearest chroma, the tagged matrix
//! and range), so both paths give the same pixels up to rounding.
use serde_json::Value;
use tch::{Device, Kind, Tensor};

/// `n` frames as uint8 RGB `[n, 3, h, w]` on `device` (cropped to the request's `crop`
/// `[x, y, w, h]` for YUV input), from `bytes` laid out as the request's `format` says:
/// `rgb24` (default; `n*h*w*3` bytes) or `yuv420p` (`n*(h*w*3/2)` bytes: Y, then U, then V,
/// with `matrix` bt709|bt601|bt2020|fcc|smpte240m and `full_range`). A tensor of its own (the
/// stages convert inside [`FrameLayout::with_uploaded`] instead, without this copy).
pub fn rgb_on_device(request: &Value, bytes: &[u8], device: Device) -> Result<Tensor, String> {
    let layout = FrameLayout::from_request(request)?;
    layout.with_uploaded(bytes, device, |raw| Ok(layout.to_rgb(raw)?.copy()))
}

/// A batch's results as one contiguous f32 tensor on the CPU: the stages' one copy back per
/// batch (and the wait for the device that it implies).
pub fn to_host_f32(results: &Tensor) -> Result<Tensor, String> {
    results
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_to_device(Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(|e| e.to_string())
}

/// Copies results made by [`to_host_f32`] into the caller's `out` buffer, refusing one that is
/// too small.
pub fn copy_into(results: &Tensor, out: &mut [f32]) -> Result<(), String> {
    let needed = results.numel();
    if out.len() < needed {
        return Err(format!(
            "output buffer holds {} floats, {needed} needed",
            out.len()
        ));
    }
    results
        .f_copy_data(&mut out[..needed], needed)
        .map_err(|e| e.to_string())
}

/// How a request's frame bytes are laid out, checked before any byte is touched.
#[derive(Debug, Clone)]
pub struct FrameLayout {
    pub n: i64,
    pub height: i64,
    pub width: i64,
    yuv: Option<YuvLayout>,
}

#[derive(Debug, Clone)]
struct YuvLayout {
    matrix: (f64, f64),
    full_range: bool,
    /// `[x, y, w, h]` of the picture the model sees.
    crop: Option<[i64; 4]>,
}

impl FrameLayout {
    /// Reads `n`, `height`, `width`, `format` and (for yuv420p) `matrix`, `full_range`, `crop`.
    pub fn from_request(request: &Value) -> Result<Self, String> {
        let dims = |k: &str| {
            request[k]
                .as_i64()
                .filter(|v| *v > 0)
                .ok_or(format!("\"{k}\" must be a positive integer"))
        };
        let (n, h, w) = (dims("n")?, dims("height")?, dims("width")?);
        let yuv = match request["format"].as_str().unwrap_or("rgb24") {
            "rgb24" => None,
            "yuv420p" if h % 2 == 0 && w % 2 == 0 => Some(YuvLayout {
                matrix: matrix(request)?,
                full_range: request["full_range"].as_bool().unwrap_or(false),
                crop: crop(request, w, h)?,
            }),
            "yuv420p" => return Err(format!("yuv420p frames need even sides, got {w}x{h}")),
            other => return Err(format!("frame format {other:?}: rgb24 or yuv420p")),
        };
        Ok(FrameLayout {
            n,
            height: h,
            width: w,
            yuv,
        })
    }

    /// The size (width, height) of the RGB picture the model sees: the crop, or the frame.
    pub fn picture_size(&self) -> (i64, i64) {
        match &self.yuv {
            Some(YuvLayout {
                crop: Some([_, _, w, h]),
                ..
            }) => (*w, *h),
            _ => (self.width, self.height),
        }
    }

    pub fn bytes_per_frame(&self) -> i64 {
        match self.yuv {
            None => self.height * self.width * 3,
            Some(_) => self.height * self.width * 3 / 2,
        }
    }

    /// Runs `f` on the frames' bytes as a uint8 `[n, bytes_per_frame]` tensor on `device`.
    ///
    /// On the CPU that tensor *borrows* `bytes` (a frame batch is megabytes, and copying it
    /// cost as much as converting it): `f` must not keep it, or any view of it, past its
    /// return (tensors computed from it are new and may stay), and must not write to it. On
    /// CUDA the bytes take one copy into pinned memory, then an asynchronous upload that the
    /// host does not wait for (libtorch's pinned-memory cache keeps that buffer until the copy
    /// has run).
    pub fn with_uploaded<T>(
        &self,
        bytes: &[u8],
        device: Device,
        f: impl FnOnce(&Tensor) -> Result<T, String>,
    ) -> Result<T, String> {
        let per_frame = self.bytes_per_frame();
        if bytes.len() as i64 != self.n * per_frame {
            return Err(format!(
                "frame data is {} bytes, {} {} frames of {}x{} need {}",
                bytes.len(),
                self.n,
                if self.yuv.is_some() {
                    "yuv420p"
                } else {
                    "rgb24"
                },
                self.width,
                self.height,
                self.n * per_frame
            ));
        }
        let err = |e: tch::TchError| e.to_string();
        // SAFETY: `bytes` outlives `borrowed`, which is dropped before this returns; on the CPU
        // `f` gets it under the contract above, on CUDA only `pin_memory` reads it.
        let borrowed = unsafe {
            Tensor::f_from_blob(
                bytes.as_ptr(),
                &[self.n, per_frame],
                &[],
                Kind::Uint8,
                Device::Cpu,
            )
        }
        .map_err(err)?;
        if !device.is_cuda() {
            return f(&borrowed);
        }
        let uploaded = borrowed
            .f_pin_memory(device)
            .and_then(|t| t.f_to_device_(device, Kind::Uint8, true, false))
            .map_err(err)?;
        drop(borrowed);
        f(&uploaded)
    }

    /// Uploaded frames (`[n, bytes_per_frame]` uint8, as [`FrameLayout::with_uploaded`] hands them on)
    /// as uint8 RGB `[n, 3, h, w]` on the same device, cropped to the picture for YUV input.
    pub fn to_rgb(&self, raw: &Tensor) -> Result<Tensor, String> {
        let err = |e: tch::TchError| e.to_string();
        let (n, h, w) = (self.n, self.height, self.width);
        let Some(yuv) = &self.yuv else {
            // NHWC memory seen as NCHW (channels-last), the layout oneDNN convolves fastest on
            // the CPU; the VAE makes it NCHW on CUDA (vae_op::encode_uploaded).
            return raw
                .f_view([n, h, w, 3])
                .and_then(|t| t.f_permute([0, 3, 1, 2]))
                .map_err(err);
        };
        let rgb = yuv420p_to_rgb(raw, h, w, yuv.matrix, yuv.full_range).map_err(err)?;
        match yuv.crop {
            None => Ok(rgb),
            Some([x, y, cw, ch]) => rgb
                .f_narrow(2, y, ch)
                .and_then(|t| t.f_narrow(3, x, cw))
                .map_err(err),
        }
    }
}

/// The request's `crop` `[x, y, w, h]`, checked against the `w`x`h` frame.
fn crop(request: &Value, w: i64, h: i64) -> Result<Option<[i64; 4]>, String> {
    let Some(c) = request["crop"].as_array() else {
        return Ok(None);
    };
    let v: Vec<i64> = c.iter().filter_map(Value::as_i64).collect();
    let [x, y, cw, ch] = v[..] else {
        return Err("\"crop\" must be [x, y, w, h]".into());
    };
    if x < 0 || y < 0 || cw < 1 || ch < 1 || x + cw > w || y + ch > h {
        return Err(format!("crop {v:?} is outside the {w}x{h} frame"));
    }
    Ok(Some([x, y, cw, ch]))
}

/// (Kr, Kb) of a YUV matrix; untagged video is BT.601, as in swscale and `ffmpeg`.
fn matrix(request: &Value) -> Result<(f64, f64), String> {
    Ok(match request["matrix"].as_str().unwrap_or("bt601") {
        "bt709" => (0.2126, 0.0722),
        "bt601" => (0.299, 0.114),
        "bt2020" => (0.2627, 0.0593),
        "fcc" => (0.30, 0.11),
        "smpte240m" => (0.212, 0.087),
        other => {
            return Err(format!(
                "matrix {other:?}: bt709, bt601, bt2020, fcc or smpte240m"
            ))
        }
    })
}

/// `[n, h*w*3/2]` uint8 planes → `[n, 3, h, w]` uint8 RGB (nearest chroma, rounded, clamped).
fn yuv420p_to_rgb(
    frames: &Tensor,
    h: i64,
    w: i64,
    (kr, kb): (f64, f64),
    full_range: bool,
) -> Result<Tensor, tch::TchError> {
    let n = frames.size()[0];
    let luma = h * w;
    let chroma = luma / 4;
    let plane = |start: i64, len: i64, ph: i64, pw: i64| {
        frames
            .f_narrow(1, start, len)?
            .f_view([n, 1, ph, pw])?
            .f_to_kind(Kind::Float)
    };
    let y = plane(0, luma, h, w)?;
    // Nearest-neighbour 4:2:0 upsampling: each chroma sample covers its 2x2 luma block.
    let up = |t: Tensor| {
        t.f_repeat_interleave_self_int(2, 2, None)?
            .f_repeat_interleave_self_int(2, 3, None)
    };
    let u = up(plane(luma, chroma, h / 2, w / 2)?)?;
    let v = up(plane(luma + chroma, chroma, h / 2, w / 2)?)?;
    let (y_scale, c_scale, y_off) = if full_range {
        (1.0, 1.0, 0.0)
    } else {
        (255.0 / 219.0, 255.0 / 224.0, 16.0)
    };
    let kg = 1.0 - kr - kb;
    let y = (y - y_off) * y_scale;
    let u = (u - 128.0) * c_scale;
    let v = (v - 128.0) * c_scale;
    let r = &y + &v * (2.0 * (1.0 - kr));
    let g = &y - &u * (2.0 * kb * (1.0 - kb) / kg) - &v * (2.0 * kr * (1.0 - kr) / kg);
    let b = &y + &u * (2.0 * (1.0 - kb));
    Tensor::f_cat(&[r, g, b], 1)?
        .f_round()?
        .f_clamp(0.0, 255.0)?
        .f_to_kind(Kind::Uint8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One 2x2 frame of a single colour: (Y, U, V) → RGB through the device path.
    fn convert(yuv: (u8, u8, u8), matrix: &str, full_range: bool) -> Vec<u8> {
        let bytes = [yuv.0, yuv.0, yuv.0, yuv.0, yuv.1, yuv.2];
        let req = json!({"n": 1, "width": 2, "height": 2, "format": "yuv420p", "matrix": matrix, "full_range": full_range});
        let rgb = rgb_on_device(&req, &bytes, Device::Cpu).unwrap();
        Vec::<u8>::try_from(
            rgb.f_select(3, 0)
                .unwrap()
                .f_select(2, 0)
                .unwrap()
                .flatten(0, -1),
        )
        .unwrap()
    }

    #[test]
    fn yuv_to_rgb_follows_the_matrix_and_range() {
        // The analytic BT.709 values (R = 1.164*(62-16) + 1.793*(239-128) = 252.6); swscale's
        // fixed-point tables give 251 here, a difference of the size the stage tests allow.
        assert_eq!(convert((62, 102, 239), "bt709", false), [253, 0, 0]);
        assert_eq!(convert((235, 128, 128), "bt709", false), [255, 255, 255]);
        assert_eq!(convert((16, 128, 128), "bt601", false), [0, 0, 0]);
        assert_eq!(convert((128, 128, 128), "bt601", true), [128, 128, 128]);
        // BT.601 reads the BT.709 red darker: the matrix matters.
        assert!(convert((62, 102, 239), "bt601", false)[0] < 240);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let req = json!({"n": 1, "width": 3, "height": 2, "format": "yuv420p"});
        assert!(rgb_on_device(&req, &[0; 9], Device::Cpu)
            .unwrap_err()
            .contains("even"));
        let req =
            json!({"n": 1, "width": 2, "height": 2, "format": "yuv420p", "crop": [1, 1, 2, 2]});
        assert!(rgb_on_device(&req, &[0; 6], Device::Cpu)
            .unwrap_err()
            .contains("outside"));
        let req = json!({"n": 2, "width": 2, "height": 2});
        assert!(rgb_on_device(&req, &[0; 12], Device::Cpu)
            .unwrap_err()
            .contains("24"));
    }
}
