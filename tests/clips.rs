//! `clips`: every scene becomes training clips. Judged by `ffprobe`/`ffmpeg`, never by reading
//! back with our own code: each clip file's decoded frame count, its first packet a keyframe, its
//! audio as long as its video (within a frame), its pixels the same frames of the whole
//! normalized video (per-frame MD5s of the decoded pictures); clips inside their scene (never
//! across a cut, never over a transition), within [min, max] seconds, split and truncated as
//! configured; motion scores that put a static slide clearly below moving footage, from motion
//! vectors or (intra-only input) frame differences; bad settings refused naming the key.
mod common;

use std::path::Path;

use common::*;
use framepipe::output::clip_record::{ClipRecord, MotionSource};
use tempfile::tempdir;

/// Hard cuts at 150, 250 and 310 (25 fps, 635 frames): moving testsrc2, a static SMPTE-bars
/// slide, a zooming mandelbrot, then a long moving testsrc scene; AAC audio.
const SCENES: [(&str, u32); 4] = [
    ("testsrc2", 150),
    ("smptebars", 100),
    ("mandelbrot", 60),
    ("testsrc", 325),
];

fn clips_of(out: &Path, stem: &str) -> Vec<ClipRecord> {
    let text = std::fs::read_to_string(out.join(stem).join("clips.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn config(dir: &Path, name: &str, clips: &str, encode: bool) -> std::path::PathBuf {
    let encode = if encode {
        r#", "encode": {"preset": "veryfast", "crf": 23, "audio": "copy"}"#
    } else {
        ""
    };
    pipeline(
        dir,
        name,
        &format!(
            r#"{{"normalize": {{"resolution": "720p"}}, "scenes": {{"detector": "content"}}, "clips": {clips}{encode}, "device": "cpu"}}"#
        ),
    )
}

fn run_ok(cfg: &Path, out: &Path, input: &Path) {
    let o = run_pipeline(cfg, out, input);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Per-frame MD5s of the decoded pictures (`ffmpeg -f framemd5`).
fn frame_md5s(path: &Path) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-an", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap().trim().to_string())
        .collect()
}

/// The clip windows the rules give for scenes `bounds` (frames), computed here independently.
fn expected_windows(
    bounds: &[(u64, u64)],
    min: u64,
    max: u64,
    trim: u64,
    split: bool,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(s, e) in bounds {
        let (a, b) = (s + trim, e - trim);
        let mut from = a;
        while from < b {
            let to = (from + max).min(b);
            if to - from >= min {
                out.push((from, to));
            }
            if !split {
                break;
            }
            from = to;
        }
    }
    out
}

#[test]
fn clip_files_are_exact_cuts_of_the_one_encode() {
    let d = tempdir().unwrap();
    let input = d.path().join("scenes.mp4");
    let cuts = make_cut_clip(&input, "320x180", &SCENES, true, &[]);
    assert_eq!(cuts, [150, 250, 310]);
    let out = d.path().join("out");
    let clips = r#"{"min_seconds": 2.0, "max_seconds": 5.0, "trim_seconds": 0.2}"#;
    run_ok(&config(d.path(), "split.json", clips, true), &out, &input);
    let summary = report(&out, "scenes");
    let scenes: Vec<(u64, u64)> = summary["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start_frame"].as_u64().unwrap(),
                s["end_frame"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(scenes, [(0, 150), (150, 250), (250, 310), (310, 635)]);
    let records = clips_of(&out, "scenes");
    let windows: Vec<(u64, u64)> = records
        .iter()
        .map(|c| (c.start_frame, c.end_frame))
        .collect();
    // 25 fps: 2 s = 50 frames, 5 s = 125, 0.2 s = 5; the long scene split into three.
    assert_eq!(windows, expected_windows(&scenes, 50, 125, 5, true));
    assert_eq!(windows.len(), 6);
    assert_eq!(summary["clips"]["count"], 6);
    let whole = out.join("scenes/scenes.mp4");
    let whole_md5 = frame_md5s(&whole);
    for (i, c) in records.iter().enumerate() {
        assert_eq!(c.id, format!("scenes_{i:04}"));
        assert_eq!(c.frames, c.end_frame - c.start_frame);
        let seconds = c.end_time - c.start_time;
        assert!((2.0 - 0.04..=5.0 + 0.04).contains(&seconds), "{c:?}");
        let (s, e) = scenes[c.scene];
        assert!(
            c.start_frame >= s + 5 && c.end_frame + 5 <= e,
            "{c:?} crosses its scene"
        );
        let file = out
            .join("scenes")
            .join(c.file.as_ref().expect("encoded clips have files"));
        let probed = probe_output(&file);
        assert_eq!(probed.frames, c.frames, "{file:?}: decoded frame count");
        assert_eq!((probed.width, probed.height), (1280, 720));
        // The first packet is a keyframe.
        let packets = ffprobe(
            &file,
            &[
                "-select_streams",
                "v:0",
                "-show_entries",
                "packet=flags",
                "-read_intervals",
                "%+#1",
            ],
        );
        let flags = packets["packets"][0]["flags"].as_str().unwrap();
        assert!(
            flags.starts_with('K'),
            "{file:?}: first packet flags {flags}"
        );
        // Audio as long as the video, within one frame.
        let streams = ffprobe(&file, &["-show_entries", "stream=codec_type,duration"]);
        let duration = |kind: &str| -> f64 {
            streams["streams"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["codec_type"] == kind)
                .unwrap_or_else(|| panic!("{file:?} has no {kind}"))["duration"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (v, a) = (duration("video"), duration("audio"));
        assert!(
            (v - c.frames as f64 / 25.0).abs() < 1e-3,
            "{file:?}: video {v} s"
        );
        assert!(
            (a - v).abs() <= 0.04,
            "{file:?}: audio {a} s vs video {v} s"
        );
        // The same pictures as the whole video's frames.
        let clip_md5 = frame_md5s(&file);
        assert_eq!(
            clip_md5,
            whole_md5[c.start_frame as usize..c.end_frame as usize],
            "{file:?}: pixels differ from the whole video's frames {}..{}",
            c.start_frame,
            c.end_frame
        );
        assert_eq!(c.motion_source, MotionSource::MotionVectors);
    }
    // The static slide's clip (scene 1) moves far less than every moving scene's.
    let slide = records.iter().find(|c| c.scene == 1).unwrap().motion;
    let moving = records
        .iter()
        .filter(|c| c.scene != 1)
        .map(|c| c.motion)
        .fold(f64::INFINITY, f64::min);
    assert!(slide * 5.0 < moving, "static {slide} vs moving {moving}");
    let files: Vec<_> = std::fs::read_dir(out.join("scenes/clips"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(files.len(), 6, "{files:?}");

    // Without encode: the same clips, listed without files.
    let listed = d.path().join("listed");
    run_ok(
        &config(d.path(), "list.json", clips, false),
        &listed,
        &input,
    );
    let plain = clips_of(&listed, "scenes");
    assert_eq!(
        plain
            .iter()
            .map(|c| (c.id.clone(), c.start_frame, c.end_frame))
            .collect::<Vec<_>>(),
        records
            .iter()
            .map(|c| (c.id.clone(), c.start_frame, c.end_frame))
            .collect::<Vec<_>>()
    );
    assert!(plain.iter().all(|c| c.file.is_none()));
    for (p, r) in plain.iter().zip(&records) {
        assert!(
            (p.motion - r.motion).abs() < 1e-9,
            "motion differs: {p:?} {r:?}"
        );
    }

    // min_motion between the slide and the moving clips drops exactly the slide; truncate keeps
    // the long scene's first window only; whole_video false leaves only the clips.
    let threshold = (slide + moving) / 2.0;
    let strict = d.path().join("strict");
    let clips = format!(
        r#"{{"min_seconds": 2.0, "max_seconds": 5.0, "trim_seconds": 0.2, "long_scenes": "truncate", "min_motion": {threshold}, "whole_video": false}}"#
    );
    run_ok(
        &config(d.path(), "strict.json", &clips, true),
        &strict,
        &input,
    );
    let all = clips_of(&strict, "scenes");
    let (kept, dropped): (Vec<ClipRecord>, Vec<ClipRecord>) =
        all.iter().cloned().partition(|c| c.dropped.is_empty());
    let mut expected = expected_windows(&scenes, 50, 125, 5, false);
    let slide_windows: Vec<(u64, u64)> = expected
        .iter()
        .copied()
        .filter(|&(a, _)| (150..250).contains(&a))
        .collect();
    expected.retain(|&(a, _)| !(150..250).contains(&a));
    assert_eq!(
        kept.iter()
            .map(|c| (c.start_frame, c.end_frame))
            .collect::<Vec<_>>(),
        expected
    );
    assert!(kept.iter().all(|c| c.motion >= threshold));
    // The slide's clip stays listed, with its reason and without a file.
    assert_eq!(
        dropped
            .iter()
            .map(|c| (c.start_frame, c.end_frame))
            .collect::<Vec<_>>(),
        slide_windows
    );
    for c in &dropped {
        assert!(c.file.is_none(), "{c:?}");
        assert_eq!(c.dropped.len(), 1, "{c:?}");
        let reason: Vec<&str> = c.dropped[0].split(' ').collect();
        let value: f64 = reason[1].parse().unwrap();
        assert!(
            reason[0] == "motion"
                && (value - c.motion).abs() <= 1e-3 * c.motion
                && reason[2] == "<"
                && reason[3].parse::<f64>().unwrap() == threshold,
            "{c:?}"
        );
    }
    assert_eq!(
        all.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        (0..all.len())
            .map(|i| format!("scenes_{i:04}"))
            .collect::<Vec<_>>(),
        "ids count every listed clip"
    );
    let r = report(&strict, "scenes");
    assert!(
        r["output"]["video"].is_null(),
        "whole_video false: no whole video"
    );
    assert!(!strict.join("scenes/scenes.mp4").exists());
    assert!((r["clips"]["dropped"]["low_motion"].as_f64().unwrap() - 90.0 / 25.0).abs() < 1e-9);
    assert_eq!(r["clips"]["filtered"], dropped.len());
    assert_eq!(r["clips"]["filtered_by"]["motion"], dropped.len());
    assert_eq!(r["clips"]["count"], kept.len());
    assert!(r["clips"]["dropped"]["truncated"].as_f64().unwrap() > 0.0);
    let files = std::fs::read_dir(strict.join("scenes/clips"))
        .unwrap()
        .count();
    assert_eq!(files, kept.len());
}

/// An intra-only codec exports no motion vectors: the frame-difference score says so, and still
/// puts the static slide below the moving scene.
#[test]
fn intra_only_input_scores_by_frame_difference() {
    let d = tempdir().unwrap();
    let input = d.path().join("intra.mkv");
    make_cut_clip(
        &input,
        "320x180",
        &[("testsrc2", 75), ("smptebars", 75)],
        false,
        &["-c:v", "mjpeg", "-q:v", "3", "-pix_fmt", "yuvj420p"],
    );
    let out = d.path().join("out");
    let cfg = config(
        d.path(),
        "intra.json",
        r#"{"min_seconds": 1.0, "max_seconds": 10.0, "trim_seconds": 0.2}"#,
        false,
    );
    run_ok(&cfg, &out, &input);
    let clips = clips_of(&out, "intra");
    assert_eq!(clips.len(), 2, "{clips:?}");
    assert!(clips
        .iter()
        .all(|c| c.motion_source == MotionSource::FrameDifference));
    assert!(clips[1].motion * 5.0 < clips[0].motion, "{clips:?}");
}

/// With TransNetV2 a dissolve's frames end the scene before; no clip holds any of them.
#[test]
fn clips_leave_transitions_out() {
    if !framepipe::config::default_transnet_dir()
        .join("model.safetensors")
        .exists()
    {
        eprintln!("skipped: no TransNetV2 weights (scripts/setup.sh converts them)");
        return;
    }
    let d = tempdir().unwrap();
    let input = d.path().join("dissolve.mp4");
    transitions_clip(&input);
    let cfg = pipeline(
        d.path(),
        "shots.json",
        r#"{"normalize": {"resolution": "720p"}, "scenes": {"detector": "transnetv2"},
            "clips": {"min_seconds": 1.0, "max_seconds": 10.0, "trim_seconds": 0.0},
            "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    );
    let out = d.path().join("out");
    run_ok(&cfg, &out, &input);
    let typed = typed_report(&out, "dissolve");
    let transitions: Vec<(u64, u64)> = typed
        .scenes
        .iter()
        .filter_map(|s| s.transition_in.map(|t| (t.start_frame, t.end_frame)))
        .collect();
    assert!(
        !transitions.is_empty(),
        "TransNetV2 finds the dissolve: {:?}",
        typed.scenes
    );
    let clips = clips_of(&out, "dissolve");
    assert!(clips.len() >= 2, "{clips:?}");
    for c in &clips {
        for &(a, b) in &transitions {
            assert!(
                c.end_frame <= a || c.start_frame >= b,
                "{c:?} holds transition {a}..{b}"
            );
        }
        let file = out.join("dissolve").join(c.file.as_ref().unwrap());
        assert_eq!(probe_output(&file).frames, c.frames, "{file:?}");
    }
}

#[test]
fn bad_clip_settings_name_the_key() {
    let d = tempdir().unwrap();
    let input = d.path().join("tiny.mp4");
    tiny_clip(&input);
    for (clips, scenes, expected) in [
        (
            r#"{"min_seconds": 5, "max_seconds": 3}"#,
            true,
            "clips.max_seconds = 3",
        ),
        (r#"{"trim_seconds": -1}"#, true, "clips.trim_seconds = -1"),
        ("{}", false, "clips needs the scenes section"),
        (r#"{"long_scenes": "loop"}"#, true, "loop"),
    ] {
        let scenes = if scenes { r#""scenes": {}, "# } else { "" };
        let cfg = pipeline(
            d.path(),
            "bad.json",
            &format!(r#"{{{scenes}"clips": {clips}, "device": "cpu"}}"#),
        );
        let out = d.path().join("out");
        let o = run_pipeline(&cfg, &out, &input);
        assert_eq!(o.status.code(), Some(2), "{clips}: {}", stderr(&o));
        assert!(stderr(&o).contains(expected), "{clips}: {}", stderr(&o));
        assert_no_output(&out, "tiny");
    }
}

/// With CLIP and the VAE: each clip's embedding is the normalized mean of the stored embedding
/// rows of its frames (read from `embeddings.safetensors`), its tags are present, and its latent
/// frames are the shard rows inside it. With fps resampling (25 → 30 fps) the clip files still
/// hold exactly their frames.
#[test]
fn clips_carry_their_embeddings_latents_and_resampled_frames() {
    let d = tempdir().unwrap();
    let input = d.path().join("tagged.mp4");
    make_cut_clip(
        &input,
        "320x180",
        &[("testsrc2", 75), ("smptebars", 75)],
        false,
        &[],
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures");
    let cfg = pipeline(
        d.path(),
        "tagged.json",
        &format!(
            r#"{{"normalize": {{"resolution": "720p", "fps": 30}}, "scenes": {{"detector": "content"}},
                "clips": {{"min_seconds": 1.0, "max_seconds": 10.0, "trim_seconds": 0.2}},
                "clip": {{"model": {:?}, "labels": ["a cat", "color bars"], "sample": {{"every_n_frames": 6}}}},
                "vae": {{"model": {:?}, "every_n_frames": 10, "frames_per_shard": 16, "dtype": "f32"}},
                "encode": {{"preset": "veryfast"}}, "device": "cpu"}}"#,
            root.join("clip-tiny").display().to_string(),
            root.join("vae-tiny-tiny").display().to_string()
        ),
    );
    let out = d.path().join("out");
    run_ok(&cfg, &out, &input);
    let dir = out.join("tagged");
    let clips = clips_of(&out, "tagged");
    assert_eq!(clips.len(), 2, "{clips:?}");
    let rows = read_tensor(&dir.join("embeddings.safetensors"), "image_embeds").unwrap();
    let row_frames = frame_index(&dir.join("embeddings.safetensors"));
    let dim = rows.shape[1];
    let mut shard_frames = Vec::new();
    for f in std::fs::read_dir(dir.join("latents")).unwrap() {
        shard_frames.extend(frame_index(&f.unwrap().path()));
    }
    for c in &clips {
        // 30 fps: 6 frames trimmed at each end.
        assert_eq!(c.frames, c.end_frame - c.start_frame);
        let inside: Vec<usize> = row_frames
            .iter()
            .enumerate()
            .filter(|(_, &f)| (c.start_frame as i64..c.end_frame as i64).contains(&f))
            .map(|(i, _)| i)
            .collect();
        assert!(!inside.is_empty());
        let mut mean = vec![0f32; dim];
        for &i in &inside {
            for (m, v) in mean.iter_mut().zip(&rows.values[i * dim..(i + 1) * dim]) {
                *m += v;
            }
        }
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        let embedding = c
            .embedding
            .as_ref()
            .expect("a CLIP run gives clips embeddings");
        assert_eq!(embedding.len(), dim);
        for (a, b) in embedding.iter().zip(&mean) {
            // The stored rows are f16.
            assert!((a - b / norm).abs() < 2e-3, "{a} vs {}", b / norm);
        }
        assert!(!c.tags.as_ref().unwrap().is_empty());
        let latents = c.latents.as_ref().expect("a VAE run gives clips latents");
        let expected = shard_frames
            .iter()
            .filter(|&&f| (c.start_frame as i64..c.end_frame as i64).contains(&f))
            .count();
        assert_eq!(latents.frames as usize, expected);
        assert!(!latents.files.is_empty());
        let file = dir.join(c.file.as_ref().unwrap());
        assert_eq!(probe_output(&file).frames, c.frames, "{file:?}");
    }
    // The second scene starts at 3 s: output frame 90 at 30 fps, its clip 6 frames later.
    assert_eq!(clips[1].start_frame, 96);
}

/// What `run` writes is what `export` ships: a real run's clips exported to WebDataset and
/// Parquet, read back by Python's `tarfile` + numpy and by `pyarrow`
/// (tests/fixtures/read_export.py): one sample per clip with its MP4's bytes, its record and its
/// embedding; one Parquet row per clip with the same id, frames and motion.
#[test]
fn a_runs_clips_export_to_webdataset_and_parquet() {
    use sha2::{Digest, Sha256};
    let d = tempdir().unwrap();
    let input = d.path().join("shipped.mp4");
    make_cut_clip(
        &input,
        "320x180",
        &[("testsrc2", 75), ("smptebars", 60), ("testsrc", 70)],
        true,
        &[],
    );
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    let cfg = pipeline(
        d.path(),
        "ship.json",
        &format!(
            r#"{{"normalize": {{"resolution": "720p"}}, "scenes": {{"detector": "content"}},
                "clips": {{"min_seconds": 1.0, "max_seconds": 10.0, "trim_seconds": 0.2}},
                "clip": {{"model": {:?}, "labels": ["a cat", "color bars"], "sample": {{"every_n_frames": 8}}}},
                "encode": {{"preset": "ultrafast"}}, "device": "cpu"}}"#,
            model.display().to_string()
        ),
    );
    let out = d.path().join("out");
    run_ok(&cfg, &out, &input);
    let clips = clips_of(&out, "shipped");
    assert_eq!(clips.len(), 3, "{clips:?}");
    for format in ["webdataset", "parquet"] {
        let dir = d.path().join(format);
        let o = framepipe()
            .args(["-q", "export"])
            .arg(&out)
            .arg("-o")
            .arg(&dir)
            .args(["--format", format])
            .output()
            .unwrap();
        assert!(o.status.success(), "{format}: {}", stderr(&o));
        let got: serde_json::Value = read_export(format, &dir);
        if format == "webdataset" {
            let samples = got["samples"].as_object().unwrap();
            assert_eq!(samples.len(), clips.len());
            for c in &clips {
                let s = &samples[&c.id];
                let file = out.join("shipped").join(c.file.as_ref().unwrap());
                let sha: String = Sha256::digest(std::fs::read(&file).unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                assert_eq!(s["mp4_sha256"], sha.as_str(), "{}", c.id);
                assert_eq!(s["json"]["frames"], c.frames);
                assert_eq!(s["json"]["start_frame"], c.start_frame);
                let npy = s["npy"]["values"].as_array().unwrap();
                let embedding = c.embedding.as_ref().unwrap();
                assert_eq!(npy.len(), embedding.len());
                for (a, b) in npy.iter().zip(embedding) {
                    assert!((a.as_f64().unwrap() - f64::from(*b)).abs() < 1e-6);
                }
            }
        } else {
            let rows = got["rows"].as_array().unwrap();
            assert_eq!(rows.len(), clips.len());
            for (row, c) in rows.iter().zip(&clips) {
                assert_eq!(row["id"], c.id.as_str());
                assert_eq!(row["frames"], c.frames);
                assert!((row["motion"].as_f64().unwrap() - c.motion).abs() < 1e-12);
                assert_eq!(row["motion_source"], "motion_vectors");
            }
        }
    }
}

/// The scene stage's news reaches its listeners (the encoder cutting clip files and writing
/// chapters, the thumbs stage) over bounded channels. With one-frame queues (8 events per
/// listener) every channel is full most of the time: the run must still end (under a watchdog)
/// with the same scenes, clips, chapters and thumbnails as with the default queues.
#[test]
fn one_frame_queues_end_with_the_same_outputs() {
    use common::watchdog::run_timed;
    let d = tempdir().unwrap();
    let input = d.path().join("scenes.mp4");
    make_cut_clip(&input, "320x180", &SCENES, true, &[]);
    let clips = r#"{"min_seconds": 1.0, "max_seconds": 3.0, "trim_seconds": 0.2}"#;
    let outputs = [("default", 8), ("tight", 1)].map(|(name, queue)| {
        let cfg = pipeline(
            d.path(),
            &format!("{name}.json"),
            &format!(
                r#"{{"normalize": {{"resolution": "720p"}}, "scenes": {{"detector": "content", "thumbnails": true}}, "clips": {clips}, "encode": {{"preset": "ultrafast", "audio": "copy"}}, "runtime": {{"queue_frames": {queue}}}, "device": "cpu"}}"#
            ),
        );
        let out = d.path().join(name);
        let mut cmd = framepipe();
        cmd.args(["run", "--pipeline"]).arg(&cfg).arg("-o").arg(&out).arg(&input);
        let ran = run_timed(cmd, d.path(), name, std::time::Duration::from_secs(240));
        let status = ran.status.unwrap_or_else(|| panic!("{name}: still running after 240 s"));
        assert!(status.success(), "{name}: {}", ran.stderr);
        out
    });
    let facts = |out: &Path| {
        let r = report(out, "scenes");
        let windows: Vec<(u64, u64)> = clips_of(out, "scenes")
            .iter()
            .map(|c| (c.start_frame, c.end_frame))
            .collect();
        let chapters = ffprobe(&out.join("scenes/scenes.mp4"), &["-show_chapters"])["chapters"]
            .as_array()
            .unwrap()
            .len();
        let mut thumbs: Vec<String> = std::fs::read_dir(out.join("scenes/thumbs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        thumbs.sort();
        (r["scenes"].clone(), windows, chapters, thumbs)
    };
    let (default, tight) = (facts(&outputs[0]), facts(&outputs[1]));
    assert_eq!(default.2, 4, "one chapter per scene");
    assert!(!default.1.is_empty() && !default.3.is_empty());
    assert_eq!(default, tight);
}

/// Decodes `input` with the ffmpeg CLI to 160x90 grey frames.
fn grey_frames(input: &Path) -> Vec<Vec<u8>> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(input)
        .args(["-vf", "scale=160:90,format=gray", "-f", "rawvideo", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.chunks(160 * 90).map(<[u8]>::to_vec).collect()
}

/// The test's own blank and frozen judgement of each frame (black: 98% of pixels at luma 38 or
/// less; flat: standard deviation 3 or less; frozen: mean absolute difference from the frame
/// before 0.5 or less, and not blank).
fn judged(frames: &[Vec<u8>]) -> Vec<(bool, bool)> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let n = f.len() as f64;
        let dark = f.iter().filter(|&&v| v <= 38).count() as f64 >= 0.98 * n;
        let mean = f.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let sd = (f
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
        let blank = dark || sd <= 3.0;
        let same = i > 0
            && f.iter()
                .zip(&frames[i - 1])
                .map(|(&a, &b)| f64::from(a.abs_diff(b)))
                .sum::<f64>()
                / n
                <= 0.5;
        out.push((blank, same && !blank));
    }
    out
}

/// Blank and frozen clips (a black stretch, a flat colour card, a picture frozen by
/// `tpad=stop_mode=clone`) are scored, listed with their reasons and left without files; moving
/// clips are kept. The expected scores come from the test's own judgement of ffmpeg's frames.
#[test]
fn blank_and_frozen_clips_are_dropped_with_reasons() {
    let d = tempdir().unwrap();
    let input = d.path().join("curate.mp4");
    let filter = "[0:v]trim=end_frame=100,setpts=PTS-STARTPTS[a];\
                  [1:v]trim=end_frame=75,setpts=PTS-STARTPTS[b];\
                  [2:v]trim=end_frame=75,setpts=PTS-STARTPTS[c];\
                  [3:v]trim=end_frame=75,setpts=PTS-STARTPTS[e];\
                  [4:v]trim=end_frame=10,setpts=PTS-STARTPTS,tpad=stop_mode=clone:stop=65[f];\
                  [a][b][c][e][f]concat=n=5:v=1:a=0[v]";
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "color=c=black:size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "mandelbrot=size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "color=c=0x3366aa:size=320x180:rate=25",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x180:rate=25,hue=h=90",
        "-filter_complex",
        filter,
        "-map",
        "[v]",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        input.to_str().unwrap(),
    ]);
    let out = d.path().join("out");
    let clips = r#"{"min_seconds": 1.0, "trim_seconds": 0.2, "filters": {"max_blank": 0.5, "max_frozen": 0.8}}"#;
    run_ok(&config(d.path(), "curate.json", clips, true), &out, &input);
    let records = clips_of(&out, "curate");
    let frames = judged(&grey_frames(&input));
    assert_eq!(frames.len(), 400);
    let mut expected_reasons = Vec::new();
    for c in &records {
        let range = &frames[c.start_frame as usize..c.end_frame as usize];
        let fraction = |pick: fn(&(bool, bool)) -> bool| {
            range.iter().filter(|f| pick(f)).count() as f64 / range.len() as f64
        };
        let (blank, frozen) = (fraction(|f| f.0), fraction(|f| f.1));
        assert!(
            (c.blank.unwrap() - blank).abs() <= 0.05 && (c.frozen.unwrap() - frozen).abs() <= 0.05,
            "{}: ours {:?}/{:?}, the test's {blank}/{frozen}",
            c.id,
            c.blank,
            c.frozen
        );
        let mut reasons = Vec::new();
        if blank > 0.5 {
            reasons.push("blank");
        }
        if frozen > 0.8 {
            reasons.push("frozen");
        }
        let got: Vec<&str> = c
            .dropped
            .iter()
            .map(|r| r.split(' ').next().unwrap())
            .collect();
        assert_eq!(got, reasons, "{c:?}");
        assert_eq!(c.file.is_some(), reasons.is_empty(), "{c:?}");
        if let Some(file) = &c.file {
            assert!(out.join("curate").join(file).is_file());
        }
        expected_reasons.push(reasons);
    }
    // One clip per scene: moving, black, moving, flat card, frozen.
    assert_eq!(
        expected_reasons,
        [vec![], vec!["blank"], vec![], vec!["blank"], vec!["frozen"]],
        "{records:?}"
    );
    let files = std::fs::read_dir(out.join("curate/clips")).unwrap().count();
    assert_eq!(files, 2, "only the kept clips have files");
    let r = report(&out, "curate");
    assert_eq!(r["clips"]["count"], 2);
    assert_eq!(r["clips"]["filtered"], 3);
    assert_eq!(r["clips"]["filtered_by"]["blank"], 2);
    assert_eq!(r["clips"]["filtered_by"]["frozen"], 1);
}
