//! Model precision: `runtime.precision` / `--precision` reach the models (recorded in the
//! report), bf16 stays close to fp32, the flag wins over the config, bad values are refused.
mod common;

use std::path::{Path, PathBuf};

use common::*;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/framepipe-torch/tests/fixtures/clip-tiny")
}

fn rows(out: &Path) -> Vec<Vec<f32>> {
    let t = read_tensor(&out.join("clip/embeddings.safetensors"), "image_embeds").unwrap();
    t.values.chunks(t.shape[1]).map(|r| r.to_vec()).collect()
}

#[test]
fn bf16_runs_close_to_fp32_and_the_flag_wins() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clip.mp4");
    make_cut_clip(
        &input,
        "320x180",
        &[("testsrc2", 20), ("mandelbrot", 20)],
        false,
        &[],
    );
    let cfg = |precision: &str| {
        pipeline(
            d,
            &format!("{precision}.json"),
            &format!(
                r#"{{"clip": {{"model": {:?}, "labels": ["a", "b"], "sample": {{"every_n_frames": 4}}}}, "runtime": {{"precision": "{precision}"}}, "device": "cpu"}}"#,
                fixture().display().to_string()
            ),
        )
    };
    let mut runs = Vec::new();
    for (name, config, flag) in [
        ("fp32", cfg("fp32"), None),
        ("bf16", cfg("bf16"), None),
        ("flag", cfg("bf16"), Some("fp32")),
    ] {
        let out = d.join(name);
        let mut cmd = framepipe();
        cmd.arg("-q");
        if let Some(p) = flag {
            cmd.args(["--precision", p]);
        }
        let o = cmd
            .args(["run", "--pipeline"])
            .arg(&config)
            .arg("-o")
            .arg(&out)
            .arg(&input)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let precision = report(&out, "clip")["stats"]["device"]["precision"].clone();
        runs.push((precision, rows(&out)));
    }
    assert_eq!(runs[0].0, "fp32");
    assert_eq!(runs[1].0, "bf16");
    assert_eq!(runs[2].0, "fp32", "--precision wins over runtime.precision");
    let worst = runs[0]
        .1
        .iter()
        .zip(&runs[1].1)
        .map(|(a, b)| cosine(a, b))
        .fold(1f32, f32::min);
    eprintln!("bf16 vs fp32 embeddings: worst cosine {worst:.5}");
    assert!(worst > 0.99, "{worst}");
    assert!(worst < 0.999999, "bf16 really ran: {worst}");
    assert_eq!(
        runs[0].1, runs[2].1,
        "the flag's fp32 run equals the config's"
    );

    let bad = pipeline(d, "bad.json", r#"{"runtime": {"precision": "fp8"}}"#);
    let o = run_pipeline(&bad, &d.join("x"), &input);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("fp8"), "{}", stderr(&o));
}
