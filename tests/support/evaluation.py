"""Helpers for the eval tests and bench: a multiple-choice benchmark with real pictures and depth
pictures on disk, and a model server that answers it (some right, some wrong, some failing)."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from sif.depth import encode_spectral_r

CHOICES = ["left", "right", "above", "below"]
_NUMBER = re.compile(r"Question (\d+):")


def make_choice_bench(root: Path, n: int, *, size=(64, 48), depth: bool = True, seed: int = 0) -> Path:
    """`root/cv.jsonl`: n CV-Bench records ("Question i: …"), each with its own JPEG and, with
    `depth`, a `NAME_d.png` spectral_r depth picture beside it."""
    w, h = size
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    rows = []
    for i in range(n):
        a, b = rng.uniform(2, 9, 2)
        rgb = np.stack([128 + 100 * np.sin(a * xx + i), 128 + 100 * np.cos(b * yy), 255 * xx * yy], -1)
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(root / f"img/{i}.jpg", quality=90)
        if depth:
            d = np.clip(1 - yy * 0.8 + 0.1 * np.sin(a * xx * 6), 0, 1).astype(np.float32)
            Image.fromarray(encode_spectral_r(d)).save(root / f"img/{i}_d.png")
        rows.append(
            {
                "idx": i,
                "type": "2D",
                "task": ("Relation", "Count")[i % 2],
                "image": f"img/{i}.jpg",
                "question": f"Question {i}: where is the mug?",
                "choices": CHOICES,
                "answer": f"({'ABCD'[i % 4]})",
            }
        )
    path = root / "cv.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


MMBENCH_COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]


def png_base64(size=(8, 6)) -> str:
    """A small red PNG, base64 encoded (MMBench TSVs carry their pictures so)."""
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def mmbench_tsv(path: Path, rows: list[dict]) -> Path:
    """An MMBench TSV of `rows` (dicts keyed by MMBENCH_COLUMNS; missing ones empty)."""
    lines = ["\t".join(MMBENCH_COLUMNS)] + ["\t".join(str(r.get(k, "")) for k in MMBENCH_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def question_of(request: dict) -> str:
    return request["messages"][-1]["content"][-1]["text"].strip()


def choice_answer(request: dict) -> str:
    """A chain answering "Question i" with option i % 4 (right) unless crc32(text) says otherwise:
    about two in three right, the same answer for the same question every time. MMBench-style
    questions ("Options:" lines) get a letter chosen from their text the same way."""
    text = question_of(request)
    m = _NUMBER.search(text)
    u = zlib.crc32(text.encode()) % 3
    if m:
        i = int(m.group(1))
        letter = "ABCD"[i % 4] if u else "ABCD"[(i + 1) % 4]
    else:
        options = re.findall(r"^([A-D])\. ", text, re.M) or ["A"]
        letter = options[zlib.crc32(text.encode()) % len(options)]
    return (
        '<think>\n<area>[{"bbox_2d":[0.000,0.000,1.000,1.000],"depth":0.500}]</area>\n'
        f"<text>Looking at the picture.</text>\n</think>\n<answer>({letter})</answer>"
    )


class InFlight:
    """Counts the requests a server is answering at once (the most seen is `peak`)."""

    def __init__(self):
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc):
        with self._lock:
            self.now -= 1

    def hold(self, until: int, timeout_s: float = 10.0) -> None:
        """Wait inside a request until `until` requests are in flight (or the timeout), so a busy
        machine's slow client still shows its real concurrency."""
        deadline = time.monotonic() + timeout_s
        while self.peak < until and time.monotonic() < deadline:
            time.sleep(0.01)


def serve_choice_model(delay_s: float) -> None:
    """Run a model server answering `choice_answer` after `delay_s`, until killed (for benches: a
    separate process, like a real server). Prints its base URL first."""
    import sys

    from tests.support.fake_openai import FakeOpenAIServer, Reply

    class Server(FakeOpenAIServer):
        request_queue_size = 512  # many clients connecting at once must not wait for SYN retries

    def answer(request, n):
        time.sleep(delay_s)
        return Reply(choice_answer(request))

    server = Server(answer)
    print(server.base_url, flush=True)
    sys.stdout.close()
    server.serve_forever()
