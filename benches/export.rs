//! `framepipe export --format webdataset` throughput against `tar -cf` of the same files: 5
//! finished output folders x 100 clips (1 s segments of one generated 640x360 video, ~300 KB
//! each, with a 512-d embedding and tags per record), 100 clips per shard. The baseline archives
//! each folder's MP4s and per-clip JSON files (the records, pre-written) with GNU tar, one tar per
//! folder, so both write 5 shards of the same videos; framepipe also parses and checks
//! `clips.jsonl` and writes the embeddings as .npy members. Reported: MB written per second,
//! medians of interleaved rounds (`FRAMEPIPE_BENCH_ROUNDS`, default 3), outputs removed between
//! rounds, inputs in the page cache after the first. Run: `cargo bench --bench export`.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use framepipe::output::clip_record::{ClipRecord, MotionSource};
use framepipe::output::files::Marker;
use framepipe::output::scene::Tag;

const FOLDERS: usize = 5;
const CLIPS: usize = 100;
const DIM: usize = 512;

/// The 1 s segments of one generated video (made once).
fn segments() -> Vec<PathBuf> {
    let dir = media_dir().join("export-segments");
    let last = dir.join(format!("seg{:03}.mp4", CLIPS - 1));
    if !last.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        eprintln!("generating {} ...", dir.display());
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=640x360:rate=25:duration={CLIPS}"))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "veryfast",
                "-b:v",
                "2400k",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "segment",
                "-segment_time",
                "1",
                "-reset_timestamps",
                "1",
            ])
            .arg(dir.join("seg%03d.mp4"))
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg failed to segment");
    }
    (0..CLIPS)
        .map(|i| dir.join(format!("seg{i:03}.mp4")))
        .collect()
}

/// Five finished output folders under `root` and, under `baseline`, each folder's MP4s and
/// per-clip JSON files for tar.
fn make_outputs(root: &Path, baseline: &Path, segments: &[PathBuf]) {
    if root
        .join(format!("video{}/clips.jsonl", FOLDERS - 1))
        .exists()
    {
        return;
    }
    for f in 0..FOLDERS {
        let stem = format!("video{f}");
        let dir = root.join(&stem);
        let flat = baseline.join(&stem);
        std::fs::create_dir_all(dir.join("clips")).unwrap();
        std::fs::create_dir_all(&flat).unwrap();
        let marker = Marker {
            input: format!("/videos/{stem}.mp4"),
            config_hash: "bench".into(),
            tool_version: "0.1.0".into(),
            frames: (CLIPS * 25) as u64,
            wall_seconds: 1.0,
        };
        std::fs::write(
            dir.join(".framepipe-done.json"),
            serde_json::to_string(&marker).unwrap(),
        )
        .unwrap();
        let mut lines = String::new();
        for (i, seg) in segments.iter().enumerate() {
            let id = format!("{stem}_{i:04}");
            let embedding: Vec<f32> = (0..DIM)
                .map(|d| (((i * DIM + d + f) as f32) * 0.618).sin() / (DIM as f32).sqrt())
                .collect();
            let record = ClipRecord {
                id: id.clone(),
                file: Some(format!("clips/{id}.mp4")),
                scene: i,
                start_frame: (i * 25) as u64,
                end_frame: ((i + 1) * 25) as u64,
                start_time: i as f64,
                end_time: (i + 1) as f64,
                frames: 25,
                motion: 0.01,
                motion_source: MotionSource::MotionVectors,
                tags: Some(vec![
                    Tag {
                        label: "a test pattern".into(),
                        score: 0.9,
                    },
                    Tag {
                        label: "a clock".into(),
                        score: 0.1,
                    },
                ]),
                embedding: Some(embedding),
                latents: None,
                blank: Some(0.0),
                frozen: Some(0.0),
                phash: (0..16u64)
                    .map(|f| framepipe::clips::signature::PHash(0x9e37_79b9_7f4a_7c15 ^ (f << 7)))
                    .collect(),
                text: None,
                heads: Default::default(),
                dropped: Vec::new(),
                caption: None,
                caption_model: None,
                caption_settings: None,
                caption_error: None,
            };
            let json = serde_json::to_string(&record).unwrap();
            lines.push_str(&json);
            lines.push('\n');
            std::fs::copy(seg, dir.join(format!("clips/{id}.mp4"))).unwrap();
            std::fs::copy(seg, flat.join(format!("{id}.mp4"))).unwrap();
            std::fs::write(flat.join(format!("{id}.json")), json).unwrap();
        }
        std::fs::write(dir.join("clips.jsonl"), lines).unwrap();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let bin = framepipe_bin();
    let segments = segments();
    let root = media_dir().join("export-outputs");
    let baseline = media_dir().join("export-baseline");
    make_outputs(&root, &baseline, &segments);
    let fp_out = media_dir().join("export-out-framepipe");
    let tar_out = media_dir().join("export-out-tar");

    let mut contenders: Vec<Contender> = vec![
        ("framepipe export", {
            let (bin, root, out) = (bin.clone(), root.clone(), fp_out.clone());
            Box::new(move || {
                let _ = std::fs::remove_dir_all(&out);
                time_command(
                    Command::new(&bin)
                        .arg("-q")
                        .arg("export")
                        .arg(&root)
                        .arg("-o")
                        .arg(&out)
                        .args(["--format", "webdataset", "--clips-per-shard"])
                        .arg(CLIPS.to_string()),
                )
            })
        }),
        ("tar -cf", {
            let (baseline, out) = (baseline.clone(), tar_out.clone());
            Box::new(move || {
                let _ = std::fs::remove_dir_all(&out);
                std::fs::create_dir_all(&out).unwrap();
                // One tar per folder, in sorted member order like the export's.
                let script = (0..FOLDERS)
                    .map(|f| {
                        format!(
                            "tar -cf {out}/shard-{f:06}.tar --sort=name -C {src} .",
                            out = out.display(),
                            src = baseline.join(format!("video{f}")).display()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" && ");
                time_command(Command::new("sh").args(["-c", &script]))
            })
        }),
    ];
    let medians = interleaved_medians(rounds, &mut contenders);
    let fp_mb = dir_bytes(&fp_out) as f64 / 1e6;
    let tar_mb = dir_bytes(&tar_out) as f64 / 1e6;
    let (fp_rate, tar_rate) = (fp_mb / medians[0], tar_mb / medians[1]);
    println!("machine: {}", machine());
    println!(
        "{} clips in {FOLDERS} outputs, {} shards of {CLIPS} clips:",
        FOLDERS * CLIPS,
        FOLDERS
    );
    println!(
        "  framepipe export --format webdataset: {fp_mb:.1} MB in {:.3} s = {fp_rate:.0} MB/s",
        medians[0]
    );
    println!(
        "  tar -cf (mp4 + json):                 {tar_mb:.1} MB in {:.3} s = {tar_rate:.0} MB/s",
        medians[1]
    );
    println!("  ratio (framepipe / tar MB/s): {:.2}", fp_rate / tar_rate);
}
