//! `framepipe run` on generated media, judged by ffprobe: size, frame count, duration, audio,
//! chapters, scene cuts, rotation, 10-bit, VFR, fps resampling, fit/fill/stretch, SAR.
mod common;

use std::path::Path;

use common::*;

fn run_ok(out: &Path, pipeline: Option<&Path>, inputs: &[&Path]) -> serde_json::Value {
    let mut cmd = framepipe();
    cmd.args(["-q", "run", "-o"]).arg(out);
    if let Some(p) = pipeline {
        cmd.arg("--pipeline").arg(p);
    }
    cmd.args(inputs);
    let output = cmd.output().unwrap();
    assert!(
        output.status.success(),
        "framepipe failed: {}",
        stderr(&output)
    );
    let first_line = String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    serde_json::from_str(&first_line).unwrap_or(serde_json::Value::Null)
}

#[test]
fn default_pipeline_writes_720p_video_scenes_chapters_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cuts.mp4");
    let cuts = make_cut_clip(
        &input,
        "640x360",
        &[("testsrc2", 40), ("smptebars", 55), ("mandelbrot", 30)],
        true,
        &[],
    );
    let out = dir.path().join("out");
    run_ok(&out, None, &[&input]);

    let video = out.join("cuts/cuts.mp4");
    let p = probe_output(&video);
    assert_eq!((p.width, p.height), (1280, 720));
    assert_eq!(
        (p.codec.as_str(), p.pix_fmt.as_str(), p.profile.as_str()),
        ("h264", "yuv420p", "High")
    );
    assert_eq!(p.frames, 125, "every input frame is in the output");
    assert!(
        (p.duration - 5.0).abs() <= 1.0 / 25.0 + 0.03,
        "duration {}",
        p.duration
    );
    assert_eq!(p.audio_codec.as_deref(), Some("aac"), "audio copied");

    // Read through the report's own types (unknown fields refused, see common::report): the
    // keys the contract promises are fields of those types, so their presence is checked by
    // reading at all; the values are checked here.
    report(&out, "cuts");
    let r = typed_report(&out, "cuts");
    let starts: Vec<u64> = r.scenes.iter().map(|s| s.start_frame).collect();
    let expected: Vec<u64> = std::iter::once(0)
        .chain(cuts.iter().map(|&c| u64::from(c)))
        .collect();
    assert_eq!(starts, expected, "scene cuts exact on synthetic cuts");
    let ends: Vec<u64> = r.scenes.iter().map(|s| s.end_frame).collect();
    assert_eq!(ends, [40, 95, 125]);
    assert_eq!(p.chapters.len(), starts.len(), "one chapter per scene");
    for (chapter, scene) in p.chapters.iter().zip(&r.scenes) {
        assert!(
            (chapter.0 - scene.start_time).abs() < 0.002,
            "{chapter:?} vs {scene:?}"
        );
        assert!(
            (chapter.1 - scene.end_time).abs() < 0.002,
            "{chapter:?} vs {scene:?}"
        );
    }

    // The report contract.
    assert_eq!(r.schema_version, 1);
    assert!(r.source.path.ends_with("cuts.mp4"), "{}", r.source.path);
    assert!(!r.source.container.is_empty() && !r.source.codec.is_empty());
    assert!(r.source.width > 0 && r.source.height > 0 && r.source.fps > 0.0);
    assert!(r.output.video.is_some());
    assert_eq!((r.output.width, r.output.height), (1280, 720));
    assert!(r.output.duration > 0.0 && r.stats.wall_seconds > 0.0 && r.stats.fps > 0.0);
    for stage in ["decode", "normalize", "scenes", "encode"] {
        assert!(r.stats.stages[stage].seconds >= 0.0, "{stage}");
    }
    for (i, scene) in r.scenes.iter().enumerate() {
        assert_eq!(scene.index, i);
        assert!(scene.end_frame > scene.start_frame && scene.end_time > scene.start_time);
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(r.config_hash.len(), 16);
    assert!(!r.tool_version.is_empty());
    assert_eq!(r.output.frames, 125);
    assert!(r.source.has_audio);
    assert!(!out.join("cuts.partial").exists());

    // +faststart: the moov box comes before mdat.
    let bytes = std::fs::read(&video).unwrap();
    let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
    let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
    assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");
}

#[test]
fn no_audio_in_no_audio_out_and_1080p_config() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("silent.mp4");
    make_cut_clip(&input, "320x240", &[("testsrc2", 20)], false, &[]);
    let out = dir.path().join("out");
    run_ok(
        &out,
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/1080p.json")),
        &[&input],
    );
    let p = probe_output(&out.join("silent/silent.mp4"));
    assert_eq!((p.width, p.height, p.frames), (1920, 1080, 20));
    assert!(!p.has_audio);
    let r = report(&out, "silent");
    // 4:3 under fit is pillarboxed.
    assert_eq!(
        r["output"]["content"],
        serde_json::json!({"x": 240, "y": 0, "width": 1440, "height": 1080})
    );
    assert_eq!(r["output"]["audio"], "none");
}

#[test]
fn rotated_phone_video_comes_out_upright_like_ffmpeg_autorotate() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw.mp4");
    // Stored landscape 320x180 with a display matrix: displayed portrait 180x320. FFmpeg 5.1's
    // `rotate=90` tag writes the matrix ffprobe calls "rotation 90" (counter-clockwise), which
    // ffmpeg's autorotate undoes with `transpose=cclock`: 270 degrees clockwise.
    make_cut_clip(&raw, "320x180", &[("testsrc2", 10)], false, &[]);
    let input = dir.path().join("phone.mp4");
    ffmpeg(&[
        "-i",
        raw.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        input.to_str().unwrap(),
    ]);
    let probe = framepipe().args(["probe"]).arg(&input).output().unwrap();
    let info: serde_json::Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(info["rotation"], 270);
    assert_eq!(
        (
            info["display_width"].as_u64(),
            info["display_height"].as_u64()
        ),
        (Some(180), Some(320))
    );

    let out = dir.path().join("out");
    run_ok(&out, None, &[&input]);
    let r = report(&out, "phone");
    // 180x320 scaled to 720 high is 405 wide, rounded to even 406: pillarboxed.
    assert_eq!(
        r["output"]["content"],
        serde_json::json!({"x": 436, "y": 0, "width": 406, "height": 720})
    );
    let ours = out.join("phone/phone.mp4");
    // Compare the picture area with what ffmpeg itself shows for the input (autorotated).
    let crop = ",crop=406:720:436:0";
    let a = gray_frame(&ours, 5, 101, 180, crop);
    let b = gray_frame(&input, 5, 101, 180, "");
    let unrotated = gray_frame(&input, 5, 101, 180, ",transpose=cclock,transpose=cclock");
    let d = mean_abs_diff(&a, &b);
    assert!(
        d < 4.0,
        "upright picture differs from ffmpeg's autorotated one by {d}"
    );
    assert!(
        mean_abs_diff(&a, &unrotated) > 3.0 * d.max(1.0),
        "the check must tell orientations apart"
    );
    // Pillarbox bars are black.
    let bar = gray_frame(&ours, 5, 64, 36, ",crop=400:720:0:0");
    assert!(bar.iter().all(|&v| v <= 20), "bars should be black");
}

#[test]
fn ten_bit_input_becomes_8_bit_yuv420p() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("deep.mp4");
    make_cut_clip(&input, "640x360", &[("testsrc2", 15)], false, &[]);
    let deep = dir.path().join("deep10.mp4");
    ffmpeg(&[
        "-i",
        input.to_str().unwrap(),
        "-pix_fmt",
        "yuv420p10le",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        deep.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    run_ok(&out, None, &[&deep]);
    let r = report(&out, "deep10");
    assert_eq!(r["source"]["bit_depth"], 10);
    let p = probe_output(&out.join("deep10/deep10.mp4"));
    assert_eq!((p.pix_fmt.as_str(), p.frames), ("yuv420p", 15));
    // The picture survives the depth conversion.
    let a = gray_frame(&out.join("deep10/deep10.mp4"), 3, 64, 36, "");
    let b = gray_frame(&deep, 3, 64, 36, "");
    assert!(mean_abs_diff(&a, &b) < 4.0);
}

#[test]
fn variable_frame_rate_keeps_its_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("vfr.mkv");
    // 1 s at 10 fps then 1 s at 30 fps, timestamps kept as they are.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=10:duration=1",
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30:duration=1",
        "-filter_complex",
        "[0:v]settb=1/1000[a];[1:v]settb=1/1000[b];[a][b]concat=n=2:v=1:a=0[v]",
        "-map",
        "[v]",
        "-fps_mode",
        "vfr",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        input.to_str().unwrap(),
    ]);
    let source_times = frame_times(&input);
    assert_eq!(source_times.len(), 40);
    let out = dir.path().join("out");
    run_ok(&out, None, &[&input]);
    let ours = frame_times(&out.join("vfr/vfr.mp4"));
    assert_eq!(ours.len(), source_times.len());
    for (a, b) in ours.iter().zip(&source_times) {
        assert!((a - b).abs() < 0.0015, "output pts {a} vs source {b}");
    }
}

#[test]
fn fps_resampling_gives_constant_rate() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in25.mp4");
    make_cut_clip(
        &input,
        "320x240",
        &[("testsrc2", 30), ("smptebars", 20)],
        false,
        &[],
    );
    let cfg = pipeline(
        dir.path(),
        "p.json",
        r#"{"normalize": {"fps": 30}, "scenes": {}, "encode": {"preset": "ultrafast"}}"#,
    );
    let out = dir.path().join("out");
    run_ok(&out, Some(&cfg), &[&input]);
    let p = probe_output(&out.join("in25/in25.mp4"));
    assert_eq!(p.frame_rate, "30/1");
    assert_eq!(p.frames, 60, "2 s at 30 fps");
    let r = report(&out, "in25");
    assert_eq!(r["output"]["frames"], 60);
    // Cut at source frame 30 (1.2 s) lands on output tick 36.
    assert_eq!(r["scenes"][1]["start_frame"], 36);
}

#[test]
fn fill_stretch_odd_sizes_and_sample_aspect_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd.mkv");
    // testsrc2 rounds sizes to even; scale makes the odd one (ffv1 stores odd 4:2:0 sizes).
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=0.4",
        "-vf",
        "scale=333:199",
        "-c:v",
        "ffv1",
        odd.to_str().unwrap(),
    ]);
    let anamorphic = dir.path().join("pal.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=720x576:rate=25:duration=0.4",
        "-vf",
        "setsar=64/45",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        anamorphic.to_str().unwrap(),
    ]);
    for (mode, expected_odd) in [
        (
            "fill",
            serde_json::json!({"x": 0, "y": 0, "width": 1280, "height": 720}),
        ),
        (
            "stretch",
            serde_json::json!({"x": 0, "y": 0, "width": 1280, "height": 720}),
        ),
        (
            "fit",
            serde_json::json!({"x": 38, "y": 0, "width": 1204, "height": 720}),
        ),
    ] {
        let cfg = pipeline(
            dir.path(),
            &format!("{mode}.json"),
            &format!(
                r#"{{"normalize": {{"mode": "{mode}"}}, "encode": {{"preset": "ultrafast"}}}}"#
            ),
        );
        let out = dir.path().join(format!("out-{mode}"));
        run_ok(&out, Some(&cfg), &[&odd, &anamorphic]);
        let p = probe_output(&out.join("odd/odd.mp4"));
        assert_eq!((p.width, p.height, p.frames), (1280, 720, 10), "{mode}");
        assert_eq!(
            report(&out, "odd")["output"]["content"],
            expected_odd,
            "{mode}"
        );
        // 720x576 at SAR 64:45 is 16:9 on screen: fills the canvas in every mode.
        assert_eq!(
            report(&out, "pal")["output"]["content"],
            serde_json::json!({"x": 0, "y": 0, "width": 1280, "height": 720}),
            "{mode}"
        );
        assert_eq!(probe_output(&out.join("pal/pal.mp4")).width, 1280);
    }
}

#[test]
fn pcm_audio_is_reencoded_to_aac() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pcm.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:duration=2:sample_rate=48000",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "pcm_s16le",
        input.to_str().unwrap(),
    ]);
    let out = dir.path().join("out");
    run_ok(&out, None, &[&input]);
    let p = probe_output(&out.join("pcm/pcm.mp4"));
    assert_eq!(p.audio_codec.as_deref(), Some("aac"));
    let audio = ffprobe(
        &out.join("pcm/pcm.mp4"),
        &[
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=duration,sample_rate",
        ],
    );
    let duration: f64 = audio["streams"][0]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 2.0).abs() < 0.1, "audio duration {duration}");
    let r = report(&out, "pcm");
    assert_eq!(r["output"]["audio"], "aac");
    assert!(
        r["warnings"].to_string().contains("pcm_s16le"),
        "{}",
        r["warnings"]
    );
}

#[test]
fn scenes_only_pipeline_writes_report_without_video() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("s.mp4");
    make_cut_clip(
        &input,
        "640x360",
        &[("testsrc2", 30), ("smptebars", 30)],
        false,
        &[],
    );
    let out = dir.path().join("out");
    run_ok(
        &out,
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pipelines/scenes-only.json")),
        &[&input],
    );
    let r = report(&out, "s");
    assert!(r["output"]["video"].is_null());
    assert_eq!(r["scenes"][1]["start_frame"], 30);
    assert!(!out.join("s/s.mp4").exists());
}

#[test]
fn shipped_pipelines_are_valid_and_default_is_built_in() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(root.join("pipelines")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "ci-check.json" {
            // A `framepipe check` rules file, not a pipeline.
            framepipe::check::rules::RulesFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
            continue;
        }
        match framepipe::config::PipelineConfig::load(&path) {
            Ok(_) => {}
            // Tagging pipelines name a CLIP model the user downloads; everything else in them
            // must be valid, so the only acceptable error is that folder being absent.
            Err(e)
                if e.to_string().contains("clip.model")
                    && e.to_string().contains("no config.json") => {}
            Err(e) => panic!("{e}"),
        }
    }
    let file =
        framepipe::config::PipelineConfig::load(&root.join("pipelines/default.json")).unwrap();
    let builtin = framepipe::config::PipelineConfig::parse(framepipe::DEFAULT_PIPELINE).unwrap();
    assert_eq!(file, builtin);
}

/// The real videos of the shared folder when it is there, and always two generated ones of the
/// same kinds (a 2.35:1 clip with audio and scenes, a QCIF one without audio).
#[test]
fn real_and_generated_videos_from_the_default_pipeline() {
    let names = [
        "bears.mp4",
        "orangutan.mp4",
        "bikes.mp4",
        "carphone_pristine.mp4",
    ];
    let mut inputs: Vec<_> = names.iter().filter_map(|n| shared_media(n)).collect();
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide_audio.mp4");
    make_cut_clip(
        &wide,
        "640x272",
        &[("testsrc2", 30), ("smptebars", 25), ("mandelbrot", 30)],
        true,
        &[],
    );
    let qcif = dir.path().join("qcif.mp4");
    make_cut_clip(&qcif, "176x144", &[("life", 45)], false, &[]);
    inputs.extend([wide, qcif]);
    let out = dir.path().join("out");
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    run_ok(&out, None, &refs);
    for input in &inputs {
        let stem = input.file_stem().unwrap().to_str().unwrap();
        let source = probe_output(input);
        let p = probe_output(&out.join(stem).join(format!("{stem}.mp4")));
        assert_eq!((p.width, p.height), (1280, 720), "{stem}");
        assert_eq!(p.frames, source.frames, "{stem}: frame count");
        assert!(
            (p.duration - source.duration).abs() <= 0.05,
            "{stem}: {} vs {}",
            p.duration,
            source.duration
        );
        assert_eq!(
            p.has_audio, source.has_audio,
            "{stem}: audio iff input had it"
        );
        let r = report(&out, stem);
        assert_eq!(
            p.chapters.len(),
            r["scenes"].as_array().unwrap().len(),
            "{stem}"
        );
    }
}

#[test]
fn size_change_mid_stream_is_replanned() {
    let dir = tempfile::tempdir().unwrap();
    // The decoder meets a new size at frame 20.
    let [_, _, mixed] = size_change_ts(dir.path());
    let out = dir.path().join("out");
    run_ok(&out, None, &[&mixed]);
    let video = out.join("mixed/mixed.mp4");
    let p = probe_output(&video);
    assert_eq!((p.width, p.height, p.frames), (1280, 720, 40));
    // 4:3 part pillarboxed (black at the left edge), 16:9 part full width (picture there).
    let left = |n| {
        gray_frame(&video, n, 16, 9, ",crop=64:720:0:0")
            .iter()
            .map(|&v| u32::from(v))
            .sum::<u32>()
            / 144
    };
    assert!(left(5) <= 20, "4:3 frames are pillarboxed");
    assert!(left(30) > 20, "16:9 frames fill the canvas");
}

/// The output says the colours it has: the canvases keep the source's matrix, primaries and
/// transfer, and the MP4 tags them (players otherwise guess BT.709 for 720p and shift upscaled
/// BT.601 video); untagged sources give limited range and no colour description.
#[test]
fn outputs_carry_the_sources_colour_description() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases = [
        ("hd709", Some(("bt709", "bt709", "bt709"))),
        ("sd601", Some(("smpte170m", "smpte170m", "smpte170m"))),
        ("untagged", None),
    ];
    let mut inputs = Vec::new();
    for (name, tags) in &cases {
        let path = d.join(format!("{name}.mp4"));
        let mut args = vec![
            "-f".to_string(),
            "lavfi".into(),
            "-i".into(),
            "testsrc2=size=320x240:rate=10:duration=1".into(),
            "-c:v".into(),
            "libx264".into(),
            "-preset".into(),
            "ultrafast".into(),
            "-pix_fmt".into(),
            "yuv420p".into(),
        ];
        if let Some((space, primaries, transfer)) = tags {
            args.extend(
                [
                    "-colorspace",
                    space,
                    "-color_primaries",
                    primaries,
                    "-color_trc",
                    transfer,
                    "-color_range",
                    "tv",
                ]
                .map(String::from),
            );
        }
        args.push(path.display().to_string());
        ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
        inputs.push(path);
    }
    let out = d.join("out");
    let refs: Vec<&Path> = inputs.iter().map(|p| p.as_path()).collect();
    run_ok(&out, None, &refs);
    for (name, tags) in &cases {
        let v = ffprobe(
            &out.join(name).join(format!("{name}.mp4")),
            &[
                "-select_streams",
                "v",
                "-show_entries",
                "stream=color_range,color_space,color_primaries,color_transfer",
            ],
        );
        let s = &v["streams"][0];
        assert_eq!(s["color_range"], "tv", "{name}: {s}");
        match tags {
            Some((space, primaries, transfer)) => {
                assert_eq!(
                    (
                        &s["color_space"],
                        &s["color_primaries"],
                        &s["color_transfer"]
                    ),
                    (
                        &serde_json::json!(space),
                        &serde_json::json!(primaries),
                        &serde_json::json!(transfer)
                    ),
                    "{name}"
                );
            }
            None => assert!(
                s.get("color_space").is_none_or(|c| c == "unknown"),
                "{name}: an untagged source gets no made-up matrix: {s}"
            ),
        }
    }
}
