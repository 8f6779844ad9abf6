//! Clip files cut from the one encode: the encoder makes every clip start an IDR frame and its
//! last frame close its group of pictures ([`FrameRole`]), so a clip is
//! exactly the packets of its frames. They are collected here as libx264 emits them, with the
//! audio packets of the clip's span, and written as their own `+faststart` MP4 (timestamps from
//! 0) once complete, under a temporary name renamed into place.
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use ffmpeg_next as ff;

use crate::error::{Error, Result};

/// How the encoder must code an output frame so that clips can be cut from its packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRole {
    /// Any type the encoder likes.
    Free,
    /// A clip starts here: an IDR frame.
    ClipStart,
    /// The last frame of a clip that no other clip follows directly: a P frame, so that no
    /// frame before it refers to a frame after it.
    ClipEnd,
}

/// A clip file written, in output frames (end exclusive) and seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct WrittenClip {
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_time: f64,
    pub end_time: f64,
    pub path: PathBuf,
}

/// A stream's parameters and the time base its packets are in.
struct StreamFormat {
    parameters: ff::codec::Parameters,
    time_base: ff::Rational,
}

/// A clip whose packets are being collected.
struct OpenClip {
    start_frame: u64,
    /// Known once its last frame was sent (or the next clip started).
    end_frame: Option<u64>,
    start_pts: i64,
    start_time: f64,
    /// The time just after its last frame sent so far.
    end_time: f64,
    packets: Vec<ff::Packet>,
}

impl OpenClip {
    fn complete(&self) -> bool {
        self.end_frame
            .is_some_and(|end| self.packets.len() as u64 == end - self.start_frame)
    }
}

/// Cuts clip files out of the encoder's packets.
pub struct ClipCutter {
    /// Where the files go, named by start frame (`frame-NNNNNNNNN.mp4`) until the clip list is
    /// final and they get their ids.
    dir: PathBuf,
    /// Windows outside `min_frames..=max_frames` are no clips (a remainder too short).
    min_frames: u64,
    max_frames: u64,
    frame_duration: f64,
    video: StreamFormat,
    audio: Option<StreamFormat>,
    frame_of_pts: HashMap<i64, u64>,
    open: VecDeque<OpenClip>,
    /// Audio packets (start seconds, packet in the audio time base) not yet older than every
    /// clip that can still need them.
    audio_packets: VecDeque<(f64, ff::Packet)>,
    /// Audio is known up to here (seconds); infinite once it has ended.
    audio_until: f64,
    /// The time of the last frame sent to the encoder: no clip opened later starts before it.
    video_time: f64,
    written: Vec<WrittenClip>,
}

impl ClipCutter {
    /// Clips of `min_frames..=max_frames` frames into `dir`; `video` and `audio` are the whole
    /// output's streams (their parameters and the time bases of the packets given here).
    pub fn new(
        dir: &Path,
        (min_frames, max_frames): (u64, u64),
        frame_rate: f64,
        video: (ff::codec::Parameters, ff::Rational),
        audio: Option<(ff::codec::Parameters, ff::Rational)>,
    ) -> Result<ClipCutter> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "creating the clips folder", e))?;
        let audio_until = if audio.is_some() {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
        Ok(ClipCutter {
            dir: dir.to_path_buf(),
            min_frames,
            max_frames,
            frame_duration: 1.0 / frame_rate.max(1e-3),
            video: StreamFormat {
                parameters: video.0,
                time_base: video.1,
            },
            audio: audio.map(|(parameters, time_base)| StreamFormat {
                parameters,
                time_base,
            }),
            frame_of_pts: HashMap::new(),
            open: VecDeque::new(),
            audio_packets: VecDeque::new(),
            audio_until,
            video_time: 0.0,
            written: Vec::new(),
        })
    }

    /// Output frame `index`, shown at `pts` (video time base) and `time` seconds, goes to the
    /// encoder coded as `role` says.
    pub fn frame(&mut self, index: u64, pts: i64, time: f64, role: FrameRole) {
        self.frame_of_pts.insert(pts, index);
        self.video_time = time;
        if role == FrameRole::ClipStart {
            if let Some(last) = self.open.back_mut().filter(|c| c.end_frame.is_none()) {
                last.end_frame = Some(index);
            }
            self.open.push_back(OpenClip {
                start_frame: index,
                end_frame: None,
                start_pts: pts,
                start_time: time,
                end_time: time + self.frame_duration,
                packets: Vec::new(),
            });
            return;
        }
        if let Some(last) = self.open.back_mut().filter(|c| c.end_frame.is_none()) {
            last.end_time = time + self.frame_duration;
            if role == FrameRole::ClipEnd {
                last.end_frame = Some(index + 1);
            }
        }
    }

    /// A packet from the video encoder (its time base).
    pub fn video_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        let Some(frame) = packet.pts().and_then(|pts| self.frame_of_pts.remove(&pts)) else {
            return Ok(());
        };
        if let Some(clip) = self
            .open
            .iter_mut()
            .find(|c| frame >= c.start_frame && c.end_frame.is_none_or(|end| frame < end))
        {
            clip.packets.push(packet.clone());
        }
        self.write_complete()
    }

    /// A packet of the output's audio stream (in the time base given to [`ClipCutter::new`]).
    pub fn audio_packet(&mut self, packet: &ff::Packet) -> Result<()> {
        let Some(format) = &self.audio else {
            return Ok(());
        };
        let Some(pts) = packet.pts() else {
            return Ok(());
        };
        let start = pts as f64 * f64::from(format.time_base);
        self.audio_until = self.audio_until.max(start);
        self.audio_packets.push_back((start, packet.clone()));
        self.write_complete()
    }

    /// The video and audio have ended: writes what is complete, forgets what is not.
    pub fn finish(mut self) -> Result<Vec<WrittenClip>> {
        self.audio_until = f64::INFINITY;
        self.write_complete()?;
        Ok(self.written)
    }

    /// Writes (or drops, when too short or too long) the clips at the front that are complete.
    fn write_complete(&mut self) -> Result<()> {
        while let Some(clip) = self.open.front() {
            if !clip.complete() || self.audio_until < clip.end_time {
                break;
            }
            let clip = self.open.pop_front().expect("front exists");
            let frames = clip.packets.len() as u64;
            if (self.min_frames..=self.max_frames).contains(&frames) {
                self.write(clip)?;
            }
        }
        // Audio older than every clip still collecting (or, with none, than the last frame sent)
        // is not needed any more.
        let keep_from = self.open.front().map_or(self.video_time, |c| c.start_time) - 0.5;
        while self
            .audio_packets
            .front()
            .is_some_and(|(t, _)| *t < keep_from)
        {
            self.audio_packets.pop_front();
        }
        Ok(())
    }

    fn write(&mut self, clip: OpenClip) -> Result<()> {
        let end_frame = clip.start_frame + clip.packets.len() as u64;
        let path = self.dir.join(format!("frame-{:09}.mp4", clip.start_frame));
        let tmp = self
            .dir
            .join(format!(".frame-{:09}.mp4.tmp", clip.start_frame));
        let (mut output, video_index, audio_index) = self.create_file(&tmp)?;
        let (start_time, end_time) = (clip.start_time, clip.end_time);
        self.write_video(&mut output, &tmp, video_index, clip.packets, clip.start_pts)?;
        if let Some(index) = audio_index {
            self.write_audio(&mut output, &tmp, index, start_time, end_time)?;
        }
        output
            .write_trailer()
            .map_err(ffmpeg_error(&tmp, "writing a clip's MP4 trailer"))?;
        drop(output);
        std::fs::rename(&tmp, &path)
            .map_err(|e| Error::io(&path, "renaming a finished clip into place", e))?;
        self.written.push(WrittenClip {
            start_frame: clip.start_frame,
            end_frame,
            start_time,
            end_time,
            path,
        });
        Ok(())
    }

    /// Creates the clip file `tmp` with the output's streams and writes its header; returns it
    /// with the indices of its video and (when the output has one) audio stream.
    fn create_file(
        &self,
        tmp: &Path,
    ) -> Result<(ff::format::context::Output, usize, Option<usize>)> {
        let mut output = ff::format::output_as(&tmp, "mp4")
            .map_err(ffmpeg_error(tmp, "creating a clip file"))?;
        let video_index = {
            let mut stream = output
                .add_stream(ff::encoder::find(ff::codec::Id::None))
                .map_err(ffmpeg_error(tmp, "adding the clip's video stream"))?;
            stream.set_parameters(self.video.parameters.clone());
            stream.set_time_base(self.video.time_base);
            stream.index()
        };
        let audio_index = match &self.audio {
            Some(format) => {
                let mut stream = output
                    .add_stream(ff::encoder::find(ff::codec::Id::None))
                    .map_err(ffmpeg_error(tmp, "adding the clip's audio stream"))?;
                stream.set_parameters(format.parameters.clone());
                stream.set_time_base(format.time_base);
                Some(stream.index())
            }
            None => None,
        };
        let mut options = ff::Dictionary::new();
        options.set("movflags", "+faststart+write_colr");
        output
            .write_header_with(options)
            .map_err(ffmpeg_error(tmp, "writing a clip's MP4 header"))?;
        Ok((output, video_index, audio_index))
    }

    /// Writes a clip's video packets to stream `index` of `output`, from `start_pts` on as 0.
    fn write_video(
        &self,
        output: &mut ff::format::context::Output,
        tmp: &Path,
        index: usize,
        packets: Vec<ff::Packet>,
        start_pts: i64,
    ) -> Result<()> {
        let video_tb = output.stream(index).expect("added").time_base();
        // libx264's packets carry no duration; the whole video's muxer learns each from the
        // next packet, but a clip's last packet has no next one, and MP4 would then hide it.
        let frame_ticks = (self.frame_duration / f64::from(self.video.time_base))
            .round()
            .max(1.0) as i64;
        for mut packet in packets {
            if packet.duration() <= 0 {
                packet.set_duration(frame_ticks);
            }
            packet.set_pts(packet.pts().map(|p| p - start_pts));
            packet.set_dts(packet.dts().map(|d| d - start_pts));
            packet.set_stream(index);
            packet.set_position(-1);
            packet.rescale_ts(self.video.time_base, video_tb);
            packet
                .write_interleaved(output)
                .map_err(ffmpeg_error(tmp, "writing a clip's video packet"))?;
        }
        Ok(())
    }

    /// Writes the audio packets that start in [start, end) seconds (both bounds a millisecond
    /// early, against rounding) to stream `index` of `output`, from `start` on as 0.
    fn write_audio(
        &self,
        output: &mut ff::format::context::Output,
        tmp: &Path,
        index: usize,
        start: f64,
        end: f64,
    ) -> Result<()> {
        let Some(format) = &self.audio else {
            return Ok(());
        };
        let audio_tb = output.stream(index).expect("added").time_base();
        let offset = (start / f64::from(format.time_base)).round() as i64;
        for (t, packet) in &self.audio_packets {
            if *t < start - 1e-3 || *t >= end - 1e-3 {
                continue;
            }
            let mut packet = packet.clone();
            packet.set_pts(packet.pts().map(|p| p - offset));
            packet.set_dts(packet.dts().map(|d| d - offset));
            packet.set_stream(index);
            packet.set_position(-1);
            packet.rescale_ts(format.time_base, audio_tb);
            packet
                .write_interleaved(output)
                .map_err(ffmpeg_error(tmp, "writing a clip's audio packet"))?;
        }
        Ok(())
    }
}

/// An FFmpeg error while `what`, about the clip file `path`.
fn ffmpeg_error<'a>(path: &'a Path, what: &'a str) -> impl FnOnce(ff::Error) -> Error + 'a {
    move |e| Error::ffmpeg(path, what, e)
}
