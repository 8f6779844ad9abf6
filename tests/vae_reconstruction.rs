//! The VAE's other direction, judged from outside: `vae.reconstruction` in `run` against PSNRs
//! that diffusers and the `ffmpeg` CLI compute from the run's own files
//! (tests/fixtures/reconstruction_reference.py), `vae decode` to MP4 judged by ffprobe and
//! `ffmpeg -lavfi psnr`, and the `vae_anomalies` check rule with the real taef2 weights on real
//! and generated clips with glitches burned in at known frames. Bad input: exit 2, nothing
//! written.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

/// The small diffusers AutoencoderTiny fixture (random weights, 4 latent channels).
fn tiny_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/vae-tiny-tiny")
}

fn kl_fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/vae-kl-tiny")
}

/// A folder with only the fixture's TAESD encoder: a model that cannot decode.
fn encoder_only(dir: &Path) -> PathBuf {
    let folder = dir.join("encoder-only");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(
        tiny_fixture().join("taesd_encoder.safetensors"),
        folder.join("taesd_encoder.safetensors"),
    )
    .unwrap();
    folder
}

#[test]
fn run_reconstruction_psnr_equals_diffusers_over_the_picture() {
    let dir = tempfile::tempdir().unwrap();
    // 4:3 into 720p: pillarbox bars left and right, which the comparison must leave out.
    let input = dir.path().join("boxed.mp4");
    make_cut_clip(
        &input,
        "320x240",
        &[("testsrc2", 13), ("mandelbrot", 12)],
        false,
        &[],
    );
    let cfg = pipeline(
        dir.path(),
        "p.json",
        &format!(
            r#"{{"normalize": {{"resolution": "720p"}}, "scenes": {{}},
                "encode": {{"crf": 0, "preset": "ultrafast", "profile": null}},
                "vae": {{"model": "{}", "dtype": "f32", "every_n_frames": 2, "frames_per_shard": 4,
                         "batch_size": 3, "reconstruction": {{"every_n_frames": 2}}}}}}"#,
            tiny_fixture().display()
        ),
    );
    let out = dir.path().join("out");
    let run = run_pipeline(&cfg, &out, &input);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = typed_report(&out, "boxed");
    let _ = common::report(&out, "boxed");
    let content = report.output.content.expect("a letterboxed picture");
    assert!(content.x > 0 && content.width < 1280, "{content:?}");
    // Encoded: frames 0, 2, ..., 24 (13); reconstructed: every 2nd of those.
    let want_frames: Vec<u64> = (0..25).step_by(4).collect();
    let judged: Value = fixture_json(
        "reconstruction_reference.py",
        &[
            tiny_fixture().as_os_str(),
            out.join("boxed/latents").as_os_str(),
            out.join("boxed/boxed.mp4").as_os_str(),
            content.x.to_string().as_ref(),
            content.y.to_string().as_ref(),
            content.width.to_string().as_ref(),
            content.height.to_string().as_ref(),
            out.join("boxed").as_os_str(),
        ],
    );
    let ints = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    assert_eq!(ints(&judged["stored"]["frame_index"]), want_frames);
    assert_eq!(ints(&judged["frame_index"]), want_frames);
    let (stored, reference, whole) = (
        floats(&judged["stored"]["psnr"]),
        floats(&judged["psnr"]),
        floats(&judged["psnr_whole"]),
    );
    for i in 0..want_frames.len() {
        eprintln!(
            "frame {}: ours {:.4} dB, diffusers + ffmpeg {:.4} dB (whole frame {:.4})",
            want_frames[i], stored[i], reference[i], whole[i]
        );
        assert!(
            (stored[i] - reference[i]).abs() < 0.02,
            "frame {}",
            want_frames[i]
        );
        assert!(
            (whole[i] - reference[i]).abs() > 0.05,
            "the bars changed nothing"
        );
    }
    // The report: the block, per-scene figures, the latents' sizes.
    let r = report
        .reconstruction
        .as_ref()
        .expect("reconstruction block");
    assert_eq!(r.frames, want_frames.len() as u64);
    assert_eq!(r.file, "reconstruction.safetensors");
    let mean = stored.iter().sum::<f64>() / stored.len() as f64;
    assert!((r.mean_psnr - mean).abs() < 1e-3);
    let anomalies = report.anomalies.as_ref().expect("anomalies listed");
    // Every flagged frame is a reconstructed frame inside one of the listed anomalies.
    let inside_anomalies = want_frames
        .iter()
        .filter(|f| {
            anomalies
                .iter()
                .any(|a| (a.start_frame..=a.end_frame).contains(f))
        })
        .count() as u64;
    assert_eq!(inside_anomalies, r.flagged_frames);
    for scene in &report.scenes {
        let inside: Vec<f64> = want_frames
            .iter()
            .zip(&stored)
            .filter(|(f, _)| (scene.start_frame..scene.end_frame).contains(f))
            .map(|(_, p)| *p)
            .collect();
        let figures = scene
            .reconstruction
            .expect("each scene has reconstructed frames");
        assert_eq!(figures.frames, inside.len() as u64);
        let min = inside.iter().copied().fold(f64::INFINITY, f64::min);
        assert!((figures.min_psnr - min).abs() < 1e-4);
    }
    let latents = report.latents.as_ref().unwrap();
    let on_disk: u64 = latents
        .files
        .iter()
        .map(|f| std::fs::metadata(out.join("boxed").join(f)).unwrap().len())
        .sum();
    assert_eq!(latents.bytes, on_disk);
    assert!(
        (latents.ratio_to_raw_rgb - on_disk as f64 / (13.0 * 1280.0 * 720.0 * 3.0)).abs() < 1e-9
    );
    let video = std::fs::metadata(out.join("boxed/boxed.mp4"))
        .unwrap()
        .len();
    assert!((latents.ratio_to_video.unwrap() - on_disk as f64 / video as f64).abs() < 1e-9);
    assert!((latents.mean_psnr.unwrap() - mean).abs() < 1e-3);
}

#[test]
fn reconstruction_settings_and_models_are_checked_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    tiny_clip(&input);
    let out = dir.path().join("out");
    let cases = [
        (
            format!(
                r#"{{"vae": {{"model": "{}", "reconstruction": {{}}}}}}"#,
                encoder_only(dir.path()).display()
            ),
            vec!["vae.reconstruction", "no decoder"],
        ),
        (
            format!(
                r#"{{"vae": {{"model": "{}", "reconstruction": {{"every_n_frames": 0}}}}}}"#,
                tiny_fixture().display()
            ),
            vec!["vae.reconstruction.every_n_frames"],
        ),
        (
            format!(
                r#"{{"vae": {{"model": "{}", "reconstruction": {{"sensitivity": -1}}}}}}"#,
                tiny_fixture().display()
            ),
            vec!["vae.reconstruction.sensitivity"],
        ),
        (
            format!(
                r#"{{"vae": {{"model": "{}", "reconstruction": {{"every": 2}}}}}}"#,
                tiny_fixture().display()
            ),
            vec!["every"],
        ),
    ];
    for (i, (json, words)) in cases.iter().enumerate() {
        let cfg = pipeline(dir.path(), &format!("bad{i}.json"), json);
        let run = run_pipeline(&cfg, &out, &input);
        let text = stderr(&run);
        assert_eq!(run.status.code(), Some(2), "case {i}: {text}");
        for w in words {
            assert!(text.contains(w), "case {i}: {w:?} not in {text}");
        }
        assert_no_output(&out, "in");
    }
}

/// `vae encode VIDEO` then `vae decode` with the fixture: an MP4 at the recorded rate with every
/// frame, PNGs, a run's latents folder read shard after shard.
#[test]
fn vae_decode_writes_mp4s_and_pngs_from_files_and_latent_folders() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_cut_clip(
        &input,
        "96x64",
        &[("testsrc2", 10), ("mandelbrot", 7)],
        false,
        &["-r", "25"],
    );
    let latents = dir.path().join("lat.safetensors");
    let vae = |args: &[&std::ffi::OsStr]| {
        framepipe()
            .args(["vae", "--model"])
            .arg(tiny_fixture())
            .args(["--device", "cpu"])
            .args(args)
            .output()
            .unwrap()
    };
    let enc = vae(&[
        "encode".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        latents.as_os_str(),
    ]);
    assert!(enc.status.success(), "{}", stderr(&enc));
    let mp4 = dir.path().join("dec.mp4");
    let dec = vae(&[
        "decode".as_ref(),
        latents.as_os_str(),
        "-o".as_ref(),
        mp4.as_os_str(),
    ]);
    assert!(dec.status.success(), "{}", stderr(&dec));
    let p = probe_output(&mp4);
    assert_eq!((p.width, p.height), (96, 64));
    assert_eq!(p.frames, 17);
    let stream = ffprobe(&mp4, &["-show_entries", "stream=r_frame_rate,color_space"]);
    assert_eq!(stream["streams"][0]["r_frame_rate"], "25/1");
    assert_eq!(stream["streams"][0]["color_space"], "bt709");
    let pngs = dir.path().join("pngs");
    let dec = vae(&[
        "decode".as_ref(),
        latents.as_os_str(),
        "-o".as_ref(),
        pngs.as_os_str(),
    ]);
    assert!(dec.status.success(), "{}", stderr(&dec));
    assert_eq!(std::fs::read_dir(&pngs).unwrap().count(), 17);
    // --fps overrides.
    let fast = dir.path().join("fast.mp4");
    let dec = vae(&[
        "decode".as_ref(),
        latents.as_os_str(),
        "-o".as_ref(),
        fast.as_os_str(),
        "--fps".as_ref(),
        "50".as_ref(),
    ]);
    assert!(dec.status.success(), "{}", stderr(&dec));
    let stream = ffprobe(&fast, &["-show_entries", "stream=r_frame_rate"]);
    assert_eq!(stream["streams"][0]["r_frame_rate"], "50/1");

    // A run's latents/ folder: several shards, every 2nd frame → 12.5 frames/s.
    let cfg = pipeline(
        dir.path(),
        "p.json",
        &format!(
            r#"{{"vae": {{"model": "{}", "every_n_frames": 2, "frames_per_shard": 3}}}}"#,
            tiny_fixture().display()
        ),
    );
    let out = dir.path().join("out");
    let run = run_pipeline(&cfg, &out, &input);
    assert!(run.status.success(), "{}", stderr(&run));
    let shards = out.join("in/latents");
    assert!(std::fs::read_dir(&shards).unwrap().count() >= 3);
    let from_run = dir.path().join("run.mp4");
    let dec = vae(&[
        "decode".as_ref(),
        shards.as_os_str(),
        "-o".as_ref(),
        from_run.as_os_str(),
    ]);
    assert!(dec.status.success(), "{}", stderr(&dec));
    let p = probe_output(&from_run);
    assert_eq!((p.width, p.height, p.frames), (1280, 720, 9));
    let stream = ffprobe(&from_run, &["-show_entries", "stream=r_frame_rate"]);
    assert_eq!(stream["streams"][0]["r_frame_rate"], "25/2");
}

#[test]
fn vae_decode_refuses_latents_it_cannot_decode_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    tiny_clip(&input);
    let latents = dir.path().join("lat.safetensors");
    let enc = framepipe()
        .args(["vae", "--model"])
        .arg(tiny_fixture())
        .args(["--device", "cpu", "encode"])
        .arg(&input)
        .arg("-o")
        .arg(&latents)
        .output()
        .unwrap();
    assert!(enc.status.success(), "{}", stderr(&enc));
    // Latents of 16 channels without any metadata.
    let foreign = dir.path().join("foreign.safetensors");
    let values = vec![0u8; 16 * 6 * 8 * 4];
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 16, 6, 8], &values)
            .unwrap();
    std::fs::write(
        &foreign,
        safetensors::serialize([("latents", view)], None).unwrap(),
    )
    .unwrap();
    let not_latents = dir.path().join("not.safetensors");
    std::fs::write(&not_latents, b"hello").unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let cases: Vec<(PathBuf, PathBuf, Vec<&str>, Vec<&str>)> = vec![
        // Same channel count, another model: the fingerprint tells.
        (
            kl_fixture(),
            latents.clone(),
            vec![],
            vec!["made by model", "sha256:"],
        ),
        (
            tiny_fixture(),
            foreign.clone(),
            vec![],
            vec!["16 channels", "makes 4"],
        ),
        (
            encoder_only(dir.path()),
            latents.clone(),
            vec![],
            vec!["no decoder"],
        ),
        (
            tiny_fixture(),
            not_latents.clone(),
            vec![],
            vec!["not.safetensors", "not a safetensors"],
        ),
        (
            tiny_fixture(),
            empty.clone(),
            vec![],
            vec!["no .safetensors"],
        ),
        (tiny_fixture(), foreign.clone(), vec![], vec!["16 channels"]),
        (
            tiny_fixture(),
            latents.clone(),
            vec!["--fps", "0"],
            vec!["--fps"],
        ),
        (
            tiny_fixture(),
            latents.clone(),
            vec!["--preset", "warp"],
            vec!["--preset", "warp"],
        ),
    ];
    for (i, (model, source, extra, words)) in cases.iter().enumerate() {
        let target = dir.path().join(format!("out{i}.mp4"));
        let out = framepipe()
            .args(["vae", "--model"])
            .arg(model)
            .args(["--device", "cpu", "decode"])
            .arg(source)
            .arg("-o")
            .arg(&target)
            .args(extra)
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {text}");
        for w in words {
            assert!(text.contains(w), "case {i}: {w:?} not in {text}");
        }
        assert!(!target.exists(), "case {i}: an output was written");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().contains(".partial"))
            .collect();
        assert!(leftovers.is_empty(), "case {i}: {leftovers:?}");
    }
}

// ---- The real taef2 weights (../shared; skipped in a user's clone) ---------------------------

/// `ffmpeg -lavfi psnr`'s average PSNR of `a` against `b`, both converted to RGB by ffmpeg with
/// their own colour tags.
fn ffmpeg_psnr(a: &Path, b: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-v", "info", "-i"])
        .arg(a)
        .arg("-i")
        .arg(b)
        .args([
            "-lavfi",
            "[0]format=rgb24[a];[1]format=rgb24[b];[a][b]psnr",
            "-f",
            "null",
            "-",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("PSNR") && l.contains("average:"))
        .unwrap_or_else(|| panic!("no PSNR line: {text}"));
    line.split("average:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn taef2_decode_of_encode_keeps_real_frames_above_26_db() {
    let (Some(model), Some(bears)) = (shared_model("taef2"), shared_media("bears.mp4")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames.mp4");
    ffmpeg(&[
        "-i",
        bears.to_str().unwrap(),
        "-vf",
        "scale=512:288",
        "-frames:v",
        "12",
        "-c:v",
        "libx264",
        "-crf",
        "10",
        frames.to_str().unwrap(),
    ]);
    let latents = dir.path().join("lat.safetensors");
    let decoded = dir.path().join("dec.mp4");
    for args in [
        vec![
            "encode".as_ref(),
            frames.as_os_str(),
            "-o".as_ref(),
            latents.as_os_str(),
            "--dtype".as_ref(),
            "f16".as_ref(),
        ],
        vec![
            "decode".as_ref(),
            latents.as_os_str(),
            "-o".as_ref(),
            decoded.as_os_str(),
        ],
    ] {
        let out = framepipe()
            .args(["vae", "--model"])
            .arg(&model)
            .args(["--device", "cpu"])
            .args(&args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let psnr = ffmpeg_psnr(&decoded, &frames);
    eprintln!("taef2 at 512x288 on bears.mp4, f16 latents, decoded to x264 crf 18: {psnr:.2} dB (ffmpeg psnr)");
    assert!(psnr >= 26.0, "{psnr}");
}

/// The `vae_anomalies` rule's outcome for each file (JSON output).
fn anomaly_check(
    dir: &Path,
    model: &Path,
    size: [u32; 2],
    every: u32,
    files: &[&Path],
) -> Vec<Value> {
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        format!(
            r#"{{"rule_sets": [{{"name": "glitches", "rules": {{"vae_anomalies": {{"model": "{}", "size": [{}, {}], "every_n_frames": {every}}}}}}}]}}"#,
            model.display(),
            size[0],
            size[1]
        ),
    )
    .unwrap();
    let out = framepipe()
        .args(["check", "--format", "json", "--jobs", "1", "--rules"])
        .arg(&rules)
        .args(files)
        .output()
        .unwrap();
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["outcomes"][0].clone())
        .collect()
}

fn flagged(outcome: &Value) -> Vec<u64> {
    outcome["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect()
}

/// Every injected frame flagged, at most one neighbour more, nothing elsewhere.
fn assert_found(what: &str, outcome: &Value, injected: std::ops::RangeInclusive<u64>) {
    let got = flagged(outcome);
    eprintln!("{what}: flagged {got:?} ({})", outcome["actual"]);
    assert_eq!(outcome["passed"], false, "{what}");
    for f in injected.clone() {
        assert!(got.contains(&f), "{what}: frame {f} not flagged: {got:?}");
    }
    let extra: Vec<u64> = got
        .iter()
        .copied()
        .filter(|f| !injected.contains(f))
        .collect();
    assert!(
        extra.len() <= 1
            && extra
                .iter()
                .all(|&f| f + 1 == *injected.start() || f == injected.end() + 1),
        "{what}: flagged beyond the damage: {extra:?}"
    );
    assert!(outcome["at"].is_array(), "{what}: no range");
}

#[test]
fn taef2_finds_noise_bursts_and_garbage_blocks_at_their_frames() {
    let (Some(model), Some(bears), Some(orangutan)) = (
        shared_model("taef2"),
        shared_media("bears.mp4"),
        shared_media("orangutan.mp4"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let damaged = |name: &str, source: &Path, filter: &str| {
        let path = dir.path().join(name);
        ffmpeg(&[
            "-i",
            source.to_str().unwrap(),
            "-vf",
            filter,
            "-frames:v",
            "48",
            "-c:v",
            "libx264",
            "-crf",
            "12",
            "-pix_fmt",
            "yuv420p",
            path.to_str().unwrap(),
        ]);
        path
    };
    // Film-grain noise over three frames.
    let noise = damaged(
        "noise.mp4",
        &bears,
        "scale=256:144,noise=alls=25:allf=t:enable='between(n,30,32)'",
    );
    // Broken blocks: two 64x48 rectangles of random pixels on frames 20 and 21, the way a
    // damaged slice shows.
    let blocks = damaged(
        "blocks.mp4",
        &orangutan,
        "scale=256:144,geq=lum='if(between(N,20,21)*(between(X,32,95)*between(Y,16,63)+between(X,160,223)*between(Y,80,127)),random(1)*255,lum(X,Y))':cb='cb(X,Y)':cr='cr(X,Y)'",
    );
    let outcomes = anomaly_check(dir.path(), &model, [256, 144], 1, &[&noise, &blocks]);
    assert_found("noise burst on bears", &outcomes[0], 30..=32);
    assert_found("garbage blocks on orangutan", &outcomes[1], 20..=21);
}

#[test]
fn taef2_flags_nothing_on_clean_real_and_generated_clips() {
    let Some(model) = shared_model("taef2") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = [
        "bears.mp4",
        "orangutan.mp4",
        "bikes.mp4",
        "carphone_pristine.mp4",
    ]
    .iter()
    .filter_map(|name| shared_media(name))
    .collect();
    // Generated: three synthetic scenes with hard cuts between them.
    let generated = dir.path().join("generated.mp4");
    make_cut_clip(
        &generated,
        "256x144",
        &[("testsrc2", 30), ("mandelbrot", 30), ("smptebars", 30)],
        false,
        &[],
    );
    files.push(generated);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    // Every 2nd frame at 256x144 keeps CI time down; the rule judges what it samples.
    let outcomes = anomaly_check(dir.path(), &model, [256, 144], 2, &refs);
    for (file, o) in files.iter().zip(&outcomes) {
        eprintln!("{}: {}", file.display(), o["actual"]);
        assert_eq!(o["passed"], true, "{}: {o}", file.display());
        assert!(flagged(o).is_empty(), "{}: {o}", file.display());
    }
}

#[test]
fn taef2_run_reports_the_burst_as_an_anomaly() {
    let (Some(model), Some(bears)) = (shared_model("taef2"), shared_media("bears.mp4")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Short: taef2 at 720p costs seconds a frame on a CPU.
    let input = dir.path().join("burst.mp4");
    ffmpeg(&[
        "-i",
        bears.to_str().unwrap(),
        "-vf",
        "noise=alls=25:allf=t:enable='between(n,5,6)'",
        "-frames:v",
        "10",
        "-c:v",
        "libx264",
        "-crf",
        "12",
        input.to_str().unwrap(),
    ]);
    let cfg = pipeline(
        dir.path(),
        "p.json",
        &format!(
            r#"{{"normalize": {{"resolution": "720p"}}, "encode": {{"preset": "ultrafast"}},
                "vae": {{"model": "{}", "reconstruction": {{}}}}}}"#,
            model.display()
        ),
    );
    let out = dir.path().join("out");
    let run = run_pipeline(&cfg, &out, &input);
    assert!(run.status.success(), "{}", stderr(&run));
    let report = typed_report(&out, "burst");
    let anomalies = report.anomalies.unwrap();
    eprintln!("taef2 720p anomalies: {anomalies:?}");
    assert_eq!(anomalies.len(), 1, "{anomalies:?}");
    assert_eq!((anomalies[0].start_frame, anomalies[0].end_frame), (5, 6));
    assert!(anomalies[0].drop_db > 5.0);
}

#[test]
fn vae_anomalies_rules_are_checked_when_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    tiny_clip(&input);
    let cases = [
        (
            format!(
                r#"{{"model": "{}", "size": [100, 64]}}"#,
                tiny_fixture().display()
            ),
            vec!["vae_anomalies.size", "multiples of 8"],
        ),
        (
            format!(r#"{{"model": "{}"}}"#, encoder_only(dir.path()).display()),
            vec!["vae_anomalies.model", "no decoder"],
        ),
        (
            format!(
                r#"{{"model": "{}", "every_n_frames": 0}}"#,
                tiny_fixture().display()
            ),
            vec!["vae_anomalies.every_n_frames"],
        ),
        (
            r#"{"model": "/no/such/vae"}"#.to_string(),
            vec!["/no/such/vae"],
        ),
    ];
    for (i, (rule, words)) in cases.iter().enumerate() {
        let rules = dir.path().join(format!("rules{i}.json"));
        std::fs::write(
            &rules,
            format!(r#"{{"rule_sets": [{{"name": "g", "rules": {{"vae_anomalies": {rule}}}}}]}}"#),
        )
        .unwrap();
        let out = framepipe()
            .args(["check", "--rules"])
            .arg(&rules)
            .arg(&input)
            .output()
            .unwrap();
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {text}");
        for w in words {
            assert!(text.contains(w), "case {i}: {w:?} not in {text}");
        }
    }
    // The fixture model at the file's own size (64x48, on the grid): a passing outcome that
    // lists no frame, in the text and JUnit outputs as well.
    let rules = dir.path().join("ok.json");
    std::fs::write(
        &rules,
        format!(
            r#"{{"rule_sets": [{{"name": "g", "rules": {{"vae_anomalies": {{"model": "{}", "size": null, "max_frames": 3}}}}}}]}}"#,
            tiny_fixture().display()
        ),
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let out = framepipe()
        .args(["check", "--junit"])
        .arg(&junit)
        .arg("--rules")
        .arg(&rules)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("vae_anomalies"), "{xml}");
}
