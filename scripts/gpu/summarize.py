#!/usr/bin/env python3
"""Reads the step outputs check.sh left in OUT and prints issue 7's numbers beside their targets
and the same-script PyTorch baselines (steps that did not run, or failed, show as "-").

  summarize.py OUT
"""
import json
import os
import sys


def load(out, name):
    """The JSON a step printed (a whole document, or the last JSON line), else None."""
    path = os.path.join(out, name + ".out")
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        for line in reversed(text.splitlines()):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def stage(models, name):
    if not models:
        return None
    return next((s for s in models.get("stages", []) if s["stage"] == name), None)


def fmt(v, unit="", digits=1):
    return "-" if v is None else f"{v:,.{digits}f}{unit}"


def ratio(a, b):
    return "-" if not a or not b else f"{a / b:.2f}x"


def text_lines(out, name, keep):
    """The lines of a step's text output that `keep` accepts ([] when it did not run)."""
    try:
        return [l.strip() for l in open(os.path.join(out, name + ".out")) if keep(l)]
    except OSError:
        return []


def main(out):
    lines = []
    say = lines.append
    tests = text_lines(out, "cuda-tests", lambda l: l.startswith("test result:") or " FAILED" in l)
    say("cuda test set: " + ("; ".join(tests) if tests else "-"))
    parity = text_lines(out, "parity-compare", lambda l: l.strip() != "")
    say("CUDA vs CPU parity: " + (parity[-1] if parity else "-"))
    for line in parity[:-1]:
        say("  " + line)
    models = load(out, "models-b32-sdvae")
    eager_clip = load(out, "eager-b32") or {}
    compile_clip = load(out, "compile-b32") or {}
    clip = stage(models, "clip") or {}
    say("CLIP ViT-B/32, batch {}, {}:".format(clip.get("batch_size", "-"), (models or {}).get("precision", "-")))
    say(f"  framepipe model {fmt(clip.get('model_fps'))} img/s, device work {fmt(clip.get('device_fps'))}, "
        f"whole stage {fmt(clip.get('stage_fps'))} ({clip.get('picture', '-')} {clip.get('frame_format', '')})")
    say(f"  PyTorch eager {fmt(eager_clip.get('frames_per_second'))} img/s (framepipe model {ratio(clip.get('model_fps'), eager_clip.get('frames_per_second'))}), "
        f"torch.compile {fmt(compile_clip.get('frames_per_second'))} ({ratio(clip.get('model_fps'), compile_clip.get('frames_per_second'))}); "
        "target >= 25,339 img/s (gpu.md, H100 eager)")

    vae = stage(models, "vae") or {}
    native = stage(load(out, "models-sdvae-native-norm"), "vae") or {}
    e4 = load(out, "eager-sdvae-720p-b4") or {}
    e16 = load(out, "eager-sdvae-720p-b16") or {}
    c4 = load(out, "compile-sdvae-720p-b4") or {}
    say(f"SD VAE encoder 720p, batch {vae.get('batch_size', '-')}:")
    say(f"  framepipe model {fmt(vae.get('model_fps'))} frames/s, device work {fmt(vae.get('device_fps'))}, "
        f"whole stage {fmt(vae.get('stage_fps'))}, peak {fmt(vae.get('peak_memory_mib'), ' MiB', 0)}")
    say(f"  PyTorch eager batch 4 {fmt(e4.get('frames_per_second'))}, batch 16 {fmt(e16.get('frames_per_second'))}, "
        f"torch.compile batch 4 {fmt(c4.get('frames_per_second'))} (framepipe model vs best: "
        f"{ratio(vae.get('model_fps'), max([x for x in (e4.get('frames_per_second'), e16.get('frames_per_second'), c4.get('frames_per_second')) if x] or [0]))}); "
        "target >= 54 frames/s")
    say(f"  libtorch's GroupNorm instead of the split form: model {fmt(native.get('model_fps'))} "
        f"(split/native {ratio(vae.get('model_fps'), native.get('model_fps'))})")

    hd = stage(load(out, "models-sdvae-1080p-b4"), "vae") or {}
    e1080 = load(out, "eager-sdvae-1080p-b4") or {}
    say(f"SD VAE 1080p batch 4: framepipe peak {fmt(hd.get('peak_memory_mib'), ' MiB', 0)} "
        f"({fmt(hd.get('model_fps'))} frames/s), PyTorch eager peak {fmt(e1080.get('peak_memory_mib'), ' MiB', 0)} "
        f"({fmt(e1080.get('frames_per_second'))} frames/s); target <= 12,288 MiB")

    for name, label in (
        ("bench-b32-sdvae", "B/32 + SD VAE + x264, 1080p -> 720p"),
        ("bench-b32-taef2", "B/32 + taef2 + x264"),
        ("bench-b32-sdvae-one-stream", "B/32 + SD VAE + x264, one CUDA stream"),
        ("bench-nvdec", "B/32 + SD VAE + x264, NVDEC decode"),
        ("bench-nvdec-device-frames", "B/32 + taef2, no encode, NVDEC frames kept on the GPU"),
        ("bench-nvdec-host-frames", "B/32 + taef2, no encode, NVDEC frames copied to memory"),
    ):
        b = load(out, name)
        if not b:
            say(f"{label}: -")
            continue
        rates = ", ".join(f"{s['stage']} {s['fps']:,.0f}" for s in b.get("stages", []))
        gpu = b.get("gpu") or {}
        say(f"{label}: {fmt(b.get('fps'))} frames/s end to end (target for SD VAE: >= 50), slowest {b.get('slowest')}; "
            f"stages/s: {rates}; GPU {fmt(gpu.get('mean_utilization_pct'), '%', 0)} mean, "
            f"{fmt(gpu.get('max_memory_mib'), ' MiB', 0)} max"
            + (f"; x264 alone {fmt(b['encode_alone_fps'])}" if b.get("encode_alone_fps") else "")
            + (f"; canvases on {b['canvases_on']}" if b.get("canvases_on") else ""))
    kept, copied = load(out, "bench-nvdec-device-frames"), load(out, "bench-nvdec-host-frames")
    if kept and copied:
        say(f"NVDEC frames kept on the GPU vs copied to memory: {ratio(kept.get('fps'), copied.get('fps'))} end to end")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("OUT", "/tmp/gpu-check"))
