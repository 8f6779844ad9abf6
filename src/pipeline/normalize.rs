//! The normalize stage: source frames → target-size canvases ([`NormFrame`]), with timestamps
//! kept as they are (VFR stays VFR) or resampled to a constant `fps` by dropping/duplicating
//! frames the way FFmpeg's `fps` filter does (each output tick shows the frame on screen then).
//! Canvases are made by swscale in host memory, or (`runtime.device_frames`) on the model
//! device, where they stay for the model stages.
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use ffmpeg_next as ff;
use serde::Serialize;

use super::stage::{send, BusyTimer, Cancel};
use crate::config::NormalizeConfig;
use crate::error::{Error, Result};
use crate::gpu::device_canvas::{DeviceCanvas, DeviceNormalizer};
use crate::media::decode::SourceFrame;
use crate::media::normalize::{Geometry, Normalizer, Rect};
use crate::media::probe::SourceInfo;
use crate::torch::Torch;

/// A canvas: yuv420p at the target size, in host memory or on the model device.
#[derive(Clone)]
pub enum Canvas {
    Host(Arc<ff::frame::Video>),
    Device(Arc<DeviceCanvas>),
}

/// One frame of the output video.
pub struct NormFrame {
    /// 0-based index in the output video.
    pub index: u64,
    /// Presentation time in the output time base (source time base, or 1/fps when resampling).
    pub pts: i64,
    /// Seconds from the start.
    pub time: f64,
    /// The source frame shown.
    pub source_index: u64,
    /// yuv420p at the target size.
    pub frame: Canvas,
    /// Where the picture is on the canvas (the rest is padding).
    pub content: Rect,
}

#[derive(Debug, Clone, Serialize)]
pub struct NormalizeStats {
    pub frames: u64,
    /// Source frames dropped / output frames duplicated by fps resampling.
    pub dropped: u64,
    pub duplicated: u64,
    pub content: Rect,
    pub seconds: f64,
    /// The model device the canvases were made and kept on; `None`: host memory (swscale).
    pub device: Option<crate::device::Device>,
}

/// What makes the canvases.
enum Maker {
    Host(Normalizer),
    Device(DeviceNormalizer),
}

impl Maker {
    fn geometry(&self) -> Geometry {
        match self {
            Maker::Host(n) => n.geometry(),
            Maker::Device(n) => n.geometry(),
        }
    }

    /// The model device the canvases are made on; `None` for swscale's.
    fn device(&self) -> Option<crate::device::Device> {
        match self {
            Maker::Host(_) => None,
            Maker::Device(n) => Some(n.device()),
        }
    }
}

pub struct NormalizeStage {
    normalizer: Maker,
    fps: Option<f64>,
    source_frame_duration: f64,
    source_path: String,
    cancel: Cancel,
}

impl NormalizeStage {
    /// `on_device`: make the canvases on this model device (libtorch) instead of by swscale.
    pub fn new(
        cfg: &NormalizeConfig,
        info: &SourceInfo,
        on_device: Option<(&'static Torch, crate::device::Device)>,
        cancel: Cancel,
    ) -> Self {
        let sar = (info.sample_aspect_ratio[0], info.sample_aspect_ratio[1]);
        let geometry = Geometry::plan(
            info.width,
            info.height,
            sar,
            info.rotation,
            cfg.resolution.size(),
            cfg.mode,
        );
        let normalizer = match on_device {
            Some((torch, device)) => Maker::Device(DeviceNormalizer::new(
                torch, device, geometry, cfg.mode, sar,
            )),
            None => Maker::Host(Normalizer::new(geometry, cfg.mode, sar)),
        };
        NormalizeStage {
            normalizer,
            fps: cfg.fps,
            source_frame_duration: if info.fps > 0.0 { 1.0 / info.fps } else { 0.0 },
            source_path: info.path.clone(),
            cancel,
        }
    }

    pub fn run(
        mut self,
        rx: Receiver<Arc<SourceFrame>>,
        tx: Vec<Sender<Arc<NormFrame>>>,
    ) -> Result<NormalizeStats> {
        let mut timer = BusyTimer::default();
        let mut out = Emitter {
            tx,
            next_index: 0,
            duplicated: 0,
        };
        let mut dropped = 0;
        match self.fps {
            None => {
                for src in rx {
                    self.cancel.check("normalize")?;
                    let canvas = timer.time(|| self.canvas(&src))?;
                    out.emit(
                        &src,
                        canvas,
                        src.pts,
                        src.time,
                        self.normalizer.geometry().placed,
                    )?;
                }
            }
            Some(fps) => {
                // The frame on screen at each output tick t_n = n / fps: a source frame waits
                // until the next one arrives, then fills every tick before the next one's slot.
                let slot = |time: f64| (time * fps).round().max(0.0) as u64;
                let mut held: Option<Arc<SourceFrame>> = None;
                for src in rx {
                    self.cancel.check("normalize")?;
                    if let Some(prev) = held.take() {
                        let until = slot(src.time);
                        if out.next_index < until {
                            self.emit_ticks(&mut out, &mut timer, &prev, until, fps)?;
                        } else {
                            dropped += 1;
                        }
                    }
                    held = Some(src);
                }
                if let Some(prev) = held {
                    // The last frame stays on screen for one source frame duration.
                    let until = slot(prev.time + self.source_frame_duration);
                    if out.next_index < until {
                        self.emit_ticks(&mut out, &mut timer, &prev, until, fps)?;
                    } else {
                        dropped += 1;
                    }
                }
            }
        }
        Ok(NormalizeStats {
            frames: out.next_index,
            dropped,
            duplicated: out.duplicated,
            content: self.normalizer.geometry().placed,
            seconds: timer.seconds(),
            device: self.normalizer.device(),
        })
    }

    /// Shows `src` at every output tick before `until` (one scaling, shared by the duplicates).
    fn emit_ticks(
        &mut self,
        out: &mut Emitter,
        timer: &mut BusyTimer,
        src: &SourceFrame,
        until: u64,
        fps: f64,
    ) -> Result<()> {
        let canvas = timer.time(|| self.canvas(src))?;
        let content = self.normalizer.geometry().placed;
        let first = out.next_index;
        while out.next_index < until {
            if out.next_index > first {
                out.duplicated += 1;
            }
            let n = out.next_index;
            out.emit(src, canvas.clone(), n as i64, n as f64 / fps, content)?;
        }
        Ok(())
    }

    fn canvas(&mut self, src: &SourceFrame) -> Result<Canvas> {
        match &mut self.normalizer {
            Maker::Host(n) => n
                .normalize(&src.frame)
                .map(|f| Canvas::Host(Arc::new(f)))
                .map_err(|e| {
                    Error::ffmpeg(&self.source_path, format!("scaling frame {}", src.index), e)
                }),
            Maker::Device(n) => n
                .normalize(&src.frame)
                .map(|c| Canvas::Device(Arc::new(c)))
                .map_err(|e| {
                    Error::input(
                        &self.source_path,
                        format!("normalizing frame {} on the device: {e}", src.index),
                    )
                }),
        }
    }
}

struct Emitter {
    /// Every consumer gets the same `Arc`.
    tx: Vec<Sender<Arc<NormFrame>>>,
    next_index: u64,
    duplicated: u64,
}

impl Emitter {
    fn emit(
        &mut self,
        src: &SourceFrame,
        frame: Canvas,
        pts: i64,
        time: f64,
        content: Rect,
    ) -> Result<()> {
        let norm = NormFrame {
            index: self.next_index,
            pts,
            time,
            source_index: src.index,
            frame,
            content,
        };
        self.next_index += 1;
        let norm = Arc::new(norm);
        for tx in &self.tx {
            send(tx, Arc::clone(&norm), "normalize")?;
        }
        Ok(())
    }
}
