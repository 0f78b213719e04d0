"""The GPU check (bench/gpu.py, run by scripts/gpu-check) runs end to end on the CPU with the tiny model.

A GPU call is scarce: this keeps the prepared script runnable (commands, settings, the JSON it writes)
between the times a GPU is at hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_stage_on_the_cpu(tmp_path):
    out = tmp_path / "gpu-check.json"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--cpu", "--work", str(tmp_path / "work"), "--out", str(out)],
        check=True,
        timeout=900,
    )
    report = json.loads(out.read_text())
    stages = report["stages"]
    assert [s for s in stages.values() if "error" in s] == []
    assert stages["sft"]["steps"] == report["sizes"]["sft_steps"] and stages["sft"]["tokens_per_s"] > 0
    assert stages["grpo"]["steps"] == report["sizes"]["grpo_steps"]
    assert "rewards/format_reward/mean" in stages["grpo"]["rewards"]
    assert stages["eval"]["metrics"]["n"] == report["sizes"]["eval_n"] and stages["eval"]["adapter"]
    assert "vLLM is too large" in report["vllm"]
