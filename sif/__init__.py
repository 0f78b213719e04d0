"""SIF domain core: chains, geometry, depth maps, rewards, planning and synthetic scenes.

Importing this package must stay light: numpy, scipy and pillow only.
"""

from sif.chain import Chain, ParseResult, Problem, Region, Step, parse_chain, render_chain, validate_chain
from sif.geometry import box_iou, global_iou, hiou, pair_iou

__all__ = [
    "Chain",
    "ParseResult",
    "Problem",
    "Region",
    "Step",
    "parse_chain",
    "render_chain",
    "validate_chain",
    "box_iou",
    "global_iou",
    "hiou",
    "pair_iou",
]
