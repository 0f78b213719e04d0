"""Where a sample's depth map comes from: its own file, or an estimate cached on disk.

Estimated maps are written once as lossless `gray16_depth` PNGs under the data root
(`depth/estimated/<model>/<sample id>.png`) and recorded on the sample, so later runs, the
workbench and the rewards read the same map. The estimator (datagen/depth_model.py) is loaded
on first need only: samples that bring their own depth never pay for it.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from common.settings import DEFAULT_DEPTH_MODEL
from sif.depth import DepthMap, save_gray16
from sif.errors import ConfigError, SifError


class DepthModelError(SifError, RuntimeError):
    """The depth model itself cannot be loaded: every sample would fail, so the run stops."""


class DepthEstimator:
    """A lazily loaded, thread-safe depth estimator returning maps in the project's convention."""

    def __init__(self, model: str = DEFAULT_DEPTH_MODEL, estimate: Callable | None = None):
        self.model = model
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


def estimated_depth_path(data_root: Path, estimator: DepthEstimator, sample_id) -> Path:
    return Path(data_root) / "depth" / "estimated" / estimator.slug / f"{sample_id}.png"


def estimate_and_cache(image: Image.Image, path: Path, estimator: DepthEstimator) -> DepthMap:
    """The cached estimate at `path`, computing and writing it (atomically) when missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.png")
        save_gray16(estimator(image), tmp)
        os.replace(tmp, path)  # a killed run never leaves a half-written map behind
    return DepthMap.load(path, "gray16_depth")
