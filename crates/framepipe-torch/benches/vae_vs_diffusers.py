#!/usr/bin/env python3
"""The Python reference for benches/vae.rs: diffusers' AutoencoderKL encoder (SD shape
128/256/512/512, random weights) at 256x256 and AutoencoderTiny's encoder (TAESD shape) at
1280x720, fp32 on the CPU, PyTorch eager mode, batch 1, the same thread count as the Rust side.
Prints {"kl_256": frames/s, "tiny_720p": frames/s} (medians over rounds).
Usage: vae_vs_diffusers.py THREADS ROUNDS"""
import json
import statistics
import sys
import time

import torch
from diffusers import AutoencoderKL, AutoencoderTiny

threads, rounds = (int(a) for a in sys.argv[1:3])
torch.set_num_threads(threads)
torch.manual_seed(0)


def rate(fn, x):
    with torch.inference_mode():
        fn(x)  # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            fn(x)
            times.append(x.shape[0] / (time.perf_counter() - start))
    return statistics.median(times)


kl = AutoencoderKL(block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                   down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                   latent_channels=4).eval()
tiny = AutoencoderTiny().eval()
out = {
    "kl_256": rate(lambda x: kl.encode(x).latent_dist.mean, torch.randn(1, 3, 256, 256)),
    "tiny_720p": rate(lambda x: tiny.encode(x).latents, torch.rand(1, 3, 720, 1280)),
    "torch": torch.__version__,
}
print(json.dumps(out))
