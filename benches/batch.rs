//! `framepipe batch` throughput: 200 short clips with `--jobs 2` against `--jobs 1` on the same
//! machine (target >= 1.6x on 2 cores, models off), and the cost per already-done input when a
//! finished batch is rerun (target <= 5 ms). Run: `cargo bench --bench batch`.
mod common;

use std::process::Command;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let bin = framepipe_bin();
    let dir = media_dir().join("batch-inputs");
    if !dir.join("group9/clip19.mp4").exists() {
        let seed = media_dir().join("batch-seed.mp4");
        let st = Command::new("ffmpeg")
            .args([
                "-v",
                "error",
                "-y",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=25:duration=1",
            ])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            ])
            .arg(&seed)
            .status()
            .unwrap();
        assert!(st.success());
        for i in 0..200 {
            let folder = dir.join(format!("group{}", i % 10));
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::copy(&seed, folder.join(format!("clip{}.mp4", i / 10))).unwrap();
        }
    }
    let cfg = pipeline(
        "bench-batch.json",
        r#"{"scenes": {}, "encode": {"preset": "veryfast"}, "device": "cpu"}"#,
    );
    let contender = |jobs: &'static str, out: std::path::PathBuf| -> Box<dyn FnMut() -> f64> {
        let (bin, cfg, dir) = (bin.clone(), cfg.clone(), dir.clone());
        Box::new(move || {
            let _ = std::fs::remove_dir_all(&out);
            time_command(
                Command::new(&bin)
                    .args(["-q", "batch", "-j", jobs, "--pipeline"])
                    .arg(&cfg)
                    .arg("-o")
                    .arg(&out)
                    .arg(&dir),
            )
        })
    };
    let out2 = media_dir().join("batch-out-2");
    let mut contenders: Vec<Contender> = vec![
        (
            "batch -j 1",
            contender("1", media_dir().join("batch-out-1")),
        ),
        ("batch -j 2", contender("2", out2.clone())),
    ];
    let m = interleaved_medians(rounds, &mut contenders);
    // Rerun over finished outputs: everything is skipped.
    let mut resume = Vec::new();
    for _ in 0..rounds {
        resume.push(time_command(
            Command::new(&bin)
                .args(["-q", "batch", "--pipeline"])
                .arg(&cfg)
                .arg("-o")
                .arg(&out2)
                .arg(&dir),
        ));
    }
    let resume = median(resume);
    println!("machine: {}", machine());
    println!("200 clips (320x240, 1 s), scenes + x264 veryfast 720p:");
    println!(
        "  -j 1: median {:.2} s ({:.1} inputs/s)",
        m[0],
        200.0 / m[0]
    );
    println!(
        "  -j 2: median {:.2} s ({:.1} inputs/s), speed-up {:.2}x (target >= 1.6x)",
        m[1],
        200.0 / m[1],
        m[0] / m[1]
    );
    println!("rerun over 200 done inputs: median {:.3} s = {:.2} ms per input, process start included (target <= 5 ms)", resume, resume * 1000.0 / 200.0);
}
