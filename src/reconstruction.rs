//! Reconstruction error as a glitch detector. The VAE's round trip (encode, decode, PSNR of the
//! decoded frame against the one encoded) is steady within a scene: the model reconstructs
//! what it learned about equally well frame after frame. A frame far below its scene's level is
//! unlike anything the model learned: noise bursts, broken blocks, garbage frames, which still
//! decode without an error.
//!
//! Each scene's baseline is robust: the median of its PSNRs, and the median absolute deviation
//! (MAD) around it, floored at [`MAD_FLOOR_DB`] so a very steady scene does not flag every
//! small wobble. A frame is flagged when its PSNR is below `median - sensitivity * MAD`;
//! consecutive flagged frames (in the order sampled) form one [`Anomaly`]. A scene with fewer
//! than [`MIN_BASELINE_FRAMES`] samples borrows its neighbours' (the scene before, or after for
//! the first): a glitch that a scene detector cut out as a scene of its own is still compared
//! with the picture around it.
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The default `sensitivity`: how many MADs below its scene's median a frame must fall.
pub const DEFAULT_SENSITIVITY: f64 = 6.0;
/// The smallest MAD (dB) a baseline uses: with the default sensitivity a frame must fall at
/// least 3 dB below its scene's median. Clean real footage through taef2 moved by a MAD of
/// 0.1-0.3 dB within a scene; a noise burst drops 10 dB (see the README's measurements).
pub const MAD_FLOOR_DB: f64 = 0.5;
/// Samples a scene needs for a baseline of its own.
pub const MIN_BASELINE_FRAMES: usize = 10;

/// One reconstructed frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FramePsnr {
    /// Output frame (run) or input frame in decode order (check).
    pub frame: u64,
    pub time: f64,
    pub psnr: f64,
}

/// A run of consecutive flagged frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Anomaly {
    /// First and last flagged frame (inclusive).
    pub start_frame: u64,
    pub end_frame: u64,
    pub start_time: f64,
    pub end_time: f64,
    pub min_psnr: f64,
    /// The scene's median minus `min_psnr`.
    pub drop_db: f64,
}

/// A scene's reconstruction figures (the report's `scenes[].reconstruction`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SceneReconstruction {
    pub min_psnr: f64,
    pub median_psnr: f64,
    /// Frames of the scene reconstructed.
    pub frames: u64,
}

/// What was found: anomalies in frame order, every flagged frame, and per scene its figures
/// (`None` for a scene without a reconstructed frame).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    pub anomalies: Vec<Anomaly>,
    pub flagged: Vec<u64>,
    pub scenes: Vec<Option<SceneReconstruction>>,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn sorted(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    v
}

/// (median, MAD) of `values` (not empty).
fn baseline(values: &[f64]) -> (f64, f64) {
    let m = median(&sorted(values.iter().copied()));
    let mad = median(&sorted(values.iter().map(|v| (v - m).abs())));
    (m, mad)
}

/// Finds the anomalies of `samples` (ascending frames) in the scenes starting at
/// `scene_starts` (ascending; the first scene starts at the first frame whatever its start).
pub fn find(samples: &[FramePsnr], scene_starts: &[u64], sensitivity: f64) -> Findings {
    let scenes = scene_starts.len().max(1);
    // Samples of each scene.
    let mut groups: Vec<Vec<FramePsnr>> = vec![Vec::new(); scenes];
    for s in samples {
        let scene = scene_starts
            .partition_point(|&start| start <= s.frame)
            .saturating_sub(1);
        groups[scene].push(*s);
    }
    let mut findings = Findings::default();
    for (i, group) in groups.iter().enumerate() {
        if group.is_empty() {
            findings.scenes.push(None);
            continue;
        }
        let own: Vec<f64> = group.iter().map(|s| s.psnr).collect();
        let sorted_own = sorted(own.iter().copied());
        findings.scenes.push(Some(SceneReconstruction {
            min_psnr: sorted_own[0],
            median_psnr: median(&sorted_own),
            frames: group.len() as u64,
        }));
        let reference = baseline_samples(&groups, i);
        let (m, mad) = baseline(&reference);
        let threshold = m - sensitivity * mad.max(MAD_FLOOR_DB);
        let mut open: Option<Anomaly> = None;
        for s in group {
            if s.psnr < threshold {
                findings.flagged.push(s.frame);
                let a = open.get_or_insert(Anomaly {
                    start_frame: s.frame,
                    end_frame: s.frame,
                    start_time: s.time,
                    end_time: s.time,
                    min_psnr: s.psnr,
                    drop_db: 0.0,
                });
                a.end_frame = s.frame;
                a.end_time = s.time;
                a.min_psnr = a.min_psnr.min(s.psnr);
                a.drop_db = m - a.min_psnr;
            } else if let Some(a) = open.take() {
                findings.anomalies.push(a);
            }
        }
        findings.anomalies.extend(open);
    }
    findings
}

/// The PSNRs scene `i`'s baseline is taken from: its own, joined with the scenes before it
/// (then after it) until there are [`MIN_BASELINE_FRAMES`] or no scene is left.
fn baseline_samples(groups: &[Vec<FramePsnr>], i: usize) -> Vec<f64> {
    let mut values: Vec<f64> = groups[i].iter().map(|s| s.psnr).collect();
    let (mut before, mut after) = (i, i + 1);
    while values.len() < MIN_BASELINE_FRAMES && (before > 0 || after < groups.len()) {
        if before > 0 {
            before -= 1;
            values.extend(groups[before].iter().map(|s| s.psnr));
        } else {
            values.extend(groups[after].iter().map(|s| s.psnr));
            after += 1;
        }
    }
    values
}

/// Writes `reconstruction.safetensors`: `frame_index` [N] i64 and `psnr` [N] f32.
pub fn write(path: &Path, samples: &[FramePsnr]) -> std::io::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let index: Vec<u8> = samples
        .iter()
        .flat_map(|s| (s.frame as i64).to_le_bytes())
        .collect();
    let psnr: Vec<u8> = samples
        .iter()
        .flat_map(|s| (s.psnr as f32).to_le_bytes())
        .collect();
    let n = samples.len();
    let views = vec![
        (
            crate::output::tensors::FRAME_INDEX,
            TensorView::new(Dtype::I64, vec![n], &index).map_err(std::io::Error::other)?,
        ),
        (
            crate::output::tensors::PSNR,
            TensorView::new(Dtype::F32, vec![n], &psnr).map_err(std::io::Error::other)?,
        ),
    ];
    std::fs::write(
        path,
        safetensors::serialize(views, None).map_err(std::io::Error::other)?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples(psnr: &[f64]) -> Vec<FramePsnr> {
        psnr.iter()
            .enumerate()
            .map(|(i, &p)| FramePsnr {
                frame: i as u64,
                time: i as f64 / 25.0,
                psnr: p,
            })
            .collect()
    }

    /// A steady scene with a little wobble.
    fn steady(n: usize, level: f64) -> Vec<f64> {
        (0..n)
            .map(|i| level + 0.1 * ((i * 7 % 5) as f64 - 2.0))
            .collect()
    }

    #[test]
    fn a_burst_is_one_anomaly_with_its_drop() {
        let mut p = steady(50, 30.0);
        for v in &mut p[20..23] {
            *v = 18.5;
        }
        let f = find(&samples(&p), &[0], DEFAULT_SENSITIVITY);
        assert_eq!(f.flagged, vec![20, 21, 22]);
        assert_eq!(f.anomalies.len(), 1);
        let a = &f.anomalies[0];
        assert_eq!((a.start_frame, a.end_frame), (20, 22));
        assert!((a.drop_db - 11.5).abs() < 0.2, "{a:?}");
        assert_eq!(f.scenes[0].unwrap().min_psnr, 18.5);
    }

    #[test]
    fn each_scene_has_its_own_baseline() {
        // A hard scene (24 dB) after an easy one (36 dB): nothing is an anomaly.
        let mut p = steady(30, 36.0);
        p.extend(steady(30, 24.0));
        assert!(find(&samples(&p), &[0, 30], 6.0).flagged.is_empty());
        // As one scene, the hard half is not flagged either (the median sits between); but a
        // burst in the easy scene that stays above the hard one's level is found per scene.
        p[10] = 31.0;
        assert_eq!(find(&samples(&p), &[0, 30], 6.0).flagged, vec![10]);
    }

    #[test]
    fn a_glitch_cut_out_as_its_own_scene_borrows_its_neighbours_baseline() {
        let mut p = steady(40, 30.0);
        for v in &mut p[20..23] {
            *v = 18.0;
        }
        let f = find(&samples(&p), &[0, 20, 23], 6.0);
        assert_eq!(f.flagged, vec![20, 21, 22]);
        assert_eq!(f.scenes.len(), 3);
    }

    #[test]
    fn sensitivity_and_the_mad_floor_set_the_threshold() {
        let mut p = steady(40, 30.0);
        p[5] = 27.2; // 2.8 dB down: above the 3 dB floor at sensitivity 6
        p[6] = 26.8; // 3.2 dB down
        assert_eq!(find(&samples(&p), &[0], 6.0).flagged, vec![6]);
        assert_eq!(find(&samples(&p), &[0], 2.0).flagged, vec![5, 6]);
    }

    proptest! {
        /// Frames are flagged only below their scene's median, every flagged frame lies in an
        /// anomaly, and anomalies do not overlap.
        #[test]
        fn findings_are_consistent(
            p in prop::collection::vec(5.0f64..50.0, 1..200),
            cuts in prop::collection::vec(0u64..200, 0..6),
            sensitivity in 0.5f64..10.0,
        ) {
            let mut starts = vec![0];
            starts.extend(cuts);
            starts.sort();
            starts.dedup();
            let s = samples(&p);
            let f = find(&s, &starts, sensitivity);
            prop_assert_eq!(f.scenes.len(), starts.len());
            let in_anomaly: u64 = f.anomalies.iter().map(|a| a.end_frame - a.start_frame + 1).sum();
            prop_assert_eq!(in_anomaly as usize, f.flagged.len());
            for w in f.anomalies.windows(2) {
                prop_assert!(w[0].end_frame < w[1].start_frame);
            }
            for a in &f.anomalies {
                prop_assert!(a.drop_db >= sensitivity * MAD_FLOOR_DB - 1e-9);
            }
        }
    }
}
