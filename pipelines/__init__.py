"""Runs that chain several layers: the embedded demo run (tiny model → SFT → GRPO-SIF → eval),
`pipelines.demo_run.demo_run`."""

from pipelines.demo_run import DemoSettings

__all__ = ["DemoSettings"]
