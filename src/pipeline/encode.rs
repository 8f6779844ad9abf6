//! The encode stage: normalized frames → libx264 → MP4, with the source's audio packets muxed as
//! they arrive and one chapter per scene added before the trailer.
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};
use ffmpeg_next as ff;
use serde::Serialize;

use super::normalize::NormFrame;
use super::scenes::{scenes_on_output, SceneCut};
use super::{BusyTimer, Cancel};
use crate::config::EncodeConfig;
use crate::error::{Error, Result};
use crate::media::encode::{AudioSource, Chapter, Muxer, VideoSettings};

#[derive(Debug, Clone, Serialize)]
pub struct EncodeStats {
    pub frames: u64,
    /// Last frame's time plus one frame: the written video's length.
    pub duration: f64,
    /// Source audio codec when it had to be re-encoded to AAC instead of copied.
    pub audio_transcoded_from: Option<String>,
    /// Why the source's audio is not in the output (it cannot be decoded at all).
    pub audio_left_out: Option<String>,
    /// Audio packets in the output (copied) or re-encoded.
    pub audio_packets: u64,
    /// Damaged audio packets left out.
    pub audio_packets_dropped: u64,
    pub seconds: f64,
    pub chapters: usize,
}

pub struct EncodeStage {
    pub path: PathBuf,
    pub config: EncodeConfig,
    pub video: VideoSettings,
    pub audio: Option<AudioSource>,
    pub audio_offset: i64,
    /// The configured constant output rate, if any (maps scene cuts to output frames).
    pub fps: Option<f64>,
    pub cancel: Cancel,
}

impl EncodeStage {
    pub fn run(
        self,
        frames: Receiver<Arc<NormFrame>>,
        audio: Option<Receiver<ff::Packet>>,
        cuts: Option<Receiver<Vec<SceneCut>>>,
    ) -> Result<EncodeStats> {
        let mut timer = BusyTimer::default();
        let frame_rate = f64::from(self.video.frame_rate);
        let mut muxer =
            timer.time(|| Muxer::create(&self.path, &self.config, &self.video, self.audio))?;
        let mut audio = audio;
        let mut last_time = None::<f64>;
        let mut frames = Some(frames);
        // Take frames and audio packets in whatever order they come until both have ended.
        while frames.is_some() || audio.is_some() {
            self.cancel.check("encode")?;
            let never = crossbeam_channel::never();
            let frame_rx = frames.as_ref().unwrap_or(&never);
            let never_audio = crossbeam_channel::never();
            let audio_rx = audio.as_ref().unwrap_or(&never_audio);
            select! {
                recv(frame_rx) -> msg => match msg {
                    Ok(norm) => {
                        let super::normalize::Canvas::Host(frame) = &norm.frame else {
                            return Err(Error::input(
                                &self.path,
                                "the encoder needs frames in host memory, got a device canvas",
                            ));
                        };
                        timer.time(|| muxer.send_video_frame(frame, norm.pts))?;
                        last_time = Some(norm.time);
                    }
                    Err(_) => frames = None,
                },
                recv(audio_rx) -> msg => match msg {
                    Ok(packet) => {
                        timer.time(|| muxer.send_audio_packet(packet, self.audio_offset))?;
                    }
                    Err(_) => audio = None,
                },
            }
        }
        let frames_written = muxer.frames_in;
        let duration = last_time.map(|t| t + 1.0 / frame_rate).unwrap_or(0.0);
        // Chapters need the scene cuts: the scene stage is faster than encoding, so this wait is
        // short; a closed channel means it failed (its error is the one reported).
        let cuts = match cuts {
            Some(rx) => rx
                .recv()
                .map_err(|_| Error::Cancelled { stage: "encode" })?,
            None => Vec::new(),
        };
        let chapters: Vec<Chapter> = scenes_on_output(&cuts, self.fps, frames_written, duration)
            .iter()
            .map(|scene| Chapter {
                start: scene.start_time,
                end: scene.end_time,
                title: format!("Scene {}", scene.index + 1),
            })
            .collect();
        let transcoded = muxer.audio_transcoded_from.clone();
        let (audio_left_out, audio_packets, audio_packets_dropped) = (
            muxer.audio_left_out.clone(),
            muxer.audio_packets,
            muxer.audio_packets_dropped,
        );
        let chapter_count = chapters.len();
        timer.time(|| muxer.finish(&chapters))?;
        Ok(EncodeStats {
            frames: frames_written,
            duration,
            audio_transcoded_from: transcoded,
            audio_left_out,
            audio_packets,
            audio_packets_dropped,
            seconds: timer.seconds(),
            chapters: chapter_count,
        })
    }
}
