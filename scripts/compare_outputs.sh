#!/usr/bin/env bash
# Proves a refactor changed no output: runs the default, shots, tag and VAE pipelines with two
# framepipe binaries on the same inputs and compares the output folders file by file. Media,
# thumbnails and clip files must be byte-identical; safetensors files must hold the same
# tensors byte for byte and the same metadata (their header's key order is a HashMap's, which
# differs from run to run of one binary); reports, clip lists and done markers must be equal
# once what measures time is left out (`stats`, `wall_seconds`) and clips' `motion`, which
# differs from run to run of one binary (measured: 0.0036044 vs 0.0035809 on
# carphone_pristine.mp4, same binary, same input; not yet explained).
#
#   bash scripts/compare_outputs.sh OLD_BIN NEW_BIN [INPUT...]
#
# Inputs default to ../shared/media/*.mp4, or a generated 6 s sample when that folder is
# absent. The tag pipeline uses a random-weight ViT-B/32 (make-random-model, seed 7) and the
# VAE pipeline ../shared/models/taef2 (skipped, and said so, without it). Exit 1 on any
# difference, naming the file.
# The pipelines are this checkout's: an OLD binary older than a key they use (pipelines/shots.json
# sets scenes.colour_cuts since issue 31) refuses them, naming the key; check out the matching
# pipelines/ for such a comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1"); new=$(realpath "$2"); shift 2
. scripts/env.sh
work=$(mktemp -d /tmp/framepipe-compare.XXXXXX)
trap 'rm -rf "$work"' EXIT
inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  if compgen -G "../shared/media/*.mp4" > /dev/null; then
    inputs=(../shared/media/*.mp4)
  else
    ffmpeg -v error -f lavfi -i testsrc2=size=640x360:rate=25:duration=3 -f lavfi \
      -i "testsrc=size=640x360:rate=25:duration=3,hue=h=90" -filter_complex concat=n=2 \
      -c:v libx264 -pix_fmt yuv420p "$work/sample.mp4"
    inputs=("$work/sample.mp4")
  fi
fi
inputs=($(realpath "${inputs[@]}"))

pipelines=(default:pipelines/default.json shots:pipelines/shots.json)
clip="$work/clip-b32"
if [ -f ../shared/models/clip-tokenizer/tokenizer.json ]; then
  mkdir -p "$clip"
  cp scripts/gpu/models/clip-vit-b32/* ../shared/models/clip-tokenizer/tokenizer*.json "$clip/"
  "$new" make-random-model "$clip" --seed 7 > /dev/null
  python3 - "$clip" > "$work/tag.json" <<'PY'
import json, sys
p = json.load(open("pipelines/tag-720p.json"))
p["clip"]["model"] = sys.argv[1]
p["clips"] = {}
print(json.dumps(p))
PY
  pipelines+=(tag:"$work/tag.json")
else
  echo "compare: no ../shared/models/clip-tokenizer: tag pipeline skipped"
fi
if [ -d ../shared/models/taef2 ]; then
  taef2=$(realpath ../shared/models/taef2)
  printf '{"normalize": {"resolution": "720p"}, "vae": {"model": "%s", "every_n_frames": 10, "frames_per_shard": 8, "reconstruction": {}}, "device": "cpu"}' \
    "$taef2" > "$work/vae.json"
  pipelines+=(vae:"$work/vae.json")
else
  echo "compare: no ../shared/models/taef2: VAE pipeline skipped"
fi

# Prints a file in the form two runs must agree on: JSON and JSON lines parsed, without time
# measurements and motion scores; safetensors as their sorted header and a digest of each
# tensor's bytes.
canonical() {
  python3 - "$1" <<'PY'
import hashlib, json, struct, sys
path = sys.argv[1]
def drop(v):
    if isinstance(v, dict):
        return {k: drop(x) for k, x in v.items() if k not in ("stats", "wall_seconds", "motion")}
    if isinstance(v, list):
        return [drop(x) for x in v]
    return v
if path.endswith(".safetensors"):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    for name, t in header.items():
        if name != "__metadata__":
            a, b = t["data_offsets"]
            t["sha256"] = hashlib.sha256(body[a:b]).hexdigest()
    print(json.dumps(header, sort_keys=True, indent=1))
elif path.endswith(".jsonl"):
    for line in open(path):
        print(json.dumps(drop(json.loads(line)), sort_keys=True))
else:
    print(json.dumps(drop(json.load(open(path))), sort_keys=True, indent=1))
PY
}

status=0
for entry in "${pipelines[@]}"; do
  name=${entry%%:*}; config=$(realpath "${entry#*:}")
  for side in old new; do
    bin=${!side}
    mkdir -p "$work/$name/$side"
    (cd "$work/$name/$side" && "$bin" -q run --pipeline "$config" -o out "${inputs[@]}") \
      || { echo "compare: $name: $side binary failed"; status=1; }
  done
  a="$work/$name/old/out"; b="$work/$name/new/out"
  if ! diff <(cd "$a" && find . -type f | sort) <(cd "$b" && find . -type f | sort); then
    echo "compare: $name: the output folders hold different files"; status=1; continue
  fi
  files=0
  while IFS= read -r f; do
    files=$((files + 1))
    case "$f" in
      *.json|*.jsonl|*.safetensors)
        cmp -s <(canonical "$a/$f") <(canonical "$b/$f") \
          || { echo "compare: $name: $f differs"; diff <(canonical "$a/$f") <(canonical "$b/$f") | head -20; status=1; } ;;
      *) cmp -s "$a/$f" "$b/$f" || { echo "compare: $name: $f differs (bytes)"; status=1; } ;;
    esac
  done < <(cd "$a" && find . -type f | sort)
  echo "compare: $name: $files files compared"
done
[ $status -eq 0 ] && echo "compare: identical (${#inputs[@]} inputs)"
exit $status
