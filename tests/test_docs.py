"""The docs cannot drift from the code: every shell and Python block of README.md and docs/*.md runs,
in order, in a fresh folder per file, on the tiny model and synthetic data (the convention for
blocks that cannot run here is in tests/support/docs.py). The fast suite runs each file up to its
first block marked slow; the slow suite runs everything. Every skipped block is listed below with
its reason, so none is skipped silently."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.docs import ROOT, Runner, environment, parse, prepare

FILES = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

# (file, reason) -> how many blocks: each needs what this machine does not have.
SKIPPED = {
    ("README.md", "installs the environment and starts a server: CI runs `make test` itself"): 1,
    ("README.md", "GPU node, real SIF-50K and the 7B base model"): 1,
    ("README.md", "needs `sif train demo-run` first: 20 minutes on 2 CPU cores"): 1,
    ("docs/data.md", "the real data sets under /data/sif"): 1,
    ("docs/demo-run.md", "20 to 60 minutes on 2 CPU cores: tests/test_training_demo_run.py runs a reduced one"): 1,
    ("docs/evaluation.md", "GPUs serving the model with vLLM"): 1,
    ("docs/hardware.md", "GPU"): 1,
    ("docs/hardware.md", "builds wheels from a package index, then needs a GPU machine"): 1,
    ("docs/offline.md", "downloads about 17 GB from the Hugging Face hub"): 1,
    ("docs/training.md", "several GPUs and nodes, vLLM"): 1,
}


def _pages():
    return {name: parse(ROOT / name) for name in FILES}


def test_every_skip_is_listed_with_its_reason():
    found = Counter(skip for page in _pages().values() for skip in page.skips)
    assert dict(found) == SKIPPED
    assert all(reason for _, reason in found), "a skip names its reason: <!-- docs-test: skip (WHY) -->"


def test_the_parser_follows_the_convention(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```bash\necho one\n```\n\n<!-- docs-test: skip (GPU) -->\n```bash\nnvidia-smi\n```\n\n"
        "```text\nsif synth OUT [--n N]\n```\n\n<!-- docs-test: setup\ntouch hidden\n-->\n\n"
        "<!-- docs-test: slow -->\n```python\nprint(2)\n```\n\n```json\n{}\n```\n"
    )
    blocks = parse(page, tmp_path).blocks
    assert [(b.lang, b.mark, b.note) for b in blocks] == [
        ("bash", None, ""),
        ("bash", "skip", "GPU"),
        ("setup", None, ""),
        ("python", "slow", ""),
    ]
    runner = Runner(tmp_path, environment(tmp_path / "home"))
    runner.run(parse(page, tmp_path), slow=False)
    assert [b.lang for b in runner.ran] == ["bash", "setup"] and (tmp_path / "hidden").exists()


def _run(name: str, tmp_path, slow: bool) -> Runner:
    page = parse(ROOT / name)
    runner = Runner(prepare(tmp_path / "work"), environment(tmp_path / "home"))
    try:
        runner.run(page, slow=slow)
    finally:
        runner.close()
    return runner


@pytest.mark.parametrize("name", FILES)
def test_docs_blocks_run(name, tmp_path):
    _run(name, tmp_path, slow=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in FILES if any(b.mark == "slow" for b in parse(ROOT / n).blocks)])
def test_docs_blocks_run_slow_ones_too(name, tmp_path):
    runner = _run(name, tmp_path, slow=True)
    assert any(b.mark == "slow" for b in runner.ran)
