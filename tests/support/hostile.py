"""Hostile text for the tests: what a careless or malicious model, server or file can send.

`hostile_replies(good, size)` turns one well-formed chain into one reply per hostile case; the
end-to-end tests cycle through them with a fake teacher and a fake model under evaluation, and
the property tests mix their pieces into arbitrary text.
"""

from __future__ import annotations

import json
import re

BIG = "1" * 400  # an integer beyond the range of a float (> 308 digits): OverflowError in float()
HUGE = "1" * 5000  # beyond Python's 4,300-digit limit for int(): ValueError
DEEP = "[" * 1200  # nesting beyond the recursion limit: RecursionError in json
MEGABYTES = 3_000_000  # characters of prose in the multi-MB reply

# Pieces the property tests draw from (besides arbitrary text): tags, JSON fragments, hostile numbers.
TOKENS = [
    "<think>",
    "</think>",
    "<area>",
    "</area>",
    "<text>",
    "</text>",
    "<answer>",
    "</answer>",
    "[",
    "]",
    "{",
    "}",
    ",",
    '"bbox_2d":',
    '"depth":',
    "0.5",
    "0.125",
    "640",
    "-1",
    "1e999",
    "-1e-999",
    "NaN",
    "Infinity",
    BIG,
    HUGE[:4400],
    "[" * 1100,
    "\x00",
    "\ud800",
    "\udcff",
    "```",
    " ",
    "\n",
    "\u2028",
]

_FIRST_NUMBER = re.compile(r'("bbox_2d":\s*\[)[^,\]]+')
_DEPTH = re.compile(r'("depth":\s*)[^,}\]]+')


def _first_box_number(good: str, number: str) -> str:
    return _FIRST_NUMBER.sub(lambda m: m.group(1) + number, good, count=1)


def in_pixels(good: str, size: tuple[int, int]) -> str:
    """`good` with every box in whole pixels of a `size` (width, height) image."""
    w, h = size

    def scale(m: re.Match) -> str:
        box = json.loads(m.group(2))
        return m.group(1) + json.dumps([round(v * (w if i % 2 == 0 else h)) for i, v in enumerate(box)])

    return re.sub(r'("bbox_2d":\s*)(\[[^\]]*\])', scale, good)


def hostile_replies(good: str, size: tuple[int, int]) -> dict[str, str]:
    """One reply text per hostile case, made from the well-formed chain `good` (boxes written as
    `"bbox_2d": [...]`, depths as `"depth": x`). The reply check repairs those in `USABLE`."""
    cut = good.index("<answer>")
    return {
        "prose_mentions_think": "I put my reasoning in <think> tags and the result in <answer> tags.\n\n" + good,
        "unclosed_answer": good.replace("</answer>", ""),
        "missing_answer": good[:cut],
        "pixel_boxes": in_pixels(good, size),
        "int_over_308_digits": _first_box_number(good, BIG),
        "int_over_4300_digits": _first_box_number(good, HUGE),
        "nan_and_infinity": _DEPTH.sub(lambda m: m.group(1) + "Infinity", _first_box_number(good, "NaN"), count=1),
        "nested_1200_deep": _first_box_number(good, DEEP),
        "nested_and_closed": _first_box_number(good, DEEP + "]" * len(DEEP)),
        "nul_bytes": good.replace("<text>", "<text>\x00", 1).replace("</think>", "\x00</think>"),
        "lone_surrogate": good.replace("<text>", "<text>\ud800", 1),
        "multi_megabyte": good + "\n" + "All done. " * (MEGABYTES // 10),
        "unclosed_areas": "<think>" + "<area>" * 5_000 + "</think><answer>x</answer>",
    }


# Repaired by the reply check; the others are stored verbatim with their problems.
USABLE = ("prose_mentions_think", "unclosed_answer", "missing_answer", "pixel_boxes", "multi_megabyte")


def reply_body(text: str, n: int, *, usage=None) -> str:
    """A chat-completions body for `text` (json.dumps writes a lone surrogate as a \\ud800 escape)."""
    return json.dumps(
        {
            "id": f"chatcmpl-{n}",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage if usage is not None else {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }
    )


def not_utf8_body(text: str, n: int) -> bytes:
    """A body whose reply text holds bytes that are not UTF-8 (the client reads them as U+FFFD)."""
    body = reply_body(text.replace("<text>", "<text>@@", 1), n).encode()
    return body.replace(b"@@", b"\xff\xfe", 1)
