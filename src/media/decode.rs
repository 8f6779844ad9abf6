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

/// An opened input: the demuxer and the video decoder, driven packet by packet.
pub struct VideoDecoder {
    path: PathBuf,
    decoder: ff::decoder::Video,
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
        Ok(VideoDecoder {
            path: path.to_path_buf(),
            decoder,
            stream_index,
            time_base,
            start_pts: start,
            last_pts: None,
            frame_step,
            next_index: 0,
            errors: 0,
            damaged_frames: 0,
            repaired_timestamps: 0,
        })
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
