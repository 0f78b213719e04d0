"""Helpers for datagen tests and benches: a teacher that answers from the instruction it is given."""

from __future__ import annotations

import json
import re

_PLANNED_AREA = re.compile(r"^<area>(\[.*\])</area>$", re.M)


def instruction_text(request: dict) -> str:
    """The text part of the (single) user message of a teacher request."""
    return next(p["text"] for p in request["messages"][-1]["content"] if p["type"] == "text")


def planned_areas(request: dict) -> list[list[dict]]:
    """The regions of each planned step, read back from the instruction."""
    return [json.loads(m) for m in _PLANNED_AREA.findall(instruction_text(request))]


def chain_reply(areas: list[list[dict]], answer: str = "teacher answer", shift: float = 0.0) -> str:
    """A well-formed chain over `areas` (boxes moved by `shift`, clipped to the image)."""
    lines = ["<think>"]
    for i, regions in enumerate(areas, start=1):
        moved = [
            {"bbox_2d": [round(min(max(v + shift, 0.0), 1.0), 3) for v in r["bbox_2d"]], "depth": r["depth"]}
            for r in regions
        ]
        lines += [f"<area>{json.dumps(moved)}</area>", f"<text>Step {i}: looking at this part of the scene.</text>"]
    lines += ["</think>", f"<answer>{answer}</answer>"]
    return "\n".join(lines)


def echo_teacher(request: dict, n: int) -> str:
    """A fake teacher VLM that follows the plan exactly."""
    return chain_reply(planned_areas(request))


def add_samples(
    store,
    questions,
    *,
    size=(64, 48),
    depth: bool = True,
    dataset: str = "viscot",
    gt_boxes=((0.2, 0.25, 0.45, 0.6),),
    seed: int = 0,
) -> list[int]:
    """Samples with a picture (and a smooth gray16 depth map) under the store's data root."""
    import numpy as np
    from PIL import Image

    from sif.depth import save_gray16

    root = store.data_root / "samples"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    ids = []
    for i, question in enumerate(questions):
        name = f"{dataset}-{seed}-{i}"
        pixels = (np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 40 * (i % 6))], -1)).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"{name}.jpg", quality=90)
        depth_rel = None
        if depth:
            d = np.clip(yy / h * 0.8 + 0.1 * np.sin(xx / 7 + rng.uniform(0, 6)), 0, 1)
            save_gray16(d, root / f"{name}_depth.png")
            depth_rel = f"samples/{name}_depth.png"
        ids.append(
            store.add_sample(
                dataset=dataset,
                source_id=name,
                image=f"samples/{name}.jpg",
                question=question,
                answer="a red mug",
                gt_boxes=[list(b) for b in gt_boxes],
                width=w,
                height=h,
                depth=depth_rel,
                depth_encoding="gray16_depth" if depth else None,
            )
        )
    return ids


def serve_echo_teacher(delay_s: float) -> None:
    """Run a fake teacher that follows the plan after `delay_s`, until killed (for benches:
    a separate process, like a remote server). Prints its base URL first."""
    import sys

    from tests.support.fake_openai import FakeOpenAIServer, Reply

    class Server(FakeOpenAIServer):
        request_queue_size = 512  # listen backlog: 32 clients connecting at once must not wait for SYN retries

    server = Server(lambda req, n: Reply(echo_teacher(req, n), delay_s=delay_s))
    print(server.base_url, flush=True)
    sys.stdout.close()
    server.serve_forever()
