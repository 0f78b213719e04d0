"""Depth maps in the project's convention (FORMATS §2): float32, 0 = nearest, 1 = farthest.

Reads the three encodings in circulation (and `gray_depth`, the public reference code's
reading of gray pictures, for data sets made that way), writes the lossless `gray16_depth` and
the `spectral_r` picture a model sees, and answers a box's mean depth: directly for the few
boxes a plan asks about, in O(1) from a summed-area table for the many that rewards and editors
ask about.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Literal

import numpy as np
from PIL import Image

from sif.errors import ConfigError

Encoding = Literal["spectral_r", "gray_disparity", "gray16_depth", "gray_depth"]
# gray_depth: 8-bit gray read as d = v/255, the reference code's reading (FORMATS §2 warns against
# it); only for a data set whose recorded depths were measured that way (db.depth_convention).
ENCODINGS: tuple[str, ...] = ("spectral_r", "gray_disparity", "gray16_depth", "gray_depth")
GRAY_READINGS: tuple[str, ...] = ("gray_disparity", "gray_depth")
RENDERING_SUFFIX = ".spectral_r.png"  # the spectral_r picture written beside a depth map

# matplotlib's "Spectral" colormap anchors (ColorBrewer, 11 colours, evenly spaced).
_SPECTRAL = (
    np.array(
        [
            (158, 1, 66),
            (213, 62, 79),
            (244, 109, 67),
            (253, 174, 97),
            (254, 224, 139),
            (255, 255, 191),
            (230, 245, 152),
            (171, 221, 164),
            (102, 194, 165),
            (50, 136, 189),
            (94, 79, 162),
        ],
        dtype=np.float64,
    )
    / 255.0
)


def _spectral_r_palette() -> np.ndarray:
    """The 256 colours Depth Anything V2 writes: floor(255 · Spectral_r(k)) for k = 0..255."""
    x = np.linspace(0.0, 1.0, 256)
    anchors = np.linspace(0.0, 1.0, len(_SPECTRAL))
    rev = _SPECTRAL[::-1]
    rgb = np.stack([np.interp(x, anchors, rev[:, c]) for c in range(3)], axis=1)
    # The epsilon absorbs float noise where matplotlib lands exactly on an integer level.
    return np.clip(rgb * 255.0 + 1e-9, 0, 255).astype(np.uint8)


SPECTRAL_R = _spectral_r_palette()  # (256, 3) uint8; index = disparity level k
# Palette colours differ in (R, B) alone, so tables over the key R·256 + B give a colour's level
# (or depth) directly and the palette G under that key confirms it: one gather per table, and
# the 64K-entry tables stay in cache.
_RB_KEYS = (SPECTRAL_R[:, 0].astype(np.intp) << 8) | SPECTRAL_R[:, 2]
assert len(np.unique(_RB_KEYS)) == 256, "Spectral_r colours must be unique in (R, B)"
_RB_G = np.full(1 << 16, -1, dtype=np.int16)  # -1 never equals a uint8 G: not a palette colour
_RB_G[_RB_KEYS] = SPECTRAL_R[:, 1]
_DEPTH_OF_LEVEL = (1.0 - np.arange(256) / 255.0).astype(np.float32)


def _by_key(values: np.ndarray) -> np.ndarray:
    table = np.zeros(1 << 16, dtype=values.dtype)
    table[_RB_KEYS] = values
    return table


_RB_DEPTH = _by_key(_DEPTH_OF_LEVEL)


def _spectral_decode(rgb: np.ndarray, by_key: np.ndarray, by_level: np.ndarray) -> np.ndarray:
    """Per-pixel value of a `spectral_r` image: `by_key` for palette colours, and for the colours
    that are not in the palette (JPEG damage) `by_level` of their nearest palette colour."""
    rgb = np.asarray(rgb)[..., :3]
    if rgb.dtype != np.uint8:
        rgb = rgb.astype(np.uint8)
    key = rgb[..., 0].astype(np.intp) << 8
    key |= rgb[..., 2]
    out = by_key[key]
    miss = _RB_G[key] != rgb[..., 1]
    if miss.any():
        bad = rgb[miss].astype(np.int32)
        packed = (bad[:, 0] << 16) | (bad[:, 1] << 8) | bad[:, 2]
        _, first, inverse = np.unique(packed, return_index=True, return_inverse=True)
        d2 = ((bad[first][:, None, :] - SPECTRAL_R[None, :, :].astype(np.int32)) ** 2).sum(-1)
        out[miss] = by_level[d2.argmin(axis=1)][inverse]
    return out


def encode_spectral_r(depth: np.ndarray) -> np.ndarray:
    """The `spectral_r` display image (H×W×3 uint8) of a depth array in the project's convention."""
    k = np.rint((1.0 - np.clip(depth, 0.0, 1.0)) * 255.0).astype(np.uint8)
    return SPECTRAL_R[k]


def from_disparity(disparity: np.ndarray) -> np.ndarray:
    """Relative inverse depth (large = near, e.g. Depth Anything's output) → depth in [0, 1]."""
    disp = np.asarray(disparity, dtype=np.float64)
    lo, hi = float(disp.min()), float(disp.max())
    if hi - lo <= 0:
        return np.zeros(disp.shape, dtype=np.float32)
    return (1.0 - (disp - lo) / (hi - lo)).astype(np.float32)


def detect_encoding(img: Image.Image) -> Encoding:
    """Guess a depth image's encoding: 16-bit → gray16_depth, equal channels → gray_disparity."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        return "gray16_depth"
    if img.mode in ("L", "LA"):
        return "gray_disparity"
    arr = np.asarray(img.convert("RGB"))
    if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        return "gray_disparity"
    return "spectral_r"


def decode_image(img: Image.Image, encoding: str = "auto") -> tuple[np.ndarray, Encoding]:
    """Depth array (float32, 0 = near) of a depth image, and the encoding it was read with."""
    if encoding == "auto":
        encoding = detect_encoding(img)
    if encoding == "gray16_depth":
        arr = np.asarray(img, dtype=np.float32) if img.mode != "I" else np.asarray(img).astype(np.float32)
        if arr.ndim == 3:
            arr = arr[..., 0]
        arr /= 65535.0  # a fresh array: scale it in place
        return arr, "gray16_depth"
    if encoding in GRAY_READINGS:
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return (1.0 - arr if encoding == "gray_disparity" else arr), encoding  # type: ignore[return-value]
    if encoding == "spectral_r":
        rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
        return _spectral_decode(rgb, _RB_DEPTH, _DEPTH_OF_LEVEL), "spectral_r"
    raise ConfigError(f"unknown depth encoding {encoding!r}; expected auto or one of {', '.join(ENCODINGS)}")


def spectral_r_image(img: Image.Image, encoding: str = "auto") -> Image.Image:
    """The depth picture a model sees (FORMATS §2): 8-bit RGB `spectral_r`. A `spectral_r`
    picture passes through (as an RGB copy); any other encoding is decoded and rendered (image
    loaders would turn a 16-bit map white and show a gray one in the wrong colours)."""
    if encoding == "auto":
        encoding = detect_encoding(img)
    if encoding == "spectral_r":
        return img.copy() if img.mode == "RGB" else img.convert("RGB")
    arr, _ = decode_image(img, encoding)
    return Image.fromarray(encode_spectral_r(arr))


def rendering_path(path: str | os.PathLike) -> Path:
    """Where the `spectral_r` rendering of the depth map at `path` is kept: beside it."""
    p = Path(path)
    return p.with_name(p.stem + RENDERING_SUFFIX)


def spectral_r_file(path: str | os.PathLike, encoding: str = "auto") -> Path:
    """The file of the depth picture a model sees for the depth map at `path`: the map itself
    when it is a `spectral_r` picture, else its rendering beside it (`rendering_path`), written
    once (atomically) and rewritten only when the map is newer. OSError if it cannot be written."""
    p = Path(path)
    if encoding == "spectral_r" or p.name.endswith(RENDERING_SUFFIX):
        return p
    st = p.stat()
    if encoding == "auto":
        with Image.open(p) as img:
            encoding = detect_encoding(img)
        if encoding == "spectral_r":
            return p
    out = rendering_path(p)
    try:
        if out.stat().st_mtime_ns >= st.st_mtime_ns:
            return out
    except FileNotFoundError:
        pass
    with Image.open(p) as img:
        img.load()
        picture = spectral_r_image(img, encoding)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.{threading.get_ident()}.tmp.png")
    picture.save(tmp)
    os.replace(tmp, out)  # a killed writer never leaves half a picture behind
    return out


_DIRECT_READS = 4  # direct box sums may read the map this many times over before the table is built
_DIRECT_BOXES = 128  # and remember at most this many boxes


@dataclass
class DepthMap:
    """A depth map with cheap box means (direct sums first, then a summed-area table)."""

    array: np.ndarray  # float32 H×W, 0 = near, 1 = far
    encoding: str = "gray16_depth"

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array, dtype=np.float32)
        self._sat: np.ndarray | None = None
        # Until the table exists, box means are summed directly and remembered (see box_mean).
        self._direct_budget = _DIRECT_READS * self.array.size
        self._means: dict[tuple[int, int, int, int], float] = {}

    @property
    def sat(self) -> np.ndarray:
        """Summed-area table (inclusive), built on the first box query."""
        if self._sat is None:
            sat = self.array.astype(np.float64)
            np.cumsum(sat, axis=1, out=sat)
            np.cumsum(sat, axis=0, out=sat)
            self._sat = sat
        return self._sat

    @property
    def nbytes(self) -> int:
        """Memory held: the map, and its summed-area table once built."""
        return self.array.nbytes + (self._sat.nbytes if self._sat is not None else 0)

    @property
    def height(self) -> int:
        return int(self.array.shape[0])

    @property
    def width(self) -> int:
        return int(self.array.shape[1])

    def pixel_span(self, box) -> tuple[int, int, int, int]:
        """Pixel columns/rows a normalized box covers: floor(x1·W) … ceil(x2·W), clipped, never empty
        (coordinates are clipped to [0, 1] first, so a hostile 1e308 or NaN cannot overflow)."""
        x1, y1, x2, y2 = (min(v, 1.0) if v >= 0 else 0.0 for v in map(float, box))
        H, W = self.array.shape[:2]
        c1 = min(max(math.floor(x1 * W), 0), W - 1)
        r1 = min(max(math.floor(y1 * H), 0), H - 1)
        c2 = min(max(math.ceil(x2 * W), c1 + 1), W)
        r2 = min(max(math.ceil(y2 * H), r1 + 1), H)
        return c1, r1, c2, r2

    def box_mean(self, box) -> float:
        """Mean depth over the pixels a normalized box covers (FORMATS §2).

        A plan and its checks ask for a handful of boxes, often the same ones: those are summed
        directly (float64) and remembered, which is cheaper than building the summed-area table.
        Once the direct sums have read the map a few times over, the table answers in O(1)."""
        span = self.pixel_span(box)
        mean = self._means.get(span)
        if mean is not None:
            return mean
        c1, r1, c2, r2 = span
        area = (r2 - r1) * (c2 - c1)
        if self._sat is None and area <= self._direct_budget and len(self._means) < _DIRECT_BOXES:
            self._direct_budget -= area
            mean = self._means[span] = float(self.array[r1:r2, c1:c2].mean(dtype=np.float64))
            return mean
        s = self.sat
        total = s[r2 - 1, c2 - 1]
        if r1 > 0:
            total -= s[r1 - 1, c2 - 1]
        if c1 > 0:
            total -= s[r2 - 1, c1 - 1]
        if r1 > 0 and c1 > 0:
            total += s[r1 - 1, c1 - 1]
        return float(total / ((r2 - r1) * (c2 - c1)))

    def box_means(self, boxes: Sequence[Sequence[float]]) -> list[float]:
        """`box_mean` of each box; a long chain's thousands of boxes are answered by the summed-area
        table in one vectorized pass instead of one Python call each."""
        if len(boxes) <= _DIRECT_BOXES:
            return [self.box_mean(b) for b in boxes]
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        with np.errstate(invalid="ignore"):
            b = np.where(b >= 0, np.minimum(b, 1.0), 0.0)  # NaN fails `>= 0`, as in pixel_span
        H, W = self.array.shape[:2]
        c1 = np.clip(np.floor(b[:, 0] * W), 0, W - 1).astype(np.intp)
        r1 = np.clip(np.floor(b[:, 1] * H), 0, H - 1).astype(np.intp)
        c2 = np.minimum(np.maximum(np.ceil(b[:, 2] * W), c1 + 1), W).astype(np.intp)
        r2 = np.minimum(np.maximum(np.ceil(b[:, 3] * H), r1 + 1), H).astype(np.intp)
        s = np.pad(self.sat, ((1, 0), (1, 0)))  # row/column 0 are the empty sums
        total = s[r2, c2] - s[r1, c2] - s[r2, c1] + s[r1, c1]
        return (total / ((r2 - r1) * (c2 - c1))).tolist()

    @classmethod
    def load(cls, path: str | os.PathLike, encoding: str = "auto") -> DepthMap:
        """Decode a depth image, once per process for a given file version (bounded LRU cache)."""
        p = Path(path)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"depth map not found: {p}") from None
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size, encoding)
        return _CACHE.get(key, lambda: cls._read(p, encoding))

    @classmethod
    def _read(cls, path: Path, encoding: str) -> DepthMap:
        with Image.open(path) as img:
            img.load()
            arr, enc = decode_image(img, encoding)
        return cls(arr, enc)

    def save_gray16(self, path: str | os.PathLike) -> None:
        save_gray16(self.array, path)


def save_gray16(depth: np.ndarray, path: str | os.PathLike, compress_level: int = 6) -> None:
    """Write depth as a lossless 16-bit PNG holding d × 65535 (compress_level 1 trades size for speed)."""
    v = np.rint(np.clip(depth, 0.0, 1.0) * 65535.0).astype(np.uint16)
    Image.fromarray(v).save(path, compress_level=compress_level)


class _LRU:
    """Decoded maps by file version, least recently used dropped first once the memory they
    hold (`DepthMap.nbytes`, which grows when a map builds its summed-area table) passes
    `max_bytes`. Bounded by bytes, not count: every process that reads maps (the workbench,
    each generation or import worker) holds its own."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict = OrderedDict()
        self._lock = Lock()

    def get(self, key, make):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            held = sum(v.nbytes for v in self._items.values())
            while held > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                held -= dropped.nbytes
        return value

    def clear(self):
        with self._lock:
            self._items.clear()


_CACHE = _LRU(int(float(os.environ.get("SIF_DEPTH_CACHE_MB", "256")) * 2**20))
clear_depth_cache = _CACHE.clear
