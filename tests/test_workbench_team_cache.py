"""The pictures the workbench renders for the browser: a bounded number of files while it runs
(the least recently used go first, what is on screen now stays), and none left behind when the
server is stopped with SIGTERM or SIGINT (a real server process, opened samples, the signal)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.support.workbench import ApiCurator, copy_store, free_port
from workbench.render import PictureFiles

ROOT = Path(__file__).resolve().parents[1]


def picture(i: int) -> Image.Image:
    return Image.new("RGB", (40, 30), (i % 256, (i * 7) % 256, (i * 13) % 256))


def test_the_picture_folder_keeps_a_bounded_number_of_files(tmp_path):
    pictures = PictureFiles(tmp_path / "views", keep=20, bound=tmp_path)
    (tmp_path / "gradio-copy.jpg").write_bytes(b"x")  # what Gradio copies into the served folder counts too
    on_screen = pictures.write(picture(0), "s0-picture")
    for i in range(1, 200):
        pictures.write(picture(i), f"s{i}-picture")
        if i % 10 == 0:
            assert pictures.write(picture(0), "s0-picture") == on_screen  # shown again: touched, kept
        assert pictures.count() <= 20 + PictureFiles.SWEEP_EVERY
    assert Path(on_screen).is_file()
    assert not (tmp_path / "gradio-copy.jpg").exists()  # the oldest went first
    assert sum(1 for _ in (tmp_path / "views").iterdir()) <= 20 + PictureFiles.SWEEP_EVERY


def start_server(db: Path, tmp: Path, port: int) -> subprocess.Popen:
    code = (
        "import sys; from workbench.app import launch; "
        "launch(sys.argv[1], port=int(sys.argv[2]), auth=[('ann', 'ann-pw')], quiet=True)"
    )
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(db), str(port)], env=env, cwd=ROOT)
    end = time.monotonic() + 120
    while time.monotonic() < end:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, "the server exited"
        time.sleep(0.3)
    proc.kill()
    raise TimeoutError("the server did not start")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_no_picture_is_left_behind_when_the_server_is_stopped(demo_db, tmp_path, sig):
    db = copy_store(demo_db, tmp_path / "sif.db")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    proc = start_server(db, tmp, port)
    try:
        ann = ApiCurator(f"http://127.0.0.1:{port}", "ann", "ann-pw")
        ann.load()
        for _ in range(5):
            ann.next()
        (cache,) = tmp.glob("sif-workbench-*")
        assert len(list(cache.rglob("*.jpg"))) >= 15  # picture, depth and strip of 6 samples
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not cache.exists()
    assert [p for p in tmp.rglob("*") if p.is_file()] == []  # (Gradio makes an empty folder when imported)
