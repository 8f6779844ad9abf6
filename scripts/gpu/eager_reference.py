#!/usr/bin/env python3
"""PyTorch-only baselines for the device check: the CLIP vision tower + projection
(transformers' CLIPVisionModelWithProjection) and the AutoencoderKL encoder + quant_conv
(diffusers' Encoder), written with plain torch.nn ops the way those libraries run them in eager
mode (F.scaled_dot_product_attention, nn.GroupNorm, nn.Conv2d), loading the checkpoints'
tensor names. The GPU machine has torch but not transformers or diffusers, so this file lets the
check time framepipe against PyTorch eager (and torch.compile) in the same script on the same
card instead of against numbers from another machine.

  eager_reference.py check FIXTURES       parity with the committed transformers/diffusers
                                          references (tests/fixtures); exit 1 if off
  eager_reference.py bench clip|vae MODEL_DIR [--device cuda:0] [--dtype fp16] [--batch N]
                                          [--size WxH] [--seconds S] [--compile]
                                          one JSON line: frames/s over the median call

Only torch is imported (safetensors files are read with the standard library).
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        start, end = v["data_offsets"]
        buf = bytearray(data[8 + n + start : 8 + n + end])
        out[name] = torch.frombuffer(buf, dtype=DTYPES[v["dtype"]]).reshape(v["shape"]).clone()
    return out


def weights_in(folder, names):
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return read_safetensors(path)
    raise SystemExit(f"{folder}: none of {names}")


# --- CLIP vision tower ------------------------------------------------------------------------


class ClipVision:
    """transformers' CLIPVisionTransformer + visual_projection, normalized like CLIPModel."""

    def __init__(self, folder):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        v = cfg.get("vision_config", cfg)
        self.heads = v["num_attention_heads"]
        self.layers = v["num_hidden_layers"]
        self.eps = v.get("layer_norm_eps", 1e-5)
        self.patch = v["patch_size"]
        act = v.get("hidden_act", "quick_gelu")
        self.act = {
            "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),
            "gelu": F.gelu,
            "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
            "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
        }[act]
        w = weights_in(folder, ["model.safetensors"])
        self.w = {k: t for k, t in w.items() if k.startswith("vision_model.") or k == "visual_projection.weight"}

    def to(self, device, dtype):
        self.w = {k: t.to(device=device, dtype=dtype) for k, t in self.w.items()}
        return self

    def ln(self, x, name):
        return F.layer_norm(x, x.shape[-1:], self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    def lin(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))

    def __call__(self, pixels):
        w, p = self.w, "vision_model."
        x = F.conv2d(pixels, w[p + "embeddings.patch_embedding.weight"], stride=self.patch)
        x = x.flatten(2).transpose(1, 2)
        cls = w[p + "embeddings.class_embedding"].expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + w[p + "embeddings.position_embedding.weight"]
        x = self.ln(x, p + "pre_layrnorm")
        n, l, d = x.shape
        for i in range(self.layers):
            q = f"{p}encoder.layers.{i}."
            h = self.ln(x, q + "layer_norm1")
            heads = lambda t: t.view(n, l, self.heads, d // self.heads).transpose(1, 2)
            a = F.scaled_dot_product_attention(
                heads(self.lin(h, q + "self_attn.q_proj")),
                heads(self.lin(h, q + "self_attn.k_proj")),
                heads(self.lin(h, q + "self_attn.v_proj")),
            )
            x = x + self.lin(a.transpose(1, 2).reshape(n, l, d), q + "self_attn.out_proj")
            h = self.lin(self.act(self.lin(self.ln(x, q + "layer_norm2"), q + "mlp.fc1")), q + "mlp.fc2")
            x = x + h
        pooled = self.ln(x[:, 0], p + "post_layernorm")
        e = self.lin(pooled, "visual_projection")
        return e / e.norm(dim=-1, keepdim=True)


# --- AutoencoderKL encoder --------------------------------------------------------------------


class KlEncoder:
    """diffusers' Encoder (double_z) + quant_conv; returns the posterior mean, shifted and
    scaled by the config's shift_factor and scaling_factor as framepipe stores latents."""

    def __init__(self, folder):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        self.channels = cfg["block_out_channels"]
        self.per_block = cfg.get("layers_per_block", 2)
        self.groups = cfg.get("norm_num_groups", 32)
        self.latent = cfg.get("latent_channels", 4)
        self.quant = cfg.get("use_quant_conv", True)
        self.attention = cfg.get("mid_block_add_attention", True)
        self.scale = cfg.get("scaling_factor", 0.18215)
        self.shift = cfg.get("shift_factor") or 0.0
        w = weights_in(folder, ["diffusion_pytorch_model.safetensors", "model.safetensors"])
        self.w = {k: t for k, t in w.items() if k.startswith("encoder.") or k.startswith("quant_conv.")}

    def to(self, device, dtype):
        self.w = {k: t.to(device=device, dtype=dtype) for k, t in self.w.items()}
        return self

    def conv(self, x, name, stride=1, padding=1):
        return F.conv2d(x, self.w[name + ".weight"], self.w.get(name + ".bias"), stride, padding)

    def norm_silu(self, x, name):
        x = F.group_norm(x, self.groups, self.w[name + ".weight"], self.w[name + ".bias"], 1e-6)
        return F.silu(x)

    def resnet(self, x, name):
        h = self.conv(self.norm_silu(x, name + ".norm1"), name + ".conv1")
        h = self.conv(self.norm_silu(h, name + ".norm2"), name + ".conv2")
        if name + ".conv_shortcut.weight" in self.w:
            x = self.conv(x, name + ".conv_shortcut", padding=0)
        return x + h

    def attn(self, x, name):
        n, c, hh, ww = x.shape
        h = F.group_norm(x, self.groups, self.w[name + ".group_norm.weight"], self.w[name + ".group_norm.bias"], 1e-6)
        h = h.view(n, c, hh * ww).transpose(1, 2)
        lin = lambda t, k: F.linear(t, self.w[f"{name}.{k}.weight"], self.w[f"{name}.{k}.bias"])
        a = F.scaled_dot_product_attention(
            lin(h, "to_q").unsqueeze(1), lin(h, "to_k").unsqueeze(1), lin(h, "to_v").unsqueeze(1)
        ).squeeze(1)
        a = lin(a, "to_out.0").transpose(1, 2).reshape(n, c, hh, ww)
        return x + a

    def __call__(self, x):
        e = "encoder."
        x = self.conv(x, e + "conv_in")
        for i in range(len(self.channels)):
            for j in range(self.per_block):
                x = self.resnet(x, f"{e}down_blocks.{i}.resnets.{j}")
            if i < len(self.channels) - 1:
                x = self.conv(F.pad(x, (0, 1, 0, 1)), f"{e}down_blocks.{i}.downsamplers.0.conv", stride=2, padding=0)
        x = self.resnet(x, e + "mid_block.resnets.0")
        if self.attention:
            x = self.attn(x, e + "mid_block.attentions.0")
        x = self.resnet(x, e + "mid_block.resnets.1")
        x = self.conv(self.norm_silu(x, e + "conv_norm_out"), e + "conv_out")
        if self.quant:
            x = self.conv(x, "quant_conv", padding=0)
        return (x[:, : self.latent] - self.shift) * self.scale


# --- modes ------------------------------------------------------------------------------------


def check(fixtures):
    ok = True
    with torch.no_grad():
        ref = read_safetensors(os.path.join(fixtures, "clip-tiny/reference.safetensors"))
        got = ClipVision(os.path.join(fixtures, "clip-tiny"))(ref["pixel_values"])
        d = (got - ref["image_embeds"]).abs().max().item()
        print(f"clip image_embeds vs transformers: max abs diff {d:.3g}")
        ok &= d < 1e-5
        ref = read_safetensors(os.path.join(fixtures, "vae-kl-tiny/reference.safetensors"))
        enc = KlEncoder(os.path.join(fixtures, "vae-kl-tiny"))
        d = (enc(ref["input"]) - ref["latents_mean"]).abs().max().item()
        print(f"vae latents (mean, scaled) vs diffusers: max abs diff {d:.3g}")
        ok &= d < 1e-5
    print("REFERENCE", "OK" if ok else "FAILED")
    return 0 if ok else 1


def bench(args):
    device = torch.device(args.device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.model == "clip":
        model = ClipVision(args.folder).to(device, dtype)
        side = json.load(open(os.path.join(args.folder, "config.json")))["vision_config"].get("image_size", 224)
        x = torch.randn(args.batch, 3, side, side, device=device, dtype=dtype)
    else:
        model = KlEncoder(args.folder).to(device, dtype)
        w, h = (int(v) for v in args.size.split("x"))
        x = torch.rand(args.batch, 3, h, w, device=device, dtype=dtype) * 2 - 1
    fn = torch.compile(model.__call__) if args.compile else model.__call__
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(3):
            fn(x).float().cpu()
        warm = time.perf_counter() - t0
        started = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - started < args.seconds:
            t = time.perf_counter()
            fn(x).float().cpu()  # results back on the host, as framepipe's calls end
            sync()
            times.append(time.perf_counter() - t)
    median = statistics.median(times)
    print(json.dumps({
        "model": args.model, "impl": "torch.compile" if args.compile else "eager",
        "torch": torch.__version__, "device": str(device), "dtype": args.dtype,
        "batch": args.batch, "size": args.size if args.model == "vae" else None,
        "frames_per_second": args.batch / median, "calls": len(times),
        "warmup_seconds": round(warm, 2),
        "peak_memory_mib": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
    }))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("check")
    c.add_argument("fixtures")
    b = sub.add_parser("bench")
    b.add_argument("model", choices=["clip", "vae"])
    b.add_argument("folder")
    b.add_argument("--device", default="cuda:0")
    b.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--size", default="1280x720")
    b.add_argument("--seconds", type=float, default=5.0)
    b.add_argument("--compile", action="store_true")
    args = ap.parse_args()
    if args.mode == "check":
        return check(args.fixtures)
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
