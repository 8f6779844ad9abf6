//! What clips cost: the default pipeline (720p, content scenes, x264 medium, CPU) with a
//! `clips` section (Cosmos-Curate's defaults but 4 s windows, so the 20 s 1080p30 input with a
//! cut every 4 s gives a clip per scene) against the same pipeline without, same input. Clips
//! are cut from the one encode, so the target is a wall-time ratio <= 1.05.
//! Run: `cargo bench --bench clips`.
mod common;

use common::*;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = rounds(3);
    let input = clip_1080p30(20, 4);
    let bin = framepipe_bin();
    let base = r#""normalize": {"resolution": "720p"}, "scenes": {"detector": "content"},
        "encode": {"crf": 23, "preset": "medium", "audio": "copy"}, "device": "cpu""#;
    let without = pipeline("bench-clips-without.json", &format!("{{{base}}}"));
    let with = pipeline(
        "bench-clips-with.json",
        &format!(r#"{{{base}, "clips": {{"max_seconds": 4.0}}}}"#),
    );
    let mut contenders: Vec<Contender> = [("without clips", without), ("with clips", with)]
        .into_iter()
        .map(|(name, cfg)| {
            let (bin, input) = (bin.clone(), input.clone());
            let out = media_dir().join("clips-out");
            let run: Box<dyn FnMut() -> f64> = Box::new(move || time_run(&bin, &cfg, &input, &out));
            (name, run)
        })
        .collect();
    let m = interleaved_medians(rounds, &mut contenders);
    let clips =
        std::fs::read_to_string(media_dir().join("clips-out/cuts-1080p30-20s-every4s/clips.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0);
    println!("machine: {}", machine());
    println!("20 s 1080p30 (a cut every 4 s) -> 720p, content scenes, x264 medium, CPU, medians of {rounds}:");
    println!("  without clips: {:.2} s", m[0]);
    println!(
        "  with clips:    {:.2} s ({clips} clip files): {:.3}x (target <= 1.05)",
        m[1],
        m[1] / m[0]
    );
}
