"""Where a sample's depth map comes from: its own file, or an estimate cached on disk.

Estimated maps are written once as lossless `gray16_depth` PNGs under the data root, keyed by
the image's bytes and the model (`depth/estimated/<model>/<sha256>.png`, never by a sample id,
which another store over the same root gives to another image), with their `spectral_r`
rendering beside them, and recorded on the sample, so later runs, the workbench, exports and
the rewards read the same map. A cached map whose size is not its image's is refused. The
estimator (datagen/depth_model.py) is loaded on first need only: samples that bring their own
depth never pay for it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from common.settings import DEFAULT_DEPTH_MODEL, depth_model_id
from sif.depth import DepthMap, save_gray16, spectral_r_file
from sif.errors import ConfigError, SifError


class DepthModelError(SifError, RuntimeError):
    """The depth model itself cannot be loaded: every sample would fail, so the run stops."""


class DepthEstimator:
    """A lazily loaded, thread-safe depth estimator returning maps in the project's convention."""

    def __init__(self, model: str = DEFAULT_DEPTH_MODEL, estimate: Callable | None = None):
        self.model = depth_model_id(model)
        self._estimate = estimate
        self._lock = threading.Lock()

    @property
    def slug(self) -> str:
        """The model as a folder name: a local model's folder name, or the hub id with `/` → `_`."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.model).name if Path(self.model).exists() else self.model)

    def __call__(self, image: Image.Image) -> np.ndarray:
        with self._lock:  # one model instance; inference is not re-entrant
            if self._estimate is None:
                from datagen.depth_model import estimate_depth, load_depth_model  # torch: only when needed

                try:
                    load_depth_model(self.model)
                except (OSError, ValueError, ImportError) as exc:
                    raise DepthModelError(f"depth model {self.model!r}: {exc}") from exc
                self._estimate = lambda img: estimate_depth(img, model=self.model)
            depth = np.asarray(self._estimate(image), dtype=np.float32)
        if depth.shape != (image.height, image.width):
            raise ConfigError(
                f"depth model {self.model!r} returned shape {depth.shape} for a {image.width}×{image.height} image"
            )
        return depth


def estimated_depth_path(data_root: Path, estimator: DepthEstimator, image_bytes: bytes) -> Path:
    """Where the estimate of the image with these bytes is kept: one file per image content and model."""
    key = hashlib.sha256(estimator.model.encode() + b"\0" + image_bytes).hexdigest()[:40]
    return Path(data_root) / "depth" / "estimated" / estimator.slug / f"{key}.png"


def estimate_and_cache(image_path: str | os.PathLike, data_root: Path, estimator: DepthEstimator):
    """(path of the map, the map, the decoded picture or None) for the image at `image_path`: the
    cached estimate, else one computed and written (atomically) with its `spectral_r` rendering.
    A cached map whose size is not the image's is refused (ValueError)."""
    data = Path(image_path).read_bytes()
    path = estimated_depth_path(data_root, estimator, data)
    image = None
    if path.exists():
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
    else:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            image = img if img.mode == "RGB" else img.convert("RGB")
        size = image.size
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.png")
        save_gray16(estimator(image), tmp)
        os.replace(tmp, path)  # a killed run never leaves a half-written map behind
    dmap = DepthMap.load(path, "gray16_depth")
    if (dmap.width, dmap.height) != size:
        raise ConfigError(
            f"estimated depth map {path} is {dmap.width}×{dmap.height}, its image {image_path} is "
            f"{size[0]}×{size[1]}: refused (delete the map to estimate it again)"
        )
    spectral_r_file(path, "gray16_depth")  # the picture models see, written once beside the map
    return path, dmap, image
