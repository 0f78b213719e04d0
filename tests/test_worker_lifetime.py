"""Worker processes die with the command that started them. `sif import` analyses large files'
chains in a pool of forked workers: SIGKILL the command and none of them stays behind (each held
hundreds of MB). `sif generate`'s workers are checked the same way in test_datagen_resume.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.importers import POOL_MIN
from tests.support.store import released_record

SIF = str(Path(sys.executable).with_name("sif"))


def _children(pid: int) -> set[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return {int(c) for task in tasks for c in (task / "children").read_text().split()}
    except FileNotFoundError:
        return set()


def _alive(pid: int) -> bool:
    """Running (not exited, and not a zombie waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the workers' parent-death signal is Linux's")
def test_import_workers_die_with_a_killed_import(tmp_path):
    root = tmp_path / "data"
    record = released_record(root, "a")
    n = POOL_MIN + 500  # enough chains for the worker pool
    records = [dict(record, id=f"r{i}", problem=f"What colour is dress {i}?") for i in range(n)]
    (tmp_path / "big.json").write_text(json.dumps(records))
    proc = subprocess.Popen(
        [SIF, "import", "sif50k", str(tmp_path / "big.json"), "--root", str(root), "--db", str(tmp_path / "s.db")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    try:
        while proc.poll() is None and time.monotonic() < deadline and len(workers) < 2:
            workers = _children(proc.pid)
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert workers, "the import finished before its worker pool was seen"
    while any(map(_alive, workers)) and time.monotonic() < deadline + 10:
        time.sleep(0.05)
    assert not any(map(_alive, workers)), [w for w in workers if _alive(w)]
