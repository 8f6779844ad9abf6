#!/usr/bin/env bash
# What captions cost (issue 34's benchmark), against the stand-in server
# (tests/fixtures/vlm_server.py --light: it checks the requests' schema but decodes no image, as
# the real server's work happens on another machine) answering every request in 300 ms, on a
# generated 200 s video of one-second flat-colour scenes with temporal noise (320x240 24 fps
# H.264; the content detector finds about 185 clips):
#  A. `framepipe caption` of the clips at concurrency 8 (from a finished output, cache and
#     captions removed before each round): wall seconds against the ideal clips x 0.3 / 8 s,
#     and the same against a stand-in answering at once (the client's own work: decoding the
#     clip files and making the JPEGs, which on a 2-core box is the floor);
#  B. `run` of the default pipeline with `clips` and `caption` against the same without
#     `caption`, runs interleaved round by round (a fresh output each time: every caption asked
#     for): the captions overlap decoding when the ratio stays near 1.
# Prints medians, the most requests the server saw in flight, and the machine.
#
#   bash scripts/bench_captions.sh BIN [ROUNDS]        (default 3 rounds)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath "$1"); rounds=${2:-3}
. scripts/env.sh
work=$(mktemp -d /tmp/framepipe-bench-captions.XXXXXX)
server_pid=; instant_pid=
trap 'kill $server_pid $instant_pid 2>/dev/null; rm -rf "$work"' EXIT

# Twelve colours one second each, looped to 200 s: every second a cut the content detector finds.
input="$work/colours-200.mp4"
python3 - "$work" <<'PY'
import subprocess, sys
work = sys.argv[1]
cols = ["dc1e1e", "1ec828", "1e28dc", "e6dc28", "d228c8", "6e461e", "28d2dc", "6e1e96",
        "f0f0f0", "f08c14", "787878", "faa0be"]
args = []
for c in cols:
    args += ["-f", "lavfi", "-i", f"color=c=0x{c}:s=320x240:r=24:d=1"]
fc = "".join(f"[{i}:v]" for i in range(len(cols))) + f"concat=n={len(cols)}:v=1:a=0,format=yuv420p[v]"
subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *args, "-filter_complex", fc, "-map", "[v]",
                "-c:v", "libx264", "-g", "24", f"{work}/twelve.mp4"], check=True)
# Temporal noise makes every clip's frames its own (identical frames would be answered from the
# cache: one request per colour, not per clip).
subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-stream_loop", "17", "-i", f"{work}/twelve.mp4",
                "-t", "200", "-vf", "noise=alls=6:allf=t+u", "-c:v", "libx264", "-g", "24",
                f"{work}/colours-200.mp4"], check=True)
PY

/opt/framepipe/venv/bin/python tests/fixtures/vlm_server.py --port-file "$work/port" --log "$work/requests.jsonl" \
  --delay-ms 300 --light > "$work/server.log" 2>&1 &
server_pid=$!
/opt/framepipe/venv/bin/python tests/fixtures/vlm_server.py --port-file "$work/port0" --log "$work/requests0.jsonl" \
  --light > "$work/server0.log" 2>&1 &
instant_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && [ -s "$work/port0" ] && break; sleep 0.1; done
endpoint="http://127.0.0.1:$(cat "$work/port")/v1"
instant="http://127.0.0.1:$(cat "$work/port0")/v1"

python3 - "$work" "$endpoint" "$instant" <<'PY'
import json, sys
work, endpoint, instant = sys.argv[1], sys.argv[2], sys.argv[3]
p = json.load(open("pipelines/default.json"))
p["clips"] = {"min_seconds": 0.5, "trim_seconds": 0.1}
json.dump(p, open(f"{work}/plain.json", "w"))
p["caption"] = {"endpoint": endpoint, "model": "stand-in-vlm", "prompt": "Say the colour.",
                "concurrency": 8, "timeout_seconds": 30}
json.dump(p, open(f"{work}/captioned.json", "w"))
p["caption"]["endpoint"] = instant
json.dump(p, open(f"{work}/instant.json", "w"))
PY

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
seconds() { local start end; start=$(date +%s.%N); "$@" > /dev/null; end=$(date +%s.%N); echo "$end - $start" | bc; }
most_in_flight() { python3 -c "
import json
print(max((json.loads(l).get('in_flight', 0) for l in open('$work/requests.jsonl')), default=0))"; }

echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $rounds rounds"

# A: `framepipe caption` of a finished output's 200 clips.
"$bin" -q run --pipeline "$work/plain.json" -o "$work/finished" "$input" > /dev/null
clips=$(wc -l < "$work/finished/colours-200/clips.jsonl")
cp "$work/finished/colours-200/clips.jsonl" "$work/clips.jsonl.plain"
: > "$work/caption.t"; : > "$work/instant.t"
fresh() { cp "$work/clips.jsonl.plain" "$work/finished/colours-200/clips.jsonl"; rm -f "$work/finished/colours-200/captions.jsonl"; }
for _ in $(seq "$rounds"); do
  fresh; : > "$work/requests.jsonl"
  seconds "$bin" -q caption "$work/finished" --pipeline "$work/captioned.json" >> "$work/caption.t"
  fresh
  seconds "$bin" -q caption "$work/finished" --pipeline "$work/instant.json" >> "$work/instant.t"
done
a=$(median < "$work/caption.t"); a0=$(median < "$work/instant.t")
ideal=$(echo "$clips * 0.3 / 8" | bc -l)
printf 'A. framepipe caption, %d clips, 300 ms per answer, concurrency 8: %.2f s (ideal %.2f s: %.3fx; answered at once: %.2f s), at most %d in flight\n' \
  "$clips" "$a" "$ideal" "$(echo "$a / $ideal" | bc -l)" "$a0" "$(most_in_flight)"

# B: run with captions against without, interleaved.
: > "$work/plain.t"; : > "$work/captioned.t"
for _ in $(seq "$rounds"); do
  rm -rf "$work/out-plain" "$work/out-captioned"
  seconds "$bin" -q run --pipeline "$work/plain.json" -o "$work/out-plain" "$input" >> "$work/plain.t"
  : > "$work/requests.jsonl"
  seconds "$bin" -q run --pipeline "$work/captioned.json" -o "$work/out-captioned" "$input" >> "$work/captioned.t"
done
p=$(median < "$work/plain.t"); c=$(median < "$work/captioned.t")
captioned=$(python3 -c "
import json
print(sum(1 for l in open('$work/out-captioned/colours-200/clips.jsonl') if json.loads(l).get('caption')))")
printf 'B. run, default pipeline + clips: %.2f s without captions, %.2f s with (%d captioned): %.3fx, at most %d in flight\n' \
  "$p" "$c" "$captioned" "$(echo "$c / $p" | bc -l)" "$(most_in_flight)"
