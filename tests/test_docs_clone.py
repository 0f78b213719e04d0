"""A newcomer with nothing but the README: a fresh `git clone` into an empty folder (nothing beside
it: no shared data, no built demo, no models), then the README's curator path exactly as written —
synthetic data, import, the workbench answering a real HTTP request, a review from Python, the
exports — run from the clone's root as the README says. The clone's code is what runs (PYTHONPATH
is the clone); the environment's packages are this venv's, as `make setup` would install them."""

from __future__ import annotations

import json
import subprocess

import pytest

from db.store import Store
from tests.support.docs import ROOT, Runner, environment, parse, section


@pytest.mark.slow
def test_a_fresh_clone_follows_the_curator_path(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    clone = empty / "sif-workbench"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    assert [p.name for p in empty.iterdir()] == ["sif-workbench"]

    readme = parse(clone / "README.md", clone)
    path = section(readme, "1. Curate data")
    kinds = [b.mark or b.lang for b in path.blocks]
    assert kinds == ["bash", "server", "python", "bash"], kinds  # import, workbench, review, export
    runner = Runner(clone, environment(tmp_path / "home", pythonpath=clone))
    try:
        runner.run(path, slow=True)
    finally:
        runner.close()
    assert len(runner.ran) == len(path.blocks)  # nothing skipped

    with Store.open(clone / "sif.db") as store:
        accepted = {r.id for r in store.query(status="accepted", split="train", limit=1000)}
    assert accepted  # the review from Python accepted some training samples
    manifest = json.loads((clone / "exports" / "sft" / "manifest.json").read_text())
    exported = [json.loads(line) for line in (clone / "exports" / "sft" / "sif_sft.jsonl").read_text().splitlines()]
    assert manifest["exported"] == len(exported) and {r["sample_id"] for r in exported} == accepted
    assert all("camera" in r["prompt"][0]["content"][-1]["text"] for r in exported)
