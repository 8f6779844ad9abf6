//! The output file: libx264 video encoding of normalized frames, the audio stream (copied when
//! MP4 can carry its codec, else re-encoded to AAC), one chapter per scene, `+faststart` MP4.
//!
//! The protocol follows FFmpeg's: frames in → packets out → interleaved write; at the end,
//! encoder EOF → drain → chapters → `write_trailer`.
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ff::format::Pixel;
use ff::media::Type as MediaType;
use ffmpeg_next as ff;

use super::clip_mux::{ClipCutter, FrameRole, WrittenClip};
use crate::config::{AudioMode, EncodeConfig};
use crate::error::{Error, Result};

/// What the muxer needs to know about the source's audio stream.
pub struct AudioSource {
    pub parameters: ff::codec::Parameters,
    pub time_base: ff::Rational,
}

/// Video settings of the output stream.
pub struct VideoSettings {
    pub width: u32,
    pub height: u32,
    /// Time base of the frames' pts.
    pub time_base: ff::Rational,
    /// Nominal frame rate (x264 rate control uses it).
    pub frame_rate: ff::Rational,
    /// The source's colour description, which the canvases keep (their matrix is the source's).
    pub colour: Colour,
}

/// A video stream's colour description (FFmpeg's names; `Unspecified` when untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub space: ff::color::Space,
    pub primaries: ff::color::Primaries,
    pub transfer: ff::color::TransferCharacteristic,
}

/// A chapter, in seconds.
pub struct Chapter {
    pub start: f64,
    pub end: f64,
    pub title: String,
}

/// The open output file with its encoders.
pub struct Muxer {
    path: PathBuf,
    output: ff::format::context::Output,
    video: ff::encoder::Video,
    video_time_base: ff::Rational,
    audio: Option<AudioOut>,
    /// Set when the audio was re-encoded rather than copied (reported as a warning).
    pub audio_transcoded_from: Option<String>,
    /// Why the source's audio is not in the output although the config asked for it: FFmpeg
    /// cannot open a decoder for it (e.g. a damaged Vorbis setup header).
    pub audio_left_out: Option<String>,
    /// Audio packets in the output (copied) or sent to the AAC encoder's decoder.
    pub audio_packets: u64,
    /// Damaged audio packets left out: they do not decode, or the muxer refuses their
    /// timestamps.
    pub audio_packets_dropped: u64,
    pub frames_in: u64,
    /// Clip files cut from the packets (`clips` with `encode`).
    clips: Option<ClipCutter>,
}

enum AudioOut {
    /// Packets copied as they are, each one decoded first by `check`: copying one that does not
    /// decode would make a file that does not decode cleanly out of a source that only had a
    /// glitch.
    Copy {
        index: usize,
        in_time_base: ff::Rational,
        check: Box<ff::decoder::Audio>,
    },
    Aac(Box<AacTranscoder>),
}

/// A decoder for the source's audio stream, or why FFmpeg cannot make one.
fn open_audio_decoder(source: &AudioSource) -> std::result::Result<ff::decoder::Audio, String> {
    let context = ff::codec::context::Context::from_parameters(source.parameters.clone())
        .map_err(|e| format!("reading its parameters: {e}"))?;
    if context.medium() != MediaType::Audio {
        return Err("the stream is not audio".into());
    }
    let mut decoder = context.decoder();
    decoder.set_packet_time_base(source.time_base);
    decoder
        .audio()
        .map_err(|e| format!("opening its {} decoder: {e}", source.parameters.id().name()))
}

/// Sends `packet` to `decoder` and takes every frame it gives; false when the packet does not
/// decode (FFmpeg reports a decoding error on sending or on receiving).
fn decodes(decoder: &mut ff::decoder::Audio, packet: &ff::Packet) -> bool {
    if decoder.send_packet(packet).is_err() {
        return false;
    }
    let mut frame = ff::frame::Audio::empty();
    loop {
        match decoder.receive_frame(&mut frame) {
            Ok(()) => {}
            Err(ff::Error::Other { errno }) if errno == libc::EAGAIN => return true,
            Err(ff::Error::Eof) => return true,
            Err(_) => return false,
        }
    }
}

/// The muxer refusing one packet (timestamps out of order, a size it rejects): that packet is
/// dropped; anything else (a full disk) fails the output.
fn refused_packet(e: &ff::Error) -> bool {
    matches!(e, ff::Error::InvalidData)
        || matches!(e, ff::Error::Other { errno } if *errno == libc::EINVAL)
}

/// An FFmpeg error while `what`, about the output file `path`.
fn ffmpeg_error<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(ff::Error) -> Error + 'a {
    move |e| Error::ffmpeg(path, what, e)
}

/// The video encoder `cfg` names, opened for `video`'s frames; with its codec, which the
/// output stream is made for.
fn open_video_encoder(
    path: &Path,
    cfg: &EncodeConfig,
    video: &VideoSettings,
    global_header: bool,
) -> Result<(ff::Codec, ff::encoder::Video)> {
    let codec = ff::encoder::find_by_name(cfg.codec.name()).ok_or_else(|| {
        Error::input(
            path,
            format!("this FFmpeg has no {} encoder", cfg.codec.name()),
        )
    })?;
    let mut encoder = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .map_err(ffmpeg_error(path, "creating the video encoder"))?;
    encoder.set_width(video.width);
    encoder.set_height(video.height);
    encoder.set_format(Pixel::YUV420P);
    encoder.set_time_base(video.time_base);
    encoder.set_frame_rate(Some(video.frame_rate));
    encoder.set_aspect_ratio(ff::Rational::new(1, 1));
    encoder.set_color_range(ff::color::Range::MPEG);
    // The canvases keep the source's matrix and primaries: say so, or players guess (BT.709
    // for HD sizes) and shift the colours of upscaled BT.601 video.
    encoder.set_colorspace(video.colour.space);
    encoder.set_color_primaries(video.colour.primaries);
    encoder.set_color_transfer_characteristic(video.colour.transfer);
    // libavcodec's default is one thread; 0 asks x264 for its own choice (as `ffmpeg` does).
    encoder.set_threading(ff::threading::Config {
        kind: ff::threading::Type::Frame,
        count: cfg.threads as usize,
        ..Default::default()
    });
    // Closed GOPs, as `ffmpeg` writes them: every keyframe is a clean random-access point,
    // which frame-accurate data loaders rely on.
    let mut flags = ff::codec::Flags::CLOSED_GOP;
    if global_header {
        flags |= ff::codec::Flags::GLOBAL_HEADER;
    }
    encoder.set_flags(flags);
    let encoder = encoder
        .open_with(x264_options(cfg))
        .map_err(ffmpeg_error(path, "opening libx264"))?;
    Ok((codec, encoder))
}

/// The encoder's private options from `cfg`.
fn x264_options(cfg: &EncodeConfig) -> ff::Dictionary<'static> {
    let mut options = ff::Dictionary::new();
    options.set("crf", &format!("{}", cfg.crf));
    options.set("preset", cfg.preset.name());
    if let Some(profile) = &cfg.profile {
        options.set("profile", profile.name());
    }
    // Frames forced to be I frames (clip starts) become IDR frames, where a clip file can
    // begin; no frame is forced unless the pipeline cuts clips.
    options.set("forced-idr", "1");
    options
}

/// The output's audio as set up, and what the muxer reports about it.
struct AudioSetup {
    out: Option<AudioOut>,
    transcoded_from: Option<String>,
    left_out: Option<String>,
}

/// Adds the audio stream `cfg` asks for when the source has one FFmpeg can decode: copied
/// when MP4 can carry its codec and `cfg` allows, else re-encoded to AAC.
fn add_audio(
    path: &Path,
    cfg: &EncodeConfig,
    output: &mut ff::format::context::Output,
    audio: Option<AudioSource>,
    global_header: bool,
) -> Result<AudioSetup> {
    let mut setup = AudioSetup {
        out: None,
        transcoded_from: None,
        left_out: None,
    };
    let Some(source) = audio.filter(|_| cfg.audio != AudioMode::None) else {
        return Ok(setup);
    };
    let decoder = match open_audio_decoder(&source) {
        Ok(decoder) => decoder,
        Err(why) => {
            setup.left_out = Some(why);
            return Ok(setup);
        }
    };
    let id = source.parameters.id();
    let mp4_can_copy =
        unsafe { ff::ffi::avformat_query_codec(output.format().as_ptr(), id.into(), 0) == 1 };
    setup.out = Some(if cfg.audio == AudioMode::Copy && mp4_can_copy {
        let index = {
            let mut stream = output
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(ffmpeg_error(path, "adding the audio stream"))?;
            stream.set_parameters(source.parameters.clone());
            // The source container's tag may not be valid in MP4; let the muxer pick.
            unsafe { (*stream.parameters().as_mut_ptr()).codec_tag = 0 };
            stream.set_time_base(source.time_base);
            stream.index()
        };
        AudioOut::Copy {
            index,
            in_time_base: source.time_base,
            check: Box::new(decoder),
        }
    } else {
        setup.transcoded_from = Some(id.name().to_string());
        AudioOut::Aac(Box::new(AacTranscoder::new(
            path,
            output,
            decoder,
            global_header,
        )?))
    });
    Ok(setup)
}

impl Muxer {
    /// Creates `path` (MP4), sets up libx264 from `cfg`, and the audio stream if any.
    pub fn create(
        path: &Path,
        cfg: &EncodeConfig,
        video: &VideoSettings,
        audio: Option<AudioSource>,
    ) -> Result<Muxer> {
        super::init();
        let mut output = ff::format::output_as(&path, "mp4")
            .map_err(ffmpeg_error(path, "creating the output file"))?;
        let global_header = output
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let (codec, encoder) = open_video_encoder(path, cfg, video, global_header)?;
        {
            let mut stream = output
                .add_stream(codec)
                .map_err(ffmpeg_error(path, "adding the video stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(video.time_base);
            stream.set_avg_frame_rate(video.frame_rate);
        }
        let audio = add_audio(path, cfg, &mut output, audio, global_header)?;
        let mut options = ff::Dictionary::new();
        // write_colr: the `colr` box says limited range (and the colours) even when the
        // source has no colour description, which x264's bitstream then leaves unsignalled.
        options.set("movflags", "+faststart+write_colr");
        output
            .write_header_with(options)
            .map_err(ffmpeg_error(path, "writing the MP4 header"))?;
        Ok(Muxer {
            path: path.to_path_buf(),
            output,
            video: encoder,
            video_time_base: video.time_base,
            audio: audio.out,
            audio_transcoded_from: audio.transcoded_from,
            audio_left_out: audio.left_out,
            audio_packets: 0,
            audio_packets_dropped: 0,
            frames_in: 0,
            clips: None,
        })
    }

    /// Also cuts clip files into `dir` from the packets, of `frames` (min, max) frames each:
    /// the frames sent say where clips start and end ([`Muxer::send_video_frame`]).
    pub fn cut_clips(&mut self, dir: &Path, frames: (u64, u64), frame_rate: f64) -> Result<()> {
        let video = self
            .output
            .stream(0)
            .expect("video stream")
            .parameters()
            .clone();
        let audio_index = match &self.audio {
            Some(AudioOut::Copy { index, .. }) => Some(*index),
            Some(AudioOut::Aac(aac)) => Some(aac.index),
            None => None,
        };
        let audio = audio_index.map(|i| {
            let stream = self.output.stream(i).expect("audio stream");
            (stream.parameters().clone(), stream.time_base())
        });
        self.clips = Some(ClipCutter::new(
            dir,
            frames,
            frame_rate,
            (video, self.video_time_base),
            audio,
        )?);
        Ok(())
    }

    /// Encodes one normalized frame (its pts must be in the video time base).
    /// Encodes one normalized frame, shown at `pts` (video time base). The frame is shared with
    /// other consumers, so the encoder gets a new reference to its buffers, not a copy.
    /// `time` is its seconds, `role` how clips need it coded (an IDR frame where one starts, a P
    /// frame where one ends).
    pub fn send_video_frame(
        &mut self,
        frame: &ff::frame::Video,
        pts: i64,
        time: f64,
        role: FrameRole,
    ) -> Result<()> {
        let mut shared = ff::frame::Video::empty();
        // SAFETY: both frames are valid; av_frame_ref only adds a reference to the buffers.
        let status = unsafe { ff::ffi::av_frame_ref(shared.as_mut_ptr(), frame.as_ptr()) };
        if status < 0 {
            return Err(Error::ffmpeg(
                &self.path,
                "referencing a frame",
                ff::Error::from(status),
            ));
        }
        shared.set_pts(Some(pts));
        shared.set_kind(match role {
            FrameRole::Free => ff::picture::Type::None,
            FrameRole::ClipStart => ff::picture::Type::I,
            FrameRole::ClipEnd => ff::picture::Type::P,
        });
        if let Some(clips) = &mut self.clips {
            clips.frame(self.frames_in, pts, time, role);
        }
        self.video.send_frame(&shared).map_err(|e| {
            Error::ffmpeg(
                &self.path,
                format!("encoding video frame {}", self.frames_in),
                e,
            )
        })?;
        self.frames_in += 1;
        self.write_video_packets()
    }

    fn write_video_packets(&mut self) -> Result<()> {
        let out_tb = self.output.stream(0).expect("video stream").time_base();
        let mut packet = ff::Packet::empty();
        loop {
            match self.video.receive_packet(&mut packet) {
                Ok(()) => {
                    if let Some(clips) = &mut self.clips {
                        clips.video_packet(&packet)?;
                    }
                    packet.set_stream(0);
                    packet.rescale_ts(self.video_time_base, out_tb);
                    packet
                        .write_interleaved(&mut self.output)
                        .map_err(|e| Error::ffmpeg(&self.path, "writing a video packet", e))?;
                }
                Err(ff::Error::Eof) => return Ok(()),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    return Ok(())
                }
                Err(e) => return Err(Error::ffmpeg(&self.path, "receiving encoded video", e)),
            }
        }
    }

    /// Writes (copy) or transcodes (AAC) one packet of the source's audio stream.
    /// `offset` is the source start time in the audio time base, subtracted from its timestamps.
    pub fn send_audio_packet(&mut self, mut packet: ff::Packet, offset: i64) -> Result<()> {
        match &mut self.audio {
            None => Ok(()),
            Some(AudioOut::Copy {
                index,
                in_time_base,
                check,
            }) => {
                if !decodes(check, &packet) {
                    self.audio_packets_dropped += 1;
                    return Ok(());
                }
                let index = *index;
                if let Some(pts) = packet.pts() {
                    packet.set_pts(Some(pts - offset));
                }
                if let Some(dts) = packet.dts() {
                    packet.set_dts(Some(dts - offset));
                }
                let out_tb = self.output.stream(index).expect("audio stream").time_base();
                packet.rescale_ts(*in_time_base, out_tb);
                packet.set_position(-1);
                packet.set_stream(index);
                if let Some(clips) = &mut self.clips {
                    clips.audio_packet(&packet)?;
                }
                match packet.write_interleaved(&mut self.output) {
                    Ok(()) => self.audio_packets += 1,
                    Err(e) if refused_packet(&e) => self.audio_packets_dropped += 1,
                    Err(e) => return Err(Error::ffmpeg(&self.path, "writing an audio packet", e)),
                }
                Ok(())
            }
            Some(AudioOut::Aac(aac)) => {
                if aac.send_packet(&packet, &mut self.output, &mut self.clips)? {
                    self.audio_packets += 1;
                } else {
                    self.audio_packets_dropped += 1;
                }
                Ok(())
            }
        }
    }

    /// Flushes the encoders, adds the chapters, writes the trailer (moov first: faststart);
    /// returns the clip files written.
    pub fn finish(mut self, chapters: &[Chapter]) -> Result<Vec<WrittenClip>> {
        self.video
            .send_eof()
            .map_err(|e| Error::ffmpeg(&self.path, "flushing libx264", e))?;
        self.write_video_packets()?;
        if let Some(AudioOut::Aac(aac)) = &mut self.audio {
            aac.finish(&mut self.output, &mut self.clips)?;
        }
        let tb = ff::Rational::new(1, 1000);
        for (i, chapter) in chapters.iter().enumerate() {
            let start = (chapter.start * 1000.0).round() as i64;
            let end = ((chapter.end * 1000.0).round() as i64).max(start);
            self.output
                .add_chapter(i as i64, tb, start, end, &chapter.title)
                .map_err(|e| Error::ffmpeg(&self.path, format!("adding chapter {i}"), e))?;
        }
        self.output
            .write_trailer()
            .map_err(|e| Error::ffmpeg(&self.path, "writing the MP4 trailer", e))?;
        self.clips.take().map_or(Ok(Vec::new()), ClipCutter::finish)
    }
}

/// Audio that MP4 cannot carry as is: decoded, resampled to float planar, re-encoded with
/// FFmpeg's native AAC encoder in frames of the encoder's size.
struct AacTranscoder {
    path: PathBuf,
    decoder: ff::decoder::Audio,
    resampler: Option<ff::software::resampling::Context>,
    encoder: ff::encoder::Audio,
    index: usize,
    layout: ff::ChannelLayout,
    rate: u32,
    /// Resampled samples waiting for a full encoder frame, one queue per channel.
    pending: Vec<VecDeque<f32>>,
    samples_out: i64,
}

impl AacTranscoder {
    fn new(
        path: &Path,
        output: &mut ff::format::context::Output,
        decoder: ff::decoder::Audio,
        global_header: bool,
    ) -> Result<Self> {
        let ctx = |what: &'static str| {
            let path = path.to_path_buf();
            move |e| Error::ffmpeg(&path, what, e)
        };
        let channels = decoder.channels().clamp(1, 2);
        let layout = ff::ChannelLayout::default(i32::from(channels));
        let rate = decoder.rate().clamp(8000, 96000);
        let codec = ff::encoder::find(ff::codec::Id::AAC)
            .ok_or_else(|| Error::input(path, "this FFmpeg has no AAC encoder"))?;
        let mut encoder = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .audio()
            .map_err(ctx("creating the AAC encoder"))?;
        encoder.set_rate(rate as i32);
        encoder.set_channel_layout(layout);
        encoder.set_channels(i32::from(channels));
        encoder.set_format(ff::format::Sample::F32(ff::format::sample::Type::Planar));
        encoder.set_bit_rate(64_000 * usize::from(channels));
        encoder.set_time_base(ff::Rational::new(1, rate as i32));
        if global_header {
            encoder.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let encoder = encoder
            .open_as(codec)
            .map_err(ctx("opening the AAC encoder"))?;
        let index = {
            let mut stream = output
                .add_stream(codec)
                .map_err(ctx("adding the audio stream"))?;
            stream.set_parameters(&encoder);
            stream.set_time_base(ff::Rational::new(1, rate as i32));
            stream.index()
        };
        Ok(AacTranscoder {
            path: path.to_path_buf(),
            decoder,
            resampler: None,
            encoder,
            index,
            layout,
            rate,
            pending: vec![VecDeque::new(); usize::from(channels)],
            samples_out: 0,
        })
    }

    /// Decodes and re-encodes one packet; false when it was damaged and skipped (like a damaged
    /// video packet: the rest still plays).
    fn send_packet(
        &mut self,
        packet: &ff::Packet,
        output: &mut ff::format::context::Output,
        clips: &mut Option<ClipCutter>,
    ) -> Result<bool> {
        if self.decoder.send_packet(packet).is_err() {
            return Ok(false);
        }
        self.drain_decoder(output, clips)?;
        Ok(true)
    }

    fn drain_decoder(
        &mut self,
        output: &mut ff::format::context::Output,
        clips: &mut Option<ClipCutter>,
    ) -> Result<()> {
        let mut decoded = ff::frame::Audio::empty();
        while self.decoder.receive_frame(&mut decoded).is_ok() {
            self.resample(&mut decoded)?;
            self.encode_full_frames(output, clips, false)?;
        }
        Ok(())
    }

    fn resample(&mut self, decoded: &mut ff::frame::Audio) -> Result<()> {
        // Decoders of layout-less formats (PCM in Matroska, ...) leave the layout empty;
        // swresample needs one.
        if decoded.channel_layout().is_empty() {
            decoded.set_channel_layout(ff::ChannelLayout::default(i32::from(decoded.channels())));
        }
        let in_layout = decoded.channel_layout();
        if self.resampler.is_none() {
            let ctx = ff::software::resampling::Context::get(
                decoded.format(),
                in_layout,
                decoded.rate(),
                ff::format::Sample::F32(ff::format::sample::Type::Planar),
                self.layout,
                self.rate,
            )
            .map_err(|e| Error::ffmpeg(&self.path, "setting up audio resampling", e))?;
            self.resampler = Some(ctx);
        }
        // Room for every sample this call can produce (rate change plus the resampler's delay).
        let capacity =
            decoded.samples() * self.rate as usize / decoded.rate().max(1) as usize + 1024;
        let mut out = ff::frame::Audio::new(
            ff::format::Sample::F32(ff::format::sample::Type::Planar),
            capacity,
            self.layout,
        );
        self.resampler
            .as_mut()
            .expect("resampler just built")
            .run(decoded, &mut out)
            .map_err(|e| Error::ffmpeg(&self.path, "resampling audio", e))?;
        for (ch, queue) in self.pending.iter_mut().enumerate() {
            queue.extend(&out.plane::<f32>(ch)[..out.samples()]);
        }
        Ok(())
    }

    fn encode_full_frames(
        &mut self,
        output: &mut ff::format::context::Output,
        clips: &mut Option<ClipCutter>,
        last: bool,
    ) -> Result<()> {
        let size = (self.encoder.frame_size() as usize).max(1);
        while self.pending[0].len() >= size || (last && !self.pending[0].is_empty()) {
            let n = self.pending[0].len().min(size);
            let mut frame = ff::frame::Audio::new(
                ff::format::Sample::F32(ff::format::sample::Type::Planar),
                n,
                self.layout,
            );
            frame.set_rate(self.rate);
            for (ch, queue) in self.pending.iter_mut().enumerate() {
                for (dst, src) in frame.plane_mut::<f32>(ch).iter_mut().zip(queue.drain(..n)) {
                    *dst = src;
                }
            }
            frame.set_pts(Some(self.samples_out));
            self.samples_out += n as i64;
            self.encoder
                .send_frame(&frame)
                .map_err(|e| Error::ffmpeg(&self.path, "encoding AAC", e))?;
            self.write_packets(output, clips)?;
        }
        Ok(())
    }

    fn write_packets(
        &mut self,
        output: &mut ff::format::context::Output,
        clips: &mut Option<ClipCutter>,
    ) -> Result<()> {
        let out_tb = output.stream(self.index).expect("audio stream").time_base();
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(self.index);
            packet.rescale_ts(ff::Rational::new(1, self.rate as i32), out_tb);
            if let Some(clips) = clips {
                clips.audio_packet(&packet)?;
            }
            packet
                .write_interleaved(output)
                .map_err(|e| Error::ffmpeg(&self.path, "writing an AAC packet", e))?;
        }
        Ok(())
    }

    fn finish(
        &mut self,
        output: &mut ff::format::context::Output,
        clips: &mut Option<ClipCutter>,
    ) -> Result<()> {
        let _ = self.decoder.send_eof();
        self.drain_decoder(output, clips)?;
        self.encode_full_frames(output, clips, true)?;
        let _ = self.encoder.send_eof();
        self.write_packets(output, clips)
    }
}
