"""Fixtures for the store tests: small SIF-50K folders written on the spot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from sif.depth import encode_spectral_r
from sif.prompts import sif_user_prompt
from sif.synthetic import make_dataset

RELEASED_CHAIN = (
    '<think>\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area>\n'
    "<text>The question asks about the dress.</text>\n"
    '<area>[{"bbox_2d":[0.266,0.274,0.301,0.310],"depth":0.500}]</area>\n'
    "<text>The girl wears a pink dress.</text>\n</think>\n<answer>\npink\n</answer>"
)


def synth_folder(root: Path, n: int = 8, seed: int = 3) -> Path:
    """`sif synth` output: images, depth maps and sif50k.json under `root`."""
    return make_dataset(root, n, seed, progress=False)


def released_record(root: Path, name: str, size=(48, 32), problem="What colour is the girl's dress?") -> dict:
    """A record shaped like the released SIF-50K JSON (no id, width or height), with its files."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 200)).save(root / "images" / f"{name}.jpg")
    depth = np.full((size[1], size[0]), 0.5, dtype=np.float32)
    Image.fromarray(encode_spectral_r(depth)).save(root / "images" / f"{name}_d.png")
    image, depth_image = f"images/{name}.jpg", f"images/{name}_d.png"
    return {
        "dataset": "flickr30k",
        "image": image,
        "depth_image": depth_image,
        "problem": problem,
        "normalized_solution_round": {"bbox_3d": [[0.266, 0.274, 0.301, 0.31]], "illegal_content": False},
        "response": "pink",
        "messages": [
            {"role": "user", "content": sif_user_prompt(problem)},
            {"role": "assistant", "content": RELEASED_CHAIN},
        ],
        "images": [image, depth_image],
    }


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path
