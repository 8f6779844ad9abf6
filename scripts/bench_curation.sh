#!/usr/bin/env bash
# What curation costs (issue 32's benchmark): the default pipeline with `clips` and every filter
# on (blank, frozen, motion, burned-in text read by Tesseract on 3 frames per clip) against the
# same pipeline with `clips` and no filter, on a generated 20 s 1080p30 H.264 clip with a hard
# cut every 4 s (the input scripts/bench_binaries.sh makes), runs interleaved round by round;
# prints each one's median whole-process seconds, the ratio, the clips and OCR'd frames, and the
# extra seconds per OCR'd frame (the text step's whole cost: decoding the clip files' first,
# middle and last frames and Tesseract).
#
#   bash scripts/bench_curation.sh BIN [ROUNDS]        (default 5 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1"); rounds=${2:-5}
. scripts/env.sh
work=$(mktemp -d /tmp/framepipe-bench-curation.XXXXXX)
trap 'rm -rf "$work"' EXIT

input="$work/cuts-1080p30-20s.mp4"
bash scripts/bench_input.sh "$input"

python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
p = json.load(open("pipelines/default.json"))
p["clips"] = {}
json.dump(p, open(f"{work}/plain.json", "w"))
p["clips"] = {"text": {"frames": 3}, "filters": {"max_blank": 0.5, "max_frozen": 0.8,
              "max_text_area": 0.02, "min_motion": 0.0001}}
json.dump(p, open(f"{work}/curated.json", "w"))
PY

# Seconds one run with pipeline $1 takes; the output is kept in $work/out-$2.
timed() {
  local out="$work/out-$2" start end
  rm -rf "$out"
  start=$(date +%s.%N)
  "$bin" -q run --pipeline "$1" -o "$out" "$input" > /dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $rounds rounds, interleaved"
: > "$work/plain.t"; : > "$work/curated.t"
for _ in $(seq "$rounds"); do
  timed "$work/plain.json" plain >> "$work/plain.t"
  timed "$work/curated.json" curated >> "$work/curated.t"
done
p=$(median < "$work/plain.t"); c=$(median < "$work/curated.t")
clips=$(wc -l < "$work/out-curated/cuts-1080p30-20s/clips.jsonl")
ocr=$(python3 -c "
import json
n = 0
for line in open('$work/out-curated/cuts-1080p30-20s/clips.jsonl'):
    r = json.loads(line)
    n += 3 if r.get('text') is not None else 0
print(n)")
printf 'clips without filters %.2f s, with every filter %.2f s: %.3fx; %d clips, %d frames read, %.0f ms per read frame\n' \
  "$p" "$c" "$(echo "$c / $p" | bc -l)" "$clips" "$ocr" "$(echo "($c - $p) * 1000 / $ocr" | bc -l)"
