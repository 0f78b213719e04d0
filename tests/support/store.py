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

from sif.chain import Chain, Region, Step, render_chain
from sif.depth import DepthMap, encode_spectral_r
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
    """A record shaped like the released SIF-50K JSON (no id, width or height), with its files:
    a flat 0.5 `spectral_r` depth picture."""
    flat = Image.fromarray(encode_spectral_r(np.full((size[1], size[0]), 0.5, dtype=np.float32)))
    return depth_record(root, name, flat, problem=problem)


def write_json(path: Path, records) -> Path:
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def depth_ramp(size=(48, 32)) -> np.ndarray:
    """A depth array that is nowhere flat: 0.05 at the top left to 0.95 at the bottom right."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    return (0.05 + 0.6 * xx / (w - 1) + 0.3 * yy / (h - 1)).astype(np.float32)


MEASURED_BOXES = ((0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.3, 0.5), (0.7, 0.5, 1.0, 1.0))


def measured_chain(depth: np.ndarray, answer: str = "pink") -> str:
    """A valid chain whose region depths are the box means of `depth` (3 decimals)."""
    dmap = DepthMap(depth)
    steps = tuple(
        Step((Region(box, round(dmap.box_mean(box), 3)),), f"Looking at region {i}.")
        for i, box in enumerate(MEASURED_BOXES, start=1)
    )
    return render_chain(Chain(steps, answer))


def depth_record(
    root: Path,
    name: str,
    picture: Image.Image,
    *,
    chain: str = RELEASED_CHAIN,
    dataset: str = "flickr30k",
    problem: str | None = None,
    **extra,
) -> dict:
    """A released-style SIF-50K record whose depth picture is `picture` (saved as images/NAME_d.png)."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", picture.size, (90, 120, 200)).save(root / "images" / f"{name}.jpg")
    picture.save(root / "images" / f"{name}_d.png")
    problem = problem or f"What colour is the dress in {name}?"
    image, depth_image = f"images/{name}.jpg", f"images/{name}_d.png"
    return {
        "dataset": dataset,
        "image": image,
        "depth_image": depth_image,
        "problem": problem,
        "normalized_solution_round": {"bbox_3d": [[0.266, 0.274, 0.301, 0.31]], "illegal_content": False},
        "response": "pink",
        "messages": [
            {"role": "user", "content": sif_user_prompt(problem)},
            {"role": "assistant", "content": chain},
        ],
        "images": [image, depth_image],
        **extra,
    }


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


def old_schema_db(path: Path, stop_before: str, samples=(("o1", "a.png", "Q?", "a", "[]"),)):
    """A store file at the schema before migration `stop_before` (an open sqlite-utils
    `Database`): what a user's store looked like then, holding `samples` as (source id, image,
    question, answer, ground-truth boxes as JSON) of dataset "old", content hashes h1, h2, …"""
    from sqlite_utils import Database

    from db.schema import migrate

    db = Database(path)
    migrate(db, stop_before=stop_before)
    for i, (source_id, image, question, answer, gt_boxes) in enumerate(samples, 1):
        db.execute(
            "INSERT INTO samples (dataset, source_id, image, width, height, question, answer, gt_boxes,"
            " content_hash, created_at) VALUES ('old', ?, ?, 10, 10, ?, ?, ?, ?, '2025-01-01')",
            [source_id, image, question, answer, gt_boxes, f"h{i}"],
        )
    return db
