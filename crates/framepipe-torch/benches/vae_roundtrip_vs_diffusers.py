#!/usr/bin/env python3
"""The Python reference for benches/vae_roundtrip.rs: diffusers' AutoencoderTiny (TAESD shape,
random weights seeded 0, saved to FOLDER so the Rust side loads the very same weights) at WxH,
fp32 on the CPU, PyTorch eager mode, batches of BATCH, THREADS threads. Times the work the two
commands do per batch:
  decode:    stored latents -> 8-bit RGB frames (`framepipe vae decode`);
  roundtrip: 8-bit RGB frames -> latents -> decoded -> 8-bit -> PSNR per frame (the
             `vae_anomalies` check rule and `vae.reconstruction`).
  encode:    8-bit RGB frames -> latents (for comparison: what the roundtrip adds to decode).
Prints {"decode", "encode", "roundtrip": frames/s, "torch": version} (medians over ROUNDS).
Usage: vae_roundtrip_vs_diffusers.py FOLDER THREADS ROUNDS BATCH W H"""
import json
import statistics
import sys
import time

import torch
from diffusers import AutoencoderTiny

folder = sys.argv[1]
threads, rounds, batch, w, h = (int(a) for a in sys.argv[2:7])
torch.set_num_threads(threads)
torch.manual_seed(0)
vae = AutoencoderTiny().eval()  # diffusers' own initialization, seeded
vae.save_pretrained(folder)


def to_8bit(x):
    return ((x + 1) / 2).clamp(0, 1).mul(255).round()


def decode(z):
    return to_8bit(vae.decode(z).sample).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def encode(rgb):
    return vae.encode(rgb.permute(0, 3, 1, 2).float() / 255 * 2 - 1).latents


def roundtrip(rgb):
    x = rgb.permute(0, 3, 1, 2).float() / 255 * 2 - 1
    decoded = to_8bit(vae.decode(vae.encode(x).latents).sample)
    mse = (decoded - rgb.permute(0, 3, 1, 2).float()).square().mean(dim=(1, 2, 3))
    return 10 * torch.log10(255.0 ** 2 / mse.clamp_min(1e-10))


def rate(fn, x):
    with torch.inference_mode():
        fn(x)  # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn(x)
            times.append(x.shape[0] / (time.perf_counter() - start))
    return statistics.median(times)


z = torch.randn(batch, 4, h // 8, w // 8)
rgb = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8)
print(json.dumps({"decode": rate(decode, z), "encode": rate(encode, rgb),
                  "roundtrip": rate(roundtrip, rgb),
                  "torch": torch.__version__}))
