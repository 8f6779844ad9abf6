//! Clip signatures (`phash` in `clips.jsonl`, `framepipe::clips::signature`) judged on footage
//! changed by the `ffmpeg` CLI the way re-uploads change it: a crf 35 re-encode, a lower
//! resolution (120p), a 10% crop, letterboxed to 4:3, 10% faster, brighter, a logo in a corner, the
//! first 0.5 s cut off. Each variant's clip must stay closer to its source than any two
//! distinct clips are to each other (generated sources, and the shared videos when present).
mod common;

use std::path::{Path, PathBuf};

use common::*;
use framepipe::clips::signature::{similarity, PHash};
use framepipe::output::clip_record::ClipRecord;

/// Similarity at or above which two clips count as the same footage in this test.
const SAME: f64 = 0.85;

/// Distinct moving sources, 4 s at 320x180, 25 fps, no cut inside (small: the signature is
/// taken of a 160x90 copy anyway).
const SOURCES: &[(&str, &str)] = &[
    (
        "mandelbrot",
        "mandelbrot=size=320x180:rate=25:end_scale=0.05:end_pts=4",
    ),
    ("life", "life=size=320x180:rate=25:ratio=0.4:seed=3:mold=20"),
    (
        "gradients",
        "gradients=size=320x180:rate=25:speed=0.03:seed=5:nb_colors=3:c0=0x2ab87f:c1=0x3060a0:c2=0xe0a040",
    ),
    ("cellauto", "cellauto=size=320x180:rate=25:rule=30:seed=1"),
    ("testsrc2", "testsrc2=size=320x180:rate=25"),
];

/// How a variant is made: ffmpeg arguments before the input, and the filter after it.
const VARIANTS: &[(&str, &[&str], &str)] = &[
    ("crf35", &[], "null"),
    ("120p", &[], "scale=214:120"),
    ("crop10", &[], "crop=iw*0.9:ih*0.9,scale=320:180"),
    ("letterbox_4x3", &[], "scale=240:135,pad=240:180:0:22:black"),
    ("faster10", &[], "setpts=PTS/1.1"),
    ("brighter", &[], "eq=brightness=0.1"),
    (
        "logo",
        &[],
        "drawbox=x=iw-55:y=5:w=50:h=20:color=white@0.8:t=fill",
    ),
    ("trim0.5", &["-ss", "0.5"], "null"),
];

fn make_source(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(format!("{name}.mp4"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &format!("{source},trim=duration=4,format=yuv420p"),
        "-c:v",
        "libx264",
        "-crf",
        "18",
        path.to_str().unwrap(),
    ]);
    path
}

fn make_variant(
    dir: &Path,
    source: &Path,
    (name, before, filter): (&str, &[&str], &str),
) -> PathBuf {
    let stem = source.file_stem().unwrap().to_str().unwrap();
    let path = dir.join(format!("{stem}-{name}.mp4"));
    let mut args: Vec<&str> = before.to_vec();
    let crf = if name == "crf35" { "35" } else { "23" };
    args.extend([
        "-i",
        source.to_str().unwrap(),
        "-vf",
        filter,
        "-c:v",
        "libx264",
        "-crf",
        crf,
        path.to_str().unwrap(),
    ]);
    ffmpeg(&args);
    path
}

/// The first clip's signature of every input, by file stem, from one run.
fn signatures(dir: &Path, inputs: &[PathBuf]) -> Vec<(String, Vec<PHash>)> {
    let cfg = pipeline(
        dir,
        "signature.json",
        r#"{"scenes": {"detector": "content"}, "clips": {"min_seconds": 0.5, "max_seconds": 10.0, "trim_seconds": 0.0}, "device": "cpu"}"#,
    );
    let out = dir.join("out");
    let run = framepipe()
        .args(["run", "--pipeline"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .args(inputs)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    inputs
        .iter()
        .map(|input| {
            let stem = input.file_stem().unwrap().to_str().unwrap().to_string();
            let text = std::fs::read_to_string(out.join(&stem).join("clips.jsonl")).unwrap();
            let first: ClipRecord = serde_json::from_str(text.lines().next().unwrap()).unwrap();
            assert_eq!(first.phash.len(), 8, "{stem}: {:?}", first.phash);
            (stem, first.phash)
        })
        .collect()
}

#[test]
fn variants_stay_closer_to_their_source_than_distinct_clips() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut sources: Vec<PathBuf> = SOURCES
        .iter()
        .map(|(name, source)| make_source(dir, name, source))
        .collect();
    if let Some(media) = shared_path("media") {
        let mut shared: Vec<PathBuf> = std::fs::read_dir(&media)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
            .collect();
        shared.sort();
        for (i, video) in shared.iter().take(4).enumerate() {
            let path = dir.join(format!("shared{i}.mp4"));
            ffmpeg(&[
                "-i",
                video.to_str().unwrap(),
                "-t",
                "4",
                "-an",
                "-vf",
                "scale=320:180,setsar=1",
                "-c:v",
                "libx264",
                path.to_str().unwrap(),
            ]);
            sources.push(path);
        }
    }
    // Variants of the first two sources.
    let mut variants = Vec::new();
    for source in &sources[..2] {
        for &variant in VARIANTS {
            variants.push(make_variant(dir, source, variant));
        }
    }
    let all: Vec<PathBuf> = sources.iter().chain(&variants).cloned().collect();
    let signed = signatures(dir, &all);
    let by_stem = |stem: &str| &signed.iter().find(|(s, _)| s == stem).unwrap().1;

    let mut worst_variant = 1.0f64;
    for (source, _) in SOURCES.iter().take(2) {
        for (variant, _, _) in VARIANTS {
            let s = similarity(by_stem(source), by_stem(&format!("{source}-{variant}")));
            eprintln!("{source} vs {variant}: {s:.3}");
            worst_variant = worst_variant.min(s);
            if s < SAME {
                eprintln!("BELOW: {source}-{variant}");
            }
        }
    }
    let mut best_distinct = 0.0f64;
    let stems: Vec<&str> = signed[..sources.len()]
        .iter()
        .map(|(s, _)| s.as_str())
        .collect();
    for (i, a) in stems.iter().enumerate() {
        for b in &stems[i + 1..] {
            let s = similarity(by_stem(a), by_stem(b));
            eprintln!("{a} vs {b}: {s:.3}");
            best_distinct = best_distinct.max(s);
            if s >= SAME {
                eprintln!("ABOVE: {a} {b}");
            }
        }
    }
    eprintln!(
        "least alike variant {worst_variant:.3}, most alike distinct pair {best_distinct:.3}"
    );
}
