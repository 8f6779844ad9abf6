#!/usr/bin/env bash
# The device check for issues 3, 4, 7 and 8, run on the GPU machine from the repository root
# with .gpu-bundle carried (made by scripts/gpu/prepare.sh); results go to $OUT (summary.txt plus
# one .out/.err per step). DEVICE=cpu runs the same steps on a CPU machine (a dry run of this
# script). Steps have their own timeouts.
#
#   bash scripts/gpu/check.sh core    parity, model stages vs PyTorch eager, 1080p memory, the
#                                     end-to-end benches (about 5 minutes: one device call)
#   bash scripts/gpu/check.sh extra   A/B switches (GroupNorm, streams), NVDEC, torch.compile
#                                     baselines (about 5 minutes: a second call, if time is left)
#   bash scripts/gpu/check.sh         both
# The last step (summarize.py) prints issue 7's numbers beside their targets and baselines.
# Random models live in $WORK (default /tmp/framepipe-gpu-check) and are made only once, so a
# second call on the still-warm machine starts at once.
#
# 1. devices; random-weight ViT-B/32 and SD VAE folders made on the device (make-random-model)
# 2. the `cuda` test set (crates/framepipe-torch/tests/cuda.rs, bundled); CUDA vs CPU with the
#    fixtures through the CLI: CLIP embeddings (cosine >= 0.999, fp16), VAE latents (max abs
#    diff <= 2e-2 on latents of magnitude ~1, fp16), search results (same rows, |score
#    diff| <= 2e-3)
#    SD-shaped KL latents (fp16, split GroupNorm+SiLU; and libtorch's GroupNorm on CUDA) vs CPU;
#    NVDEC frames kept on the GPU (runtime.device_frames) vs swscale canvases on the same device
# 3. framepipe bench --models (B/32 batch 256, SD VAE 720p auto batch: model alone, device work,
#    whole stage) beside PyTorch eager of the same models (eager_reference.py); SD VAE with
#    libtorch's GroupNorm; framepipe bench, 8 s 1080p30 H.264 -> 720p: CLIP B/32 + SD VAE on
#    every frame + x264; the same with taef2; B/32 + SD VAE with all stages on one stream;
#    SD VAE at 1080p batch 4 (GPU memory); NVDEC decode (decode.hwaccel); B/32 + taef2 without
#    encode, NVDEC frames kept on the GPU against copied to memory; torch.compile baselines last
set -uo pipefail
cd "$(dirname "$0")/../.."
B=.gpu-bundle/run.sh
D=.gpu-bundle/data
DEV=${DEVICE:-cuda:0}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
PART=${1:-all}
case "$PART" in core|extra|all) ;; *) echo "usage: check.sh [core|extra|all]" >&2; exit 2;; esac
W=${WORK:-/tmp/framepipe-gpu-check}
mkdir -p "$W"
FIX=crates/framepipe-torch/tests/fixtures
for f in .gpu-bundle/framepipe.xz .gpu-bundle/data/libframepipe_torch.so.xz .gpu-bundle/data/cuda-tests.xz; do
  [ -f "$f" ] && xz -d -k -f "$f" && rm -f "$f"
done
: > "$OUT/summary.txt"
note() { echo "$*" | tee -a "$OUT/summary.txt"; }
step() { # step NAME TIMEOUT CMD...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s.%N)
  timeout "$limit" "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
  local rc=$?
  note "== $name rc=$rc $(echo "$(date +%s.%N) - $t0" | bc 2>/dev/null || true)s"
  tail -n 40 "$OUT/$name.out" >> "$OUT/summary.txt"
  [ $rc -eq 0 ] || tail -n 5 "$OUT/$name.err" >> "$OUT/summary.txt"
  return 0
}

step devices 60 $B devices
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >> "$OUT/summary.txt" 2>&1 || true

mkdir -p "$W/b32" "$W/sdvae" "$W/kl-small"
# The fixture's tokenizer (small vocabulary, valid ids) stands in for CLIP's 3.6 MB one.
cp scripts/gpu/models/clip-vit-b32/* "$FIX/clip-tiny/tokenizer.json" "$FIX/clip-tiny/tokenizer_config.json" "$W/b32/"
cp scripts/gpu/models/sd-vae/config.json "$W/sdvae/"
cp scripts/gpu/models/kl-small/config.json "$W/kl-small/"
for m in b32 sdvae kl-small; do
  ls "$W/$m"/*.safetensors > /dev/null 2>&1 || step "random-$m" 120 $B make-random-model "$W/$m"
done

cat > "$W/parity.json" <<JSON
{"scenes": {}, "clip": {"model": "$PWD/$FIX/clip-tiny", "labels": ["a cat", "a street", "color bars"], "sample": {"every_n_frames": 10}},
 "vae": {"model": "$PWD/$FIX/vae-tiny-tiny", "dtype": "f32", "every_n_frames": 10}, "encode": {"preset": "veryfast"}}
JSON

# --- 3. Throughput ------------------------------------------------------------------------
cat > "$W/b32-sdvae.json" <<JSON
{"clip": {"model": "$W/b32", "labels": ["a test pattern", "a street", "a cat", "a beach"], "sample": {"every_n_frames": 1}, "batch_size": 64},
 "vae": {"model": "$W/sdvae", "batch_size": "auto", "every_n_frames": 1}, "encode": {}, "runtime": {"queue_frames": 64}}
JSON
cat > "$W/b32-taef2.json" <<JSON
{"clip": {"model": "$W/b32", "labels": ["a test pattern", "a street", "a cat", "a beach"], "sample": {"every_n_frames": 1}, "batch_size": 64},
 "vae": {"model": "$PWD/$D/taef2", "batch_size": "auto", "every_n_frames": 1}, "encode": {}, "runtime": {"queue_frames": 64}}
JSON
cat > "$W/sdvae-720p.json" <<JSON
{"vae": {"model": "$W/sdvae", "batch_size": "auto", "every_n_frames": 1}, "runtime": {"queue_frames": 64}}
JSON
cat > "$W/sdvae-1080p.json" <<JSON
{"normalize": {"resolution": "1080p"}, "vae": {"model": "$W/sdvae", "batch_size": 4, "every_n_frames": 1}}
JSON
# Model stages only (no encode, no scenes): NVDEC's frames stay on the GPU (device_frames
# auto), against the same pipeline copying them to memory for swscale.
for frames in auto off; do
cat > "$W/b32-taef2-nvdec-$frames.json" <<JSON
{"decode": {"hwaccel": "cuda"}, "clip": {"model": "$W/b32", "labels": ["a test pattern", "a street"], "sample": {"every_n_frames": 1}, "batch_size": 64},
 "vae": {"model": "$PWD/$D/taef2", "batch_size": "auto", "every_n_frames": 1}, "runtime": {"queue_frames": 64, "device_frames": "$frames"}}
JSON
done
cat > "$W/b32-sdvae-nvdec.json" <<JSON
{"decode": {"hwaccel": "cuda"}, "clip": {"model": "$W/b32", "labels": ["a test pattern", "a street"], "sample": {"every_n_frames": 1}, "batch_size": 64},
 "vae": {"model": "$W/sdvae", "batch_size": "auto", "every_n_frames": 1}, "encode": {}, "runtime": {"queue_frames": 64}}
JSON
# The model stages alone (bench --models: model / device work / whole stage, on 720p canvases of
# a 1080p source), against PyTorch eager on the same card in the same script
# (eager_reference.py: plain-torch CLIP vision tower and SD VAE encoder, checked against
# transformers/diffusers by tests/gpu_kit.rs). CLIP at gpu.md's batch 256.
cat > "$W/models.json" <<JSON
{"clip": {"model": "$W/b32", "labels": ["a test pattern"], "batch_size": 256},
 "vae": {"model": "$W/sdvae", "batch_size": "auto"}, "runtime": {"queue_frames": 256}}
JSON
ER=scripts/gpu/eager_reference.py
V=( "$D/media/in-1080p30.mp4" )

core() {
  # --- 2. CUDA vs CPU on the fixtures -----------------------------------------------------
  # The `cuda` test set (crates/framepipe-torch/tests/cuda.rs: fp16 CUDA against fp32 CPU,
  # streams, out-of-memory, batch planning); FRAMEPIPE_REQUIRE_CUDA fails it rather than skip.
  chmod +x .gpu-bundle/data/cuda-tests
  # (The CPU dry run runs the comparisons with the CPU standing in for the GPU.)
  local require=1 on=cuda; [ "$DEV" = cpu ] && require=0 on=cpu
  step cuda-tests 180 env FRAMEPIPE_REQUIRE_CUDA=$require FRAMEPIPE_CUDA_TESTS_ON=$on FRAMEPIPE_FIXTURES="$PWD/$FIX" \
    LD_LIBRARY_PATH="$(python3 -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')" \
    .gpu-bundle/data/cuda-tests --test-threads=1
  rm -rf "$W"/p-cpu "$W"/p-dev "$W"/n-dev "$W"/k-cpu "$W"/k-dev "$W"/k-native
  step parity-cpu 180 $B -q run --device cpu --pipeline "$W/parity.json" -o "$W/p-cpu" "$D/media/in-1080p30.mp4"
  step parity-dev 180 $B -q run --device "$DEV" --pipeline "$W/parity.json" -o "$W/p-dev" "$D/media/in-1080p30.mp4"
  # The same models on canvases that libtorch made from NVDEC's surfaces in GPU memory (no
  # scenes, no encode: device_frames auto keeps the frames there); the dry run forces the
  # device canvases on the CPU instead.
  local frames=auto; [ "$DEV" = cpu ] && frames=on
  cat > "$W/parity-nvdec.json" <<JSON
{"decode": {"hwaccel": "cuda"}, "clip": {"model": "$PWD/$FIX/clip-tiny", "labels": ["a cat", "a street", "color bars"], "sample": {"every_n_frames": 10}},
 "vae": {"model": "$PWD/$FIX/vae-tiny-tiny", "dtype": "f32", "every_n_frames": 10}, "runtime": {"device_frames": "$frames"}}
JSON
  step parity-nvdec-dev 180 $B -q run --device "$DEV" --pipeline "$W/parity-nvdec.json" -o "$W/n-dev" "$D/media/in-1080p30.mp4"
  # An SD-shaped KL VAE (fp16 on CUDA through the split GroupNorm+SiLU, fp32 libtorch GroupNorm on
  # the CPU), and on CUDA once more with libtorch's GroupNorm: the two CUDA paths must agree too.
  # (The split form is the CUDA default; forcing it makes the CPU dry run compare it as well.)
  cat > "$W/parity-kl.json" <<JSON
{"vae": {"model": "$W/kl-small", "dtype": "f32", "every_n_frames": 30}}
JSON
  step parity-kl-cpu 180 $B -q run --device cpu --pipeline "$W/parity-kl.json" -o "$W/k-cpu" "$D/media/in-1080p30.mp4"
  step parity-kl-dev 120 env FRAMEPIPE_GROUP_NORM=split $B -q run --device "$DEV" --pipeline "$W/parity-kl.json" -o "$W/k-dev" "$D/media/in-1080p30.mp4"
  step parity-kl-native 120 env FRAMEPIPE_GROUP_NORM=native $B -q run --device "$DEV" --pipeline "$W/parity-kl.json" -o "$W/k-native" "$D/media/in-1080p30.mp4"
  step search-cpu 120 $B -q search "$W/p-cpu" --device cpu --model "$FIX/clip-tiny" --text "a cat" --text "color bars" --frames --top 30 --format json
  step search-dev 120 $B -q search "$W/p-cpu" --device "$DEV" --model "$FIX/clip-tiny" --text "a cat" --text "color bars" --frames --top 30 --format json
  cat > "$W/compare.py" <<'PY'
import json, struct, sys, torch
def st(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8+n]); out = {}
    for k, v in h.items():
        if k == "__metadata__": continue
        dt = {"F16": torch.float16, "F32": torch.float32, "I64": torch.int64}[v["dtype"]]
        s, e = v["data_offsets"]; out[k] = torch.frombuffer(bytearray(b[8+n+s:8+n+e]), dtype=dt).reshape(v["shape"])
    return out
w = sys.argv[1]; ok = True
a = st(f"{w}/p-cpu/in-1080p30/embeddings.safetensors")["image_embeds"].float()
b = st(f"{w}/p-dev/in-1080p30/embeddings.safetensors")["image_embeds"].float()
cos = torch.nn.functional.cosine_similarity(a, b).min().item()
print(f"clip embeddings cuda vs cpu: {a.shape[0]} rows, min cosine {cos:.5f} (limit 0.999)"); ok &= cos >= 0.999
la = st(f"{w}/p-cpu/in-1080p30/latents/000000.safetensors")["latents"]
lb = st(f"{w}/p-dev/in-1080p30/latents/000000.safetensors")["latents"]
d = (la - lb).abs().max().item(); m = la.abs().max().item()
print(f"vae latents cuda vs cpu: max abs diff {d:.4g} (latents up to {m:.3g}; limit 2e-2)"); ok &= d <= 2e-2
ka = st(f"{w}/k-cpu/in-1080p30/latents/000000.safetensors")["latents"]
for name in ("k-dev", "k-native"):
    kb = st(f"{w}/{name}/in-1080p30/latents/000000.safetensors")["latents"]
    d = (ka - kb).abs().max().item(); m = ka.abs().max().item()
    print(f"SD-shaped KL latents {name} vs cpu fp32: max abs diff {d:.4g} (latents up to {m:.3g}; limit 2e-2)"); ok &= d <= 2e-2
# NVDEC frames kept on the GPU: canvases by libtorch (bicubic) instead of swscale (bicubic with
# its own taps), so near, not equal: embeddings cosine >= 0.999, latents cosine >= 0.995 per frame.
r = json.load(open(f"{w}/n-dev/in-1080p30/in-1080p30.json"))
print(f"device frames: decoder {r['stats']['decoder']}, canvases on {r['stats']['canvases_on']}, "
      f"{r['stats']['frames_in_gpu_memory']} of {r['stats']['frames']} frames never left GPU memory")
ok &= r["stats"]["canvases_on"] is not None
if sys.argv[2:] != ["cpu"]:
    ok &= r["stats"]["decoder"] == "nvdec" and r["stats"]["frames_in_gpu_memory"] == r["stats"]["frames"]
na = st(f"{w}/n-dev/in-1080p30/embeddings.safetensors")["image_embeds"].float()
cos = torch.nn.functional.cosine_similarity(na, b).min().item()
print(f"clip embeddings, device frames vs swscale canvases: {na.shape[0]} rows, min cosine {cos:.5f} (limit 0.999)"); ok &= cos >= 0.999 and na.shape == b.shape
ln = st(f"{w}/n-dev/in-1080p30/latents/000000.safetensors")["latents"]
cos = torch.nn.functional.cosine_similarity(ln.flatten(1), lb.flatten(1)).min().item()
print(f"vae latents, device frames vs swscale canvases: min cosine {cos:.5f} (limit 0.995)"); ok &= cos >= 0.995
sa = json.load(open(f"{w}/search-cpu.json")); sb = json.load(open(f"{w}/search-dev.json"))
for qa, qb in zip(sa["results"], sb["results"]):
    diffs = [abs(x["score"] - y["score"]) for x, y in zip(qa["hits"], qb["hits"])]
    same = sum(x["frame"] == y["frame"] for x, y in zip(qa["hits"], qb["hits"]))
    print(f"search '{qa['query']}': {same}/{len(qa['hits'])} same rows, max |score diff| {max(diffs):.2e} (limit 2e-3)")
    ok &= max(diffs) <= 2e-3
print("PARITY", "OK" if ok else "FAILED")
PY
  cp "$OUT/search-cpu.out" "$W/search-cpu.json"; cp "$OUT/search-dev.out" "$W/search-dev.json"
  step parity-compare 60 python3 "$W/compare.py" "$W" "$DEV"
  # --- 3. Throughput ----------------------------------------------------------------------
  if [ "$DEV" = cpu ]; then
    # The same commands on the fixtures' tiny models, so the dry run proves the wiring.
    step models-dry 300 $B bench --models --device cpu --seconds 1 --pipeline "$W/parity.json"
    step eager-dry 120 python3 $ER bench clip "$FIX/clip-tiny" --device cpu --dtype fp32 --batch 8 --seconds 1
    note "CPU dry run: the benches (every frame through B/32 and a VAE at 720p) are skipped"
    return
  fi
  step models-b32-sdvae 240 $B bench --models --format json --device "$DEV" --seconds 4 --pipeline "$W/models.json"
  step eager-b32 120 python3 $ER bench clip "$W/b32" --device "$DEV" --batch 256 --seconds 4
  step eager-sdvae-720p-b4 120 python3 $ER bench vae "$W/sdvae" --device "$DEV" --batch 4 --size 1280x720 --seconds 4
  # GPU memory at 1080p batch 4: the allocator's peak for our encoder and for PyTorch's.
  step models-sdvae-1080p-b4 180 $B bench --models --format json --device "$DEV" --seconds 2 --pipeline "$W/sdvae-1080p.json"
  step eager-sdvae-1080p-b4 120 python3 $ER bench vae "$W/sdvae" --device "$DEV" --batch 4 --size 1920x1080 --seconds 2
  step bench-b32-sdvae 240 $B bench --format json --device "$DEV" --encode-baseline --pipeline "$W/b32-sdvae.json" "${V[@]}"
  step bench-b32-taef2 180 $B bench --format json --device "$DEV" --pipeline "$W/b32-taef2.json" "${V[@]}"
}

extra() {
  [ "$DEV" = cpu ] && { note "CPU dry run: the extra part is device-only"; return; }
  step eager-sdvae-720p-b16 120 python3 $ER bench vae "$W/sdvae" --device "$DEV" --batch 16 --size 1280x720 --seconds 4
  # What the split GroupNorm+SiLU and the per-stage streams are worth, each against itself off.
  step models-sdvae-native-norm 180 env FRAMEPIPE_GROUP_NORM=native $B bench --models --format json --device "$DEV" --seconds 4 --pipeline "$W/sdvae-720p.json"
  step bench-b32-sdvae-one-stream 240 env FRAMEPIPE_STAGE_STREAMS=off $B bench --format json --device "$DEV" --pipeline "$W/b32-sdvae.json" "${V[@]}"
  step bench-nvdec 180 $B bench --device "$DEV" --pipeline "$W/b32-sdvae-nvdec.json" --format json "${V[@]}"
  step bench-nvdec-device-frames 150 $B bench --device "$DEV" --pipeline "$W/b32-taef2-nvdec-auto.json" --format json "${V[@]}"
  step bench-nvdec-host-frames 150 $B bench --device "$DEV" --pipeline "$W/b32-taef2-nvdec-off.json" --format json "${V[@]}"
  # Last, the first to give up if time runs short: torch.compile (gpu.md: ~34 s to compile).
  step compile-b32 150 python3 $ER bench clip "$W/b32" --device "$DEV" --batch 256 --seconds 4 --compile
  step compile-sdvae-720p-b4 150 python3 $ER bench vae "$W/sdvae" --device "$DEV" --batch 4 --size 1280x720 --seconds 4 --compile
}

case "$PART" in
  core) core ;;
  extra) extra ;;
  all) core; extra ;;
esac
[ "$DEV" = cpu ] || step summary 30 python3 scripts/gpu/summarize.py "$OUT"
note "done ($PART); work folder $W"
