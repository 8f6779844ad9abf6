//! The decode stage: reads the input's packets, decodes the video stream, and hands every frame
//! (by `Arc`) to each consumer that is running; audio packets go straight to the muxer.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::Sender;
use ffmpeg_next as ff;
use serde::Serialize;

use super::stage::{send, BusyTimer, Cancel};
use crate::config::PipelineConfig;
use crate::error::{Error, Result};
use crate::media::decode::{
    HwAccel, HwStatus, SourceFrame, VideoDecoder, MAX_CONSECUTIVE_READ_ERRORS,
};
use crate::media::encode::{AudioSource, VideoSettings};
use crate::media::probe::SourceInfo;

#[derive(Debug, Clone, Serialize)]
pub struct DecodeStats {
    pub frames: u64,
    /// Packets the demuxer could not read plus packets/frames the decoder rejected.
    pub errors: u64,
    pub repaired_timestamps: u64,
    /// Frames the decoder concealed (damaged data, picture patched up).
    pub damaged_frames: u64,
    /// Frames handed on in GPU memory, never copied to the host (`runtime.device_frames`).
    pub frames_in_gpu_memory: u64,
    /// Video packets the container's edit list hides (decoded as references, never shown).
    pub edit_list_discarded: u64,
    /// Time of the last frame plus one frame duration: the decoded video's length.
    pub duration: f64,
    pub seconds: f64,
    /// `cpu` or `nvdec`.
    pub decoder: &'static str,
    /// Why hardware decoding that was asked for did not happen.
    pub hw_fallback: Option<String>,
}

/// How the decode stage decodes, as the input's [`super::plan::Plan`] settles it.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodePlan {
    /// The GPU that NVDEC decodes on (`decode.hwaccel: cuda`): the model device's, so frames
    /// kept in GPU memory are where the model stages read them.
    pub gpu: u32,
    /// Hand on NVDEC's frames in GPU memory (device canvases), not copied to host memory.
    pub keep_frames_on_gpu: bool,
    /// Decoder threads (0: FFmpeg's choice).
    pub threads: u32,
}

pub struct DecodeStage {
    path: PathBuf,
    input: ff::format::context::Input,
    decoder: VideoDecoder,
    audio_index: Option<usize>,
    /// The file's start time in the audio time base (subtracted, as `ffmpeg` does; the video
    /// decoder subtracts the same instant in its own time base).
    audio_offset: i64,
    fps: f64,
    cancel: Cancel,
    progress: indicatif::ProgressBar,
}

impl DecodeStage {
    pub fn open(
        path: &Path,
        info: &SourceInfo,
        cfg: &PipelineConfig,
        plan: DecodePlan,
        cancel: Cancel,
        progress: indicatif::ProgressBar,
    ) -> Result<Self> {
        let input = ff::format::input(&path)
            .map_err(|e| Error::input(path, format!("cannot open as media: {e}")))?;
        // SAFETY: reading a plain field of the open format context.
        let start_us = unsafe { (*input.as_ptr()).start_time };
        let offset_in = |index: usize| -> i64 {
            if start_us == ff::ffi::AV_NOPTS_VALUE {
                return 0;
            }
            let tb = input
                .stream(index)
                .map(|s| s.time_base())
                .unwrap_or(ff::Rational::new(1, 1));
            start_us.rescale(ff::Rational::new(1, ff::ffi::AV_TIME_BASE), tb)
        };
        let video_offset = offset_in(info.video_stream_index);
        let audio_offset = info.audio_stream_index.map(offset_in).unwrap_or(0);
        let hwaccel = match cfg.decode.hwaccel {
            crate::config::HwAccelConfig::None => HwAccel::None,
            crate::config::HwAccelConfig::Cuda => HwAccel::Cuda {
                device: plan.gpu,
                keep: plan.keep_frames_on_gpu,
            },
        };
        let decoder = VideoDecoder::open_with(
            path,
            &input,
            info.video_stream_index,
            plan.threads,
            video_offset,
            hwaccel,
            cfg.clips.is_some(),
        )?;
        Ok(DecodeStage {
            path: path.to_path_buf(),
            decoder,
            audio_index: info.audio_stream_index,
            audio_offset,
            fps: info.fps,
            input,
            cancel,
            progress,
        })
    }

    pub fn audio_source(&self) -> Option<AudioSource> {
        let stream = self.input.stream(self.audio_index?)?;
        Some(AudioSource {
            parameters: stream.parameters(),
            time_base: stream.time_base(),
        })
    }

    pub fn audio_offset(&self) -> i64 {
        self.audio_offset
    }

    /// The output video's size, time base and nominal rate for this input under `cfg`.
    pub fn video_settings(&self, cfg: &PipelineConfig) -> VideoSettings {
        let (width, height) = cfg.normalize.resolution.size();
        match cfg.normalize.fps {
            Some(fps) => {
                let rate = rational_from_fps(fps);
                VideoSettings {
                    width,
                    height,
                    time_base: rate.invert(),
                    frame_rate: rate,
                    colour: self.decoder.colour(),
                }
            }
            None => VideoSettings {
                width,
                height,
                time_base: self.decoder.time_base(),
                frame_rate: rational_from_fps(if self.fps > 0.0 { self.fps } else { 25.0 }),
                colour: self.decoder.colour(),
            },
        }
    }

    /// Reads to the end (or until cancelled), fanning each frame out to the consumers present.
    pub fn run(
        mut self,
        scenes: Option<Sender<Arc<SourceFrame>>>,
        normalize: Option<Sender<Arc<SourceFrame>>>,
        audio: Option<Sender<ff::Packet>>,
    ) -> Result<DecodeStats> {
        let mut timer = BusyTimer::default();
        let mut frames = 0u64;
        let mut read_errors = 0u64;
        let mut consecutive = 0u32;
        let mut last_time = 0.0f64;
        let mut discarded = 0u64;
        let video_index = self.decoder.stream_index();
        // Time spent blocked on full consumer queues is waiting, not decoding.
        let mut blocked = std::time::Duration::ZERO;
        let mut sink = |frame: SourceFrame| -> Result<()> {
            frames += 1;
            last_time = frame.time;
            self.progress.inc(1);
            let frame = Arc::new(frame);
            let start = std::time::Instant::now();
            if let Some(tx) = &scenes {
                send(tx, Arc::clone(&frame), "decode")?;
            }
            if let Some(tx) = &normalize {
                send(tx, frame, "decode")?;
            }
            blocked += start.elapsed();
            Ok(())
        };
        loop {
            self.cancel.check("decode")?;
            let mut packet = ff::Packet::empty();
            match timer.time(|| packet.read(&mut self.input)) {
                Ok(()) => consecutive = 0,
                Err(ff::Error::Eof) => break,
                Err(_) => {
                    read_errors += 1;
                    consecutive += 1;
                    if consecutive >= MAX_CONSECUTIVE_READ_ERRORS {
                        tracing::warn!(path = %self.path.display(), "giving up reading after {consecutive} errors in a row");
                        break;
                    }
                    continue;
                }
            }
            if packet.stream() == video_index {
                discarded += u64::from(before_edit_list(&packet));
                timer.time(|| self.decoder.send_packet(&packet, &mut sink))?;
            } else if Some(packet.stream()) == self.audio_index {
                if let Some(tx) = &audio {
                    send(tx, packet, "decode")?;
                }
            }
        }
        self.decoder.send_eof(&mut sink)?;
        let (decoder, hw_fallback) = decoder_used(self.decoder.hw_status());
        let frame_duration = if self.fps > 0.0 { 1.0 / self.fps } else { 0.0 };
        Ok(DecodeStats {
            frames,
            errors: read_errors + self.decoder.errors,
            repaired_timestamps: self.decoder.repaired_timestamps,
            damaged_frames: self.decoder.damaged_frames,
            frames_in_gpu_memory: self.decoder.frames_in_gpu_memory,
            edit_list_discarded: discarded,
            duration: if frames > 0 {
                last_time + frame_duration
            } else {
                0.0
            },
            seconds: (timer.seconds() - blocked.as_secs_f64()).max(0.0),
            decoder,
            hw_fallback,
        })
    }
}

/// A packet before the start of the container's edit list: decoded for reference only.
fn before_edit_list(packet: &ff::Packet) -> bool {
    // SAFETY: reading a plain field of a packet we own.
    let flags = unsafe { (*ff::packet::Ref::as_ptr(packet)).flags };
    flags & ff::ffi::AV_PKT_FLAG_DISCARD != 0
}

/// The decoder's name in the report, and why NVDEC was not used when it was asked for.
fn decoder_used(status: HwStatus) -> (&'static str, Option<String>) {
    match status {
        HwStatus::Hardware => ("nvdec", None),
        HwStatus::Software => ("cpu", None),
        HwStatus::FellBack(reason) => ("cpu", Some(reason)),
    }
}

/// The exact rational for common rates (29.97 is 30000/1001), else millisecond precision.
pub fn rational_from_fps(fps: f64) -> ff::Rational {
    for base in [24000, 30000, 48000, 60000] {
        if (fps - f64::from(base) / 1001.0).abs() < 0.005 {
            return ff::Rational::new(base, 1001);
        }
    }
    if (fps - fps.round()).abs() < 1e-6 {
        return ff::Rational::new(fps.round() as i32, 1);
    }
    ff::Rational::new((fps * 1000.0).round() as i32, 1000)
}

use ff::Rescale;
