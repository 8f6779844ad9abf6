#!/usr/bin/env bash
# The input of the whole-process benchmarks (scripts/bench_binaries.sh, scripts/bench_curation.sh):
# a 20 s 1080p30 H.264 clip with AAC audio and a hard cut every 4 s (testsrc2 with a different
# look per scene, as `benches/common` makes it), written to OUT.
#
#   bash scripts/bench_input.sh OUT
set -euo pipefail
looks=(null negate "hue=h=120" "vflip,hue=s=0" "hflip,hue=h=240")
filter="[0:v]split=5[in0][in1][in2][in3][in4];"
for s in 0 1 2 3 4; do
  filter+="[in$s]trim=start=$((s * 4)):duration=4,setpts=PTS-STARTPTS,${looks[$s]}[seg$s];"
done
filter+="[seg0][seg1][seg2][seg3][seg4]concat=n=5:v=1:a=0[v]"
ffmpeg -v error -f lavfi -i testsrc2=size=1920x1080:rate=30:duration=20 \
  -f lavfi -i sine=frequency=440:duration=20 -filter_complex "$filter" -map "[v]" -map 1:a \
  -c:v libx264 -preset veryfast -pix_fmt yuv420p -c:a aac "$1"
