//! Which frames become clips: per scene, the frames of the transition into the next scene are
//! left out, `trim_seconds` is cut from each end, then a scene longer than `max_seconds` is split
//! into consecutive windows (a remainder under `min_seconds` dropped) or truncated to its first
//! window, and whatever is shorter than `min_seconds` is dropped. Everything is in frames of
//! the normalized output; seconds convert at its nominal frame rate.
//!
//! [`plan_clips`] plans a finished scene list (what `clips.jsonl` lists). [`LiveBoundaries`]
//! makes the same decisions while the video is still being encoded, from the cuts known so far,
//! so the encoder can start every clip on an IDR frame and close it exactly on its last frame.
use std::ops::Range;

use serde::Serialize;

use crate::config::{ClipsConfig, LongScenes};
use crate::media::clip_mux::FrameRole;
use crate::output::scene::Scene;

/// The clip rules in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipRules {
    pub min_frames: u64,
    pub max_frames: u64,
    pub trim_frames: u64,
    pub split: bool,
}

impl ClipRules {
    /// `fps`: the output's nominal frame rate.
    pub fn new(cfg: &ClipsConfig, fps: f64) -> ClipRules {
        // A hair of tolerance so that 2.0 s at 29.97 fps is 60 frames, not 59.94 rounded up.
        let frames = |s: f64| s * fps;
        let max_frames = (frames(cfg.max_seconds) + 1e-6).floor().max(1.0) as u64;
        ClipRules {
            min_frames: ((frames(cfg.min_seconds) - 1e-6).ceil().max(1.0) as u64).min(max_frames),
            max_frames,
            trim_frames: frames(cfg.trim_seconds).round() as u64,
            split: cfg.long_scenes == LongScenes::Split,
        }
    }

    /// Where the clip windows of a scene's usable frames `start..end` begin: after the trim,
    /// every `max_frames` (only the first when truncating).
    fn first_window(&self, start: u64) -> u64 {
        start + self.trim_frames
    }

    /// The clips of a scene whose usable frames (transition out) are `start..end`.
    pub fn windows(&self, start: u64, end: u64) -> Vec<Range<u64>> {
        let (a, b) = (
            self.first_window(start),
            end.saturating_sub(self.trim_frames),
        );
        let mut out = Vec::new();
        let mut from = a;
        while from < b {
            let to = (from + self.max_frames).min(b);
            if to - from >= self.min_frames {
                out.push(from..to);
            }
            if !self.split {
                break;
            }
            from = to;
        }
        out
    }

    /// Whether output frame `n` of a scene whose usable frames start at `start` begins a clip
    /// window (the window may still be dropped for its length once the scene's end is known).
    pub fn starts_window(&self, start: u64, n: u64) -> bool {
        let a = self.first_window(start);
        n >= a && (n - a).is_multiple_of(self.max_frames) && (self.split || n == a)
    }

    /// Whether a window (started in a scene whose usable frames start at `start`) ends right
    /// after frame `n` although no next window starts there: truncation's first window.
    fn truncates_after(&self, start: u64, n: u64) -> bool {
        !self.split && n + 1 == self.first_window(start) + self.max_frames
    }
}

/// Why a part of a scene is not a clip, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DroppedFrames {
    /// Frames of transitions into the next scene.
    pub transitions: u64,
    /// Frames trimmed from scene ends.
    pub trims: u64,
    /// Frames of windows (or whole scenes) shorter than `min_seconds`.
    pub too_short: u64,
    /// Frames past the first window of a truncated scene.
    pub truncated: u64,
}

/// A planned clip: output frames `frames` of scene `scene`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedClip {
    pub scene: usize,
    pub frames: Range<u64>,
}

/// Where a scene's usable frames end: before the transition into the next scene.
fn usable_end(scene: &Scene, next: Option<&Scene>) -> u64 {
    next.and_then(|n| n.transition_in)
        .map_or(scene.end_frame, |t| t.start_frame.max(scene.start_frame))
        .min(scene.end_frame)
}

/// The clips of a finished scene list, in frame order, with what was left out and why.
pub fn plan_clips(scenes: &[Scene], rules: &ClipRules) -> (Vec<PlannedClip>, DroppedFrames) {
    let mut clips = Vec::new();
    let mut dropped = DroppedFrames::default();
    for (i, scene) in scenes.iter().enumerate() {
        let end = usable_end(scene, scenes.get(i + 1));
        dropped.transitions += scene.end_frame - end;
        let usable = end.saturating_sub(scene.start_frame);
        let trimmed = usable.min(2 * rules.trim_frames);
        dropped.trims += trimmed;
        let windows = rules.windows(scene.start_frame, end);
        let kept: u64 = windows.iter().map(|w| w.end - w.start).sum();
        let left = usable - trimmed - kept;
        if !rules.split && usable - trimmed > rules.max_frames {
            let past = usable - trimmed - rules.max_frames;
            dropped.truncated += past;
            dropped.too_short += left - past;
        } else {
            dropped.too_short += left;
        }
        clips.extend(
            windows
                .into_iter()
                .map(|frames| PlannedClip { scene: i, frames }),
        );
    }
    (clips, dropped)
}

/// A scene start on the output, as far as it is known while encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveCut {
    /// First output frame of the new scene.
    pub frame: u64,
    /// First output frame of the transition into it (== `frame` after a hard cut).
    pub transition_start: u64,
}

/// The clip decisions made while encoding: fed the cuts as the scene stage finds them and a
/// bound below which no further cut (or transition) can appear, it says for each output frame
/// whether it starts or ends a clip, or that this cannot be known yet.
#[derive(Debug)]
pub struct LiveBoundaries {
    rules: ClipRules,
    /// Known scene starts, ascending, the first scene's (0) included.
    cuts: Vec<LiveCut>,
    /// No cut or transition not yet in `cuts` starts before this output frame.
    bound: u64,
    /// The scene stage has finished: every cut is known.
    complete: bool,
}

impl LiveBoundaries {
    pub fn new(rules: ClipRules) -> Self {
        LiveBoundaries {
            rules,
            cuts: vec![LiveCut {
                frame: 0,
                transition_start: 0,
            }],
            bound: 0,
            complete: false,
        }
    }

    /// A new scene starting at output frame `cut.frame` (ignored unless after the last one).
    pub fn cut(&mut self, cut: LiveCut) {
        let last = self.cuts.last().expect("has the first scene").frame;
        if cut.frame > last {
            self.cuts.push(LiveCut {
                transition_start: cut.transition_start.clamp(last, cut.frame),
                ..cut
            });
        }
    }

    /// No further cut or transition starts before output frame `bound`.
    pub fn known_until(&mut self, bound: u64) {
        self.bound = self.bound.max(bound);
    }

    /// Every cut is known.
    pub fn complete(&mut self) {
        self.complete = true;
    }

    /// How frame `n` must be coded; `None` until the cuts that decide it are known.
    /// `frames_total`: the video's frame count once it is over (with every cut known, the last
    /// scene then ends at the last frame).
    pub fn role(&self, n: u64, frames_total: Option<u64>) -> Option<FrameRole> {
        let scene = self.cuts.partition_point(|c| c.frame <= n) - 1;
        let start = self.cuts[scene].frame;
        let next = self.cuts.get(scene + 1);
        // Where this scene's usable frames end, when it is known.
        let end = match (next, frames_total.filter(|_| self.complete)) {
            (Some(next), _) => Some(next.transition_start),
            (None, Some(total)) => Some(total),
            (None, None) => None,
        };
        let r = &self.rules;
        let window_end = |end: u64| end.saturating_sub(r.trim_frames);
        match end {
            Some(end) => {
                let b = window_end(end);
                if n >= b {
                    return Some(FrameRole::Free);
                }
                if r.starts_window(start, n) {
                    return Some(FrameRole::ClipStart);
                }
                let closes =
                    (n + 1 == b || r.truncates_after(start, n)) && !r.starts_window(start, n + 1);
                Some(if closes {
                    FrameRole::ClipEnd
                } else {
                    FrameRole::Free
                })
            }
            None => {
                // The scene's end is unknown: decidable while frame n + 1 cannot be its
                // usable end minus the trim, i.e. while the next cut's transition cannot start
                // at or before n + 1 + trim.
                if n + 1 + r.trim_frames >= self.bound {
                    return None;
                }
                if r.starts_window(start, n) {
                    Some(FrameRole::ClipStart)
                } else if r.truncates_after(start, n) && !r.starts_window(start, n + 1) {
                    Some(FrameRole::ClipEnd)
                } else {
                    Some(FrameRole::Free)
                }
            }
        }
    }
}

/// `count` frame indexes spread evenly over `frames` frames, first and last included (one: the
/// middle); fewer when the clip has fewer frames.
pub fn spread(frames: u64, count: u32) -> Vec<u64> {
    if frames == 0 || count == 0 {
        return Vec::new();
    }
    if count == 1 {
        return vec![(frames - 1) / 2];
    }
    let mut out: Vec<u64> = (0..u64::from(count))
        .map(|i| i * (frames - 1) / (u64::from(count) - 1))
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::scene::TransitionFrames;

    fn rules(min: u64, max: u64, trim: u64, split: bool) -> ClipRules {
        ClipRules {
            min_frames: min,
            max_frames: max,
            trim_frames: trim,
            split,
        }
    }

    /// (start, end, transition in).
    type SceneBounds = (u64, u64, Option<(u64, u64)>);

    fn scenes(bounds: &[SceneBounds]) -> Vec<Scene> {
        bounds
            .iter()
            .enumerate()
            .map(|(index, &(start, end, t))| Scene {
                index,
                start_frame: start,
                end_frame: end,
                start_time: start as f64 / 10.0,
                end_time: end as f64 / 10.0,
                transition_in: t.map(|(s, e)| TransitionFrames {
                    start_frame: s,
                    end_frame: e,
                    added_by: None,
                }),
                tags: None,
                reconstruction: None,
                thumbnails: None,
            })
            .collect()
    }

    #[test]
    fn seconds_become_frames() {
        let cfg = ClipsConfig::default();
        let r = ClipRules::new(&cfg, 30000.0 / 1001.0);
        assert_eq!((r.min_frames, r.max_frames, r.trim_frames), (60, 1798, 15));
        let r = ClipRules::new(&cfg, 25.0);
        assert_eq!((r.min_frames, r.max_frames, r.trim_frames), (50, 1500, 13));
    }

    #[test]
    fn split_truncate_trim_and_transitions() {
        let r = rules(20, 50, 5, true);
        // Scene 0: 0..130, the last 10 frames the transition into scene 1.
        let s = scenes(&[
            (0, 130, None),
            (130, 160, Some((120, 130))),
            (160, 175, None),
        ]);
        let (clips, dropped) = plan_clips(&s, &r);
        let frames: Vec<_> = clips.iter().map(|c| (c.scene, c.frames.clone())).collect();
        // usable 0..120, trimmed 5..115: windows 5..55, 55..105, 105..115 (10 < 20 dropped).
        // Scene 1: 130..160 trimmed 135..155 (20 frames, kept). Scene 2: 165..170 (dropped).
        assert_eq!(frames, [(0, 5..55), (0, 55..105), (1, 135..155)]);
        assert_eq!(
            dropped,
            DroppedFrames {
                transitions: 10,
                trims: 10 + 10 + 10,
                too_short: 10 + 5,
                truncated: 0
            }
        );
        let (clips, dropped) = plan_clips(&s, &rules(20, 50, 5, false));
        assert_eq!(clips[0].frames, 5..55);
        assert_eq!(clips[1].frames, 135..155);
        assert_eq!(dropped.truncated, 60);
        assert_eq!(dropped.too_short, 5);
    }

    /// The live decisions agree with the plan of the finished scene list: every planned clip
    /// starts on a ClipStart frame and is closed (its last frame a ClipEnd or followed by a
    /// ClipStart), whatever the order the cuts arrived in relative to the frames.
    #[test]
    fn live_boundaries_match_the_plan() {
        let total = 400;
        let s = scenes(&[
            (0, 130, None),
            (130, 200, Some((118, 130))),
            (200, 330, None),
            (330, 400, Some((322, 330))),
        ]);
        for r in [
            rules(20, 50, 5, true),
            rules(20, 50, 5, false),
            rules(1, 1000, 0, true),
            rules(30, 30, 3, true),
        ] {
            let (plan, _) = plan_clips(&s, &r);
            for lag in [0u64, 7, 40, 90] {
                let mut live = LiveBoundaries::new(r);
                let mut roles = Vec::new();
                let mut next_scene = 1;
                let mut n = 0;
                // The detector runs `lag` frames ahead of the encoder.
                for seen in 0..=total + lag {
                    while next_scene < s.len() && s[next_scene].start_frame < seen.min(total) {
                        let t = s[next_scene].transition_in;
                        live.cut(LiveCut {
                            frame: s[next_scene].start_frame,
                            transition_start: t
                                .map_or(s[next_scene].start_frame, |t| t.start_frame),
                        });
                        next_scene += 1;
                    }
                    // An open transition holds the bound at its start.
                    let open = s
                        .iter()
                        .filter_map(|x| x.transition_in)
                        .find(|t| t.start_frame < seen && seen <= t.end_frame)
                        .map(|t| t.start_frame);
                    live.known_until(open.unwrap_or(seen).min(seen));
                    let at_end = seen >= total;
                    if at_end {
                        live.complete();
                    }
                    while n < total {
                        match live.role(n, at_end.then_some(total)) {
                            Some(role) => {
                                roles.push(role);
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    // The encoder never waits more than the trim, one frame and the longest
                    // transition (12 frames) behind the detector: it cannot deadlock on it.
                    assert!(
                        at_end || n + r.trim_frames + 2 + 12 >= seen,
                        "{r:?} lag {lag}: frame {n} still undecided with the detector at {seen}"
                    );
                }
                assert_eq!(roles.len() as u64, total, "{r:?} lag {lag}");
                for clip in &plan {
                    let (a, b) = (clip.frames.start as usize, clip.frames.end as usize);
                    assert_eq!(roles[a], FrameRole::ClipStart, "{r:?} lag {lag} {clip:?}");
                    assert!(
                        roles[b - 1] == FrameRole::ClipEnd
                            || roles.get(b) == Some(&FrameRole::ClipStart),
                        "{r:?} lag {lag} {clip:?}: {:?}",
                        &roles[b - 2..b + 1]
                    );
                }
            }
        }
    }

    #[test]
    fn spread_takes_first_middle_and_last() {
        assert_eq!(spread(75, 3), [0, 37, 74]);
        assert_eq!(spread(75, 1), [37]);
        assert_eq!(spread(2, 3), [0, 1]);
        assert_eq!(spread(1, 3), [0]);
        assert_eq!(spread(0, 3), Vec::<u64>::new());
        assert_eq!(spread(10, 4), [0, 3, 6, 9]);
    }
}
