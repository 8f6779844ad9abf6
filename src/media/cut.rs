//! Cutting: one time range of a video exported as its own MP4, by stream copy when the range
//! starts on a keyframe (lossless and fast), else by re-encoding the video with libx264.
//!
//! This module decides which of the two a range needs and writes the clip; the encoder, the MP4
//! muxer with its audio handling (copy, or AAC when MP4 cannot carry the codec) and the decoder
//! are the ones the pipeline uses ([`Muxer`], [`VideoDecoder`]). A failed cut leaves no file at
//! the destination: the clip is written under a temporary name and renamed when complete.
use std::path::Path;

use ff::Rescale;
use ffmpeg_next as ff;
use serde::Serialize;

use super::clip_mux::FrameRole;
use super::decode::{SourceFrame, VideoDecoder};
use super::encode::{AudioSource, Muxer, VideoSettings};
use super::{probe, Scaler};
use crate::config::{AudioMode, Codec, EncodeConfig, Preset};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CutMethod {
    StreamCopy,
    ReEncoded,
}

#[derive(Debug, Clone, Serialize)]
pub struct CutResult {
    pub method: CutMethod,
    /// Video frames written.
    pub frames: u64,
    /// Seconds from the first frame to the end of the last one.
    pub duration: f64,
}

/// Writes the frames of `video` whose presentation time is in [start, end) seconds (and the audio
/// of that span) to `out` (MP4, +faststart).
///
/// Times count from the video stream's first frame. The clip starts at 0 (its first frame) and
/// keeps the source's size, frame rate and time base.
pub fn export_segment(video: &Path, start: f64, end: f64, out: &Path) -> Result<CutResult> {
    super::init();
    if !(start.is_finite() && end.is_finite() && end > start) {
        return Err(Error::input(
            video,
            format!("empty time range [{start} s, {end} s): the end must be after the start"),
        ));
    }
    let name = out
        .file_name()
        .ok_or_else(|| Error::input(out, "the clip's destination is not a file name"))?;
    let partial = out.with_file_name(format!("{}.partial", name.to_string_lossy()));
    let result = cut(video, start, end, &partial).and_then(|result| {
        std::fs::rename(&partial, out)
            .map_err(|e| Error::io(out, "moving the finished clip into place", e))?;
        Ok(result)
    });
    if result.is_err() {
        // Nothing may be missing yet (the error came before the file was created).
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn cut(video: &Path, start: f64, end: f64, out: &Path) -> Result<CutResult> {
    let (input, info) = probe::open(video)?;
    let mut source = Source::new(video, input, &info, start, end);
    // Two reads of the range: a cheap one over the packets decides how to cut, then the cut.
    let target = source.keyframe_before_start()?;
    let plan = source.plan(target)?;
    if plan.frames == 0 {
        return Err(Error::input(
            video,
            format!(
                "no video frames in [{start} s, {end} s): the video is {:.3} s long",
                info.duration
            ),
        ));
    }
    // Audio MP4 cannot carry needs the AAC encoding that only the re-encoding path has.
    let copy = plan.copyable
        && source.fits_mp4(Some(info.video_stream_index))
        && source.fits_mp4(info.audio_stream_index);
    let (method, frames) = if copy {
        (CutMethod::StreamCopy, source.copy(target, &plan, out)?)
    } else {
        (CutMethod::ReEncoded, source.reencode(target, &plan, out)?)
    };
    Ok(CutResult {
        method,
        frames,
        duration: super::seconds(plan.span.end - plan.span.start, plan.span.time_base),
    })
}

/// Where a packet lies relative to the clip.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    /// Before the clip, or hidden by the container's edit list (decoded as a reference only).
    Before,
    Inside,
    /// Shown after the clip (but possibly decoded before frames inside it).
    After,
    /// This and every later packet of the stream come after the clip.
    Done,
}

/// A stream's span in its own time base: [start, end) after `origin` (absolute timestamps).
#[derive(Debug, Clone, Copy)]
struct Window {
    index: usize,
    time_base: ff::Rational,
    origin: i64,
    start: i64,
    end: i64,
}

impl Window {
    /// A video packet: inside when it is shown in the window.
    fn video(&self, packet: &ff::Packet) -> Place {
        let (Some(pts), Some(dts)) = (packet.pts(), packet.dts().or(packet.pts())) else {
            return Place::Before;
        };
        let (pts, dts) = (pts - self.origin, dts - self.origin);
        // SAFETY: reading a plain field of a packet we own.
        let hidden =
            unsafe { (*ff::packet::Ref::as_ptr(packet)).flags } & ff::ffi::AV_PKT_FLAG_DISCARD != 0;
        // Decode times only grow and no packet is shown before it is decoded: once one decodes
        // at the end, no later packet is shown inside.
        if dts >= self.end {
            Place::Done
        } else if hidden || pts < self.start {
            Place::Before
        } else if pts >= self.end {
            Place::After
        } else {
            Place::Inside
        }
    }

    /// An audio packet: inside when any of its samples are (the clip keeps whole packets).
    fn audio(&self, packet: &ff::Packet) -> Place {
        let Some(pts) = packet.pts().or(packet.dts()) else {
            return Place::Before;
        };
        let pts = pts - self.origin;
        if pts >= self.end {
            Place::Done
        } else if pts + packet.duration().max(1) <= self.start {
            Place::Before
        } else {
            Place::Inside
        }
    }

    /// The same instants in another stream's time base.
    fn in_stream(&self, index: usize, time_base: ff::Rational) -> Window {
        let at = |t: i64| (self.origin + t).rescale(self.time_base, time_base);
        Window {
            index,
            time_base,
            origin: at(0),
            start: at(self.start) - at(0),
            end: at(self.end) - at(0),
        }
    }
}

/// What a read through the range's video packets (no decoding) found.
struct Plan {
    /// The clip's video span: first frame and end of the last, relative to the stream start.
    span: Window,
    frames: u64,
    /// The packets inside the range decode on their own: the first in decode order is a keyframe
    /// shown first, and none is decoded after a packet shown past the end (which it would need
    /// as a reference: a B-frame after its P-frame).
    copyable: bool,
}

/// The opened input and the requested range of its video stream.
struct Source<'a> {
    path: &'a Path,
    input: ff::format::context::Input,
    /// The video stream; its start (first frame) is time 0.
    range: Window,
    audio: Option<usize>,
    /// One frame in the video time base, for packets that carry no duration.
    frame_step: i64,
}

impl<'a> Source<'a> {
    fn new(
        path: &'a Path,
        input: ff::format::context::Input,
        info: &probe::SourceInfo,
        start: f64,
        end: f64,
    ) -> Self {
        let stream = input
            .stream(info.video_stream_index)
            .expect("probed stream");
        let time_base = stream.time_base();
        // Rounded to the nearest tick, neither up nor down: 2.6 s is 33280.000000000004 ticks of
        // 1/12800 in floating point and must still take the frame at 33280.
        let ticks = |s: f64| (s.max(0.0) / f64::from(time_base)).round() as i64;
        let rate = stream.avg_frame_rate();
        let frame_step = if rate.numerator() > 0 && rate.denominator() > 0 {
            1i64.rescale(rate.invert(), time_base).max(1)
        } else {
            1
        };
        let range = Window {
            index: info.video_stream_index,
            time_base,
            origin: match stream.start_time() {
                ff::ffi::AV_NOPTS_VALUE => 0,
                t => t,
            },
            start: ticks(start),
            end: ticks(end),
        };
        Source {
            path,
            input,
            range,
            audio: info.audio_stream_index,
            frame_step,
        }
    }

    /// Seeks to the last video keyframe at or before `target` (ticks after the stream start).
    fn seek(&mut self, target: i64) -> Result<()> {
        // SAFETY: the context is open; av_seek_frame flushes the demuxer's own buffers.
        let status = unsafe {
            ff::ffi::av_seek_frame(
                self.input.as_mut_ptr(),
                self.range.index as i32,
                self.range.origin + target,
                ff::ffi::AVSEEK_FLAG_BACKWARD,
            )
        };
        if status < 0 {
            return Err(Error::ffmpeg(
                self.path,
                "seeking to the start of the range",
                ff::Error::from(status),
            ));
        }
        Ok(())
    }

    /// A seek target after which the first video packet is a keyframe shown no later than the
    /// start. An MP4 without an edit list is sought by decode time, and with B-frames a keyframe
    /// is decoded before it is shown, so the keyframe found can be shown after the start: then
    /// the target moves before that keyframe's decode time and the seek is tried again.
    fn keyframe_before_start(&mut self) -> Result<i64> {
        let range = self.range;
        let mut target = range.start;
        for _ in 0..8 {
            self.seek(target)?;
            let first = self
                .input
                .packets()
                .find(|(stream, _)| stream.index() == range.index)
                .and_then(|(_, p)| Some((p.pts()?, p.dts().or(p.pts())?)));
            let Some((pts, dts)) = first else { break };
            let (pts, dts) = (pts - range.origin, dts - range.origin);
            if pts <= range.start || dts.min(target) <= 0 {
                break;
            }
            target = dts.min(target) - 1;
        }
        Ok(target)
    }

    fn plan(&mut self, target: i64) -> Result<Plan> {
        self.seek(target)?;
        let range = self.range;
        let mut span = Window {
            start: i64::MAX,
            end: i64::MIN,
            ..range
        };
        let (mut frames, mut copyable, mut after_seen) = (0, true, false);
        for (stream, packet) in self.input.packets() {
            if stream.index() != range.index {
                continue;
            }
            match range.video(&packet) {
                Place::Done => break,
                Place::Before => {}
                Place::After => after_seen |= frames > 0,
                Place::Inside => {
                    let pts = packet.pts().unwrap_or_default() - range.origin;
                    copyable &= if frames == 0 {
                        packet.is_key()
                    } else {
                        !after_seen && pts > span.start
                    };
                    let duration = match packet.duration() {
                        d if d > 0 => d,
                        _ => self.frame_step,
                    };
                    span.start = span.start.min(pts);
                    span.end = span.end.max(pts + duration);
                    frames += 1;
                }
            }
        }
        Ok(Plan {
            span,
            frames,
            copyable,
        })
    }

    /// The audio stream's part of the clip, in its own time base.
    fn audio_window(&self, plan: &Plan) -> Option<Window> {
        let index = self.audio?;
        let time_base = self.input.stream(index)?.time_base();
        Some(plan.span.in_stream(index, time_base))
    }

    /// Whether MP4 can carry stream `index`'s codec as it is (true when there is no stream).
    fn fits_mp4(&self, index: Option<usize>) -> bool {
        let Some(stream) = index.and_then(|i| self.input.stream(i)) else {
            return true;
        };
        let id = stream.parameters().id();
        // SAFETY: av_guess_format returns a static muxer description, or null (checked).
        unsafe {
            let mp4 = ff::ffi::av_guess_format(c"mp4".as_ptr(), std::ptr::null(), std::ptr::null());
            !mp4.is_null() && ff::ffi::avformat_query_codec(mp4, id.into(), 0) == 1
        }
    }

    /// Remuxes the range's packets as they are; returns the video frames written.
    fn copy(&mut self, target: i64, plan: &Plan, out: &Path) -> Result<u64> {
        let ctx = |what: &'static str| move |e| Error::ffmpeg(out, what, e);
        let mut output = ff::format::output_as(&out, "mp4").map_err(ctx("creating the clip"))?;
        let audio = self.audio_window(plan);
        let mut add = |index: usize| -> Result<usize> {
            let source = self.input.stream(index).expect("probed stream");
            let mut stream = output
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(ctx("adding a stream"))?;
            stream.set_parameters(source.parameters());
            // The source's codec tag may not be valid in MP4; let the muxer pick (as Muxer does).
            // SAFETY: a plain field of the parameters this new stream owns.
            unsafe { (*stream.parameters().as_mut_ptr()).codec_tag = 0 };
            stream.set_time_base(source.time_base());
            stream.set_avg_frame_rate(source.avg_frame_rate());
            Ok(stream.index())
        };
        let mut streams = vec![(plan.span, add(plan.span.index)?)];
        if let Some(window) = audio {
            streams.push((window, add(window.index)?));
        }
        let mut options = ff::Dictionary::new();
        // write_colr: the `colr` box says limited range (and the colours) even when the
        // source has no colour description, which x264's bitstream then leaves unsignalled.
        options.set("movflags", "+faststart+write_colr");
        output
            .write_header_with(options)
            .map_err(ctx("writing the MP4 header"))?;

        self.seek(target)?;
        let video = self.range;
        let mut done = vec![false; streams.len()];
        let mut frames = 0;
        for (stream, mut packet) in self.input.packets() {
            let Some(i) = streams.iter().position(|(w, _)| w.index == stream.index()) else {
                continue;
            };
            let (window, out_index) = streams[i];
            // Video by presentation time in the requested range; audio by overlap with the video.
            let place = if i == 0 {
                video.video(&packet)
            } else {
                window.audio(&packet)
            };
            match place {
                Place::Done => done[i] = true,
                Place::Inside => {
                    // The clip's first frame is time 0 in every stream.
                    let shift = window.origin + window.start;
                    if let Some(pts) = packet.pts() {
                        packet.set_pts(Some(pts - shift));
                    }
                    if let Some(dts) = packet.dts() {
                        packet.set_dts(Some(dts - shift));
                    }
                    let out_tb = output.stream(out_index).expect("added").time_base();
                    packet.rescale_ts(window.time_base, out_tb);
                    packet.set_position(-1);
                    packet.set_stream(out_index);
                    packet
                        .write_interleaved(&mut output)
                        .map_err(ctx("writing a packet"))?;
                    frames += u64::from(i == 0);
                }
                Place::Before | Place::After => {}
            }
            if done.iter().all(|&d| d) {
                break;
            }
        }
        output
            .write_trailer()
            .map_err(ctx("writing the MP4 trailer"))?;
        Ok(frames)
    }

    /// Decodes from the keyframe before the start and encodes the frames in the range with
    /// libx264 (the pipeline's Muxer: audio copied, or AAC when MP4 cannot carry it); returns
    /// the video frames written.
    fn reencode(&mut self, target: i64, plan: &Plan, out: &Path) -> Result<u64> {
        let range = self.range;
        let mut decoder = VideoDecoder::open(self.path, &self.input, range.index, 0, range.origin)?;
        let settings = self.video_settings(&decoder);
        let audio = self.audio_window(plan);
        let source = audio
            .and_then(|w| self.input.stream(w.index))
            .map(|s| AudioSource {
                parameters: s.parameters(),
                time_base: s.time_base(),
            });
        let mut muxer = Muxer::create(out, &clip_x264(), &settings, source)?;

        self.seek(target)?;
        let mut encoder = RangeEncoder::new(self.path, range, plan.span.start, &settings);
        let (mut video_done, mut audio_done) = (false, audio.is_none());
        for (stream, packet) in self.input.packets() {
            if stream.index() == range.index && !video_done {
                // Packets before the start are decoded too: the frames inside refer to them.
                if range.video(&packet) == Place::Done {
                    video_done = true;
                } else {
                    decoder.send_packet(&packet, &mut |f| encoder.send(&mut muxer, f))?;
                }
            } else if let Some(window) = audio.filter(|w| w.index == stream.index()) {
                match window.audio(&packet) {
                    Place::Inside => {
                        muxer.send_audio_packet(packet, window.origin + window.start)?
                    }
                    Place::Done => audio_done = true,
                    Place::Before | Place::After => {}
                }
            }
            if video_done && audio_done {
                break;
            }
        }
        decoder.send_eof(&mut |f| encoder.send(&mut muxer, f))?;
        let frames = muxer.frames_in;
        muxer.finish(&[])?;
        Ok(frames)
    }

    /// The video stream's coded size, frame rate and time base, with `decoder`'s colours.
    fn video_settings(&self, decoder: &VideoDecoder) -> VideoSettings {
        let stream = self.input.stream(self.range.index).expect("probed stream");
        // SAFETY: reading plain fields of the stream's codec parameters.
        let (width, height) = unsafe {
            let raw = &*stream.parameters().as_ptr();
            (raw.width.max(0) as u32, raw.height.max(0) as u32)
        };
        let rate = match stream.avg_frame_rate() {
            r if r.numerator() > 0 && r.denominator() > 0 => r,
            _ => stream.rate(),
        };
        VideoSettings {
            width,
            height,
            time_base: self.range.time_base,
            frame_rate: rate,
            colour: decoder.colour(),
        }
    }
}

/// How a re-encoded clip is encoded: near-transparent quality, fast, audio copied when MP4 can
/// carry it.
fn clip_x264() -> EncodeConfig {
    EncodeConfig {
        codec: Codec::Libx264.into(),
        crf: 18.0,
        preset: Preset::Veryfast.into(),
        profile: None,
        audio: AudioMode::Copy,
        threads: 0,
    }
}

/// Sends the decoded frames inside the range to the encoder, shifted to start at 0.
struct RangeEncoder<'a> {
    path: &'a Path,
    range: Window,
    /// The clip's first pts (the range's time base).
    first_pts: i64,
    size: (u32, u32),
    scaler: Scaler,
}

impl<'a> RangeEncoder<'a> {
    fn new(path: &'a Path, range: Window, first_pts: i64, settings: &VideoSettings) -> Self {
        let size = (settings.width, settings.height);
        RangeEncoder {
            path,
            range,
            first_pts,
            size,
            // libx264 takes yuv420p at the stream's size; other formats (or a size change
            // mid-way) are converted.
            scaler: Scaler::new(
                ff::format::Pixel::YUV420P,
                size.0,
                size.1,
                ff::software::scaling::Flags::BICUBIC,
            ),
        }
    }

    fn send(&mut self, muxer: &mut Muxer, source: SourceFrame) -> Result<()> {
        if source.pts < self.range.start || source.pts >= self.range.end {
            return Ok(());
        }
        let pts = source.pts - self.first_pts;
        let frame = &source.frame;
        if (frame.format(), frame.width(), frame.height())
            == (ff::format::Pixel::YUV420P, self.size.0, self.size.1)
        {
            return muxer.send_video_frame(frame, pts, 0.0, FrameRole::Free);
        }
        // A new frame each time: the encoder may still hold a reference to the last one.
        let mut converted = ff::frame::Video::empty();
        self.scaler
            .run(frame, &mut converted)
            .map_err(|e| Error::ffmpeg(self.path, "converting a frame to yuv420p", e))?;
        muxer.send_video_frame(&converted, pts, 0.0, FrameRole::Free)
    }
}
