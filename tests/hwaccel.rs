//! `decode.hwaccel: "cuda"`: NVDEC where the machine has it, else CPU decoding with a warning
//! that says why; either way the same frames come out (ffmpeg's framemd5 of the outputs).
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn framemd5(path: &Path) -> String {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-map", "0:v", "-f", "framemd5", "-"])
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.rsplit(',').next().unwrap_or("").trim().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn cuda_hwaccel_decodes_the_same_frames_or_falls_back_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = d.join("clip.mp4");
    make_cut_clip(&input, "640x360", &[("testsrc2", 30)], true, &[]);
    let mut outputs = Vec::new();
    for (name, decode) in [("sw", "none"), ("hw", "cuda")] {
        let cfg = pipeline(
            d,
            &format!("{name}.json"),
            &format!(
                r#"{{"decode": {{"hwaccel": "{decode}"}}, "encode": {{"preset": "ultrafast"}}}}"#
            ),
        );
        let out = d.join(name);
        let o = run_pipeline(&cfg, &out, &input);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let r = report(&out, "clip");
        let warnings: Vec<String> = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_string())
            .collect();
        let decoder = r["stats"]["decoder"].as_str().unwrap().to_string();
        if name == "hw" {
            match decoder.as_str() {
                "nvdec" => assert!(warnings.is_empty(), "{warnings:?}"),
                "cpu" => {
                    assert!(
                        warnings
                            .iter()
                            .any(|w| w.starts_with("decode.hwaccel cuda:")
                                && w.ends_with("decoded on the CPU")),
                        "{warnings:?}"
                    );
                    assert!(stderr(&o).contains("decoding on the CPU"), "{}", stderr(&o));
                }
                other => panic!("decoder {other}"),
            }
            eprintln!("hwaccel cuda: decoder {decoder}, warnings {warnings:?}");
        } else {
            assert_eq!(decoder, "cpu");
            assert!(warnings.is_empty(), "{warnings:?}");
        }
        assert_eq!(probe_output(&out.join("clip/clip.mp4")).frames, 30);
        outputs.push(out.join("clip/clip.mp4"));
    }
    if framemd5(&outputs[0]) != framemd5(&outputs[1]) {
        // NVDEC's output may differ in the last bit of chroma upsampling; on the CPU fallback
        // it is the very same decoder.
        let r = report(&d.join("hw"), "clip");
        assert_eq!(
            r["stats"]["decoder"], "nvdec",
            "CPU fallback must give identical frames"
        );
    }

    let bad = pipeline(d, "bad.json", r#"{"decode": {"hwaccel": "vdpau"}}"#);
    let o = run_pipeline(&bad, &d.join("x"), &input);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vdpau"), "{}", stderr(&o));
}
