//! `media::cut::export_segment` against inputs made with the `ffmpeg` CLI, judged by `ffprobe`
//! alone: frame counts by decoding (`-count_frames`), keyframe flags, frame times, durations, and
//! the PSNR of every clip frame against the source frame it must be (through a lavfi graph).
mod common;

use std::path::{Path, PathBuf};

use common::*;
use framepipe::media::cut::{export_segment, CutMethod};

/// 8 s at 25 fps with keyframes exactly at 0, 2, 4 and 6 s (default x264, so with B-frames that
/// refer to later frames) and a 440 Hz AAC track.
fn make_input(dir: &Path) -> PathBuf {
    let path = dir.join("in.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
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
        path.to_str().unwrap(),
    ]);
    path
}

/// PSNR (dB, `inf` when identical) of each frame of `clip` against source frames
/// `first..first + count` of `source`, pair by pair.
fn psnr_against_source(clip: &Path, source: &Path, first: u32, count: u32) -> Vec<f64> {
    let graph = format!(
        "movie={},setpts=PTS-STARTPTS[clip];\
         movie={},trim=start_frame={first}:end_frame={},setpts=PTS-STARTPTS[source];\
         [clip][source]psnr",
        clip.display(),
        source.display(),
        first + count
    );
    let v = ffprobe(
        Path::new(&graph),
        &[
            "-f",
            "lavfi",
            "-show_entries",
            "frame_tags=lavfi.psnr.psnr_avg",
        ],
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            f["tags"]["lavfi.psnr.psnr_avg"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// `clip` holds exactly source frames `first..first + count` (bit-exact when `copied`, else a
/// faithful encoding: a wrong or damaged frame of this source scores about 22 dB), shown from
/// 0 s at 25 fps, starting on a keyframe, with the audio of that span.
fn assert_clip(clip: &Path, source: &Path, first: u32, count: u32, copied: bool) {
    let probed = probe_output(clip);
    assert_eq!(probed.frames, u64::from(count), "decoded frame count");
    assert_eq!(probed.codec, "h264");
    assert_eq!(probed.pix_fmt, "yuv420p");
    assert_eq!((probed.width, probed.height), (320, 240));
    assert_eq!(probed.frame_rate, "25/1");
    assert_eq!(probed.audio_codec.as_deref(), Some("aac"));
    let seconds = f64::from(count) / 25.0;
    // Audio is kept in whole AAC packets (23 ms), so the file may last a packet longer.
    assert!(
        (probed.duration - seconds).abs() < 0.06,
        "the file lasts {} s, not about {seconds} s",
        probed.duration
    );

    let v = ffprobe(
        clip,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=key_frame,pts_time:stream=duration",
        ],
    );
    let video_duration: f64 = v["streams"][0]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (video_duration - seconds).abs() < 0.01,
        "the video lasts {video_duration} s, not {seconds} s"
    );
    let frames = v["frames"].as_array().unwrap();
    assert_eq!(
        frames[0]["key_frame"], 1,
        "the first frame must be a keyframe"
    );
    for (i, frame) in frames.iter().enumerate() {
        let t: f64 = frame["pts_time"].as_str().unwrap().parse().unwrap();
        let want = i as f64 / 25.0;
        assert!((t - want).abs() < 0.002, "frame {i} at {t} s, not {want} s");
    }

    let psnr = psnr_against_source(clip, source, first, count);
    assert_eq!(psnr.len(), count as usize, "frames compared");
    for (i, db) in psnr.iter().enumerate() {
        let ok = if copied {
            db.is_infinite()
        } else {
            *db >= 35.0
        };
        assert!(
            ok,
            "clip frame {i} vs source frame {}: PSNR {db} dB ({})",
            first + i as u32,
            if copied {
                "a copy must be identical"
            } else {
                "too far from the source"
            }
        );
    }
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
    assert_clip(&out, &input, 50, 50, true);
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
    assert_clip(&out, &input, 65, 25, false);
}

#[test]
fn an_end_between_keyframes_is_re_encoded_when_a_frame_before_it_needs_one_after_it() {
    // From the keyframe at 2 s to 3.1 s: frame 77 (3.08 s) is a B-frame decoded after, and
    // predicted from, frame 79 (3.16 s). A stream copy without frame 79 would still give 28
    // frames, but frame 77 would be garbage.
    let dir = tempfile::tempdir().unwrap();
    let input = make_input(dir.path());
    let out = dir.path().join("clip.mp4");
    let result = export_segment(&input, 2.0, 3.1, &out).unwrap();
    assert_eq!(result.method, CutMethod::ReEncoded);
    assert_eq!(result.frames, 28, "{result:?}");
    assert_clip(&out, &input, 50, 28, false);
}

#[test]
fn times_count_from_the_video_streams_first_frame() {
    // Container and video start at 10 s (the audio a little earlier: AAC priming).
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
    let v = ffprobe(
        &input,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=start_time",
        ],
    );
    assert_eq!(v["streams"][0]["start_time"], "10.000000");
    let out = dir.path().join("copied.mp4");
    let result = export_segment(&input, 2.0, 4.0, &out).unwrap();
    assert_eq!(result.method, CutMethod::StreamCopy);
    assert_clip(&out, &input, 50, 50, true);
    let out = dir.path().join("encoded.mp4");
    let result = export_segment(&input, 2.6, 3.6, &out).unwrap();
    assert_eq!(result.method, CutMethod::ReEncoded);
    assert_clip(&out, &input, 65, 25, false);
}

#[test]
fn a_keyframe_decoded_before_the_start_but_shown_after_it_is_not_where_decoding_begins() {
    // Without an edit list the video starts at 0.08 s (the B-frame delay) and the demuxer seeks
    // by decode time: a seek for 1.96 s (relative) finds the keyframe shown at 2.0 s, which
    // would lose frame 49.
    let dir = tempfile::tempdir().unwrap();
    let made = make_input(dir.path());
    let input = dir.path().join("no_edit_list.mp4");
    ffmpeg(&[
        "-i",
        made.to_str().unwrap(),
        "-c",
        "copy",
        "-use_editlist",
        "0",
        input.to_str().unwrap(),
    ]);
    let v = ffprobe(
        &input,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=start_time",
        ],
    );
    assert_eq!(v["streams"][0]["start_time"], "0.080000");
    let out = dir.path().join("encoded.mp4");
    let result = export_segment(&input, 1.96, 3.0, &out).unwrap();
    assert_eq!(result.method, CutMethod::ReEncoded);
    assert_eq!(result.frames, 26);
    assert_clip(&out, &input, 49, 26, false);
    let out = dir.path().join("copied.mp4");
    let result = export_segment(&input, 2.0, 4.0, &out).unwrap();
    assert_eq!(result.method, CutMethod::StreamCopy);
    assert_clip(&out, &input, 50, 50, true);
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
    assert!(
        err.contains("missing.mp4") && err.contains("no such file"),
        "{err}"
    );

    for (start, end) in [(3.0, 3.0), (3.0, 2.0), (f64::NAN, 1.0)] {
        let err = export_segment(&input, start, end, &out)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("in.mp4") && err.contains("empty time range"),
            "{err}"
        );
    }

    let err = export_segment(&input, 20.0, 21.0, &out)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in.mp4") && err.contains("no video frames"),
        "{err}"
    );
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
    assert!(
        err.contains("audio.m4a") && err.contains("no video stream"),
        "{err}"
    );
    std::fs::remove_file(&audio_only).unwrap();
    assert_nothing_written(dir.path(), &input);
}
