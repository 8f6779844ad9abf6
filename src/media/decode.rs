//! Demuxing and video decoding of one input: packets in, [`SourceFrame`]s out, with the decode
//! errors of a damaged stream counted instead of aborting (a video with some broken packets still
//! yields every frame that decodes).
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::error::{Error, Result};

/// One decoded frame of the source, in decode (presentation) order.
pub struct SourceFrame {
    /// 0-based index among the decoded frames.
    pub index: u64,
    /// Presentation timestamp in the video stream's time base, relative to the file start.
    pub pts: i64,
    /// Seconds from the stream start.
    pub time: f64,
    pub frame: ff::frame::Video,
}

/// After this many read errors in a row the rest of a file is taken as unreadable (without a
/// bound, a file that fails the same read forever would never end).
pub const MAX_CONSECUTIVE_READ_ERRORS: u32 = 64;

/// Where video is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HwAccel {
    #[default]
    None,
    /// NVDEC through FFmpeg's CUDA hwaccel on GPU `device`: frames are copied back to system
    /// memory, or with `keep` left in GPU memory (FFmpeg CUDA frames, for device canvases).
    Cuda { device: u32, keep: bool },
}

/// What became of a hardware decoding request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HwStatus {
    /// Not asked for.
    Software,
    /// Frames come from the hardware decoder.
    Hardware,
    /// Asked for, but decoding runs on the CPU; the reason.
    FellBack(String),
}

/// An opened input: the demuxer and the video decoder, driven packet by packet.
pub struct VideoDecoder {
    path: PathBuf,
    decoder: ff::decoder::Video,
    /// Set by the `get_format` callback when the hardware decoder refuses the stream (declared
    /// after `decoder`, so it outlives the codec context that points at it).
    hw_refused: Option<Box<std::sync::atomic::AtomicBool>>,
    hw_status: HwStatus,
    /// Hand on NVDEC's frames as they are, in GPU memory.
    keep_on_gpu: bool,
    stream_index: usize,
    time_base: ff::Rational,
    start_pts: i64,
    last_pts: Option<i64>,
    /// Expected frame duration in time-base units, for frames without a timestamp.
    frame_step: i64,
    next_index: u64,
    /// Packets or frames the decoder rejected.
    pub errors: u64,
    /// Frames the decoder flagged as concealed or corrupt (they are still passed on).
    pub damaged_frames: u64,
    /// Frames handed on in GPU memory (NVDEC pictures kept there for device canvases).
    pub frames_in_gpu_memory: u64,
    /// Frames whose timestamp was missing or went backwards and had to be repaired.
    pub repaired_timestamps: u64,
}

impl VideoDecoder {
    /// Opens the decoder for `stream_index` of `input`, with `threads` codec threads (0 = auto).
    /// `start` (in the stream's time base) is the instant that becomes time 0: the file's start,
    /// so that audio and video stay aligned.
    pub fn open(
        path: &Path,
        input: &ff::format::context::Input,
        stream_index: usize,
        threads: u32,
        start: i64,
    ) -> Result<Self> {
        Self::open_with(
            path,
            input,
            stream_index,
            threads,
            start,
            HwAccel::None,
            false,
        )
    }

    /// [`Self::open`] with hardware decoding when `hwaccel` asks and the machine can: when it
    /// cannot (no CUDA device or driver, or NVDEC refuses the codec/profile), decoding runs on
    /// the CPU and [`Self::hw_status`] says why. `motion_vectors`: the decoder exports its
    /// motion vectors as frame side data (FFmpeg's `export_side_data=mvs`; clip motion scores).
    pub fn open_with(
        path: &Path,
        input: &ff::format::context::Input,
        stream_index: usize,
        threads: u32,
        start: i64,
        hwaccel: HwAccel,
        motion_vectors: bool,
    ) -> Result<Self> {
        let stream = input
            .stream(stream_index)
            .ok_or_else(|| Error::input(path, format!("stream {stream_index} vanished")))?;
        let mut context = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| Error::ffmpeg(path, "reading codec parameters", e))?;
        context.set_threading(ff::threading::Config {
            kind: ff::threading::Type::Frame,
            count: threads as usize,
            ..Default::default()
        });
        let (hw_refused, hw_status, shared_context) = match hwaccel {
            HwAccel::None => (None, HwStatus::Software, false),
            HwAccel::Cuda { device, .. } => match attach_cuda(&mut context, device) {
                Ok((flag, shared)) => (Some(flag), HwStatus::Hardware, shared),
                Err(reason) => (None, HwStatus::FellBack(reason), false),
            },
        };
        let keep_wanted = matches!(hwaccel, HwAccel::Cuda { keep: true, .. });
        if keep_wanted && hw_status == HwStatus::Hardware && !shared_context {
            tracing::warn!(input = %path.display(), "NVDEC runs in a CUDA context of its own (FFmpeg could not share libtorch's): decoded frames go through host memory");
        }
        if motion_vectors {
            // SAFETY: the context is valid and not opened yet.
            unsafe {
                (*context.as_mut_ptr()).export_side_data |= ff::ffi::AV_CODEC_EXPORT_DATA_MVS;
            }
        }
        let mut decoder = context.decoder();
        decoder.set_packet_time_base(stream.time_base());
        let decoder = decoder
            .video()
            .map_err(|e| Error::ffmpeg(path, "opening the video decoder", e))?;
        let time_base = stream.time_base();
        let rate = stream.avg_frame_rate();
        let frame_step = if rate.numerator() > 0 && time_base.numerator() > 0 {
            let step = f64::from(time_base.denominator()) * f64::from(rate.denominator())
                / (f64::from(time_base.numerator()) * f64::from(rate.numerator()));
            (step.round() as i64).max(1)
        } else {
            1
        };
        if let HwStatus::FellBack(reason) = &hw_status {
            tracing::warn!(input = %path.display(), "hardware decoding unavailable ({reason}); decoding on the CPU");
        }
        Ok(VideoDecoder {
            path: path.to_path_buf(),
            keep_on_gpu: keep_wanted && shared_context,
            decoder,
            hw_refused,
            hw_status,
            stream_index,
            time_base,
            start_pts: start,
            last_pts: None,
            frame_step,
            next_index: 0,
            errors: 0,
            damaged_frames: 0,
            frames_in_gpu_memory: 0,
            repaired_timestamps: 0,
        })
    }

    /// Whether hardware decoding is in use (after the first frames, a refusal by NVDEC shows).
    pub fn hw_status(&self) -> HwStatus {
        match (&self.hw_status, &self.hw_refused) {
            (HwStatus::Hardware, Some(flag)) if flag.load(std::sync::atomic::Ordering::Relaxed) => {
                HwStatus::FellBack("NVDEC does not decode this codec, profile or size".into())
            }
            (status, _) => status.clone(),
        }
    }

    /// The stream's colour description as the decoder reads it (container or bitstream).
    pub fn colour(&self) -> super::encode::Colour {
        super::encode::Colour {
            space: self.decoder.color_space(),
            primaries: self.decoder.color_primaries(),
            transfer: self.decoder.color_transfer_characteristic(),
        }
    }

    pub fn stream_index(&self) -> usize {
        self.stream_index
    }

    pub fn time_base(&self) -> ff::Rational {
        self.time_base
    }

    /// Feeds one packet of the video stream and hands every frame it completes to `sink`.
    pub fn send_packet(
        &mut self,
        packet: &ff::Packet,
        sink: &mut dyn FnMut(SourceFrame) -> Result<()>,
    ) -> Result<()> {
        match self.decoder.send_packet(packet) {
            Ok(()) => {}
            Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                // The decoder's output is full: drain, then retry once.
                self.receive_frames(sink)?;
                if self.decoder.send_packet(packet).is_err() {
                    self.errors += 1;
                }
            }
            Err(_) => self.errors += 1,
        }
        self.receive_frames(sink)
    }

    /// Reads `input` through to its end, or until `stop` says so, feeding this decoder's
    /// stream and skipping the others; at the end the decoder is drained. Unreadable packets
    /// are counted in [`Self::errors`] and skipped, up to [`MAX_CONSECUTIVE_READ_ERRORS`] in a
    /// row (the rest of the file is then taken as unreadable).
    pub fn decode_all(
        &mut self,
        input: &mut ff::format::context::Input,
        sink: &mut dyn FnMut(SourceFrame) -> Result<()>,
        stop: &dyn Fn() -> bool,
    ) -> Result<()> {
        let mut packet = ff::Packet::empty();
        let mut errors_in_a_row = 0;
        while !stop() {
            match packet.read(input) {
                Ok(()) => {
                    errors_in_a_row = 0;
                    if packet.stream() == self.stream_index {
                        self.send_packet(&packet, sink)?;
                    }
                }
                Err(ff::Error::Eof) => break,
                Err(_) => {
                    self.errors += 1;
                    errors_in_a_row += 1;
                    if errors_in_a_row >= MAX_CONSECUTIVE_READ_ERRORS {
                        break;
                    }
                }
            }
        }
        if stop() {
            return Ok(());
        }
        self.send_eof(sink)
    }

    /// Signals the end of the stream and drains the frames the decoder still holds.
    pub fn send_eof(&mut self, sink: &mut dyn FnMut(SourceFrame) -> Result<()>) -> Result<()> {
        // An error here means the decoder was already flushed; draining is still right.
        let _ = self.decoder.send_eof();
        self.receive_frames(sink)
    }

    fn receive_frames(&mut self, sink: &mut dyn FnMut(SourceFrame) -> Result<()>) -> Result<()> {
        loop {
            let mut frame = ff::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    let frame = self.download(frame)?;
                    // SAFETY: reading plain fields of a frame the decoder just filled.
                    let damaged = unsafe {
                        let raw = &*frame.as_ptr();
                        raw.decode_error_flags != 0
                            || raw.flags & ff::ffi::AV_FRAME_FLAG_CORRUPT != 0
                    };
                    if damaged {
                        // Concealed by the decoder (still usable), but the data was broken.
                        self.damaged_frames += 1;
                    }
                    let pts = self.repair_timestamp(frame.timestamp());
                    let relative = pts - self.start_pts;
                    let source = SourceFrame {
                        index: self.next_index,
                        pts: relative,
                        time: super::seconds(relative, self.time_base),
                        frame,
                    };
                    self.next_index += 1;
                    if source.frame.format() == ff::format::Pixel::CUDA {
                        self.frames_in_gpu_memory += 1;
                    }
                    sink(source)?;
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(ff::Error::InvalidData) => {
                    self.errors += 1;
                }
                Err(e) => return Err(Error::ffmpeg(&self.path, "decoding video", e)),
            }
        }
    }

    /// A frame in GPU memory copied to system memory (NV12 or P010) unless frames stay on
    /// the GPU.
    fn download(&self, frame: ff::frame::Video) -> Result<ff::frame::Video> {
        if frame.format() != ff::format::Pixel::CUDA || self.keep_on_gpu {
            return Ok(frame);
        }
        download_hw_frame(&frame)
            .map_err(|e| Error::ffmpeg(&self.path, "copying a hardware-decoded frame to memory", e))
    }

    /// Strictly increasing timestamps, whatever the stream says: a missing one is the previous
    /// plus one frame, one that goes backwards or repeats is bumped past the previous.
    fn repair_timestamp(&mut self, pts: Option<i64>) -> i64 {
        let pts = match (pts, self.last_pts) {
            (Some(p), Some(last)) if p <= last => {
                self.repaired_timestamps += 1;
                last + 1
            }
            (Some(p), _) => p,
            (None, Some(last)) => {
                self.repaired_timestamps += 1;
                last + self.frame_step
            }
            (None, None) => {
                self.repaired_timestamps += 1;
                self.start_pts
            }
        };
        self.last_pts = Some(pts);
        pts
    }
}

/// A frame in GPU memory copied to system memory, with its timestamps and colour tags.
pub fn download_hw_frame(
    frame: &ff::frame::Video,
) -> std::result::Result<ff::frame::Video, ff::Error> {
    let mut sw = ff::frame::Video::empty();
    // SAFETY: both frames are valid; FFmpeg allocates the destination buffers.
    let ret = unsafe {
        let r = ff::ffi::av_hwframe_transfer_data(sw.as_mut_ptr(), frame.as_ptr(), 0);
        if r >= 0 {
            ff::ffi::av_frame_copy_props(sw.as_mut_ptr(), frame.as_ptr())
        } else {
            r
        }
    };
    if ret < 0 {
        return Err(ff::Error::from(ret));
    }
    Ok(sw)
}

/// A CUDA device context for NVDEC on GPU `gpu`, and whether it is the GPU's primary context
/// (the one libtorch uses, so decoded pictures can be read where they are). The primary
/// context is tried first (it also saves the few hundred MB of GPU memory a context of its own
/// costs); a private one when FFmpeg cannot have it.
fn cuda_device(gpu: u32) -> std::result::Result<(*mut ff::ffi::AVBufferRef, bool), String> {
    use std::ptr::null_mut;
    let name = std::ffi::CString::new(gpu.to_string()).expect("digits");
    let create = |primary: bool| {
        let mut device: *mut ff::ffi::AVBufferRef = null_mut();
        // SAFETY: FFmpeg allocates the device context (failure leaves `device` null) and copies
        // the options, which are freed here.
        let ret = unsafe {
            let mut options: *mut ff::ffi::AVDictionary = null_mut();
            if primary {
                ff::ffi::av_dict_set(&mut options, c"primary_ctx".as_ptr(), c"1".as_ptr(), 0);
            }
            let ret = ff::ffi::av_hwdevice_ctx_create(
                &mut device,
                ff::ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA,
                name.as_ptr(),
                options,
                0,
            );
            ff::ffi::av_dict_free(&mut options);
            ret
        };
        if ret < 0 || device.is_null() {
            Err(ff::Error::from(ret).to_string())
        } else {
            Ok(device)
        }
    };
    // FFmpeg wants the primary context with its own flags, which libtorch's may not have yet.
    let prepared = crate::gpu::cuda_context::prepare_primary_context(gpu);
    match create(true) {
        Ok(device) => Ok((device, true)),
        Err(primary_error) => match create(false) {
            Ok(device) => {
                tracing::debug!(
                    gpu,
                    "NVDEC in a CUDA context of its own: the primary context was refused ({primary_error}; flags: {prepared:?})"
                );
                Ok((device, false))
            }
            Err(e) => Err(format!("no CUDA device for NVDEC: {e}")),
        },
    }
}

/// Gives the codec context a CUDA device on GPU `gpu` and a `get_format` that picks NVDEC's
/// surface format when offered. Returns the flag the callback sets when NVDEC is not offered
/// (the stream then decodes in software) and whether the device shares libtorch's context, or
/// why no CUDA device could be opened.
fn attach_cuda(
    context: &mut ff::codec::context::Context,
    gpu: u32,
) -> std::result::Result<(Box<std::sync::atomic::AtomicBool>, bool), String> {
    let (mut device, shared) = cuda_device(gpu)?;
    let refused = Box::new(std::sync::atomic::AtomicBool::new(false));
    // SAFETY: the context is not opened yet; it takes its own reference to the device, ours is
    // released; `opaque` points at the flag, which the decoder keeps alive longer than the context.
    unsafe {
        let ctx = context.as_mut_ptr();
        (*ctx).hw_device_ctx = ff::ffi::av_buffer_ref(device);
        ff::ffi::av_buffer_unref(&mut device);
        (*ctx).opaque = (&*refused as *const std::sync::atomic::AtomicBool)
            .cast_mut()
            .cast();
        (*ctx).get_format = Some(prefer_cuda);
    }
    Ok((refused, shared))
}

/// FFmpeg's `get_format` callback: NVDEC's CUDA surfaces when the list offers them, else the
/// software format FFmpeg would pick, noting the refusal.
unsafe extern "C" fn prefer_cuda(
    ctx: *mut ff::ffi::AVCodecContext,
    formats: *const ff::ffi::AVPixelFormat,
) -> ff::ffi::AVPixelFormat {
    // SAFETY: FFmpeg passes a list ended by AV_PIX_FMT_NONE and the context we configured.
    unsafe {
        let mut p = formats;
        while *p != ff::ffi::AVPixelFormat::AV_PIX_FMT_NONE {
            if *p == ff::ffi::AVPixelFormat::AV_PIX_FMT_CUDA {
                return *p;
            }
            p = p.add(1);
        }
        let flag = (*ctx).opaque as *const std::sync::atomic::AtomicBool;
        if !flag.is_null() {
            (*flag).store(true, std::sync::atomic::Ordering::Relaxed);
        }
        ff::ffi::avcodec_default_get_format(ctx, formats)
    }
}
