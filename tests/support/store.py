"""Helpers for the store tests: small SIF-50K folders written on the spot, read-only files."""

from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
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


@contextmanager
def read_only(*paths: Path):
    """Make files or folders read-only for this process for the block. As root, whom file modes
    do not stop, that takes the immutable attribute (`chattr +i`); where that is impossible
    (another file system, no capability) the test is skipped, saying why."""
    as_root = os.geteuid() == 0
    done: list[tuple[Path, int]] = []
    try:
        for p in paths:
            mode = p.stat().st_mode
            if as_root:
                result = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
                if result.returncode:
                    pytest.skip(f"cannot make {p} read-only for root: chattr +i failed ({result.stderr.strip()})")
            else:
                os.chmod(p, mode & ~0o222)
            done.append((p, mode))
        yield
    finally:
        for p, mode in reversed(done):
            if as_root:
                subprocess.run(["chattr", "-i", str(p)], check=True)
            else:
                os.chmod(p, mode)
