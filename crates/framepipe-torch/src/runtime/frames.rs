//! Frame batches as the stages send them, made into RGB on the model's device: packed RGB24
//! (converted by swscale on the CPU), or the YUV 4:2:0 planes of the normalized frames,
//! converted here. On a GPU the planes are half the bytes of RGB to upload and the conversion
//! costs the CPU nothing; the arithmetic follows swscale's (nearest chroma, the tagged matrix
//! and range), so both paths give the same pixels up to rounding.
use framepipe_proto::ops::Frames;
use framepipe_proto::{FrameLayout, PixelFormat, TorchError};
use tch::{Device, Kind, Tensor};

/// `n` frames as uint8 RGB `[n, 3, h, w]` on `device` (cropped to the layout's crop for YUV
/// input), from `bytes` laid out as `frames` says. A tensor of its own (the stages convert
/// inside [`Batch::with_uploaded`] instead, without this copy).
pub fn rgb_on_device(frames: &Frames, bytes: &[u8], device: Device) -> Result<Tensor, TorchError> {
    let batch = Batch::new(frames)?;
    batch.with_uploaded(bytes, device, |raw| Ok(batch.to_rgb(raw)?.copy()))
}

/// A batch's results as one contiguous f32 tensor on the CPU: the stages' one copy back per
/// batch (and the wait for the device that it implies).
pub fn to_host_f32(results: &Tensor) -> Result<Tensor, TorchError> {
    results
        .f_to_kind(Kind::Float)
        .and_then(|t| t.f_to_device(Device::Cpu))
        .and_then(|t| t.f_contiguous())
        .map_err(torch_error)
}

/// A tch error as the boundary's (its text is libtorch's: out of memory is recognised there;
/// `reply::finish` cuts the C++ backtrace off every error that crosses).
pub fn torch_error(e: tch::TchError) -> TorchError {
    TorchError::from_libtorch(e.to_string())
}

/// Copies results made by [`to_host_f32`] into the caller's `out` buffer, refusing one that is
/// too small.
pub fn copy_into(results: &Tensor, out: &mut [f32]) -> Result<(), TorchError> {
    let needed = results.numel();
    if out.len() < needed {
        return Err(TorchError::bad_input(format!(
            "output buffer holds {} floats, {needed} needed",
            out.len()
        )));
    }
    results
        .f_copy_data(&mut out[..needed], needed)
        .map_err(torch_error)
}

/// A request's frames: `n` frames of one layout, checked before any byte is touched.
#[derive(Debug, Clone)]
pub struct Batch {
    pub n: i64,
    pub height: i64,
    pub width: i64,
    pub layout: FrameLayout,
}

impl Batch {
    pub fn new(frames: &Frames) -> Result<Batch, TorchError> {
        Batch::of(i64::from(frames.n), frames.layout)
    }

    pub fn of(n: i64, layout: FrameLayout) -> Result<Batch, TorchError> {
        if n < 1 {
            return Err(TorchError::bad_input(format!("{n} frames: at least one")));
        }
        layout.check().map_err(TorchError::bad_input)?;
        Ok(Batch {
            n,
            height: i64::from(layout.height),
            width: i64::from(layout.width),
            layout,
        })
    }

    /// The size (width, height) of the RGB picture the model sees: the crop, or the frame.
    pub fn picture_size(&self) -> (i64, i64) {
        let (w, h) = self.layout.picture_size();
        (i64::from(w), i64::from(h))
    }

    pub fn bytes_per_frame(&self) -> i64 {
        self.layout.bytes_per_frame() as i64
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
        f: impl FnOnce(&Tensor) -> Result<T, TorchError>,
    ) -> Result<T, TorchError> {
        let per_frame = self.bytes_per_frame();
        if bytes.len() as i64 != self.n * per_frame {
            return Err(TorchError::bad_input(format!(
                "frame data is {} bytes, {} {} frames of {}x{} need {}",
                bytes.len(),
                self.n,
                self.layout.format_name(),
                self.width,
                self.height,
                self.n * per_frame
            )));
        }
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
        .map_err(torch_error)?;
        if !device.is_cuda() {
            return f(&borrowed);
        }
        let uploaded = borrowed
            .f_pin_memory(device)
            .and_then(|t| t.f_to_device_(device, Kind::Uint8, true, false))
            .map_err(torch_error)?;
        drop(borrowed);
        f(&uploaded)
    }

    /// Uploaded frames (`[n, bytes_per_frame]` uint8, as [`Batch::with_uploaded`] hands them on)
    /// as uint8 RGB `[n, 3, h, w]` on the same device, cropped to the picture for YUV input.
    pub fn to_rgb(&self, raw: &Tensor) -> Result<Tensor, TorchError> {
        let (n, h, w) = (self.n, self.height, self.width);
        let PixelFormat::Yuv420p {
            matrix,
            full_range,
            crop,
        } = self.layout.format
        else {
            // NHWC memory seen as NCHW (channels-last), the layout oneDNN convolves fastest on
            // the CPU; the VAE makes it NCHW on CUDA (ops::vae::encode_uploaded).
            return raw
                .f_view([n, h, w, 3])
                .and_then(|t| t.f_permute([0, 3, 1, 2]))
                .map_err(torch_error);
        };
        let rgb = yuv420p_to_rgb(raw, h, w, matrix.kr_kb(), full_range).map_err(torch_error)?;
        match crop {
            None => Ok(rgb),
            Some(c) => rgb
                .f_narrow(2, i64::from(c.y), i64::from(c.height))
                .and_then(|t| t.f_narrow(3, i64::from(c.x), i64::from(c.width)))
                .map_err(torch_error),
        }
    }
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
    use framepipe_proto::{Crop, Matrix};

    fn frames(n: u32, layout: FrameLayout) -> Frames {
        Frames {
            n,
            layout,
            canvases: None,
        }
    }

    /// One 2x2 frame of a single colour: (Y, U, V) → RGB through the device path.
    fn convert(yuv: (u8, u8, u8), matrix: Matrix, full_range: bool) -> Vec<u8> {
        let bytes = [yuv.0, yuv.0, yuv.0, yuv.0, yuv.1, yuv.2];
        let layout = FrameLayout::yuv420p((2, 2), matrix, full_range, None);
        let rgb = rgb_on_device(&frames(1, layout), &bytes, Device::Cpu).unwrap();
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
        assert_eq!(convert((62, 102, 239), Matrix::Bt709, false), [253, 0, 0]);
        assert_eq!(
            convert((235, 128, 128), Matrix::Bt709, false),
            [255, 255, 255]
        );
        assert_eq!(convert((16, 128, 128), Matrix::Bt601, false), [0, 0, 0]);
        assert_eq!(
            convert((128, 128, 128), Matrix::Bt601, true),
            [128, 128, 128]
        );
        // BT.601 reads the BT.709 red darker: the matrix matters.
        assert!(convert((62, 102, 239), Matrix::Bt601, false)[0] < 240);
    }

    #[test]
    fn bad_layouts_are_refused() {
        let odd = FrameLayout::yuv420p((3, 2), Matrix::Bt601, false, None);
        let e = rgb_on_device(&frames(1, odd), &[0; 9], Device::Cpu).unwrap_err();
        assert!(e.message.contains("even"), "{e}");
        let crop = Crop {
            x: 1,
            y: 1,
            width: 2,
            height: 2,
        };
        let outside = FrameLayout::yuv420p((2, 2), Matrix::Bt601, false, Some(crop));
        let e = rgb_on_device(&frames(1, outside), &[0; 6], Device::Cpu).unwrap_err();
        assert!(e.message.contains("outside"), "{e}");
        let e =
            rgb_on_device(&frames(2, FrameLayout::rgb24(2, 2)), &[0; 12], Device::Cpu).unwrap_err();
        assert!(e.message.contains("24"), "{e}");
    }
}
