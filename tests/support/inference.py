"""Shared pieces of the inference tests: a canned valid chain, a non-square scene with an exact
depth map, the tiny Qwen2.5-VL model (built once per session), and a chain-serving fake server."""

from __future__ import annotations

import numpy as np
from PIL import Image

from sif.chain import Chain, Region, Step, render_chain

WIDTH, HEIGHT = 240, 120  # non-square on purpose: overlays must scale x and y separately
CANNED = Chain(
    (
        Step((Region((0.0, 0.0, 1.0, 1.0), 0.5),), "The question asks about the red block on the left."),
        Step((Region((0.05, 0.2, 0.5, 0.9), 0.25),), "The left half holds one object, near the camera."),
        Step(
            (Region((0.1, 0.25, 0.4, 0.75), 0.25), Region((0.6, 0.1, 0.9, 0.4), 0.75)),
            "The red block, and a far blue one.",
        ),
    ),
    "red",
)
CANNED_TEXT = render_chain(CANNED)


def scene_image() -> Image.Image:
    """A red block at x 24–96, y 30–90 on grey."""
    arr = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    arr[30:90, 24:96] = (220, 30, 30)
    return Image.fromarray(arr)


def scene_depth() -> np.ndarray:
    """Depth growing left to right (0 at the left edge, 1 at the right)."""
    return np.tile(np.linspace(0.0, 1.0, WIDTH, dtype=np.float32), (HEIGHT, 1))
