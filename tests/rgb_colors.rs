//! RGB for the model stages uses the YUV matrix and range each frame is tagged with, as
//! `ffmpeg -pix_fmt rgb24` (the judge) does: BT.709 HD video is not read with BT.601.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use ffmpeg_next as ff;
use framepipe::media::decode::{SourceFrame, VideoDecoder};
use framepipe::media::{probe, RgbFrames};

/// The first frame as RGB24, through framepipe's decoder and converter.
fn ours(path: &Path) -> Vec<u8> {
    let (mut input, info) = probe::open(path).unwrap();
    let mut decoder = VideoDecoder::open(path, &input, info.video_stream_index, 0, 0).unwrap();
    let mut rgb = RgbFrames::new(info.width, info.height, ff::software::scaling::Flags::POINT);
    let mut out = Vec::new();
    let mut sink = |f: SourceFrame| {
        if out.is_empty() {
            rgb.append(&f.frame, None, &mut out).unwrap();
        }
        Ok(())
    };
    decoder
        .decode_all(&mut input, &mut sink, &|| false)
        .unwrap();
    out
}

/// The first frame as RGB24, by the ffmpeg CLI.
fn theirs(path: &Path) -> Vec<u8> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert!(o.status.success());
    o.stdout
}

#[test]
fn rgb_follows_the_tagged_matrix_and_range() {
    let dir = tempfile::tempdir().unwrap();
    // (name, matrix for encoding, range, tags)
    for (name, matrix, range, tag) in [
        ("bt709", "bt709", "tv", Some("bt709")),
        ("bt601", "bt601", "tv", Some("smpte170m")),
        ("untagged", "bt601", "tv", None),
        ("bt709-full", "bt709", "pc", Some("bt709")),
    ] {
        let path = dir.path().join(format!("{name}.mp4"));
        let filter = format!("scale=out_color_matrix={matrix}:out_range={range},format=yuv420p");
        let mut args: Vec<String> = [
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=128x96:rate=25",
            "-frames:v",
            "2",
            "-vf",
            &filter,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(t) = tag {
            args.extend(
                ["-colorspace", t, "-color_primaries", t, "-color_trc", t].map(String::from),
            );
        }
        args.extend(["-color_range", range, "-c:v", "libx264", "-qp", "0"].map(String::from));
        args.push(path.display().to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ffmpeg(&refs);
        let (a, b) = (ours(&path), theirs(&path));
        assert_eq!(a.len(), b.len(), "{name}");
        let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
        let mean = a
            .iter()
            .zip(&b)
            .map(|(x, y)| f64::from(x.abs_diff(*y)))
            .sum::<f64>()
            / a.len() as f64;
        eprintln!("{name}: max |diff| {worst}, mean {mean:.3} against ffmpeg");
        assert!(worst <= 3 && mean < 0.6, "{name}: max {worst}, mean {mean}");
    }
}
