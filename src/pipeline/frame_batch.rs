//! The frames of one model call as the model stages collect them: host canvases packed into
//! bytes (RGB or YUV planes, by [`ModelFrames`]), or device canvases by handle, kept alive
//! until the call that reads them has returned.
use std::sync::Arc;

use ffmpeg_next as ff;

use super::normalize::Canvas;
use crate::gpu::device_canvas::DeviceCanvas;
use crate::media::normalize::Rect;
use crate::media::{crop_of, FrameLayout, ModelFrames};
use framepipe_proto::ops::Frames;

#[derive(Default)]
pub struct FrameBatch {
    pub bytes: Vec<u8>,
    pub canvases: Vec<Arc<DeviceCanvas>>,
}

/// Where a frame starts in a [`FrameBatch`] (for splitting it off again).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    bytes: usize,
    canvases: usize,
}

impl FrameBatch {
    pub fn mark(&self) -> Mark {
        Mark {
            bytes: self.bytes.len(),
            canvases: self.canvases.len(),
        }
    }

    /// Everything added since `mark`, taken out into a batch of its own.
    pub fn split_off(&mut self, mark: Mark) -> FrameBatch {
        FrameBatch {
            bytes: self.bytes.split_off(mark.bytes),
            canvases: self.canvases.split_off(mark.canvases),
        }
    }

    pub fn clear(&mut self) {
        self.bytes.clear();
        self.canvases.clear();
    }

    /// Adds `canvas` (its `rect` part for the model; the whole canvas when `None`) and returns
    /// how it is laid out: host frames as `frames` packs them, device canvases as YUV 4:2:0
    /// planes (limited range, the source's matrix) cropped to `rect` on the device.
    pub fn add(
        &mut self,
        frames: &mut ModelFrames,
        canvas: &Canvas,
        rect: Option<Rect>,
    ) -> Result<FrameLayout, ff::Error> {
        match canvas {
            Canvas::Host(frame) => frames.append(frame, rect, &mut self.bytes),
            Canvas::Device(c) => {
                self.canvases.push(Arc::clone(c));
                Ok(FrameLayout::yuv420p(
                    (c.width, c.height),
                    c.matrix,
                    false,
                    rect.map(crop_of),
                ))
            }
        }
    }

    /// The frames `range` of a batch of frames of `layout`: how a request describes them, and
    /// the bytes to send (none when the frames are device canvases, named by handle).
    pub fn part(&self, range: std::ops::Range<usize>, layout: FrameLayout) -> (Frames, &[u8]) {
        let n = range.len() as u32;
        if self.canvases.is_empty() {
            let frame_bytes = layout.bytes_per_frame();
            let bytes = &self.bytes[range.start * frame_bytes..range.end * frame_bytes];
            let frames = Frames {
                n,
                layout,
                canvases: None,
            };
            return (frames, bytes);
        }
        let handles: Vec<u64> = self.canvases[range].iter().map(|c| c.handle()).collect();
        let frames = Frames {
            n,
            layout,
            canvases: Some(handles),
        };
        (frames, &[])
    }
}
