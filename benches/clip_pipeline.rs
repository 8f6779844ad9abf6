//! Stages overlap: `framepipe run` with CLIP ViT-B/32 (random weights, made once with
//! transformers) on every 15th frame plus x264 encode, against each of them run alone on the same
//! 20 s 1080p30 input (normalized to 720p). Target: wall(both) <= 1.15x the slower one alone.
//! Run: `cargo bench --bench clip_pipeline` (needs transformers in the venv).
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A ViT-B/32-shaped CLIP folder with random weights, and the tiny fixture's tokenizer and a
/// 224-pixel preprocessor config (the tokenizer's ids fit any vocabulary above 1000).
fn vit_b32_folder() -> PathBuf {
    let dir = media_dir().join("clip-vit-b32-random");
    if dir.join("model.safetensors").exists() {
        return dir;
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/framepipe-torch/tests/fixtures/clip-tiny");
    let script = format!(
        "import torch; from transformers import CLIPConfig, CLIPModel, CLIPImageProcessor\n\
         torch.manual_seed(0); m = CLIPModel(CLIPConfig()); m.config.text_config.eos_token_id = 1\n\
         m.save_pretrained({dir:?}); CLIPImageProcessor().save_pretrained({dir:?})",
        dir = dir.display().to_string()
    );
    let python = venv_python();
    let st = Command::new(&python)
        .args(["-c", &script])
        .status()
        .unwrap();
    assert!(
        st.success(),
        "making the random ViT-B/32 folder needs transformers in {}",
        python.display()
    );
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    dir
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let model = vit_b32_folder();
    let input = clip_1080p30_testsrc2(20);
    let bin = framepipe_bin();
    let clip = format!(
        r#"{{"model": {:?}, "labels": ["a test pattern", "a street", "a cat", "a beach"], "sample": {{"every_n_frames": 15}}, "batch_size": 16}}"#,
        model.display().to_string()
    );
    let encode = r#"{"crf": 23, "preset": "medium", "audio": "copy"}"#;
    let configs = [
        (
            "clip alone",
            pipeline(
                "bench-clip-alone.json",
                &format!(r#"{{"clip": {clip}, "device": "cpu"}}"#),
            ),
        ),
        (
            "encode alone",
            pipeline(
                "bench-encode-alone.json",
                &format!(r#"{{"encode": {encode}, "device": "cpu"}}"#),
            ),
        ),
        (
            "clip + encode",
            pipeline(
                "bench-clip-encode.json",
                &format!(r#"{{"clip": {clip}, "encode": {encode}, "device": "cpu"}}"#),
            ),
        ),
    ];
    let mut contenders: Vec<Contender> = configs
        .iter()
        .map(|(name, cfg)| {
            let (bin, cfg, input) = (bin.clone(), cfg.clone(), input.clone());
            let out = media_dir().join("clip-pipeline-out");
            let f: Box<dyn FnMut() -> f64> = Box::new(move || time_run(&bin, &cfg, &input, &out));
            (*name, f)
        })
        .collect();
    let m = interleaved_medians(rounds, &mut contenders);
    println!("machine: {}", machine());
    println!("20 s 1080p30 -> 720p, CLIP ViT-B/32 (random weights, CPU fp32) on every 15th frame:");
    println!("  clip alone:    median {:.2} s", m[0]);
    println!("  encode alone:  median {:.2} s (x264 medium)", m[1]);
    println!(
        "  clip + encode: median {:.2} s, {:.3}x the slower alone (target <= 1.15)",
        m[2],
        m[2] / m[0].max(m[1])
    );
}
