//! `framepipe report` of a 1,000-scene batch: 10 finished outputs of 100 scenes each (2,000
//! frames of 720p H.264 from x264 `ultrafast`, 0.8 s scenes), every scene's first, middle and
//! last frame decoded from its output video into a 192-pixel JPEG (3,000 thumbnails) and one
//! `index.html`. One real `run` makes the first output; the other nine are copies of its folder
//! (the video hard-linked, the report renamed), so the page is built exactly as for ten runs.
//! Prints wall seconds (median of the rounds), the CPU seconds of the report process, and, as
//! the floor it cannot beat, `ffmpeg -threads 1` decoding the same ten videos to nothing.
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

/// The ten outputs: one real run, nine copies of its folder.
fn outputs() -> PathBuf {
    let root = media_dir().join("report-bench");
    let batch = root.join("outs");
    if batch.join(format!("o{}", OUTPUTS - 1)).exists() {
        return batch;
    }
    let _ = std::fs::remove_dir_all(&root);
    let cfg = pipeline(
        "report-bench.json",
        r#"{"scenes": {"detector": "content"}, "encode": {"preset": "ultrafast"}, "device": "cpu"}"#,
    );
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
    let scenes = framepipe::report::Report::parse(&report)
        .unwrap()
        .scenes
        .len();
    assert_eq!(scenes, SCENES_PER_OUTPUT, "the content detector's scenes");
    for i in 0..OUTPUTS {
        let dir = batch.join(format!("o{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::hard_link(
            made.join("report-100-scenes.mp4"),
            dir.join("report-100-scenes.mp4"),
        )
        .unwrap();
        std::fs::copy(
            made.join(framepipe::job::DONE_MARKER),
            dir.join(framepipe::job::DONE_MARKER),
        )
        .unwrap();
        std::fs::write(dir.join(format!("o{i}.json")), &report).unwrap();
    }
    batch
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
    let batch = outputs();
    let page = batch.parent().unwrap().join("page");
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    for round in 0..rounds {
        let _ = std::fs::remove_dir_all(&page);
        let cpu = children_cpu_seconds();
        let wall = time_command(
            Command::new(framepipe_bin())
                .args(["-q", "report"])
                .arg(&batch)
                .arg("-o")
                .arg(&page),
        );
        let cpu = children_cpu_seconds() - cpu;
        eprintln!("  round {round}: report {wall:.2} s wall, {cpu:.2} s CPU");
        walls.push(wall);
        cpus.push(cpu);
    }
    let thumbs = std::fs::read_dir(page.join("thumbs"))
        .unwrap()
        .map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum::<usize>();
    assert_eq!(thumbs, 3 * OUTPUTS * SCENES_PER_OUTPUT);

    let decode_cpu = children_cpu_seconds();
    let start = std::time::Instant::now();
    for i in 0..OUTPUTS {
        let video = batch.join(format!("o{i}/report-100-scenes.mp4"));
        decode_only(&video);
    }
    let decode_wall = start.elapsed().as_secs_f64();
    let decode_cpu = children_cpu_seconds() - decode_cpu;

    let scenes = OUTPUTS * SCENES_PER_OUTPUT;
    println!("machine: {}", machine());
    println!(
        "report of {OUTPUTS} outputs, {scenes} scenes, {} frames of 720p, {thumbs} thumbnails:",
        OUTPUTS as u64 * frame_count(&batch.join("o0/report-100-scenes.mp4"))
    );
    println!(
        "  framepipe report: {:.2} s wall (median of {rounds}), {:.2} s CPU",
        median(walls),
        median(cpus)
    );
    println!(
        "  ffmpeg -threads 1 decoding the same videos to null, one after another: {decode_wall:.2} s wall, {decode_cpu:.2} s CPU"
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
