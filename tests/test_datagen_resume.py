"""A `sif generate` process killed with SIGKILL midway, then resumed: no duplicate, no loss, and
no image worker process left behind.

What holds however loaded the machine is: exactly one generated revision per sample, and every
stored revision's tokens counted. Not the token total: a reply in flight at the kill was paid
for but never stored, and the resumed run asks for it again."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from db.store import Store
from tests.support.datagen import add_samples, echo_teacher
from tests.support.fake_openai import Reply, fake_openai_server

N = 24
SIF = str(Path(sys.executable).with_name("sif"))


def _committed(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT COUNT(*) FROM chain_revisions").fetchone()[0]


def _run_id(stderr: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        for line in stderr.read_text().splitlines():
            if line.startswith("run ") and line.endswith(" started"):
                return line.split()[1]
        time.sleep(0.05)
    raise AssertionError(f"no run id announced: {stderr.read_text()!r}")


def _children(pid: int) -> set[int]:
    return {int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()}


def _gone(pid: int) -> bool:
    """Exited (or a zombie waiting for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def test_killed_run_resumes_with_exactly_one_generated_revision_per_sample(tmp_path):
    db = tmp_path / "sif.db"
    with Store.open(db) as store:
        ids = add_samples(store, [f"Where is mug {i}?" for i in range(N)])
    env = {**os.environ, "OPENAI_API_KEY": "sk-kill-test"}
    with fake_openai_server(lambda req, n: Reply(echo_teacher(req, n), delay_s=0.15)) as server:
        args = [
            SIF,
            "generate",
            "--db",
            str(db),
            "--teacher",
            "openai",
            "--base-url",
            server.base_url,
            "--model",
            "m",
            "--concurrency",
            "2",
            "--no-progress",
        ]
        err = tmp_path / "first.err"
        with err.open("w") as stderr:  # with a worker process (all the CPU work), which must die with the run
            proc = subprocess.Popen(
                args + ["--set", "worker_processes=1"], stdout=subprocess.DEVNULL, stderr=stderr, env=env
            )
        workers: set[int] = set()
        try:
            deadline = time.monotonic() + 60
            run_id = _run_id(err, deadline)
            while _committed(db) < 5 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.02)
            if sys.platform == "linux":
                workers = _children(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        killed_at = _committed(db)
        assert 5 <= killed_at < N, killed_at
        if sys.platform == "linux":
            assert workers, "the run had no image worker process"
            while not all(map(_gone, workers)) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert all(map(_gone, workers)), workers

        second = subprocess.run(args + ["--resume", run_id], capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 0, second.stderr
        assert f"run {run_id}:" in second.stdout
        paid = len(server.requests)

    with Store.open(db) as store:
        assert store.count(run_id=run_id) == N
        for sid in ids:
            history = store.history(sid)
            assert len(history) == 1, (sid, [(r.rev, r.run_id) for r in history])
            current = store.current_chain(sid)
            assert current.origin == "generated" and current.valid and current.run_id == run_id
        run = store.get_run(run_id)
        assert run["status"] == "done" and run["metrics"]["generated"] == N
        # Usage committed with each sample survives the kill; at most the replies in flight then
        # (one per concurrent request) were paid twice.
        assert N <= paid <= N + 2
        assert 15 * N <= run["metrics"]["total_tokens"] <= 15 * paid
    assert "sk-kill-test" not in second.stdout + second.stderr
