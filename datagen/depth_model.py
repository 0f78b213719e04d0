"""Monocular depth for images that come without a depth map: Depth Anything V2 via transformers.

The estimator outputs relative disparity (large = near); `sif.depth.from_disparity` turns it
into the project's convention (0 nearest, 1 farthest). `model="tiny"` is a randomly initialized
Depth Anything built offline in memory (seeded, so every process gets the same weights): it
exercises the whole path in tests and offline demos, though its maps are noise. Importing this
module is cheap; torch and transformers load on the first estimate.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from common.settings import DEFAULT_DEPTH_MODEL, depth_model_id
from sif.depth import encode_spectral_r, from_disparity, save_gray16
from sif.errors import ConfigError

if TYPE_CHECKING:
    from transformers import BaseImageProcessor, PreTrainedModel

TINY = "tiny"
TINY_SIZE = 56  # the tiny model's input side (a multiple of its patch size, 14)


@dataclass
class LoadedDepthModel:
    model: PreTrainedModel
    processor: BaseImageProcessor
    device: str


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_tiny_depth_model():
    """A small randomly initialized Depth Anything (DINOv2 backbone) and its processor, seed 0."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        image_size=TINY_SIZE,
        patch_size=14,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        out_features=["stage1", "stage2", "stage3", "stage4"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        patch_size=14,
    )
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    try:
        model = DepthAnythingForDepthEstimation(config)
    finally:
        torch.random.set_rng_state(state)
    # Same preprocessing as Depth-Anything-V2-Small-hf, at the tiny input size.
    processor = DPTImageProcessor(
        size={"height": TINY_SIZE, "width": TINY_SIZE},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        resample=Image.Resampling.BICUBIC,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    return model, processor


def load_depth_model(name: str = DEFAULT_DEPTH_MODEL) -> LoadedDepthModel:
    """The estimator `name` (HF id, local directory, `large`/`base`/`small`, or `tiny`), loaded once per process."""
    return _load_depth_model(depth_model_id(name))


@functools.lru_cache(maxsize=2)
def _load_depth_model(name: str) -> LoadedDepthModel:
    if name == TINY:
        model, processor = build_tiny_depth_model()
    else:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            processor = AutoImageProcessor.from_pretrained(name)
            model = AutoModelForDepthEstimation.from_pretrained(name)
        except OSError as exc:
            raise ConfigError(
                f"depth model {name!r} could not be loaded ({exc}); pass a local directory, a Hugging Face id "
                "that is cached or reachable, or `tiny`"
            ) from None
    device = _device()
    return LoadedDepthModel(model.to(device).eval(), processor, device)


def estimate_depth(image: Image.Image | str | os.PathLike, model: str = DEFAULT_DEPTH_MODEL) -> np.ndarray:
    """Depth (float32 H×W at the image's size, 0 = nearest, 1 = farthest) of one image."""
    import torch

    if not isinstance(image, Image.Image):
        image = Image.open(image)
    image = image.convert("RGB")
    loaded = load_depth_model(model)
    inputs = loaded.processor(images=image, return_tensors="pt").to(loaded.device)
    with torch.no_grad():
        outputs = loaded.model(**inputs)
    disparity = loaded.processor.post_process_depth_estimation(outputs, target_sizes=[(image.height, image.width)])
    return from_disparity(disparity[0]["predicted_depth"].float().cpu().numpy())


def write_depth(depth: np.ndarray, out_dir: str | os.PathLike, stem: str) -> tuple[Path, Path]:
    """Write `STEM_depth.png` (gray16_depth, lossless) and `STEM_d.png` (spectral_r, what models see)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gray16, spectral = out / f"{stem}_depth.png", out / f"{stem}_d.png"
    save_gray16(depth, gray16)
    Image.fromarray(encode_spectral_r(depth)).save(spectral)
    return gray16, spectral


@dataclass
class DepthBatchResult:
    written: list[tuple[Path, Path]]
    failed: list[tuple[Path, str]]


def estimate_depth_files(
    images, out_dir, model: str = DEFAULT_DEPTH_MODEL, *, progress: bool = True
) -> DepthBatchResult:
    """Estimate and write depth for each image file, carrying on past unreadable ones."""
    from rich.progress import track

    images = [Path(p) for p in images]
    load_depth_model(model)  # a bad model name fails once, before any image
    result = DepthBatchResult([], [])
    for path in track(images, description="estimating depth", disable=not progress):
        try:
            with Image.open(path) as img:
                depth = estimate_depth(img, model)
        except (OSError, ValueError) as exc:
            result.failed.append((path, str(exc)))
            continue
        result.written.append(write_depth(depth, out_dir, path.stem))
    return result
