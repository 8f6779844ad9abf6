//! Device canvases: the normalize step done on the model device, for pipelines whose only frame
//! consumers are model stages. A decoded picture (NVDEC's NV12/P010 surface in GPU memory, or
//! planes in host memory) becomes the same limited-range yuv420p canvas the CPU normalizer
//! makes with swscale (scale, rotate, crop, pad), kept on the device under a handle; the clip
//! and vae ops then take handles instead of frame bytes ([`with_frames`]), so a frame that was
//! decoded on the GPU never crosses PCIe.
//!
//! Streams: the canvas is made on the calling (normalize) thread's stream. When the picture
//! is FFmpeg's, that stream first waits for the legacy default stream (where NVDEC's copies
//! run), and the default stream then waits for the canvas kernels, so the decoder reuses the
//! picture's memory only after they read it. The canvas keeps an event that the model stages'
//! streams wait for before reading it. None of this waits on the host.
//!
//! Lifetime: a canvas lives until [`free`]. The ops that read canvases copy their results to
//! the host before returning (which waits for their stream), so freeing a canvas after the
//! calls that read it have returned never hands its memory to new work while it is read.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use framepipe_proto::ops::{
    CanvasBytes, CanvasFree, CanvasMade, CanvasMake, CanvasRead, CanvasesFreed, Frames,
    PlaneLocation, SourceFormat,
};
use framepipe_proto::TorchError;
use tch::{Device, Kind, Tensor};

use crate::runtime::frames::{torch_error, Batch};
use crate::runtime::models::tch_device;

/// The largest source side accepted (FFmpeg's own limit for most decoders is 16384).
const MAX_SIDE: i64 = 16384;

struct Canvas {
    /// The canvas's Y, U and V planes, flattened one after the other: `[w*h*3/2]` uint8.
    planes: Tensor,
    /// Recorded on the making thread's stream after the last kernel that writes the canvas
    /// (CUDA only).
    ready: Option<crate::runtime::cuda::Event>,
}

static CANVASES: Mutex<Option<HashMap<u64, Canvas>>> = Mutex::new(None);
static NEXT: AtomicU64 = AtomicU64::new(1);

fn registry() -> std::sync::MutexGuard<'static, Option<HashMap<u64, Canvas>>> {
    // The map holds plain tensors; a panic elsewhere while it was locked left it consistent.
    CANVASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Canvas `id` of the locked registry.
fn lookup(map: &Option<HashMap<u64, Canvas>>, id: u64) -> Result<&Canvas, TorchError> {
    map.as_ref()
        .and_then(|m| m.get(&id))
        .ok_or_else(|| TorchError::bad_input(format!("no canvas {id} (freed, or never made)")))
}

impl Canvas {
    /// The planes, with the calling thread's current stream waiting (on the device) for the
    /// kernels that made them.
    fn ready_planes(&self) -> Result<Tensor, TorchError> {
        if let Some(ready) = &self.ready {
            ready.block_current()?;
        }
        Ok(self.planes.shallow_clone())
    }
}

/// The tensor kind of a source format's samples (16-bit samples read as int16).
fn sample_kind(format: SourceFormat) -> Kind {
    match format.sample_bytes() {
        1 => Kind::Uint8,
        _ => Kind::Int16,
    }
}

/// Where the canvas takes the picture from and how it lands, as the CPU normalizer plans it.
#[derive(Debug, Clone, Copy)]
struct Plan {
    format: SourceFormat,
    width: i64,
    height: i64,
    full_range: bool,
    canvas: [i64; 2],
    scaled: [i64; 2],
    /// Clockwise, a multiple of 90.
    rotation: i64,
    crop: [i64; 4],
    placed: [i64; 4],
}

impl Plan {
    fn of(op: &CanvasMake) -> Result<Plan, TorchError> {
        let plan = Plan {
            format: op.format,
            width: op.width,
            height: op.height,
            full_range: op.full_range,
            canvas: op.canvas,
            scaled: op.scaled,
            rotation: op.rotation,
            crop: op.crop,
            placed: op.placed,
        };
        plan.check().map_err(TorchError::bad_input)?;
        Ok(plan)
    }

    /// Refuses sizes no picture has and placements outside the canvas, before any pointer is
    /// read.
    fn check(&self) -> Result<(), String> {
        let side = |v: i64| (1..=MAX_SIDE).contains(&v);
        if !side(self.width) || !side(self.height) {
            return Err(format!(
                "source size {}x{} is outside 1..{MAX_SIDE}",
                self.width, self.height
            ));
        }
        let even_side = |v: i64| side(v) && v % 2 == 0;
        let [cw, ch] = self.canvas;
        let [sw, sh] = self.scaled;
        if !(even_side(cw) && even_side(ch) && even_side(sw) && even_side(sh)) {
            return Err(format!(
                "canvas {cw}x{ch} and scaled size {sw}x{sh} must be even and at most {MAX_SIDE}"
            ));
        }
        if self.rotation.rem_euclid(90) != 0 {
            return Err(format!(
                "rotation {} is not a multiple of 90",
                self.rotation
            ));
        }
        let (rw, rh) = if self.rotation.rem_euclid(180) == 90 {
            (sh, sw)
        } else {
            (sw, sh)
        };
        let [x, y, w, h] = self.crop;
        let [px, py, pw, ph] = self.placed;
        let inside = |x: i64, y: i64, w: i64, h: i64, bw: i64, bh: i64| {
            x >= 0 && y >= 0 && w > 0 && h > 0 && x + w <= bw && y + h <= bh
        };
        let all_even = [x, y, w, h, px, py].iter().all(|v| v % 2 == 0);
        if !inside(x, y, w, h, rw, rh)
            || !inside(px, py, pw, ph, cw, ch)
            || (w, h) != (pw, ph)
            || !all_even
        {
            return Err(format!(
                "crop {:?} of the {rw}x{rh} picture placed at {:?} on the {cw}x{ch} canvas does not fit (even offsets and sizes)",
                self.crop, self.placed
            ));
        }
        Ok(())
    }

    /// Whether the scaled picture is the canvas itself.
    fn is_direct(&self) -> bool {
        self.rotation.rem_euclid(360) == 0 && self.scaled == self.canvas
    }
}

/// Makes a canvas from one picture with the CPU normalizer's plan (`op`): `planes` and
/// `pitches` (bytes) are the picture's planes (two for nv12/p010) in host memory or on the
/// op's device.
///
/// # Safety
/// Each plane pointer must be valid for reads of its pitch times its rows (the source height
/// for Y, half of it rounded up for chroma) in the memory `location` says.
pub unsafe fn make(
    op: &CanvasMake,
    planes: [*const u8; 3],
    pitches: [i64; 3],
) -> Result<CanvasMade, TorchError> {
    let plan = Plan::of(op)?;
    let device = tch_device(op.device);
    let on_device = op.location == PlaneLocation::Device;
    let plane_count = if plan.format.interleaved() { 2 } else { 3 };
    let sample_bytes = plan.format.sample_bytes();
    let (chroma_w, chroma_h) = ((plan.width + 1) / 2, (plan.height + 1) / 2);
    for i in 0..plane_count {
        let row_bytes = match i {
            0 => plan.width,
            _ if plan.format.interleaved() => chroma_w * 2,
            _ => chroma_w,
        } * sample_bytes;
        if planes[i].is_null() || pitches[i] < row_bytes || pitches[i] % sample_bytes != 0 {
            return Err(TorchError::bad_input(format!(
                "plane {i}: pitch {} for rows of {row_bytes} bytes (or no data)",
                pitches[i]
            )));
        }
    }
    let _guard = tch::no_grad_guard();
    crate::runtime::cuda::use_thread_stream_or_default(device);
    let picture_on_gpu = on_device && device.is_cuda();
    if picture_on_gpu {
        crate::runtime::cuda::current_waits_for_default(device)?;
    }
    let blob_device = if on_device { device } else { Device::Cpu };
    let kind = sample_kind(plan.format);
    // SAFETY: the caller vouches for the planes; each view is copied (to_device or the float
    // conversion) before this returns.
    let view = |i: usize, size: &[i64], strides: &[i64]| unsafe {
        Tensor::f_from_blob(planes[i], size, strides, kind, blob_device)
    };
    let pitch = |i: usize| pitches[i] / sample_bytes;
    let (y, u, v) = {
        let y = view(0, &[plan.height, plan.width], &[pitch(0), 1]).map_err(torch_error)?;
        let (u, v) = if plan.format.interleaved() {
            let uv = view(1, &[chroma_h, chroma_w, 2], &[pitch(1), 2, 1]).map_err(torch_error)?;
            (
                uv.f_select(2, 0).map_err(torch_error)?,
                uv.f_select(2, 1).map_err(torch_error)?,
            )
        } else {
            (
                view(1, &[chroma_h, chroma_w], &[pitch(1), 1]).map_err(torch_error)?,
                view(2, &[chroma_h, chroma_w], &[pitch(2), 1]).map_err(torch_error)?,
            )
        };
        // Host pictures travel as they are (8 or 16 bits a sample), not as floats.
        let up = |t: Tensor| t.f_to_device(device).map_err(torch_error);
        (up(y)?, up(u)?, up(v)?)
    };
    let made = canvas_planes(&plan, y, u, v).map_err(torch_error)?;
    let ready = crate::runtime::cuda::Event::record(device)?;
    if picture_on_gpu {
        crate::runtime::cuda::default_waits_for_current(device)?;
    }
    let handle = NEXT.fetch_add(1, Ordering::Relaxed);
    registry().get_or_insert_with(HashMap::new).insert(
        handle,
        Canvas {
            planes: made,
            ready,
        },
    );
    Ok(CanvasMade {
        handle,
        width: plan.canvas[0],
        height: plan.canvas[1],
    })
}

/// The canvas's flattened planes from the source planes (2-D, on the target device).
fn canvas_planes(plan: &Plan, y: Tensor, u: Tensor, v: Tensor) -> Result<Tensor, tch::TchError> {
    let [cw, ch] = plan.canvas;
    let [sw, sh] = plan.scaled;
    let mut out = Vec::with_capacity(3);
    for (index, plane) in [y, u, v].into_iter().enumerate() {
        let chroma = index > 0;
        let shift = i64::from(chroma);
        let level = levels_8bit(plan, plane, chroma)?;
        let scaled = resize(&level, sh >> shift, sw >> shift)?
            .f_round()?
            .f_clamp(0.0, 255.0)?
            .f_to_kind(Kind::Uint8)?;
        if plan.is_direct() {
            out.push(scaled.f_flatten(0, -1)?);
            continue;
        }
        // Clockwise turns: torch's rot90 turns counter-clockwise for positive k.
        let turns = plan.rotation.rem_euclid(360) / 90;
        let rotated = if turns == 0 {
            scaled
        } else {
            scaled.f_rot90(-turns, [0, 1])?
        };
        let [x, yy, w, h] = plan.crop.map(|v| v >> shift);
        let [px, py, _, _] = plan.placed.map(|v| v >> shift);
        let black = if chroma { 128 } else { 16 };
        let canvas = Tensor::f_full(
            [ch >> shift, cw >> shift],
            black,
            (Kind::Uint8, rotated.device()),
        )?;
        canvas
            .f_narrow(0, py, h)?
            .f_narrow(1, px, w)?
            .f_copy_(&rotated.f_narrow(0, yy, h)?.f_narrow(1, x, w)?)?;
        out.push(canvas.f_flatten(0, -1)?);
    }
    Tensor::f_cat(&out, 0)
}

/// One plane as f32 in limited-range 8-bit levels (what swscale makes of 10-bit and full-range
/// sources for the yuv420p canvas).
fn levels_8bit(plan: &Plan, plane: Tensor, chroma: bool) -> Result<Tensor, tch::TchError> {
    let values = match plan.format {
        SourceFormat::Yuv420p | SourceFormat::Nv12 => plane.f_to_kind(Kind::Float)?,
        // Unsigned 16-bit samples read as int16: undo the sign, keep the top 10 bits, scale
        // to 8 bits (/64 then /4).
        SourceFormat::P010 => plane
            .f_to_kind(Kind::Int)?
            .f_bitwise_and(0xFFFF)?
            .f_to_kind(Kind::Float)?
            .f_div_scalar(256.0)?,
        SourceFormat::Yuv420p10 => plane.f_to_kind(Kind::Float)?.f_div_scalar(4.0)?,
    };
    if !plan.full_range {
        return Ok(values);
    }
    if chroma {
        values
            .f_sub_scalar(128.0)?
            .f_mul_scalar(224.0 / 255.0)?
            .f_add_scalar(128.0)
    } else {
        values.f_mul_scalar(219.0 / 255.0)?.f_add_scalar(16.0)
    }
}

/// Bicubic resampling of a 2-D plane, antialiased when shrinking (as swscale's bicubic filter
/// widens with the scale factor); none when the size is already right.
fn resize(plane: &Tensor, height: i64, width: i64) -> Result<Tensor, tch::TchError> {
    let size = plane.size();
    if size == [height, width] {
        return Ok(plane.shallow_clone());
    }
    plane
        .f_view([1, 1, size[0], size[1]])?
        .f_internal_upsample_bicubic2d_aa([height, width], false, None, None)?
        .f_view([height, width])
}

/// Releases canvases (unknown handles are ignored: releasing is idempotent).
pub fn free(op: &CanvasFree) -> CanvasesFreed {
    let mut map = registry();
    let mut freed = 0;
    if let Some(map) = map.as_mut() {
        for h in &op.handles {
            freed += u64::from(map.remove(h).is_some());
        }
    }
    CanvasesFreed { freed }
}

/// How many canvases are alive (for tests: a run must not leak them).
pub fn live() -> usize {
    registry().as_ref().map_or(0, HashMap::len)
}

/// Copies a canvas's planes (Y, U, V; `w*h*3/2` bytes) into `out`.
pub fn read(op: &CanvasRead, out: &mut [u8]) -> Result<CanvasBytes, TorchError> {
    let planes = {
        let map = registry();
        let canvas = lookup(&map, op.handle)?;
        crate::runtime::cuda::use_thread_stream_or_default(canvas.planes.device());
        canvas.ready_planes()?
    };
    let host = planes.f_to_device(Device::Cpu).map_err(torch_error)?;
    let n = host.numel();
    if out.len() < n {
        return Err(TorchError::bad_input(format!(
            "output buffer holds {} bytes, {n} needed",
            out.len()
        )));
    }
    host.f_copy_data_u8(&mut out[..n], n).map_err(torch_error)?;
    Ok(CanvasBytes { bytes: n as u64 })
}

/// Runs `f` on a request's frames as a uint8 `[n, bytes_per_frame]` tensor on `device`: the
/// canvases `frames` names (stacked on the device, after their making streams' work) or
/// `bytes` (as [`Batch::with_uploaded`] does).
pub fn with_frames<T>(
    frames: &Frames,
    batch: &Batch,
    bytes: &[u8],
    device: Device,
    f: impl FnOnce(&Tensor) -> Result<T, TorchError>,
) -> Result<T, TorchError> {
    let Some(handles) = &frames.canvases else {
        return batch.with_uploaded(bytes, device, f);
    };
    if !bytes.is_empty() {
        return Err(TorchError::bad_input(
            "frames come as canvases or as bytes, not both",
        ));
    }
    if handles.len() as i64 != batch.n {
        return Err(TorchError::bad_input(format!(
            "{} canvases for a request of {} frames",
            handles.len(),
            batch.n
        )));
    }
    let per_frame = batch.bytes_per_frame();
    let mut planes = Vec::with_capacity(handles.len());
    {
        let map = registry();
        for &id in handles {
            let canvas = lookup(&map, id)?;
            if canvas.planes.device() != device {
                return Err(TorchError::bad_input(format!(
                    "canvas {id} is on {:?}, the model on {device:?}",
                    canvas.planes.device()
                )));
            }
            if canvas.planes.numel() as i64 != per_frame {
                return Err(TorchError::bad_input(format!(
                    "canvas {id} holds {} bytes, frames of {}x{} need {per_frame}",
                    canvas.planes.numel(),
                    batch.width,
                    batch.height
                )));
            }
            planes.push(canvas.ready_planes()?);
        }
    }
    let stacked = Tensor::f_stack(&planes, 0).map_err(torch_error)?;
    f(&stacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use framepipe_proto::{Device as On, FrameLayout};

    fn plan(
        rotation: i64,
        canvas: [i64; 2],
        scaled: [i64; 2],
        crop: [i64; 4],
        placed: [i64; 4],
    ) -> CanvasMake {
        CanvasMake {
            device: On::Cpu,
            location: PlaneLocation::Host,
            format: SourceFormat::Yuv420p,
            width: 4,
            height: 2,
            full_range: false,
            canvas,
            scaled,
            rotation,
            crop,
            placed,
        }
    }

    /// Makes a canvas from a 4x2 yuv420p picture with a bright top-left pixel and reads it back.
    fn canvas_of(op: &CanvasMake) -> Result<Vec<u8>, TorchError> {
        let y = [235u8, 16, 16, 16, 16, 16, 16, 16];
        let (u, v) = ([128u8, 128], [128u8, 128]);
        // SAFETY: the planes are valid for their pitch times their rows.
        let made = unsafe { make(op, [y.as_ptr(), u.as_ptr(), v.as_ptr()], [4, 2, 2]) }?;
        let mut out = vec![0u8; (made.width * made.height * 3 / 2) as usize];
        read(
            &CanvasRead {
                handle: made.handle,
            },
            &mut out,
        )?;
        free(&CanvasFree {
            handles: vec![made.handle],
        });
        Ok(out)
    }

    #[test]
    fn rotation_turns_clockwise_and_padding_is_black() {
        // Rotated 90 clockwise onto a 2x4 canvas (stretch), the bright corner is top-right.
        let out = canvas_of(&plan(90, [2, 4], [4, 2], [0, 0, 2, 4], [0, 0, 2, 4])).unwrap();
        assert!(out[1] > 128 && out[0] < 128, "{:?}", &out[..8]);
        // Placed 2 rows down on a 4x6 canvas: rows 0-1 and chroma row 0 are padding.
        let out = canvas_of(&plan(0, [4, 6], [4, 2], [0, 0, 4, 2], [0, 2, 4, 2])).unwrap();
        assert_eq!(&out[..8], &[16; 8]);
        assert!(out[8] > 128);
        assert_eq!(&out[24..26], &[128, 128]);
    }

    #[test]
    fn bad_plans_and_handles_are_errors() {
        let e = canvas_of(&plan(45, [4, 2], [4, 2], [0, 0, 4, 2], [0, 0, 4, 2])).unwrap_err();
        assert!(e.message.contains("rotation"), "{e}");
        let e = canvas_of(&plan(0, [4, 2], [4, 2], [0, 0, 4, 2], [2, 0, 4, 2])).unwrap_err();
        assert!(e.message.contains("does not fit"), "{e}");
        let mut big = plan(0, [4, 2], [4, 2], [0, 0, 4, 2], [0, 0, 4, 2]);
        big.width = 100_000;
        assert!(canvas_of(&big).unwrap_err().message.contains("outside"));
        let layout = FrameLayout::yuv420p((4, 2), framepipe_proto::Matrix::Bt601, false, None);
        let frames = Frames {
            n: 1,
            layout,
            canvases: Some(vec![u64::MAX]),
        };
        let batch = Batch::new(&frames).unwrap();
        let e = with_frames(&frames, &batch, &[], Device::Cpu, |_| Ok(())).unwrap_err();
        assert!(e.message.contains("no canvas"), "{e}");
    }
}
