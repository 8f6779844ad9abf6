//! `framepipe report` of a 1,000-scene batch: 10 finished outputs of 100 scenes each (2,000
//! frames of 720p H.264 from x264 `ultrafast`, 0.8 s scenes), 3,000 scene thumbnails and one
//! `index.html`. One real `run` makes the first output; the other nine are copies of its folder
//! (the video and thumbnails hard-linked, the report renamed), so the page is built exactly as
//! for ten runs. Measured twice: with the thumbnails the run saved (the page only links them),
//! and as for outputs made before runs saved them (the `thumbnails` lists taken out of the
//! reports: every scene's first, middle and last frame decoded from its video into a JPEG).
//! Prints wall seconds (median of the rounds), the CPU seconds of the report process, and, as
//! the floor decoding cannot beat, `ffmpeg -threads 1` decoding the same ten videos to nothing.
//! Then the cost of saving thumbnails in `run`: the 100-scene clip run with and without
//! `scenes.thumbnails`, interleaved rounds, the ratio of the medians.
//! Run: `cargo build --release && cargo bench --bench report_page` (`FRAMEPIPE_BENCH_ROUNDS`,
//! default 3).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const OUTPUTS: usize = 10;
const SCENES_PER_OUTPUT: usize = 100;
const SCENE_SECONDS: f64 = 0.8;

/// 100 scenes of testsrc2 at 25 fps, each with its own hue and brightness (hard cuts the
/// content detector finds, one per 0.8 s).
fn many_scenes_clip() -> PathBuf {
    let path = media_dir().join("report-100-scenes.mp4");
    if !path.exists() {
        let seconds = SCENES_PER_OUTPUT as f64 * SCENE_SECONDS;
        let tmp = path.with_extension("tmp.mp4");
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size=320x180:rate=25:duration={seconds}"))
            .arg("-vf")
            .arg(format!(
                "hue=h='floor(t/{SCENE_SECONDS})*137':b='mod(floor(t/{SCENE_SECONDS}),3)*1.5-1.5'"
            ))
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
            ])
            .arg(&tmp)
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::rename(tmp, &path).unwrap();
    }
    path
}

const RUN_CONFIG: &str =
    r#"{"scenes": {"detector": "content"}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#;
const RUN_CONFIG_NO_THUMBS: &str = r#"{"scenes": {"detector": "content", "thumbnails": false}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#;

/// The ten outputs with the run's thumbnails, and the same ten as older outputs without them:
/// one real run, copies of its folder.
fn outputs() -> (PathBuf, PathBuf) {
    let root = media_dir().join("report-bench-v2");
    let (with, without) = (root.join("with-thumbs"), root.join("without-thumbs"));
    if without.join(format!("o{}", OUTPUTS - 1)).exists() {
        return (with, without);
    }
    let _ = std::fs::remove_dir_all(&root);
    let cfg = pipeline("report-bench.json", RUN_CONFIG);
    let first = root.join("run");
    time_command(
        Command::new(framepipe_bin())
            .args(["-q", "run", "--pipeline"])
            .arg(&cfg)
            .arg("-o")
            .arg(&first)
            .arg(many_scenes_clip()),
    );
    let made = first.join("report-100-scenes");
    let report = std::fs::read(made.join("report-100-scenes.json")).unwrap();
    let parsed = framepipe::output::report::Report::parse(&report).unwrap();
    assert_eq!(
        parsed.scenes.len(),
        SCENES_PER_OUTPUT,
        "the content detector's scenes"
    );
    assert!(parsed.scenes.iter().all(|s| s.thumbnails.is_some()));
    let mut old: serde_json::Value = serde_json::from_slice(&report).unwrap();
    for scene in old["scenes"].as_array_mut().unwrap() {
        scene.as_object_mut().unwrap().remove("thumbnails");
    }
    let old = serde_json::to_vec_pretty(&old).unwrap();
    for (batch, json, thumbs) in [(&with, &report, true), (&without, &old, false)] {
        for i in 0..OUTPUTS {
            let dir = batch.join(format!("o{i}"));
            std::fs::create_dir_all(dir.join("thumbs")).unwrap();
            std::fs::hard_link(
                made.join("report-100-scenes.mp4"),
                dir.join("report-100-scenes.mp4"),
            )
            .unwrap();
            if thumbs {
                for f in std::fs::read_dir(made.join("thumbs")).unwrap() {
                    let f = f.unwrap().path();
                    std::fs::hard_link(&f, dir.join("thumbs").join(f.file_name().unwrap()))
                        .unwrap();
                }
            }
            std::fs::copy(
                made.join(framepipe::output::files::DONE_MARKER),
                dir.join(framepipe::output::files::DONE_MARKER),
            )
            .unwrap();
            std::fs::write(dir.join(format!("o{i}.json")), json).unwrap();
        }
    }
    (with, without)
}

/// `framepipe report` of `batch` into `page`, `rounds` times: median wall and CPU seconds, and
/// the thumbnails on the page.
fn report_rounds(batch: &Path, page: &Path, rounds: usize, what: &str) -> (f64, f64, usize) {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(page);
        let cpu = children_cpu_seconds();
        let wall = time_command(
            Command::new(framepipe_bin())
                .args(["-q", "report"])
                .arg(batch)
                .arg("-o")
                .arg(page),
        );
        let cpu = children_cpu_seconds() - cpu;
        eprintln!("  {what} round {round}: report {wall:.2} s wall, {cpu:.2} s CPU");
        walls.push(wall);
        cpus.push(cpu);
    }
    let html = std::fs::read_to_string(page.join("index.html")).unwrap();
    let thumbs = html.matches("class=\"thumb thumb-").count();
    (median(walls), median(cpus), thumbs)
}

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn main() {
    let rounds = rounds(3);
    let (with, without) = outputs();
    let root = with.parent().unwrap();
    let (wall, cpu, thumbs) = report_rounds(&with, &root.join("page-linked"), rounds, "linked");
    let (old_wall, old_cpu, old_thumbs) =
        report_rounds(&without, &root.join("page-decoded"), rounds, "decoded");
    assert_eq!(thumbs, 3 * OUTPUTS * SCENES_PER_OUTPUT);
    assert_eq!(old_thumbs, thumbs);

    let decode_cpu = children_cpu_seconds();
    let start = std::time::Instant::now();
    for i in 0..OUTPUTS {
        let video = with.join(format!("o{i}/report-100-scenes.mp4"));
        decode_only(&video);
    }
    let decode_wall = start.elapsed().as_secs_f64();
    let decode_cpu = children_cpu_seconds() - decode_cpu;

    // run with thumbnails against without, interleaved.
    let clip = many_scenes_clip();
    let (on_cfg, off_cfg) = (
        pipeline("report-bench.json", RUN_CONFIG),
        pipeline("report-bench-no-thumbs.json", RUN_CONFIG_NO_THUMBS),
    );
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for (cfg, times, what) in [(&on_cfg, &mut on, "with"), (&off_cfg, &mut off, "without")] {
            let out = root.join(format!("run-{what}"));
            let _ = std::fs::remove_dir_all(&out);
            let t = time_command(
                Command::new(framepipe_bin())
                    .args(["-q", "run", "--pipeline"])
                    .arg(cfg)
                    .arg("-o")
                    .arg(&out)
                    .arg(&clip),
            );
            eprintln!("  run round {round} {what} thumbnails: {t:.2} s");
            times.push(t);
        }
    }
    let (on, off) = (median(on), median(off));

    let scenes = OUTPUTS * SCENES_PER_OUTPUT;
    println!("machine: {}", machine());
    println!(
        "report of {OUTPUTS} outputs, {scenes} scenes, {} frames of 720p, {thumbs} thumbnails:",
        OUTPUTS as u64 * frame_count(&with.join("o0/report-100-scenes.mp4"))
    );
    println!(
        "  framepipe report, thumbnails saved by the run: {wall:.2} s wall (median of {rounds}), {cpu:.2} s CPU"
    );
    println!(
        "  framepipe report, older outputs (thumbnails decoded): {old_wall:.2} s wall, {old_cpu:.2} s CPU"
    );
    println!(
        "  ffmpeg -threads 1 decoding the same videos to null, one after another: {decode_wall:.2} s wall, {decode_cpu:.2} s CPU"
    );
    println!(
        "run of the 100-scene clip: {on:.2} s with thumbnails, {off:.2} s without: {:.3}x (median of {rounds})",
        on / off
    );
}

fn decode_only(video: &Path) {
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-threads", "1", "-i"])
        .arg(video)
        .args(["-f", "null", "-"])
        .status()
        .unwrap();
    assert!(st.success());
}
