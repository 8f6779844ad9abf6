#!/usr/bin/env bash
# Before/after benchmark of two framepipe binaries (a refactor must not cost speed): the same
# pipelines on the same input, the two binaries interleaved round by round (so load from
# anything else on the machine falls on both alike), whole-process wall time; prints each
# pipeline's median seconds per binary and the ratio NEW/OLD (below 1: the new one is faster).
#
#   bash scripts/bench_binaries.sh OLD_BIN NEW_BIN [ROUNDS]        (default 5 rounds)
#
# Input: a generated 20 s 1080p30 H.264 clip with AAC audio and a hard cut every 4 s
# (testsrc2 with a different look per scene, as `benches/common` makes it). Pipelines:
# default, shots (TransNetV2; skipped without its weights), scenes-only, default with clips,
# and tag (random-weight ViT-B/32, seed 7; skipped without ../shared's CLIP tokenizer).
# The pipelines are this checkout's: an OLD binary older than a key they use (pipelines/shots.json
# sets scenes.colour_cuts since issue 31) refuses them, naming the key; check out the matching
# pipelines/ for such a comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1"); new=$(realpath "$2"); rounds=${3:-5}
. scripts/env.sh
work=$(mktemp -d /tmp/framepipe-bench-bin.XXXXXX)
trap 'rm -rf "$work"' EXIT

input="$work/cuts-1080p30-20s.mp4"
bash scripts/bench_input.sh "$input"

pipelines=(default:pipelines/default.json scenes-only:pipelines/scenes-only.json)
python3 - > "$work/clips.json" <<'PY'
import json
p = json.load(open("pipelines/default.json"))
p["clips"] = {}
print(json.dumps(p))
PY
pipelines+=(clips:"$work/clips.json")
if [ -d "${FRAMEPIPE_MODELS:-/opt/framepipe/models}/transnetv2" ]; then
  pipelines+=(shots:pipelines/shots.json)
else
  echo "bench: no TransNetV2 weights: shots pipeline skipped"
fi
if [ -f ../shared/models/clip-tokenizer/tokenizer.json ]; then
  clip="$work/clip-b32"; mkdir -p "$clip"
  cp scripts/gpu/models/clip-vit-b32/* ../shared/models/clip-tokenizer/tokenizer*.json "$clip/"
  "$new" make-random-model "$clip" --seed 7 > /dev/null
  python3 - "$clip" > "$work/tag.json" <<'PY'
import json, sys
p = json.load(open("pipelines/tag-720p.json"))
p["clip"]["model"] = sys.argv[1]
print(json.dumps(p))
PY
  pipelines+=(tag:"$work/tag.json")
else
  echo "bench: no ../shared/models/clip-tokenizer: tag pipeline skipped"
fi

# Seconds one run of binary $1 with pipeline $2 takes (output removed afterwards).
timed() {
  local out="$work/out" start end
  rm -rf "$out"
  start=$(date +%s.%N)
  "$1" -q run --pipeline "$2" -o "$out" "$input" > /dev/null
  end=$(date +%s.%N)
  rm -rf "$out"
  echo "$end - $start" | bc
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $rounds rounds, interleaved"
printf '%-12s %10s %10s %8s\n' pipeline old_s new_s new/old
for entry in "${pipelines[@]}"; do
  name=${entry%%:*}; config=$(realpath "${entry#*:}")
  : > "$work/old.t"; : > "$work/new.t"
  for _ in $(seq "$rounds"); do
    timed "$old" "$config" >> "$work/old.t"
    timed "$new" "$config" >> "$work/new.t"
  done
  o=$(median < "$work/old.t"); n=$(median < "$work/new.t")
  printf '%-12s %10.2f %10.2f %8.3f\n' "$name" "$o" "$n" "$(echo "$n / $o" | bc -l)"
done
