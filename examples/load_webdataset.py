"""Training on framepipe's WebDataset export: a PyTorch IterableDataset in a few lines.

    framepipe export out/ -o shards/ --format webdataset
    python examples/load_webdataset.py shards/            # prints one line per clip

Each item: the clip's frames as a uint8 tensor [T, C, H, W] (decoded with PyAV), its caption
(`.txt`), tags and scores (`.json`), its CLIP embedding (`.npy`) and latents (`.latents.npy`)
when the export has them. Shards are split across DataLoader workers by the `webdataset`
library. Needs torch, numpy, av and webdataset (versions in scripts/requirements.txt; tested
by tests/export.rs).
"""
import glob
import io
import json
import os
import sys

import av
import numpy as np
import torch
import webdataset as wds


def decode_video(data: bytes) -> torch.Tensor:
    """Every frame of an MP4, as uint8 [T, C, H, W]."""
    with av.open(io.BytesIO(data)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2)


def array(data: bytes) -> torch.Tensor:
    return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))


class FramepipeClips(torch.utils.data.IterableDataset):
    def __init__(self, folder: str):
        self.urls = sorted(glob.glob(os.path.join(folder, "shard-*.tar")))

    def __iter__(self):
        samples = wds.WebDataset(
            self.urls, shardshuffle=False, workersplitter=wds.split_by_worker, empty_check=False
        )
        for s in samples:
            record = json.loads(s["json"])
            item = {
                "id": record["id"],
                "caption": s["txt"].decode("utf-8") if "txt" in s else "",
                "tags": [t["label"] for t in record.get("tags") or []],
                "motion": record["motion"],
            }
            # Members some clips lack are empty for them (an export gives every sample the same
            # members): no file, no embedding, no latent frames.
            if len(s.get("mp4", b"")):
                item["video"] = decode_video(s["mp4"])
            if "npy" in s and len(embedding := array(s["npy"])):
                item["embedding"] = embedding
            if "latents.npy" in s and len(latents := array(s["latents.npy"])):
                item["latents"] = latents
            yield item


def main():
    loader = torch.utils.data.DataLoader(
        FramepipeClips(sys.argv[1]), batch_size=None, num_workers=int(os.environ.get("WORKERS", "2"))
    )
    for item in loader:
        shapes = {k: list(v.shape) for k, v in item.items() if isinstance(v, torch.Tensor)}
        print(json.dumps({"id": item["id"], "caption": item["caption"], "shapes": shapes}))


if __name__ == "__main__":
    main()
