#!/usr/bin/env python3
"""Reference scene cuts from PySceneDetect 0.7.2, for tests and benchmarks of src/scenes.

Runs what `scenedetect -i VIDEO detect-content list-scenes` runs with default settings, through
the Python API: OpenCV backend, auto-downscale (longer side to 256 px, cv2.INTER_LINEAR),
ContentDetector(threshold=27, weights=(1, 1, 1, 0), filter_mode=MERGE) and the CLI's
min_scene_len of 0.6 s converted to frames at the video's frame rate (the Python API alone
would use 15 frames). Prints one JSON object:

    {"cuts": [first frame of every scene but the first, 0-based],
     "frames": frames processed, "fps": frame rate, "seconds": detection wall time,
     "frames_per_second": frames / seconds, ...}

`list-scenes` prints the same cuts as 1-based "Start Frame" numbers (cut + 1).

Usage: scene_reference.py VIDEO [--min-scene-len FRAMES] [--scores]
  --min-scene-len  override the minimum scene length in frames (the API default is 15)
  --scores         also emit "scores": [[frame, content_val], ...] for every frame after the
                   first, to debug disagreements near the threshold
Run it with the project venv's python (/opt/framepipe/venv/bin/python3).
"""

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("video")
    parser.add_argument("--min-scene-len", type=int, default=None)
    parser.add_argument("--scores", action="store_true")
    args = parser.parse_args()

    import cv2
    import scenedetect
    from scenedetect import ContentDetector, FrameTimecode, SceneManager, open_video
    from scenedetect.scene_manager import compute_downscale_factor

    if scenedetect.__version__ != "0.7.2":
        print(f"warning: PySceneDetect {scenedetect.__version__}, expected 0.7.2", file=sys.stderr)

    video = open_video(args.video, backend="opencv")
    if args.min_scene_len is None:
        # The CLI's global default `-m 0.6s`, resolved exactly as its context does it.
        min_scene_len = FrameTimecode("0.6s", fps=video.frame_rate).frame_num
    else:
        min_scene_len = args.min_scene_len

    scores = []

    class RecordingContentDetector(ContentDetector):
        """Records each frame's score; detection itself is untouched."""

        def process_frame(self, timecode, frame_img):
            cuts = super().process_frame(timecode, frame_img)
            scores.append([timecode.frame_num, self._frame_score])
            return cuts

    detector_type = RecordingContentDetector if args.scores else ContentDetector
    manager = SceneManager()  # auto_downscale=True, interpolation LINEAR, as in the CLI
    manager.add_detector(detector_type(threshold=27.0, min_scene_len=min_scene_len))

    start = time.perf_counter()
    frames = manager.detect_scenes(video=video, show_progress=False)
    seconds = time.perf_counter() - start

    cuts = [cut.frame_num for cut in manager.get_cut_list(show_warning=False)]
    width, height = video.frame_size
    factor = compute_downscale_factor(max(width, height))
    if factor > 1.0:
        processing = [max(1, round(width / factor)), max(1, round(height / factor))]
    else:
        processing = [width, height]

    result = {
        "cuts": cuts,
        "frames": frames,
        "fps": float(video.frame_rate),
        "seconds": seconds,
        "frames_per_second": frames / seconds if seconds > 0 else None,
        "min_scene_len": min_scene_len,
        "frame_size": [width, height],
        "processing_size": processing,
        "scenedetect_version": scenedetect.__version__,
        "opencv_version": cv2.__version__,
    }
    if args.scores:
        # The first frame only seeds the comparison and has no score.
        result["scores"] = scores[1:]
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
