"""Exports replace the previous export whole or not at all: a `sif export` killed with SIGKILL
while it writes a large export, or stopped by a full disk (a file-size limit, `ulimit -f`; an
injected ENOSPC in the fast test), leaves the previous files byte for byte as they were, their
manifest still matching them."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from db.exporters import _Sink
from db.store import Store
from sif.depth import encode_spectral_r
from tests.support.store import RELEASED_CHAIN, synth_folder

SIF = str(Path(sys.executable).with_name("sif"))
N = 20_000  # samples: an SFT export of about 30 MB
PREVIOUS = 12  # the test split: what the previous export holds


@pytest.fixture(scope="module")
def big_store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("big")
    Image.new("RGB", (48, 32), (90, 120, 200)).save(root / "a.jpg")
    Image.fromarray(encode_spectral_r(np.full((32, 48), 0.5, np.float32))).save(root / "a_d.png")
    db = root / "sif.db"
    with Store.open(db) as store:
        for start in range(0, N, 2000):
            records = [
                (
                    dict(
                        dataset="big",
                        source_id=f"s{i}",
                        image=str(root / "a.jpg"),
                        question=f"What colour is dress number {i}? " + "Look closely. " * 20,
                        answer="pink",
                        gt_boxes=[[0.266, 0.274, 0.301, 0.31]],
                        width=48,
                        height=32,
                        depth=str(root / "a_d.png"),
                        depth_encoding="spectral_r",
                        split="test" if i < PREVIOUS else "train",
                    ),
                    RELEASED_CHAIN,
                    None,
                )
                for i in range(start, min(start + 2000, N))
            ]
            store.import_samples(records, author="import")
    return db


def _export(db: Path, out: Path, split: str) -> list[str]:
    return [SIF, "export", "sft", "--db", str(db), "--out", str(out), "--split", split]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _previous_export(db: Path, out: Path) -> dict[str, bytes]:
    subprocess.run(_export(db, out, "test"), check=True, capture_output=True, timeout=300)
    files = _snapshot(out)
    assert set(files) == {"sif_sft.json", "dataset_info.json", "manifest.json"}
    assert len(json.loads(files["sif_sft.json"])) == PREVIOUS
    return files


def _consistent(files: dict[str, bytes]) -> None:
    manifest = json.loads(files["manifest.json"])
    assert manifest["content_hash"] == "sha256:" + hashlib.sha256(files["sif_sft.json"]).hexdigest()
    assert manifest["exported"] == PREVIOUS == len(json.loads(files["sif_sft.json"]))


@pytest.mark.parametrize("kind", ["sft", "rl"])
def test_a_write_failing_midway_leaves_the_previous_export_untouched(tmp_path, monkeypatch, kind):
    data = synth_folder(tmp_path / "synth", n=8)
    store = tmp_path / "sif.db"
    runner = CliRunner()
    imported = runner.invoke(app, ["import", "sif50k", str(data), "--root", str(data.parent), "--db", str(store)])
    assert imported.exit_code == 0, imported.output
    folder = tmp_path / kind
    args = [
        "export",
        kind,
        "--db",
        str(store),
        "--split",
        "all",
        "--out",
        str(folder / "rl.jsonl" if kind == "rl" else folder),
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    before = _snapshot(folder)
    real, writes = _Sink.write, []

    def disk_full(sink, text):
        writes.append(text)
        if len(writes) > 2:  # the new data file is under way
            raise OSError(errno.ENOSPC, "No space left on device")
        real(sink, text)

    monkeypatch.setattr(_Sink, "write", disk_full)
    again = runner.invoke(app, args)
    assert again.exit_code == 1 and "No space left on device" in again.output, again.output
    assert _snapshot(folder) == before  # untouched, no temporary file left


@pytest.mark.slow
def test_an_export_killed_while_writing_leaves_the_previous_one_untouched(big_store, tmp_path):
    out = tmp_path / "sft"
    before = _previous_export(big_store, out)
    proc = subprocess.Popen(_export(big_store, out, "all"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    temp = None
    while proc.poll() is None and time.monotonic() < deadline:
        temp = next((p for p in out.iterdir() if p.name.startswith(".sif_sft.json.")), None)
        if temp is not None and temp.stat().st_size > 1_000_000:  # well into writing the new data file
            break
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed"
    after = {name: data for name, data in _snapshot(out).items() if not name.startswith(".")}
    assert after == before  # byte for byte
    _consistent(after)
    # The next export completes over it (the dead one's temporary file is only left beside it).
    subprocess.run(_export(big_store, out, "all"), check=True, capture_output=True, timeout=300)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["exported"] == N
    assert manifest["content_hash"] == "sha256:" + hashlib.sha256((out / "sif_sft.json").read_bytes()).hexdigest()


def _file_size_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "rl"])
def test_an_export_stopped_by_a_full_disk_leaves_the_previous_one_untouched(big_store, tmp_path, kind):
    out = tmp_path / kind
    if kind == "sft":
        before = _previous_export(big_store, out)
        args = _export(big_store, out, "all")
    else:
        out.mkdir()
        target = out / "rl.jsonl"
        rl = [SIF, "export", "rl", "--db", str(big_store), "--out", str(target), "--n", str(N)]
        subprocess.run([*rl, "--split", "test"], check=True, capture_output=True, timeout=300)
        before = _snapshot(out)
        args = [*rl, "--split", "all"]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=300, preexec_fn=_file_size_limit(1_000_000)
    )  # as under `ulimit -f 1000`: writing past 1 MB fails with EFBIG
    assert result.returncode == 1, result.stdout + result.stderr
    assert "error:" in result.stderr and "File too large" in result.stderr and "Traceback" not in result.stderr
    assert _snapshot(out) == before  # untouched, and no temporary file left behind
    if kind == "sft":
        _consistent(before)
