#!/usr/bin/env python3
"""The Python reference for benches/clip.rs: transformers' CLIPModel vision tower + projection
(ViT-B/32 shape, random weights, its default attention, PyTorch eager mode), fp32 on the CPU, batch 16, the same thread
count as the Rust side. Prints {"images_per_second": median over rounds}.
Usage: clip_vs_transformers.py THREADS BATCH ROUNDS"""
import json
import statistics
import sys
import time

import torch
from transformers import CLIPConfig, CLIPModel

threads, batch, rounds = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = CLIPModel(CLIPConfig()).eval()  # defaults are ViT-B/32 with a 512-d projection
pixels = torch.randn(batch, 3, 224, 224)
rates = []
with torch.inference_mode():
    model.get_image_features(pixel_values=pixels)  # warm-up
    for _ in range(rounds):
        start = time.perf_counter()
        model.get_image_features(pixel_values=pixels)
        rates.append(batch / (time.perf_counter() - start))
print(json.dumps({"images_per_second": statistics.median(rates), "torch": torch.__version__}))
