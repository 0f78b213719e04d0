"""`sif eval`: benchmark adapters, metrics, the eval runner and its reports.

Importing this package never imports torch or transformers; backends load inside the runner.
"""

from evaluation.adapters import load_benchmark
from evaluation.report import compare_stored_runs
from evaluation.runner import EvalConfig, RunResult, evaluate, run_eval

__all__ = ["EvalConfig", "RunResult", "compare_stored_runs", "evaluate", "load_benchmark", "run_eval"]
