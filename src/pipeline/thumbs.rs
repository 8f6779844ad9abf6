//! The thumbs stage: the first, middle and last frame of every scene, taken from the
//! normalized canvases the pipeline already has and written as small JPEGs into the output
//! folder (`thumbs/sNNNNN-{0,1,2}.jpg`), so that `framepipe report` only reads files.
//!
//! Frames are picked as [`crate::report_page::frame_picker`] picks them from a finished video
//! (the frame on screen at the scene's start, middle and end). Which scene a frame belongs to
//! is known only once the scene stage has looked past it: frames wait here (shared by `Arc`,
//! never copied) until the stage's `KnownUntil` covers them. A scene's middle is known only
//! when the scene ends, so the frames that can still become its middle (those after the half
//! point of what has been seen) are kept as candidates, thinned to every other one when they
//! would hold more than [`CANDIDATE_BYTES`]: the middle is exact while the second half of a
//! scene fits (48 frames at 720p), and within the kept spacing after that. Only the three
//! chosen frames per scene are scaled and encoded.
use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{select, Receiver};
use ffmpeg_next as ff;

use super::normalize::{Canvas, NormFrame};
use super::scenes::{frame_on_output, SceneEvent};
use super::stage::{BusyTimer, Cancel};
use crate::error::{Error, Result};
use crate::media::RgbFrames;
use crate::output::files::THUMBS_DIR;
use crate::output::scene::Thumbnails;

/// Memory the middle-frame candidates of the open scene may hold.
pub const CANDIDATE_BYTES: usize = 64 << 20;

/// The thumbnails made for the scene starting at output frame `start_frame`.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneThumbs {
    pub start_frame: u64,
    pub thumbnails: Thumbnails,
}

/// What the stage made.
#[derive(Debug, Clone, Default)]
pub struct ThumbsOutput {
    pub scenes: Vec<SceneThumbs>,
    /// A cut arrived for a frame already taken as part of the scene before (the scene stage
    /// lagged beyond the wait budget): the thumbnails do not match the scene list.
    pub out_of_step: bool,
    pub seconds: f64,
}

/// A frame as the picking logic sees it.
#[derive(Clone)]
struct Seen<F> {
    index: u64,
    time: f64,
    frame: F,
}

/// One scene being watched.
struct OpenScene<F> {
    start_time: f64,
    first: Seen<F>,
    /// Frames that may still be the middle, in order: those `stride` frames apart from the
    /// start (thinned when too many).
    candidates: VecDeque<Seen<F>>,
    stride: u64,
    last: Seen<F>,
}

/// The three frames of a closed scene.
pub struct Picked<F> {
    pub start_frame: u64,
    /// First, middle, last: (output index, frame).
    pub frames: [(u64, F); 3],
}

/// Picks each scene's first, middle and last frame from frames fed in order with whether they
/// start a scene. Independent of FFmpeg (tests feed indices).
pub struct LiveThumbs<F> {
    /// A quarter frame: the tolerance the report's picker uses.
    tolerance: f64,
    capacity: usize,
    open: Option<OpenScene<F>>,
}

impl<F: Clone> LiveThumbs<F> {
    /// `capacity`: middle candidates kept at most (at least 2).
    pub fn new(fps: f64, capacity: usize) -> LiveThumbs<F> {
        LiveThumbs {
            tolerance: 0.25 / fps,
            capacity: capacity.max(2),
            open: None,
        }
    }

    /// The next frame (output `index`, `time` seconds); `starts_scene`: a cut is at it. Returns
    /// the scene it closes, if any.
    pub fn push(
        &mut self,
        index: u64,
        time: f64,
        frame: F,
        starts_scene: bool,
    ) -> Option<Picked<F>> {
        let seen = Seen { index, time, frame };
        let closed = match (&self.open, starts_scene) {
            (Some(_), false) => None,
            (Some(_), true) => self.close(time),
            (None, _) => None,
        };
        match &mut self.open {
            Some(scene) if !starts_scene => {
                scene.last = seen.clone();
                let first = scene.first.index;
                if (index - first).is_multiple_of(scene.stride) {
                    scene.candidates.push_back(seen);
                }
                // The middle's limit is at least half way to this frame: a candidate followed
                // by one already within that can never be chosen.
                let half = 0.5 * (scene.start_time + time);
                while scene.candidates.len() > 1 && scene.candidates[1].time <= half {
                    scene.candidates.pop_front();
                }
                // Too many: keep every other one (frames on a grid twice as wide from the
                // scene's start), so the spacing stays even.
                while scene.candidates.len() > self.capacity {
                    scene.stride *= 2;
                    let stride = scene.stride;
                    scene
                        .candidates
                        .retain(|c| (c.index - first).is_multiple_of(stride));
                }
            }
            _ => {
                self.open = Some(OpenScene {
                    stride: 1,
                    start_time: time,
                    first: seen.clone(),
                    candidates: VecDeque::from([seen.clone()]),
                    last: seen,
                });
            }
        }
        closed
    }

    /// Closes the open scene, which ends at `end_time` (the next scene's start, or the video's
    /// end).
    pub fn close(&mut self, end_time: f64) -> Option<Picked<F>> {
        let scene = self.open.take()?;
        let limit = 0.5 * (scene.start_time + end_time) + self.tolerance;
        let middle = scene
            .candidates
            .iter()
            .rev()
            .find(|c| c.time <= limit)
            .or(scene.candidates.front())
            .unwrap_or(&scene.first)
            .clone();
        Some(Picked {
            start_frame: scene.first.index,
            frames: [
                (scene.first.index, scene.first.frame),
                (middle.index, middle.frame),
                (scene.last.index, scene.last.frame),
            ],
        })
    }
}

/// The stage: canvases from normalize, the scene stage's news, JPEGs out.
pub struct ThumbStage {
    /// `OUT/<stem>.partial` (files go to its [`THUMBS_DIR`]).
    pub out: PathBuf,
    /// The configured constant output rate, if any (maps scene cuts to output frames).
    pub fps: Option<f64>,
    /// The output's nominal rate (the picking tolerance).
    pub nominal_fps: f64,
    /// Frames that may wait for the scene stage's decision.
    pub max_waiting: usize,
    pub cancel: Cancel,
}

impl ThumbStage {
    /// `events`: the scene stage's cuts as they are found; `None`: no scene detection, the
    /// video is one scene.
    pub fn run(
        self,
        rx: Receiver<Arc<NormFrame>>,
        events: Option<Receiver<SceneEvent>>,
    ) -> Result<ThumbsOutput> {
        let dir = self.out.join(THUMBS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, "creating the thumbnails folder", e))?;
        let mut picking = Picking::new(dir, &self, events.is_some());
        let mut events = events;
        let mut frames_open = true;
        loop {
            self.cancel.check("thumbs")?;
            picking.settle()?;
            if !frames_open && events.is_none() {
                break;
            }
            let late = match (frames_open, &events) {
                (true, Some(ev)) => select! {
                    recv(rx) -> msg => match msg {
                        Ok(f) => { picking.frame_in(f); false }
                        Err(_) => { frames_open = false; false }
                    },
                    recv(ev) -> msg => match msg {
                        Ok(e) => picking.hear(e),
                        Err(_) => { events = None; picking.all_known(); false }
                    },
                },
                (true, None) => {
                    match rx.recv() {
                        Ok(f) => picking.frame_in(f),
                        Err(_) => frames_open = false,
                    }
                    false
                }
                (false, Some(ev)) => match ev.recv() {
                    Ok(e) => picking.hear(e),
                    Err(_) => {
                        // The scene stage is done: every cut is known.
                        events = None;
                        picking.all_known();
                        false
                    }
                },
                (false, None) => false,
            };
            picking.out.out_of_step |= late;
        }
        picking.finish()
    }
}

/// The stage's state while it runs: frames waiting for the scene stage's decision, the cuts
/// heard, the open scene's picker and what was written.
struct Picking {
    dir: PathBuf,
    fps: Option<f64>,
    nominal_fps: f64,
    max_waiting: usize,
    timer: BusyTimer,
    out: ThumbsOutput,
    writer: Option<JpegWriter>,
    live: Option<LiveThumbs<Arc<NormFrame>>>,
    cuts: BTreeSet<u64>,
    /// Output frames before this are settled (no cut the scene stage finds later is there).
    known_until: u64,
    waiting: VecDeque<Arc<NormFrame>>,
    taken_until: u64,
    scenes: usize,
    last_time: f64,
    frame_duration: f64,
}

impl Picking {
    fn new(dir: PathBuf, stage: &ThumbStage, hears_cuts: bool) -> Picking {
        Picking {
            dir,
            fps: stage.fps,
            nominal_fps: stage.nominal_fps,
            max_waiting: stage.max_waiting,
            timer: BusyTimer::default(),
            out: ThumbsOutput::default(),
            writer: None,
            live: None,
            cuts: BTreeSet::new(),
            known_until: if hears_cuts { 0 } else { u64::MAX },
            waiting: VecDeque::new(),
            taken_until: 0,
            scenes: 0,
            last_time: 0.0,
            frame_duration: 1.0 / stage.nominal_fps.max(1e-3),
        }
    }

    fn frame_in(&mut self, frame: Arc<NormFrame>) {
        note_time(&frame, &mut self.last_time, &mut self.frame_duration);
        self.waiting.push_back(frame);
    }

    /// The scene stage's news: a cut (true when out of step: its frame was already taken as
    /// part of the scene before), or how far its decisions reach.
    fn hear(&mut self, event: SceneEvent) -> bool {
        match event {
            SceneEvent::Cut(c) => {
                let frame = frame_on_output(c.source_index, c.time, self.fps).0;
                self.cuts.insert(frame);
                frame < self.taken_until
            }
            SceneEvent::KnownUntil { source_index, time } => {
                let frame = if time.is_finite() {
                    frame_on_output(source_index, time, self.fps).0
                } else {
                    u64::MAX
                };
                self.known_until = self.known_until.max(frame);
                false
            }
        }
    }

    /// The scene stage ended: every cut is known.
    fn all_known(&mut self) {
        self.known_until = u64::MAX;
    }

    /// Settled frames go to the picker (past the wait budget, the oldest regardless).
    fn settle(&mut self) -> Result<()> {
        while let Some(front) = self.waiting.front() {
            let settled = front.index < self.known_until;
            if !settled && self.waiting.len() <= self.max_waiting {
                break;
            }
            let frame = self.waiting.pop_front().expect("front exists");
            let nominal_fps = self.nominal_fps;
            let live = self
                .live
                .get_or_insert_with(|| LiveThumbs::new(nominal_fps, candidate_capacity(&frame)));
            let starts = self.cuts.contains(&frame.index);
            self.taken_until = frame.index + 1;
            let (index, time) = (frame.index, frame.time);
            if let Some(picked) = live.push(index, time, frame, starts) {
                let (writer, dir, scenes, out) =
                    (&mut self.writer, &self.dir, self.scenes, &mut self.out);
                self.timer
                    .time(|| write_scene(writer, dir, scenes, picked, out))?;
                self.scenes += 1;
            }
        }
        Ok(())
    }

    /// The last scene's thumbnails, and the stage's account.
    fn finish(mut self) -> Result<ThumbsOutput> {
        let end = self.last_time + self.frame_duration;
        if let Some(picked) = self.live.as_mut().and_then(|l| l.close(end)) {
            let (writer, dir, scenes, out) =
                (&mut self.writer, &self.dir, self.scenes, &mut self.out);
            self.timer
                .time(|| write_scene(writer, dir, scenes, picked, out))?;
        }
        self.out.seconds = self.timer.seconds();
        Ok(self.out)
    }
}

/// Lists the thumbnails in the report's scenes when they were made for exactly those scenes.
/// Otherwise (the scene stage lagged past the wait budget, so a scene's frames were taken
/// before its cut was known) none are listed and the reason is returned: `framepipe report`
/// then decodes them from the video.
pub fn attach(
    made: &ThumbsOutput,
    scenes: &mut [crate::output::scene::Scene],
) -> std::result::Result<(), String> {
    let starts_match = made.scenes.len() == scenes.len()
        && made
            .scenes
            .iter()
            .zip(scenes.iter())
            .all(|(t, s)| t.start_frame == s.start_frame);
    if made.out_of_step || !starts_match {
        return Err(format!(
            "scene thumbnails were made for {} scene(s) while the scene list has {} (the scene \
             detector decided too late); none kept, `framepipe report` decodes them from the video",
            made.scenes.len(),
            scenes.len()
        ));
    }
    for (t, s) in made.scenes.iter().zip(scenes.iter_mut()) {
        s.thumbnails = Some(t.thumbnails.clone());
    }
    Ok(())
}

/// Remembers the latest frame time and the spacing of frames (for the video's end time).
fn note_time(frame: &NormFrame, last: &mut f64, duration: &mut f64) {
    if frame.index > 0 && frame.time > *last {
        *duration = frame.time - *last;
    }
    *last = frame.time;
}

/// How many canvases like `frame` fit in [`CANDIDATE_BYTES`].
fn candidate_capacity(frame: &NormFrame) -> usize {
    let bytes = match &frame.frame {
        Canvas::Host(f) => (f.width() as usize * f.height() as usize * 3 / 2).max(1),
        Canvas::Device(_) => 1 << 20,
    };
    (CANDIDATE_BYTES / bytes).max(8)
}

/// Scales and encodes one scene's three frames.
fn write_scene(
    writer: &mut Option<JpegWriter>,
    dir: &Path,
    scene: usize,
    picked: Picked<Arc<NormFrame>>,
    out: &mut ThumbsOutput,
) -> Result<()> {
    let mut files: [String; 3] = Default::default();
    let mut previous: Option<(u64, PathBuf)> = None;
    for (which, (index, frame)) in picked.frames.iter().enumerate() {
        let name = format!("s{scene:05}-{which}.jpg");
        let path = dir.join(&name);
        match &previous {
            // One frame wanted twice (a one- or two-frame scene): the same picture.
            Some((done, from)) if *done == *index => {
                std::fs::copy(from, &path)
                    .map_err(|e| Error::io(&path, "writing a thumbnail", e))?;
            }
            _ => {
                let Canvas::Host(canvas) = &frame.frame else {
                    return Err(Error::io(
                        &path,
                        "writing a thumbnail",
                        std::io::Error::other("canvas is in device memory"),
                    ));
                };
                let w =
                    writer.get_or_insert_with(|| JpegWriter::new(canvas.width(), canvas.height()));
                w.write(canvas, &path)?;
            }
        }
        previous = Some((*index, path));
        files[which] = format!("{THUMBS_DIR}/{name}");
    }
    out.scenes.push(SceneThumbs {
        start_frame: picked.start_frame,
        thumbnails: Thumbnails {
            frames: picked.frames.map(|(i, _)| i),
            files,
        },
    });
    Ok(())
}

/// Canvas → thumbnail-sized RGB → JPEG, with the scaler made once.
struct JpegWriter {
    rgb: RgbFrames,
}

impl JpegWriter {
    fn new(width: u32, height: u32) -> JpegWriter {
        let (w, h) = crate::media::thumbnail::size_for(width, height);
        JpegWriter {
            rgb: RgbFrames::new(w, h, ff::software::scaling::Flags::AREA),
        }
    }

    fn write(&mut self, frame: &ff::frame::Video, path: &Path) -> Result<()> {
        crate::media::thumbnail::write_jpeg(&mut self.rgb, frame, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The report's rule on a whole frame list: first, middle (last frame starting at or
    /// before the middle time plus a quarter frame), last frame of each scene.
    fn reference(times: &[f64], starts: &[usize], end: f64, fps: f64) -> Vec<[u64; 3]> {
        let tol = 0.25 / fps;
        starts
            .iter()
            .enumerate()
            .map(|(k, &s)| {
                let e = starts.get(k + 1).copied().unwrap_or(times.len());
                let end_time = starts.get(k + 1).map(|&n| times[n]).unwrap_or(end);
                let limit = 0.5 * (times[s] + end_time) + tol;
                let mid = (s..e).rev().find(|&i| times[i] <= limit).unwrap_or(s);
                [s as u64, mid as u64, (e - 1) as u64]
            })
            .collect()
    }

    fn picked(times: &[f64], starts: &[usize], end: f64, fps: f64, cap: usize) -> Vec<[u64; 3]> {
        let mut live = LiveThumbs::<u64>::new(fps, cap);
        let mut out = Vec::new();
        for (i, &t) in times.iter().enumerate() {
            if let Some(p) = live.push(i as u64, t, i as u64, starts.contains(&i) && i > 0) {
                out.push(p.frames.map(|(i, _)| i));
            }
        }
        out.extend(live.close(end).map(|p| p.frames.map(|(i, _)| i)));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// With room for every candidate, the picks equal the report's picks on the whole list.
        #[test]
        fn picks_like_the_report_when_candidates_fit(
            fps in prop::sample::select(vec![10.0, 25.0, 29.97, 60.0]),
            lengths in prop::collection::vec(1usize..200, 1..8),
            jitter in prop::collection::vec(0u8..3, 1..10),
        ) {
            let n: usize = lengths.iter().sum();
            let mut t = 0.0;
            let times: Vec<f64> = (0..n).map(|i| { let now = t; t += f64::from(1 + jitter[i % jitter.len()]) / fps; now }).collect();
            let mut starts = vec![0usize];
            for l in &lengths[..lengths.len() - 1] { starts.push(starts.last().unwrap() + l); }
            let end = t;
            prop_assert_eq!(picked(&times, &starts, end, fps, 1000), reference(&times, &starts, end, fps));
        }

        /// Thinned: first and last exact, the middle within the kept spacing of the true one.
        #[test]
        fn thinned_middle_stays_close(len in 50usize..3000, cap in 8usize..40) {
            let fps = 25.0;
            let times: Vec<f64> = (0..len).map(|i| i as f64 / fps).collect();
            let end = len as f64 / fps;
            let got = picked(&times, &[0], end, fps, cap)[0];
            let want = reference(&times, &[0], end, fps)[0];
            prop_assert_eq!(got[0], want[0]);
            prop_assert_eq!(got[2], want[2]);
            let spacing = (len as u64 / cap as u64).max(1) * 2;
            prop_assert!(got[1].abs_diff(want[1]) <= spacing, "{:?} {:?}", got, want);
        }
    }
}
