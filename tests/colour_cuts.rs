//! `scenes.colour_cuts`, the second stage after TransNetV2, in `framepipe run`: on a wipe
//! TransNetV2 misses it adds one boundary marked `added_by: colour_cuts` and keeps every one of
//! TransNetV2's, and the run without it writes no trace of it; on a slow fade through black
//! that TransNetV2 misses it adds the boundary after the dark frames; on single-shot footage with
//! camera pans, zooms and shake (`scripts/single_shot_footage.py`, over stills from the shared
//! media, or over lavfi pictures without them, plus the shared media's long shots) it adds
//! none; and the whole pipeline (encode, clips, thumbs) follows an added boundary. Uses the
//! TransNetV2 weights set-up converts, as `tests/shots.rs` does.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// (start frame, transition frames, added by) of every scene after the first.
type Boundary = (u64, Option<(u64, u64)>, Option<String>);

/// Runs the scenes-only TransNetV2 pipeline on `video`, the second stage on or off; returns the
/// report's boundaries and the report's text.
fn boundaries(video: &Path, dir: &Path, colour_cuts: bool) -> (Vec<Boundary>, String) {
    let tag = if colour_cuts { "on" } else { "off" };
    let scenes = if colour_cuts {
        r#"{"detector": "transnetv2", "colour_cuts": true}"#
    } else {
        r#"{"detector": "transnetv2"}"#
    };
    let cfg = pipeline(
        dir,
        &format!("{tag}.json"),
        &format!(r#"{{"scenes": {scenes}, "device": "cpu"}}"#),
    );
    let out = dir.join(tag);
    let o = run_pipeline(&cfg, &out, video);
    assert!(o.status.success(), "{}: {}", video.display(), stderr(&o));
    let stem = video.file_stem().unwrap().to_str().unwrap();
    let report = report(&out, stem);
    let text = std::fs::read_to_string(out.join(stem).join(format!("{stem}.json"))).unwrap();
    let found = report["scenes"].as_array().unwrap()[1..]
        .iter()
        .map(|s| {
            let t = &s["transition_in"];
            (
                s["start_frame"].as_u64().unwrap(),
                t.is_object().then(|| {
                    (
                        t["start_frame"].as_u64().unwrap(),
                        t["end_frame"].as_u64().unwrap(),
                    )
                }),
                t["added_by"].as_str().map(String::from),
            )
        })
        .collect();
    (found, text)
}

/// Two shots, 4 s and 3 s at 25 fps, 640x360, joined by a 1 s `wipeleft` whose frames are
/// 75..101 (xfade's progress window: frame 75 shows only the first shot, frame 100 only the
/// second).
fn wipe_video(path: &Path) {
    let shot = |i: usize, seconds: u32| {
        format!(
            "[{i}:v]scale=640:360,setsar=1,fps=25,trim=duration={seconds},setpts=PTS-STARTPTS,\
             format=yuv420p[s{i}];"
        )
    };
    let graph = format!(
        "{}{}[s0][s1]xfade=transition=wipeleft:duration=1:offset=3[v]",
        shot(0, 4),
        shot(1, 3)
    );
    two_shots(path, &graph);
}

/// Encodes `graph` (inputs `0:v` and `1:v`, output `[v]`) over two shots: real footage when
/// the shared media are there (orangutan, then the carphone sequence), else a mandelbrot zoom
/// and a hue-shifted testsrc2.
fn two_shots(path: &Path, graph: &str) {
    let real = shared_media("orangutan.mp4").zip(shared_media("carphone_pristine.mp4"));
    let mut args: Vec<String> = Vec::new();
    match &real {
        Some((a, b)) => {
            for input in [a, b] {
                args.extend(["-i".into(), input.to_str().unwrap().into()]);
            }
        }
        None => args.extend(
            [
                "-f",
                "lavfi",
                "-i",
                "mandelbrot=size=640x360:rate=25:start_scale=1.2",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=640x360:rate=25,hue=h=140",
            ]
            .map(String::from),
        ),
    }
    args.extend(
        [
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "18",
            path.to_str().unwrap(),
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    ffmpeg(&refs);
}

/// Two shots at 25 fps, 640x360: the first fades out over 3 s (from 2 s on), 1 s of black,
/// the second fades in over 3 s and stays 1.8 s more. Real footage when the shared media are
/// there, else lavfi pictures (see [`wipe_video`]).
fn slow_fade_video(path: &Path) {
    two_shots(
        path,
        "[0:v]scale=640:360,setsar=1,fps=25,trim=duration=5,setpts=PTS-STARTPTS,\
         fade=t=out:st=2:d=3,format=yuv420p[a];\
         color=c=black:s=640x360:r=25:d=1,format=yuv420p[k];\
         [1:v]scale=640:360,setsar=1,fps=25,trim=duration=4.8,setpts=PTS-STARTPTS,\
         fade=t=in:st=0:d=3,format=yuv420p[b];[a][k][b]concat=n=3:v=1:a=0[v]",
    );
}

#[test]
fn adds_the_slow_fade_through_black_transnetv2_misses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let video = d.join("fade.mp4");
    slow_fade_video(&video);
    let (off, _) = boundaries(&video, d, false);
    let (on, _) = boundaries(&video, d, true);
    // The black second is frames 125..150; the dark run reaches a little into both fades.
    let near_black = |b: &Boundary| (100..=175).contains(&b.0);
    assert!(
        !off.iter().any(near_black),
        "TransNetV2 alone misses this fade (else the test shows nothing): {off:?}"
    );
    let added: Vec<&Boundary> = on.iter().filter(|b| !off.contains(b)).collect();
    assert_eq!(added.len(), 1, "one added boundary: {on:?}");
    let (start, transition, by) = added[0];
    assert_eq!(by.as_deref(), Some("colour_cuts"));
    let (from, to) = transition.expect("the dark frames are the transition");
    assert!(
        (100..=125).contains(&from) && (150..=175).contains(&to) && to == *start,
        "the dark run {from}..{to}"
    );
}

#[test]
fn adds_the_wipe_transnetv2_misses_and_keeps_its_cuts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let video = d.join("wipe.mp4");
    wipe_video(&video);
    let (off, off_text) = boundaries(&video, d, false);
    let (on, _) = boundaries(&video, d, true);
    assert!(
        !off_text.contains("added_by") && !off_text.contains("colour_cuts"),
        "the stage off leaves no trace in the report"
    );
    let near_wipe = |b: &Boundary| (70..=106).contains(&b.0);
    assert!(
        !off.iter().any(near_wipe),
        "TransNetV2 alone misses this wipe (else the test shows nothing): {off:?}"
    );
    for b in &off {
        assert!(on.contains(b), "TransNetV2's boundary {b:?} stays: {on:?}");
    }
    let added: Vec<&Boundary> = on.iter().filter(|b| !off.contains(b)).collect();
    assert_eq!(added.len(), 1, "one added boundary: {on:?}");
    let (start, transition, by) = added[0];
    assert!(near_wipe(added[0]), "at the wipe: {start}");
    assert_eq!(by.as_deref(), Some("colour_cuts"));
    let (from, to) = transition.expect("an added cut names its transition");
    assert_eq!(to, *start);
    assert!(
        from >= 70 && from < to,
        "transition {from}..{to} inside the wipe"
    );
}

/// The single-shot footage: generated camera motion over stills (the shared media's frames, or
/// lavfi pictures without them), and the shared media's own single shots.
fn single_shots(dir: &Path) -> Vec<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/single_shot_footage.py");
    let media = shared_dir().map(|s| s.join("media"));
    let out = dir.join("single");
    let o = Command::new(venv_python())
        .arg(script)
        .arg("--out")
        .arg(&out)
        .arg("--media")
        .arg(media.as_deref().unwrap_or(Path::new("/nonexistent")))
        .args(["--seconds", "8", "--per-still", "2"])
        .output()
        .expect("the venv's python runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let list: Vec<Value> =
        serde_json::from_slice(&std::fs::read(out.join("list.json")).unwrap()).unwrap();
    assert_eq!(list.len(), 8, "4 stills, 2 motions each");
    let mut videos: Vec<PathBuf> = list
        .iter()
        .map(|v| PathBuf::from(v["path"].as_str().unwrap()))
        .collect();
    videos.extend(
        ["bears.mp4", "orangutan.mp4", "carphone_pristine.mp4"]
            .iter()
            .filter_map(|f| shared_media(f)),
    );
    videos
}

#[test]
fn adds_no_cut_to_single_shots_with_camera_motion() {
    let dir = tempfile::tempdir().unwrap();
    let mut added = Vec::new();
    for video in single_shots(dir.path()) {
        let run = tempfile::tempdir().unwrap();
        let (on, _) = boundaries(&video, run.path(), true);
        added.extend(
            on.into_iter()
                .filter(|b| b.2.is_some())
                .map(|b| (video.clone(), b)),
        );
    }
    assert!(added.is_empty(), "false cuts: {added:?}");
}

/// The whole pipeline with the stage on (encode, clips cut as the scenes stage decides, thumbs,
/// one-frame queues): it finishes, and no clip reaches into the added boundary's transition.
#[test]
fn clips_follow_the_added_boundary_through_the_whole_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let video = d.join("wipe.mp4");
    wipe_video(&video);
    let cfg = pipeline(
        d,
        "full.json",
        r#"{"scenes": {"detector": "transnetv2", "colour_cuts": true},
            "encode": {"preset": "ultrafast"}, "clips": {"min_seconds": 1.0},
            "runtime": {"queue_frames": 1}, "device": "cpu"}"#,
    );
    let out = d.join("out");
    let o = run_pipeline(&cfg, &out, &video);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = report(&out, "wipe");
    let added: Vec<(u64, u64)> = report["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| {
            let t = &s["transition_in"];
            t["added_by"].as_str().map(|_| {
                (
                    t["start_frame"].as_u64().unwrap(),
                    t["end_frame"].as_u64().unwrap(),
                )
            })
        })
        .collect();
    assert_eq!(added.len(), 1, "{:?}", report["scenes"]);
    let (from, to) = added[0];
    let clips = std::fs::read_to_string(out.join("wipe/clips.jsonl")).unwrap();
    let mut n = 0;
    for line in clips.lines() {
        let clip: Value = serde_json::from_str(line).unwrap();
        let (start, end) = (
            clip["start_frame"].as_u64().unwrap(),
            clip["end_frame"].as_u64().unwrap(),
        );
        assert!(
            end <= from || start >= to,
            "clip {start}..{end} crosses {from}..{to}"
        );
        n += 1;
    }
    assert!(n >= 2, "a clip on each side of the wipe: {clips}");
}
