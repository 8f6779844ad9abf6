#!/usr/bin/env bash
# Packs what the GPU check needs into .gpu-bundle/ (run here, from the repository root, after
# `bash scripts/setup.sh`): stripped release binary and libtorch library, a 1080p30 H.264 clip
# made with ffmpeg, the real taef2 weights from ../shared/models; model configs come from
# scripts/gpu/models and the fixture tokenizer from the repository (random weights are made on
# the device: no 300 MB carries). The binary and library travel xz-compressed (check.sh unpacks
# them): the whole carry must stay under 64 MiB.
# Then run on the device, carrying .gpu-bundle:  bash scripts/gpu/check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/env.sh
cargo build --release --workspace
stage=target/gpu-stage
rm -rf "$stage" && mkdir -p "$stage/media"
strip -o "$stage/framepipe" target/release/framepipe
strip -o "$stage/libframepipe_torch.so" target/release/libframepipe_torch.so
# The `cuda` test set (crates/framepipe-torch/tests/cuda.rs), run there by check.sh.
cuda_tests=$(cargo test --release -p framepipe-torch --test cuda --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cuda" and m.get("executable"):
        print(m["executable"])')
strip -o "$stage/cuda-tests" "$cuda_tests"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=8" \
  -f lavfi -i "sine=frequency=440:duration=8" \
  -c:v libx264 -preset veryfast -crf 30 -pix_fmt yuv420p -c:a aac "$stage/media/in-1080p30.mp4"
cp -r ../shared/models/taef2 "$stage/taef2"
../shared/gpu/bundle.sh "$stage/framepipe" "$stage/libframepipe_torch.so" "$stage/media" \
  "$stage/taef2" "$stage/cuda-tests"
xz -9 -T2 .gpu-bundle/framepipe .gpu-bundle/data/libframepipe_torch.so .gpu-bundle/data/cuda-tests
du -sb .gpu-bundle | awk '{printf "carry: %.1f MiB (limit 64)\n", $1 / 1048576}'
