//! The encode stage: normalized frames → libx264 → MP4, with the source's audio packets muxed as
//! they arrive and one chapter per scene added before the trailer. With clips, frames wait here
//! until the scene stage has decided where clips start and end around them ([`LiveBoundaries`]),
//! so each clip starts on an IDR frame and the muxer cuts its file from the same packets.
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};
use ffmpeg_next as ff;
use serde::Serialize;

use super::clip_caption::CaptionTarget;
use super::clip_work::ClipWork;
use super::normalize::NormFrame;
use super::scenes::{frame_on_output, scenes_on_output, SceneCut, SceneEvent};
use super::stage::{BusyTimer, Cancel};
use crate::clips::plan::{ClipRules, LiveBoundaries, LiveCut};
use crate::config::EncodeConfig;
use crate::error::{Error, Result};
use crate::media::clip_mux::FrameRole;
use crate::media::clip_mux::WrittenClip;
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
    /// Clip files cut from the encode (`clips` only), in frame order.
    #[serde(skip)]
    pub clips: Vec<WrittenClip>,
    /// The burned-in text of each clip file (`clips.text` only), by its first frame.
    #[serde(skip)]
    pub clip_texts: Vec<(u64, crate::output::clip_record::TextScore)>,
    /// The caption of each clip file (`caption` only), by its first frame.
    #[serde(skip)]
    pub clip_captions: crate::caption::pool::Outcomes,
    /// Frames encoded before the scene stage could say whether a clip starts or ends there
    /// (the wait was longer than the frame budget): a clip boundary there is not cut.
    pub undecided_frames: u64,
}

/// Clip files cut from the encode.
pub struct ClipCutting {
    pub dir: PathBuf,
    pub rules: ClipRules,
    /// At most this many frames wait for the clip boundaries to be known.
    pub max_waiting: usize,
    /// `clips.text`: read each clip's burned-in text from its frames.
    pub text: Option<crate::config::TextScoring>,
    /// `caption`: ask for each clip's caption from its frames.
    pub captions: Option<CaptionTarget>,
}

pub struct EncodeStage {
    pub path: PathBuf,
    pub config: EncodeConfig,
    pub video: VideoSettings,
    pub audio: Option<AudioSource>,
    pub audio_offset: i64,
    /// The configured constant output rate, if any (maps scene cuts to output frames).
    pub fps: Option<f64>,
    pub clips: Option<ClipCutting>,
    pub cancel: Cancel,
}

/// The scene stage's news as the encoder hears it: every cut so far (the chapters), and
/// whether the list is complete. The channel is bounded, so the encoder hears it whenever it
/// waits for anything (the scene stage must never wait long on a full channel).
struct SceneNewsIn {
    rx: Option<Receiver<SceneEvent>>,
    cuts: Vec<SceneCut>,
    complete: bool,
}

impl SceneNewsIn {
    fn new(rx: Option<Receiver<SceneEvent>>) -> SceneNewsIn {
        SceneNewsIn {
            complete: rx.is_none(),
            rx,
            cuts: Vec::new(),
        }
    }

    /// One event: a cut is kept, the end noted, and both passed to the frames waiting for
    /// their clip roles.
    fn hear(&mut self, event: SceneEvent, waiting: Option<&mut Waiting>) {
        match event {
            SceneEvent::Cut(cut) => self.cuts.push(cut),
            SceneEvent::KnownUntil { source_index, .. } => {
                self.complete |= source_index == u64::MAX;
            }
        }
        if let Some(w) = waiting {
            w.hear(event);
        }
    }

    /// Everything already queued, without waiting.
    fn drain(&mut self, mut waiting: Option<&mut Waiting>) {
        while let Some(event) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
            self.hear(event, waiting.as_deref_mut());
        }
    }

    /// Waits until every cut is known or the scene stage is gone (it stops at its end).
    fn until_complete(&mut self, mut waiting: Option<&mut Waiting>) {
        while !self.complete {
            let Some(event) = self.rx.as_ref().and_then(|rx| rx.recv().ok()) else {
                break;
            };
            self.hear(event, waiting.as_deref_mut());
        }
        self.rx = None;
        if let Some(w) = waiting {
            // Complete, or the scene stage stopped without finishing (its error is reported).
            w.boundaries.complete();
        }
    }

    /// The cuts, once all are known; a scene stage that stopped early failed (its error is
    /// the one reported).
    fn into_cuts(self) -> Result<Vec<SceneCut>> {
        match self.complete {
            true => Ok(self.cuts),
            false => Err(Error::Cancelled { stage: "encode" }),
        }
    }
}

/// Frames waiting for their clip role, and what decides it.
struct Waiting {
    boundaries: LiveBoundaries,
    frames: std::collections::VecDeque<Arc<NormFrame>>,
    max: usize,
    /// Output frames given to the encoder.
    sent: u64,
    undecided: u64,
    fps: Option<f64>,
    /// Text reading and captions of the clips as they close.
    work: Option<ClipWork>,
}

impl Waiting {
    /// The scene stage's news: a clip boundary, or how far boundaries are known.
    fn hear(&mut self, event: SceneEvent) {
        match event {
            SceneEvent::Cut(cut) => {
                let frame = self.on_output(cut.source_index, cut.time);
                let transition_start = cut
                    .transition
                    .map_or(frame, |t| self.on_output(t.start_index, t.start_time));
                self.boundaries.cut(LiveCut {
                    frame,
                    transition_start,
                });
            }
            SceneEvent::KnownUntil { source_index, time } => {
                if source_index == u64::MAX {
                    self.boundaries.complete();
                } else {
                    let bound = self.on_output(source_index, time);
                    self.boundaries.known_until(bound);
                }
            }
        }
    }

    /// A source frame's place on the output, as [`scenes_on_output`] lays cuts.
    fn on_output(&self, index: u64, time: f64) -> u64 {
        frame_on_output(index, time, self.fps).0
    }

    /// Hands an encoded frame to the clip work, when there is some.
    fn clip_work(&mut self, norm: &Arc<NormFrame>, role: FrameRole, cancel: &Cancel) -> Result<()> {
        match self.work.as_mut() {
            Some(work) => work.frame(norm, role, &|| cancel.is_raised()),
            None => Ok(()),
        }
    }

    /// The frames whose role is known (all of them once `total` frames are in and every cut is
    /// known); when more than `max` wait, the oldest goes without one.
    fn ready(&mut self, total: Option<u64>) -> Vec<(Arc<NormFrame>, FrameRole)> {
        let mut out = Vec::new();
        while !self.frames.is_empty() {
            let role = match self.boundaries.role(self.sent, total) {
                Some(role) => role,
                None if self.frames.len() > self.max => {
                    self.undecided += 1;
                    FrameRole::Free
                }
                None => break,
            };
            out.push((self.frames.pop_front().expect("front exists"), role));
            self.sent += 1;
        }
        out
    }
}

impl EncodeStage {
    /// `news`: the scene stage's events when it runs (the chapters; the clip boundaries when
    /// clip files are cut).
    pub fn run(
        mut self,
        frames: Receiver<Arc<NormFrame>>,
        audio: Option<Receiver<ff::Packet>>,
        news: Option<Receiver<SceneEvent>>,
    ) -> Result<EncodeStats> {
        let mut timer = BusyTimer::default();
        let (mut muxer, mut waiting) = self.open(&mut timer)?;
        let mut news = SceneNewsIn::new(news);
        let mut audio = audio;
        let mut frames = Some(frames);
        let mut last_time = None::<f64>;
        let mut received = 0u64;
        // Take frames, audio packets and scene news in whatever order they come until the
        // frames and the audio have ended.
        while frames.is_some() || audio.is_some() {
            self.cancel.check("encode")?;
            let never = crossbeam_channel::never();
            let frame_rx = frames.as_ref().unwrap_or(&never);
            let never_audio = crossbeam_channel::never();
            let audio_rx = audio.as_ref().unwrap_or(&never_audio);
            let never_news = crossbeam_channel::never();
            let news_rx = news.rx.clone().unwrap_or(never_news);
            select! {
                recv(frame_rx) -> msg => match msg {
                    Ok(norm) => {
                        last_time = Some(norm.time);
                        received += 1;
                        if let Some(w) = &mut waiting {
                            w.frames.push_back(norm);
                        } else {
                            self.encode(&mut muxer, &mut timer, &norm, FrameRole::Free)?;
                        }
                    }
                    Err(_) => frames = None,
                },
                recv(audio_rx) -> msg => match msg {
                    Ok(packet) => {
                        timer.time(|| muxer.send_audio_packet(packet, self.audio_offset))?;
                    }
                    Err(_) => audio = None,
                },
                recv(news_rx) -> msg => match msg {
                    Ok(event) => news.hear(event, waiting.as_mut()),
                    Err(_) => news.rx = None,
                },
            }
            news.drain(waiting.as_mut());
            if let Some(w) = &mut waiting {
                for (norm, role) in w.ready(None) {
                    self.encode(&mut muxer, &mut timer, &norm, role)?;
                    w.clip_work(&norm, role, &self.cancel)?;
                }
            }
        }
        // The video is over: once every cut is known, the last frames' roles are too.
        news.until_complete(waiting.as_mut());
        let mut undecided_frames = 0;
        let mut findings = Default::default();
        if let Some(mut w) = waiting {
            for (norm, role) in w.ready(Some(received)) {
                self.encode(&mut muxer, &mut timer, &norm, role)?;
                w.clip_work(&norm, role, &self.cancel)?;
            }
            undecided_frames = w.undecided;
            if let Some(work) = w.work {
                findings = work.finish()?;
            }
        }
        let duration = last_time
            .map(|t| t + 1.0 / f64::from(self.video.frame_rate))
            .unwrap_or(0.0);
        let mut stats = self.finish(muxer, timer, news.into_cuts()?, duration, undecided_frames)?;
        let super::clip_work::ClipFindings { texts, captions } = findings;
        (stats.clip_texts, stats.clip_captions) = (texts, captions);
        Ok(stats)
    }

    /// The muxer, cutting clip files as it goes when the plan makes them (then frames wait
    /// for their roles in [`Waiting`]).
    fn open(&mut self, timer: &mut BusyTimer) -> Result<(Muxer, Option<Waiting>)> {
        let frame_rate = f64::from(self.video.frame_rate);
        let audio = self.audio.take();
        let mut muxer =
            timer.time(|| Muxer::create(&self.path, &self.config, &self.video, audio))?;
        let Some(clips) = self.clips.take() else {
            return Ok((muxer, None));
        };
        timer.time(|| {
            muxer.cut_clips(
                &clips.dir,
                (clips.rules.min_frames, clips.rules.max_frames),
                frame_rate,
            )
        })?;
        let waiting = Waiting {
            boundaries: LiveBoundaries::new(clips.rules),
            frames: Default::default(),
            max: clips.max_waiting,
            sent: 0,
            undecided: 0,
            fps: self.fps,
            work: ClipWork::start(
                &self.path,
                (clips.rules.min_frames, clips.rules.max_frames),
                clips.text.as_ref(),
                clips.captions.as_ref(),
            ),
        };
        Ok((muxer, Some(waiting)))
    }

    fn encode(
        &self,
        muxer: &mut Muxer,
        timer: &mut BusyTimer,
        norm: &NormFrame,
        role: FrameRole,
    ) -> Result<()> {
        let super::normalize::Canvas::Host(frame) = &norm.frame else {
            return Err(Error::input(
                &self.path,
                "the encoder needs frames in host memory, got a device canvas",
            ));
        };
        timer.time(|| muxer.send_video_frame(frame, norm.pts, norm.time, role))
    }

    /// Chapters from the scene cuts, then the muxer closed; the stage's account.
    fn finish(
        &self,
        muxer: Muxer,
        mut timer: BusyTimer,
        cuts: Vec<SceneCut>,
        duration: f64,
        undecided_frames: u64,
    ) -> Result<EncodeStats> {
        let frames_written = muxer.frames_in;
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
        let clips = timer.time(|| muxer.finish(&chapters))?;
        Ok(EncodeStats {
            frames: frames_written,
            duration,
            audio_transcoded_from: transcoded,
            audio_left_out,
            audio_packets,
            audio_packets_dropped,
            seconds: timer.seconds(),
            chapters: chapter_count,
            clips,
            clip_texts: Vec::new(),
            clip_captions: Vec::new(),
            undecided_frames,
        })
    }
}
