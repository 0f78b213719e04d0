"""Reward speed on one GRPO group against a baseline written like the public reference code.

The group: 8 completions of 4–6 steps with 1–3 regions each, scored by the format, grounding and
depth rewards against a new 1280×960 `spectral_r` depth map.
  ours:     sif.rewards (depth decoded once per file through a colour table, cached; box means
            from a summed-area table; union areas by coordinate compression).
  baseline: every completion decodes the whole map by nearest palette colour over every pixel
            (vectorized numpy, chunked) and crops it for each region; union IoU from shapely
            polygon unions; pair IoU with the same Kuhn–Munkres matching.
Run: python bench/rewards.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment
from shapely.geometry import box as shapely_box
from shapely.ops import unary_union

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sif.chain import Chain, Region, Step, parse_chain, render_chain, validate_chain
from sif.depth import SPECTRAL_R, DepthMap, clear_depth_cache, encode_spectral_r
from sif.geometry import iou_matrix
from sif.rewards import DEPTH_TOLERANCE, bbox_reward, depth_reward, format_reward

WIDTH, HEIGHT, GROUP = 1280, 960, 8


def make_depth_map(path: Path, rng: np.random.Generator) -> np.ndarray:
    """A smooth scene-like depth field (ground gradient plus blobs), written as spectral_r."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH] / np.array([HEIGHT, WIDTH])[:, None, None]
    depth = 1.0 - yy
    for _ in range(6):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0.3, 1), rng.uniform(0.05, 0.2)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        depth = np.minimum(depth, 1.0 - cy + 0.3 * (1 - blob) + 0.01)
    depth = (depth - depth.min()) / (depth.max() - depth.min())
    Image.fromarray(encode_spectral_r(depth)).save(path)
    return depth


def make_group(depth: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[list[float]]]:
    """8 completions whose region depths are mostly right (so the depth test reads every region)."""
    truth = DepthMap(depth)
    gt = [[0.3, 0.5, 0.45, 0.8], [0.6, 0.55, 0.7, 0.75]]
    completions = []
    for _ in range(GROUP):
        steps = []
        for _ in range(int(rng.integers(4, 7))):
            regions = []
            for _ in range(int(rng.integers(1, 4))):
                x1, y1 = rng.uniform(0, 0.7, 2)
                bbox = tuple(round(v, 3) for v in (x1, y1, x1 + rng.uniform(0.05, 0.3), y1 + rng.uniform(0.05, 0.3)))
                d = truth.box_mean(bbox) * rng.uniform(0.95, 1.05)
                regions.append(Region(bbox, round(min(max(d, 0.0), 1.0), 3)))
            steps.append(Step(tuple(regions), "looking"))
        completions.append([{"role": "assistant", "content": render_chain(Chain(tuple(steps), "red"))}])
    return completions, [gt] * GROUP


# ---------------------------------------------------------------- baseline


def _nearest_palette_levels(rgb: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Nearest palette colour of every pixel: |c − p|² = |c|² − 2 c·p + |p|², argmin over p."""
    flat = rgb.reshape(-1, 3).astype(np.float32)
    pal = SPECTRAL_R.astype(np.float32)
    pal_sq = (pal * pal).sum(1)
    out = np.empty(len(flat), dtype=np.int16)
    for start in range(0, len(flat), chunk):
        c = flat[start : start + chunk]
        out[start : start + chunk] = (pal_sq[None, :] - 2.0 * (c @ pal.T)).argmin(1)
    return out.reshape(rgb.shape[:2])


def baseline_depth(text: str, path: Path) -> float:
    rgb = np.asarray(Image.open(path).convert("RGB"))
    depth = 1.0 - _nearest_palette_levels(rgb) / 255.0
    H, W = depth.shape
    regions = [r for s in parse_chain(text).chain.steps for r in s.regions]
    ok = 0
    for r in regions:
        x1, y1, x2, y2 = r.bbox
        c1, r1 = int(np.floor(x1 * W)), int(np.floor(y1 * H))
        c2, r2 = max(int(np.ceil(x2 * W)), c1 + 1), max(int(np.ceil(y2 * H)), r1 + 1)
        gt = float(depth[r1:r2, c1:c2].mean())
        ok += abs(r.depth - gt) <= DEPTH_TOLERANCE * gt
    return float(ok == len(regions)) if regions else 0.0


def _shapely_global_iou(pred, gt) -> float:
    up, ug = unary_union([shapely_box(*b) for b in pred]), unary_union([shapely_box(*b) for b in gt])
    union = up.union(ug).area
    return up.intersection(ug).area / union if union else 0.0


def _baseline_hiou(pred, gt) -> float:
    m = iou_matrix(np.asarray(pred, float), np.asarray(gt, float))
    rows, cols = linear_sum_assignment(m, maximize=True)
    return (_shapely_global_iou(pred, gt) + m[rows, cols].sum() / min(len(pred), len(gt))) / 2


def baseline_bbox(text: str, gt) -> float:
    chain = parse_chain(text).chain
    s_end, s_init = _baseline_hiou(chain.final_boxes, gt), _baseline_hiou(chain.initial_boxes, gt)
    return s_end + (s_end - s_init)


def baseline_rewards(completions, gt_boxes, path) -> list[list[float]]:
    texts = [c[-1]["content"] for c in completions]
    return [
        [0.0 if validate_chain(t) else 1.0 for t in texts],
        [baseline_bbox(t, g) for t, g in zip(texts, gt_boxes)],
        [baseline_depth(t, path) for t in texts],
    ]


def our_rewards(completions, gt_boxes, path) -> list[list[float]]:
    return [
        format_reward(completions),
        bbox_reward(completions, gt_boxes=gt_boxes),
        depth_reward(completions, depth_path=[str(path)] * len(completions)),
    ]


# ---------------------------------------------------------------- run


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ours, base, first_decode = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            # A new file for every measurement, so nothing is served from a cache.
            depth = make_depth_map(Path(tmp) / f"decode_{i}.png", rng)
            clear_depth_cache()
            t, _ = timed(DepthMap.load, Path(tmp) / f"decode_{i}.png")
            first_decode.append(t)

            path = Path(tmp) / f"group_{i}.png"
            make_depth_map(path, rng)
            completions, gt_boxes = make_group(depth, rng)
            clear_depth_cache()
            t_ours, r_ours = timed(our_rewards, completions, gt_boxes, path)
            t_base, r_base = timed(baseline_rewards, completions, gt_boxes, path)
            np.testing.assert_allclose(r_ours, r_base, atol=1e-9)  # same scores, or the race is moot
            ours.append(t_ours)
            base.append(t_base)
            print(
                f"run {i + 1}: ours {t_ours * 1e3:7.1f} ms  baseline {t_base * 1e3:8.1f} ms  "
                f"first decode {first_decode[-1] * 1e3:5.1f} ms"
            )
    m_ours, m_base, m_dec = (statistics.median(v) for v in (ours, base, first_decode))
    print(f"\nGRPO group ({GROUP} completions, {WIDTH}x{HEIGHT} spectral_r map), medians of {args.repeats}:")
    print(f"  ours      {m_ours * 1e3:8.1f} ms")
    print(f"  baseline  {m_base * 1e3:8.1f} ms")
    print(f"  speedup   {m_base / m_ours:8.1f}x   (target >= 100x)")
    print(
        f"first decode of a new {WIDTH}x{HEIGHT} map: {m_dec * 1e3:.1f} ms median "
        f"(first in process {first_decode[0] * 1e3:.1f} ms; target <= 30 ms)"
    )


if __name__ == "__main__":
    main()
