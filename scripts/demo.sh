#!/usr/bin/env bash
# Set up, build, make a sample video with three scenes and audio, and run pipelines/shots.json
# (the default pipeline with the TransNetV2 shot detector) on it (plus the real videos in ../shared/media when present). Results land in ./out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/env.sh
cargo build --release
mkdir -p out
sample=out/sample.mp4
ffmpeg -v error -y \
  -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=3" \
  -f lavfi -i "smptebars=size=1920x1080:rate=30:duration=3" \
  -f lavfi -i "mandelbrot=size=1920x1080:rate=30" \
  -f lavfi -i "sine=frequency=440:duration=9" \
  -filter_complex "[2:v]trim=duration=3,setpts=PTS-STARTPTS[m];[0:v][1:v][m]concat=n=3:v=1:a=0[v]" \
  -map "[v]" -map 3:a -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$sample"
inputs=("$sample")
for f in ../shared/media/*.mp4; do [ -f "$f" ] && inputs+=("$f"); done
# The learned shot detector (TransNetV2, weights converted by setup.sh): scenes with their
# gradual transitions, transitions.safetensors beside each report.
"${CARGO_TARGET_DIR:-target}/release/framepipe" run --pipeline pipelines/shots.json -o out "${inputs[@]}"
echo "done: see out/<name>/<name>.json and out/<name>/<name>.mp4"
