"""Real annotation files: a small subset shipped in tests/data/ (the default suite reads it), and
the full files of the project's shared data beside the checkout (`../shared/data`, or
`$SIF_SHARED_DATA`) for the tests that need every record."""

import os
from pathlib import Path

import pytest

TESTS_DATA = Path(__file__).resolve().parents[1] / "data"
VSR_SAMPLE = str(TESTS_DATA / "viscot" / "vsr_cot_train.sample.jsonl")
REC_SAMPLE = str(TESTS_DATA / "rec" / "REC_refcoco_unc_val.sample.jsonl")

SHARED_DATA = Path(os.environ.get("SIF_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")
VSR_FILE = str(SHARED_DATA / "viscot" / "vsr_cot_train.jsonl")
REC_FILE = str(SHARED_DATA / "rec" / "REC_refcoco_unc_val.jsonl")


def full_file(path: str) -> str:
    """`path`, a full file of the shared data; the test is skipped, saying why, when it is absent
    (and fails instead under SIF_REQUIRE_SHARED_DATA=1, as in CI, which has the shared data)."""
    if not Path(path).is_file():
        why = (
            f"{path} is absent: the full annotation files live in ../shared/data beside the checkout ($SIF_SHARED_DATA)"
        )
        if os.environ.get("SIF_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(why + " and SIF_REQUIRE_SHARED_DATA=1")
        pytest.skip(why)
    return path
