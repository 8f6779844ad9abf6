//! `media::cut::export_segment` against inputs made with the `ffmpeg` CLI, judged by `ffprobe`
//! alone: frame counts by decoding (`-count_frames`), keyframe flags, durations, and which source
//! frames the clip holds (a 32x32 patch whose brightness is 20 + the source frame number).
mod common;

use std::path::{Path, PathBuf};

use common::*;
use framepipe::media::cut::{export_segment, CutMethod};

/// 8 s at 25 fps with keyframes exactly at 0, 2, 4 and 6 s (default x264, so with B-frames),
/// a 440 Hz AAC track, and the source frame number in the top-left patch's luma.
fn make_input(dir: &Path) -> PathBuf {
    let path = dir.join("in.mp4");
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "color=black:size=32x32:rate=25,geq=lum=N+20:cb=128:cr=128",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-filter_complex",
        "[0:v][1:v]overlay=0:0:shortest=1[v]",
        "-map",
        "[v]",
        "-map",
        "2:a",
        "-t",
        "8",
        "-c:v",
        "libx264",
        "-g",
        "50",
        "-keyint_min",
        "50",
        "-sc_threshold",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
    ];
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

/// What ffprobe says about a clip.
struct Clip {
    probed: Probed,
    /// `key_frame` of every video frame, in presentation order.
    keys: Vec<bool>,
    times: Vec<f64>,
    video_duration: f64,
    /// The source frame each clip frame shows (read from the patch).
    source_frames: Vec<f64>,
}

fn probe_clip(path: &Path) -> Clip {
    let frames = ffprobe(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame,pts_time:stream=duration",
        ],
    );
    let list = frames["frames"].as_array().unwrap();
    let patch = ffprobe(
        Path::new(&format!(
            "movie={},crop=32:32:0:0,signalstats",
            path.display()
        )),
        &[
            "-f",
            "lavfi",
            "-show_entries",
            "frame_tags=lavfi.signalstats.YAVG",
        ],
    );
    Clip {
        probed: probe_output(path),
        keys: list.iter().map(|f| f["key_frame"] == 1).collect(),
        times: list
            .iter()
            .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
            .collect(),
        video_duration: frames["streams"][0]["duration"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap(),
        source_frames: patch["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                let y: f64 = f["tags"]["lavfi.signalstats.YAVG"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                y - 20.0
            })
            .collect(),
    }
}

/// The clip holds exactly source frames `first..first + count`, shown from 0 s at 25 fps.
fn assert_frames(clip: &Clip, first: u32, count: usize) {
    assert_eq!(clip.probed.frames, count as u64, "decoded frame count");
    assert_eq!(clip.keys.len(), count);
    assert!(clip.keys[0], "the first frame must be a keyframe");
    for (i, t) in clip.times.iter().enumerate() {
        assert!(
            (t - i as f64 / 25.0).abs() < 0.002,
            "frame {i} shown at {t} s, not {} s",
            i as f64 / 25.0
        );
    }
    assert_eq!(clip.source_frames.len(), count);
    for (i, n) in clip.source_frames.iter().enumerate() {
        let want = f64::from(first) + i as f64;
        assert!(
            (n - want).abs() < 1.5,
            "clip frame {i} shows source frame {n:.1}, not {want}"
        );
    }
    let seconds = count as f64 / 25.0;
    assert!(
        (clip.video_duration - seconds).abs() < 0.01,
        "video lasts {} s, not {seconds} s",
        clip.video_duration
    );
    // Audio comes in whole AAC packets of 23 ms, so the file may be a packet longer.
    assert!(
        (clip.probed.duration - seconds).abs() < 0.06,
        "file lasts {} s, not about {seconds} s",
        clip.probed.duration
    );
    assert_eq!(clip.probed.codec, "h264");
    assert_eq!((clip.probed.width, clip.probed.height), (320, 240));
    assert_eq!(clip.probed.frame_rate, "25/1");
    assert_eq!(clip.probed.audio_codec.as_deref(), Some("aac"));
}

/// Nothing at all was left in `dir` besides the input: no clip, no partial file.
fn assert_nothing_written(dir: &Path, input: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != input)
        .collect();
    assert!(left.is_empty(), "left behind after a failure: {left:?}");
}

#[test]
fn a_range_starting_on_a_keyframe_is_stream_copied() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let out = dir.path().join("clip.mp4");
    let result = export_segment(&input, 2.0, 4.0, &out).unwrap();
    assert_eq!(result.method, CutMethod::StreamCopy);
    assert_eq!(result.frames, 50);
    assert!((result.duration - 2.0).abs() < 1e-6, "{result:?}");
    assert!(!dir.path().join("clip.mp4.partial").exists());
    let clip = probe_clip(&out);
    assert_frames(&clip, 50, 50);
    // Reports carry the method in snake_case.
    assert_eq!(
        serde_json::to_value(result.method).unwrap(),
        serde_json::json!("stream_copy")
    );
}

#[test]
fn a_range_starting_between_keyframes_is_re_encoded() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let out = dir.path().join("clip.mp4");
    let result = export_segment(&input, 2.6, 3.6, &out).unwrap();
    assert_eq!(result.method, CutMethod::ReEncoded);
    assert_eq!(result.frames, 25);
    assert!((result.duration - 1.0).abs() < 1e-6, "{result:?}");
    let clip = probe_clip(&out);
    assert_frames(&clip, 65, 25);
    assert_eq!(clip.probed.pix_fmt, "yuv420p");
}

#[test]
fn an_end_between_keyframes_still_gives_exactly_the_frames_of_the_range() {
    // From the keyframe at 2 s to 3.1 s: B-frames before 3.1 s may refer to a frame shown after
    // it, which a stream copy could not include; whichever method is taken, the frames are exact.
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let out = dir.path().join("clip.mp4");
    let result = export_segment(&input, 2.0, 3.1, &out).unwrap();
    assert_eq!(result.frames, 28, "{result:?}");
    assert_frames(&probe_clip(&out), 50, 28);
}

#[test]
fn times_count_from_the_video_streams_first_frame() {
    // Container and video start at 10 s (the audio a little earlier, AAC priming).
    let dir = tempfile::tempdir().unwrap();
    let made = make_input(dir.path());
    let input = dir.path().join("offset.mp4");
    ffmpeg(&[
        "-i",
        made.to_str().unwrap(),
        "-c",
        "copy",
        "-output_ts_offset",
        "10",
        input.to_str().unwrap(),
    ]);
    let start = ffprobe(&input, &["-select_streams", "v:0", "-show_entries", "stream=start_time"]);
    assert_eq!(start["streams"][0]["start_time"], "10.000000");
    let out = dir.path().join("clip.mp4");
    let result = export_segment(&input, 2.0, 4.0, &out).unwrap();
    assert_eq!(result.method, CutMethod::StreamCopy);
    assert_frames(&probe_clip(&out), 50, 50);
    let out = dir.path().join("clip2.mp4");
    let result = export_segment(&input, 2.6, 3.6, &out).unwrap();
    assert_eq!(result.method, CutMethod::ReEncoded);
    assert_frames(&probe_clip(&out), 65, 25);
}

#[test]
fn errors_name_the_file_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let out = dir.path().join("clip.mp4");

    let missing = dir.path().join("missing.mp4");
    let err = export_segment(&missing, 0.0, 1.0, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.mp4") && err.contains("no such file"), "{err}");

    for (start, end) in [(3.0, 3.0), (3.0, 2.0), (f64::NAN, 1.0)] {
        let err = export_segment(&input, start, end, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("in.mp4") && err.contains("empty time range"), "{err}");
    }

    let err = export_segment(&input, 20.0, 21.0, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("in.mp4") && err.contains("no video frames"), "{err}");
    assert_nothing_written(dir.path(), &input);

    let audio_only = dir.path().join("audio.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:a",
        "aac",
        audio_only.to_str().unwrap(),
    ]);
    let err = export_segment(&audio_only, 0.0, 1.0, &out)
        .unwrap_err()
        .to_string();
    assert!(err.contains("audio.m4a") && err.contains("no video stream"), "{err}");
    std::fs::remove_file(&audio_only).unwrap();
    assert_nothing_written(dir.path(), &input);
}
