"""GPU check: a mid-size random Qwen2.5-VL through `sif train sft`, `sif train grpo` and `sif eval`, timed.

Builds the model from bench/gpu-model.json (about 290M parameters: 20 text layers of width 1024,
a 12-block vision tower of width 640, a BPE tokenizer trained on synthetic SIF text), synthesizes
data through a store, then runs each stage as its command (a separate process, as a user runs it):
  sft:   `sif train sft`  with configs/sft.yaml, 30 steps, bf16;
  grpo:  `sif train grpo` with configs/grpo.yaml on the base model, 10 steps, bf16, completions ≤ 256 tokens;
  eval:  `sif eval synth` with the hf backend and the GRPO adapter on 64 held-out samples (batched where
         the eval runner has `batch_size`).
Writes JSON: each stage's wall time, steps/s and tokens/s (from the trainer's own log), peak device
memory in use while the stage ran (the driver's view: CUDA context and allocator cache included),
reward statistics, and the machine. Each stage's result is written as soon as it ends.
vLLM is not measured: it is too large to bring to a machine without network access.

Run: python bench/gpu.py [--out gpu-check.json]     (one CUDA GPU; scripts/gpu-check sets up the packages)
     python bench/gpu.py --cpu                       (the same path on CPU with the tiny model: a smoke run)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.synthetic_data import SyntheticData, prepare_synthetic

ROOT = Path(__file__).resolve().parents[1]

MODEL_CONFIG = ROOT / "bench" / "gpu-model.json"
# (stage sizes) on the GPU, and for the CPU smoke run with the tiny model.
# Each stage's limit keeps the whole check inside one 8-minute device call, with what came before it saved.
SIZES = {
    "gpu": dict(
        samples=400,
        sft_steps=30,
        grpo_steps=10,
        completion=256,
        eval_n=64,
        eval_tokens=128,
        bf16=True,
        limits_s={"sft": 110, "grpo": 170, "eval": 110},
    ),
    "cpu": dict(
        samples=24,
        sft_steps=2,
        grpo_steps=1,
        completion=16,
        eval_n=4,
        eval_tokens=16,
        bf16=False,
        limits_s={"sft": 300, "grpo": 300, "eval": 300},
    ),
}


class DeviceMemory:
    """Peak device memory in use (total − free, as the driver reports it) while a stage runs."""

    def __init__(self, enabled: bool):
        self.enabled, self.peak, self._stop = enabled, 0, threading.Event()

    def __enter__(self):
        if self.enabled:
            self.peak = used_bytes()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, used_bytes())

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._thread.join()

    def gib(self) -> float | None:
        return round(self.peak / 2**30, 2) if self.enabled else None


def used_bytes() -> int:
    import torch

    free, total = torch.cuda.mem_get_info()
    return total - free


class StageFailed(Exception):
    pass


def sif(args: list[str], log: Path, limit_s: float) -> float:
    """Run `sif ARGS` as its own process (`python -m cli`); returns its wall time.

    A stage that fails or runs past `limit_s` (killed: the whole check must fit one device call) raises
    StageFailed with the end of its log; the stages before it are already in the JSON."""
    start = time.perf_counter()
    code: int | str
    with log.open("w") as out:
        try:
            code = subprocess.run(
                [sys.executable, "-m", "cli", *args], stdout=out, stderr=subprocess.STDOUT, timeout=limit_s
            ).returncode
        except subprocess.TimeoutExpired:
            code = f"killed after the stage's limit of {limit_s} s"
    if code:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise StageFailed(f"sif {' '.join(args[:2])}: exit {code}; the end of its log:\n{tail}")
    return round(time.perf_counter() - start, 1)


def trainer_log(output_dir: Path) -> list[dict]:
    """The trainer's log history up to its last step, from the last checkpoint's trainer_state.json."""
    from transformers.trainer_utils import get_last_checkpoint

    checkpoint = get_last_checkpoint(str(output_dir))
    return json.loads((Path(checkpoint) / "trainer_state.json").read_text())["log_history"]


def training_run(db: Path, output_dir: Path) -> dict:
    """The run record `sif train` kept in the store (steps, the train loop's runtime)."""
    from db.store import Store

    with Store.open(db) as store:
        return next(r for r in store.list_runs("training") if r["config"].get("output_dir") == str(output_dir))


def speed(db: Path, output_dir: Path) -> dict:
    metrics = training_run(db, output_dir)["metrics"]
    steps = [e for e in trainer_log(output_dir) if "loss" in e]
    runtime, tokens = metrics["train_runtime_s"], int(steps[-1].get("num_tokens", 0))
    return {
        "steps": metrics["steps"],
        "train_runtime_s": round(runtime, 2),
        "steps_per_s": round(metrics["steps"] / runtime, 3),
        "tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 1),
        "final_loss": steps[-1]["loss"],
    }


def reward_stats(history: list[dict]) -> dict:
    steps = [e for e in history if "reward" in e]
    keys = sorted({k for e in steps for k in e if k.startswith("rewards/") and k.endswith("/mean")} | {"reward"})
    stats: dict[str, object] = {
        k: {"mean": round(statistics.fmean(e[k] for e in steps), 4), "last": round(steps[-1][k], 4)} for k in keys
    }
    stats["reward_std_mean"] = round(statistics.fmean(e["reward_std"] for e in steps), 4)
    stats["completion_mean_length"] = round(statistics.fmean(e["completions/mean_length"] for e in steps), 1)
    return stats


def machine(on_gpu: bool) -> dict:
    import torch
    import transformers
    import trl

    info = {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "cpu_count": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    if on_gpu:
        props = torch.cuda.get_device_properties(0)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return info


def build(work: Path, mode: str, size: dict) -> tuple[Path, SyntheticData, dict]:
    from training.tiny_model import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(**json.loads(MODEL_CONFIG.read_text())) if mode == "gpu" else TinyModelConfig()
    start = time.perf_counter()
    model = build_tiny_model(work / "model", cfg)
    built = time.perf_counter() - start
    start = time.perf_counter()
    data = prepare_synthetic(work / "data", size["samples"], seed=0, rl_n=200, max_objects=4, split_ratio=0.2)
    return (
        model,
        data,
        {
            "model_config": cfg.__dict__,
            "parameters_m": round(parameter_count(model) / 1e6, 1),
            "build_s": round(built, 1),
            "data_s": round(time.perf_counter() - start, 1),
            "data": data.summary,
        },
    )


def parameter_count(model_dir: Path) -> int:
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    with torch.device("meta"):  # shapes only, no memory
        model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
    return sum(p.numel() for p in model.parameters())


def eval_batch_setting() -> list[str]:
    """`--set batch_size=16` where the eval runner batches (an older one answers one record at a time)."""
    import dataclasses

    from evaluation.runner import EvalConfig

    return ["--set", "batch_size=16"] if "batch_size" in {f.name for f in dataclasses.fields(EvalConfig)} else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu-check.json")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sif-gpu-check"))
    parser.add_argument("--cpu", action="store_true", help="smoke run on CPU with the tiny model")
    args = parser.parse_args()
    import torch

    mode = "cpu" if args.cpu else "gpu"
    if mode == "gpu" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured (--cpu runs the same path on the CPU with the tiny model)")
        return
    if mode == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    size, on_gpu = SIZES[mode], mode == "gpu"
    shutil.rmtree(args.work, ignore_errors=True)  # a fresh store and run folders each time
    args.work.mkdir(parents=True)
    report: dict = {"mode": mode, "machine": machine(on_gpu), "sizes": size, "stages": {}}
    report["vllm"] = "not measured: vLLM is too large to bring to the GPU machine (no network there)"

    def save():
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))

    model, data, report["stages"]["build"] = build(args.work, mode, size)
    save()
    stages = [("sft", sft_stage), ("grpo", grpo_stage), ("eval", eval_stage)]
    for name, stage in stages:
        with DeviceMemory(on_gpu) as memory:
            try:
                report["stages"][name] = stage(args.work, model, data, size)
            except StageFailed as exc:
                report["stages"][name] = {"error": str(exc)}
                print(exc, file=sys.stderr)
        report["stages"][name]["peak_memory_gib"] = memory.gib()
        save()
    print(json.dumps(report["stages"], indent=1))
    print(f"written: {args.out}")


def sft_stage(work: Path, model: Path, data: SyntheticData, size: dict) -> dict:
    out = work / "sft"
    wall = sif(
        ["train", "sft", "--config", str(ROOT / "configs/sft.yaml"), *_common(model, data, size)]
        + ["--set", f"data={data.sft_dir}", "--set", f"output_dir={out}", "--set", f"max_steps={size['sft_steps']}"]
        + ["--set", "eval_ratio=0", "--set", "logging_steps=1", "--set", f"save_steps={size['sft_steps']}"]
        + (
            ["--set", "per_device_train_batch_size=1", "--set", "gradient_accumulation_steps=1"]
            if not size["bf16"]
            else []
        ),
        work / "sft.log",
        size["limits_s"]["sft"],
    )
    return {"wall_s": wall, **speed(data.db, out)}


def grpo_stage(work: Path, model: Path, data: SyntheticData, size: dict) -> dict:
    out = work / "grpo"
    wall = sif(
        ["train", "grpo", "--config", str(ROOT / "configs/grpo.yaml"), *_common(model, data, size)]
        + ["--set", f"data={data.rl_file}", "--set", f"output_dir={out}", "--set", f"max_steps={size['grpo_steps']}"]
        + ["--set", f"max_completion_length={size['completion']}", "--set", f"save_steps={size['grpo_steps']}"]
        + ["--set", "trl.log_completions=false"]
        + ([] if size["bf16"] else ["--set", "num_generations=2", "--set", "per_device_train_batch_size=2"]),
        work / "grpo.log",
        size["limits_s"]["grpo"],
    )
    return {"wall_s": wall, **speed(data.db, out), "rewards": reward_stats(trainer_log(out))}


def eval_stage(work: Path, model: Path, data: SyntheticData, size: dict) -> dict:
    out, adapter = work / "eval", work / "grpo"
    batch = eval_batch_setting()
    wall = sif(
        ["eval", "synth", "--data", str(data.sft_dir.parent / "synthetic" / "sif50k.json"), "--backend", "hf"]
        + ["--model", str(model), "--limit", str(size["eval_n"]), "--max-new-tokens", str(size["eval_tokens"])]
        + (["--adapter", str(adapter)] if (adapter / "adapter_config.json").is_file() else [])
        + ["--db", str(data.db), "--out", str(out), *batch],
        work / "eval.log",
        size["limits_s"]["eval"],
    )
    [report_file] = out.glob("*/report.json")  # --out holds one folder per run
    result = json.loads(report_file.read_text())
    return {
        "wall_s": wall,
        "records": size["eval_n"],
        "records_per_s": round(size["eval_n"] / wall, 2),
        "max_new_tokens": size["eval_tokens"],
        "batched": bool(batch),
        "adapter": (adapter / "adapter_config.json").is_file(),
        "failures": len(result["failures"]),
        "metrics": result["metrics"]["overall"],
    }


def _common(model: Path, data: SyntheticData, size: dict) -> list[str]:
    return ["--set", f"model={model}", "--set", f"db={data.db}", "--set", f"bf16={str(size['bf16']).lower()}"]


if __name__ == "__main__":
    main()
