"""Several processes: `sif train sft|grpo` starts itself through `accelerate launch`.

As `llamafactory-cli train` does, a command asked for more than one process re-runs itself in
every process with the shipped accelerate config of its strategy (configs/accelerate/*.yaml);
a launched process (torchrun, accelerate and deepspeed set LOCAL_RANK) trains in-process.
`cpu_processes` runs the same launch on the CPU (gloo): how CI exercises the multi-process path
without GPUs. In each process, `process_state` and `train_and_save` keep to the main process what
must happen once.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from sif.errors import ConfigError

ACCELERATE_CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "accelerate"
STRATEGIES = ("ddp", "zero2", "zero3")
DEFAULT_PORT = 29500


@dataclass
class LaunchOptions:
    gpus: int | None = None  # per node; None: every visible GPU
    strategy: str = "ddp"
    nodes: int = 1
    node_rank: int = 0
    main_address: str | None = None
    main_port: int = DEFAULT_PORT
    cpu_processes: int = 0  # > 0: that many CPU processes (gloo) instead of GPUs


@dataclass
class Launch:
    """The `accelerate launch` command line and the variables it adds to the environment."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)

    def shell(self) -> str:
        return shlex.join([f"{k}={v}" for k, v in self.env.items()] + self.argv)

    def run(self) -> int:
        """Run it and wait; the exit code of the launcher (non-zero when any process failed)."""
        return subprocess.run(self.argv, env={**os.environ, **self.env}).returncode


def launched() -> bool:
    """True inside a process that a launcher started (it trains in-process, never launches again)."""
    return "LOCAL_RANK" in os.environ


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count()


def accelerate_config(strategy: str) -> Path:
    if strategy not in STRATEGIES:
        raise ConfigError(f"--strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    return ACCELERATE_CONFIGS / f"{strategy}.yaml"


def launch_command(stage: str, train_args: list[str], options: LaunchOptions) -> Launch | None:
    """What runs `sif train STAGE TRAIN_ARGS` in every process, or None when one process trains here."""
    o = options
    config = accelerate_config(o.strategy)
    if o.nodes < 1 or not 0 <= o.node_rank < o.nodes:
        raise ConfigError(f"--node-rank {o.node_rank} with --nodes {o.nodes}: expected 0 ≤ node rank < nodes")
    if o.cpu_processes and o.strategy != "ddp":
        raise ConfigError(f"--cpu-processes runs DDP on the CPU (gloo); --strategy {o.strategy} needs GPUs")
    per_node = max(1, o.cpu_processes or (visible_gpus() if o.gpus is None else o.gpus))
    if per_node * o.nodes == 1:
        return None
    if o.nodes > 1 and not o.main_address:
        raise ConfigError("--nodes > 1 needs --main-address (the address of the node with --node-rank 0)")
    argv = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    argv += ["--num_processes", str(per_node * o.nodes), "--num_machines", str(o.nodes)]
    argv += ["--machine_rank", str(o.node_rank), "--main_process_port", str(o.main_port)]
    if o.main_address:
        argv += ["--main_process_ip", o.main_address]
    env = {}
    if o.cpu_processes:
        argv += ["--mixed_precision", "no"]  # the shipped configs ask for bf16 autocast, a GPU setting
        env["ACCELERATE_USE_CPU"] = "true"
    return Launch([*argv, "-m", "cli", "train", stage, *train_args], env)


def check_can_run(options: LaunchOptions) -> None:
    """Refuse, before any process starts, what the launch would fail on later and less clearly."""
    if not options.cpu_processes and (n := visible_gpus()) < max(1, options.gpus or 0):
        raise ConfigError(
            f"--gpus {options.gpus or 1}: {n} GPU(s) visible on this node"
            + ("; --cpu-processes N runs the same launch on the CPU" if n == 0 else "")
        )
    if options.strategy != "ddp" and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"--strategy {options.strategy} needs DeepSpeed: pip install 'sif-workbench[deepspeed]'")


def train_and_save(trainer, output_dir: str, checkpoint: str | None) -> dict:
    """Train (from `checkpoint` when resuming) and save: the model on every process (ZeRO-3 gathers
    it), the processor on the main one alone. Returns what the run record keeps of it."""
    result = trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(output_dir)
    if trainer.accelerator.is_main_process:
        trainer.processing_class.save_pretrained(output_dir)
    return {
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "output_dir": output_dir,
    }


def process_state():
    """accelerate's view of this process (rank, world size, barriers), on the CPU when launched so."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
