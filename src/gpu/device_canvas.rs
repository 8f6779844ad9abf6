//! Canvases made on the model device instead of by swscale: [`DeviceNormalizer`] hands each
//! decoded picture to libtorch (framepipe-torch's `canvas` module) with the same geometry plan
//! as the CPU [`Normalizer`], and gets back a [`DeviceCanvas`], a handle to the yuv420p canvas
//! kept on the device for the model stages.
//!
//! NVDEC pictures (FFmpeg CUDA frames of NV12 or P010) are read where they are, in GPU memory;
//! host pictures of the formats the device converts itself (yuv420p/yuvj420p, nv12, p010,
//! yuv420p10) are uploaded as they are; anything else is normalized here by swscale and the
//! finished canvas uploaded, so every source works and only the common ones take the fast path.
use ff::format::Pixel;
use ffmpeg_next as ff;
use framepipe_proto::ops::{CanvasFree, CanvasMake, PlaneLocation, SourceFormat};
use framepipe_proto::{Device, Matrix};

use crate::config::FitMode;
use crate::media::normalize::{Geometry, Normalizer};
use crate::torch::Torch;

/// A canvas on the model device, released when dropped. Shared by `Arc` between the model
/// stages; they drop it only after the model calls that read it have returned.
pub struct DeviceCanvas {
    handle: u64,
    torch: &'static Torch,
    pub width: u32,
    pub height: u32,
    /// The YUV matrix of the source (the canvas is limited range).
    pub matrix: Matrix,
}

impl DeviceCanvas {
    /// The library's handle, for the `canvases` list of a frames request.
    pub fn handle(&self) -> u64 {
        self.handle
    }

    /// The canvas's Y, U and V planes, copied to host memory.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![0u8; self.width as usize * self.height as usize * 3 / 2];
        self.torch.canvas_read(self.handle, &mut out)?;
        Ok(out)
    }
}

impl Drop for DeviceCanvas {
    fn drop(&mut self) {
        let request = CanvasFree {
            handles: vec![self.handle],
        };
        if let Err(e) = self.torch.call(&request) {
            tracing::debug!(handle = self.handle, "releasing a device canvas: {e}");
        }
    }
}

/// Makes device canvases for one input on `device`.
pub struct DeviceNormalizer {
    torch: &'static Torch,
    device: Device,
    geometry: Geometry,
    mode: FitMode,
    sar: (i32, i32),
    /// The source size the geometry was planned for.
    planned_for: Option<(u32, u32)>,
    /// swscale for sources the device does not convert itself (made on first need).
    fallback: Option<Normalizer>,
}

/// How a picture's planes reach the library.
struct Planes {
    location: PlaneLocation,
    format: SourceFormat,
    full_range: bool,
    data: [*const u8; 3],
    pitches: [i64; 3],
}

impl DeviceNormalizer {
    pub fn new(
        torch: &'static Torch,
        device: Device,
        geometry: Geometry,
        mode: FitMode,
        sar: (i32, i32),
    ) -> Self {
        DeviceNormalizer {
            torch,
            device,
            geometry,
            mode,
            sar,
            planned_for: None,
            fallback: None,
        }
    }

    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// The model device the canvases are made on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The canvas of one decoded picture. A mid-stream change of the source size replans the
    /// picture, as the CPU normalizer does.
    pub fn normalize(&mut self, src: &ff::frame::Video) -> Result<DeviceCanvas, String> {
        let size = (src.width(), src.height());
        if self.planned_for.is_some_and(|s| s != size) {
            self.geometry = self
                .geometry
                .for_source_size(size.0, size.1, self.sar, self.mode);
        }
        self.planned_for = Some(size);
        let matrix = crate::media::matrix_of(src.color_space());
        if src.format() == Pixel::CUDA {
            // Read in place only by a canvas on a GPU (the same one: NVDEC decodes on the model's).
            if let Some(planes) = gpu_planes(src).filter(|_| self.device.is_cuda()) {
                return self.make(src, &planes, self.geometry, matrix);
            }
            // A surface format the device path does not read (4:4:4, 12-bit): through memory.
            let host = crate::media::decode::download_hw_frame(src)
                .map_err(|e| format!("copying a hardware-decoded frame to memory: {e}"))?;
            return self.normalize_host(&host, matrix);
        }
        self.normalize_host(src, matrix)
    }

    fn normalize_host(
        &mut self,
        src: &ff::frame::Video,
        matrix: Matrix,
    ) -> Result<DeviceCanvas, String> {
        if let Some(planes) = host_planes(src) {
            return self.make(src, &planes, self.geometry, matrix);
        }
        let (geometry, mode, sar) = (self.geometry, self.mode, self.sar);
        let normalizer = self
            .fallback
            .get_or_insert_with(|| Normalizer::new(geometry, mode, sar));
        let canvas = normalizer
            .normalize(src)
            .map_err(|e| format!("scaling a frame: {e}"))?;
        let planes = host_planes(&canvas).expect("the normalizer makes yuv420p");
        // The canvas is finished: the device only copies it.
        let identity = Geometry::identity(canvas.width(), canvas.height());
        self.make(&canvas, &planes, identity, matrix)
    }

    fn make(
        &self,
        src: &ff::frame::Video,
        planes: &Planes,
        g: Geometry,
        matrix: Matrix,
    ) -> Result<DeviceCanvas, String> {
        let rect = |r: crate::media::normalize::Rect| [r.x, r.y, r.width, r.height].map(i64::from);
        let request = CanvasMake {
            device: self.device,
            location: planes.location,
            format: planes.format,
            width: i64::from(src.width()),
            height: i64::from(src.height()),
            full_range: planes.full_range,
            canvas: [g.canvas_width, g.canvas_height].map(i64::from),
            scaled: [g.scaled_width, g.scaled_height].map(i64::from),
            rotation: i64::from(g.rotation),
            crop: rect(g.crop),
            placed: rect(g.placed),
        };
        // SAFETY: the planes are `src`'s own (host memory, or GPU memory of FFmpeg's pool for
        // a CUDA frame), valid for their pitch times their rows while `src` lives, which spans
        // this call.
        let reply = unsafe {
            self.torch
                .canvas_make(&request, planes.data, planes.pitches)
        }?;
        Ok(DeviceCanvas {
            handle: reply.handle,
            torch: self.torch,
            width: g.canvas_width,
            height: g.canvas_height,
            matrix,
        })
    }
}

/// The planes of a host picture in a format the device converts itself.
fn host_planes(src: &ff::frame::Video) -> Option<Planes> {
    let (format, full_range, count) = match src.format() {
        Pixel::YUV420P => (
            SourceFormat::Yuv420p,
            src.color_range() == ff::color::Range::JPEG,
            3,
        ),
        Pixel::YUVJ420P => (SourceFormat::Yuv420p, true, 3),
        Pixel::NV12 => (
            SourceFormat::Nv12,
            src.color_range() == ff::color::Range::JPEG,
            2,
        ),
        Pixel::P010LE => (
            SourceFormat::P010,
            src.color_range() == ff::color::Range::JPEG,
            2,
        ),
        Pixel::YUV420P10LE => (
            SourceFormat::Yuv420p10,
            src.color_range() == ff::color::Range::JPEG,
            3,
        ),
        _ => return None,
    };
    planes_of(src, PlaneLocation::Host, format, full_range, count)
}

/// The planes of an NVDEC picture (NV12 or P010 in GPU memory), if it is one of those.
fn gpu_planes(src: &ff::frame::Video) -> Option<Planes> {
    // SAFETY: a CUDA frame carries its frames context; reading its software format.
    let sw_format = unsafe {
        let frames = (*src.as_ptr()).hw_frames_ctx;
        if frames.is_null() {
            return None;
        }
        (*((*frames).data as *const ff::ffi::AVHWFramesContext)).sw_format
    };
    let full_range = src.color_range() == ff::color::Range::JPEG;
    match sw_format {
        ff::ffi::AVPixelFormat::AV_PIX_FMT_NV12 => planes_of(
            src,
            PlaneLocation::Device,
            SourceFormat::Nv12,
            full_range,
            2,
        ),
        ff::ffi::AVPixelFormat::AV_PIX_FMT_P010LE => planes_of(
            src,
            PlaneLocation::Device,
            SourceFormat::P010,
            full_range,
            2,
        ),
        _ => None,
    }
}

fn planes_of(
    src: &ff::frame::Video,
    location: PlaneLocation,
    format: SourceFormat,
    full_range: bool,
    count: usize,
) -> Option<Planes> {
    let mut data = [std::ptr::null(); 3];
    let mut pitches = [0i64; 3];
    // SAFETY: reading the frame's plane pointers and line sizes.
    let raw = unsafe { &*src.as_ptr() };
    for i in 0..count {
        if raw.data[i].is_null() || raw.linesize[i] <= 0 {
            // Bottom-up pictures (negative line sizes) take the swscale path.
            return None;
        }
        data[i] = raw.data[i].cast_const();
        pitches[i] = i64::from(raw.linesize[i]);
    }
    Some(Planes {
        location,
        format,
        full_range,
        data,
        pitches,
    })
}
