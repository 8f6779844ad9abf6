#!/usr/bin/env python3
"""Continuous single-shot footage with camera motion, for counting false cuts.

Every video this writes is ONE shot: a virtual camera pans, zooms or shakes over one still
picture, so any scene boundary a detector reports in it is a false cut. The stills are frames
grabbed from the shared media folder (``--media``, default ../shared/media beside the
repository, or FRAMEPIPE_SHARED/media) when it is there, else pictures made by FFmpeg's lavfi
sources (mandelbrot, testsrc2, a cellular automaton, gradients), so the footage can always be
made. Each still is scaled to 1920x1080 and the 640x360, 25 fps camera moves over it:

* ``pan-x`` / ``pan-y``: a slow sweep across the picture and back (about 60 px/s);
* ``pan-fast``: a fast diagonal sweep (about 300 px/s), the hardest for a histogram test;
* ``zoom-in`` / ``zoom-out``: a smooth zoom between 1x and 2.5x over the whole video;
* ``shake``: a hand-held wobble (two sines on x and y) around a slow drift.

    python3 scripts/single_shot_footage.py --out /tmp/single-shots --seconds 30
    # → /tmp/single-shots/<still>-<move>.mp4, and list.json: [{path, frames, still, move}]

With the defaults (4 stills x 3 motions, 25 s each) that is 5 minutes of footage. Needs ffmpeg
on PATH; encodes with libx264 (crf 20, veryfast), no audio. Existing videos are reused.

``--count BIN`` then runs ``BIN run`` (a framepipe binary) with a scenes-only TransNetV2 pipeline
and ``scenes.colour_cuts`` on over every video made and the shared media's single shots (bears,
orangutan, carphone_pristine), and prints each one's boundaries: TransNetV2's and those the
second stage added (``transition_in.added_by``). In single shots every one is a false cut.

    python3 scripts/single_shot_footage.py --count $CARGO_TARGET_DIR/release/framepipe
"""

import argparse
import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
W, H, FPS = 640, 360, 25
BIG_W, BIG_H = 1920, 1080

# Shared stills: (file, frame to grab).
SHARED_STILLS = [
    ("bears.mp4", 40),
    ("orangutan.mp4", 120),
    ("bikes.mp4", 30),
    ("carphone_pristine.mp4", 60),
]
# Generated stills when the shared media are absent: lavfi sources, one frame each.
LAVFI_STILLS = [
    ("mandelbrot", "mandelbrot=size=1920x1080:rate=1:start_scale=1.5"),
    ("testsrc2", "testsrc2=size=1920x1080:rate=1"),
    ("cellauto", "cellauto=size=1920x1080:rate=1:rule=110:random_seed=7,"
                 "scale=1920x1080,gblur=sigma=2"),
    ("gradients", "gradients=size=1920x1080:rate=1:seed=3:nb_colors=6"),
]


def moves(seconds: float) -> dict[str, str]:
    """Crop/scale filters (after the still is 1920x1080) that make each camera motion."""
    span_x, span_y = BIG_W - W, BIG_H - H
    tri = f"(1-abs(2*mod(t/{seconds},1)-1))"  # 0 → 1 → 0 over the video
    zoom = f"(1+1.5*t/{seconds})"
    return {
        "pan-x": f"crop={W}:{H}:x='{span_x}*{tri}*0.5+{span_x}*0.25':y='{span_y}/2'",
        "pan-y": f"crop={W}:{H}:x='{span_x}/2':y='{span_y}*{tri}'",
        "pan-fast": f"crop={W}:{H}:x='{span_x}*{tri}':y='{span_y}*{tri}'",
        "zoom-in": f"scale=w='{W}*{zoom}':h='{H}*{zoom}':eval=frame,"
                   f"crop={W}:{H}",
        "zoom-out": f"scale=w='{W}*(2.5-1.5*t/{seconds})':h='{H}*(2.5-1.5*t/{seconds})'"
                    f":eval=frame,crop={W}:{H}",
        "shake": f"crop={W}:{H}:x='{span_x}/2+200*t/{seconds}+40*sin(2*PI*1.3*t)"
                 f"+15*sin(2*PI*4.1*t)':y='{span_y}/2+25*sin(2*PI*0.9*t+1)"
                 f"+10*sin(2*PI*3.3*t)'",
    }


def shared_media(arg: str | None) -> Path | None:
    if arg:
        return Path(arg) if Path(arg).is_dir() else None
    env = os.environ.get("FRAMEPIPE_SHARED")
    if env == "none":
        return None
    folder = Path(env) / "media" if env else REPO.parent / "shared" / "media"
    return folder if folder.is_dir() else None


def stills(out: Path, media: Path | None) -> list[tuple[str, Path]]:
    """One 1920x1080 PNG per still."""
    made = []
    if media is not None:
        sources = [(Path(f).stem, ["-i", str(media / f), "-vf",
                                   f"select=eq(n\\,{n}),scale={BIG_W}:{BIG_H}"])
                   for f, n in SHARED_STILLS if (media / f).is_file()]
    else:
        sources = [(name, ["-f", "lavfi", "-i", src, "-vf", f"scale={BIG_W}:{BIG_H}"])
                   for name, src in LAVFI_STILLS]
    for name, args in sources:
        png = out / f"still-{name}.png"
        if not png.is_file():
            subprocess.run(["ffmpeg", "-v", "error", "-y", *args, "-frames:v", "1", str(png)],
                           check=True)
        made.append((name, png))
    return made


def make(out: Path, seconds: float, media: Path | None, move_names: list[str],
         per_still: int) -> list[dict]:
    """Each still gets `per_still` motions, rotating through `move_names` so all are used."""
    out.mkdir(parents=True, exist_ok=True)
    filters = moves(seconds)
    frames = int(round(seconds * FPS))
    made = []
    for i, (name, png) in enumerate(stills(out, media)):
        for k in range(per_still):
            move = move_names[(i * per_still + k) % len(move_names)]
            video = out / f"{name}-{move}.mp4"
            if not video.is_file():
                subprocess.run([
                    "ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", str(FPS),
                    "-i", str(png), "-vf", f"{filters[move]},setsar=1,format=yuv420p",
                    "-frames:v", str(frames), "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "20", str(video)], check=True)
            made.append({"path": str(video), "frames": frames, "still": name, "move": move})
    return made


SHARED_SINGLE_SHOTS = ["bears.mp4", "orangutan.mp4", "carphone_pristine.mp4"]


def count_cuts(binary: str, videos: list[Path], out: Path) -> int:
    """Runs framepipe with the second stage on over `videos`; prints their boundaries."""
    pipeline = out / "colour-cuts.json"
    pipeline.write_text(json.dumps({"scenes": {"detector": "transnetv2", "colour_cuts": True},
                                    "device": "cpu"}) + "\n")
    runs = out / "runs"
    totals = {"frames": 0, "reference": 0, "added": 0}
    print("| video | frames | TransNetV2 cuts | added cuts |\n|---|---|---|---|")
    for video in videos:
        stem = video.stem
        subprocess.run(["rm", "-rf", str(runs / stem)], check=True)
        subprocess.run([binary, "run", "--pipeline", str(pipeline), "-o", str(runs), str(video)],
                       check=True, capture_output=True)
        report = json.loads((runs / stem / f"{stem}.json").read_text())
        scenes = report["scenes"][1:]
        added = [s["start_frame"] for s in scenes if (s.get("transition_in") or {}).get("added_by")]
        reference = [s["start_frame"] for s in scenes if s["start_frame"] not in added]
        frames = report["scenes"][-1]["end_frame"] if report["scenes"] else 0
        totals["frames"] += frames
        totals["reference"] += len(reference)
        totals["added"] += len(added)
        print(f"| {video.name} | {frames} | {reference or '-'} | {added or '-'} |", flush=True)
    print(f"| all ({totals['frames'] / FPS / 60:.1f} min) | {totals['frames']} | "
          f"{totals['reference']} | {totals['added']} |")
    return totals["added"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--out", default="/tmp/framepipe-single-shots")
    p.add_argument("--media", default=None, help="folder of the stills' videos (default shared)")
    p.add_argument("--seconds", type=float, default=25.0, help="length of each video")
    p.add_argument("--moves", default="pan-fast,zoom-in,shake,pan-x,pan-y,zoom-out",
                   help="motions, comma separated")
    p.add_argument("--per-still", type=int, default=3, help="motions per still")
    p.add_argument("--count", metavar="BIN", default=None,
                   help="then count the cuts framepipe BIN finds with scenes.colour_cuts on")
    args = p.parse_args()
    out = Path(args.out)
    media = shared_media(args.media)
    made = make(out, args.seconds, media, args.moves.split(","), args.per_still)
    (out / "list.json").write_text(json.dumps(made, indent=1) + "\n")
    total = sum(e["frames"] for e in made) / FPS
    print(f"{len(made)} single-shot videos, {total / 60:.1f} min, in {out}")
    if args.count:
        videos = [Path(e["path"]) for e in made]
        if media is not None:
            videos += [media / f for f in SHARED_SINGLE_SHOTS if (media / f).is_file()]
        count_cuts(args.count, videos, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
