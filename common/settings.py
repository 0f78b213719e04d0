"""Settings files: a dataclass per command, read from YAML with `--set key=value` overrides.

Every layer reads its settings the same way (`sif train`, `sif generate`, `sif eval`), so the
reader lives here, below all of them. Unknown keys are an error that names the known ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import yaml

from sif.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

# Depth Anything V2 checkpoints by name. The paper estimated SIF-50K's depth with Large, the
# default for samples and images without a depth map of their own; `small` is the light option.
DEPTH_MODELS = {
    "large": "depth-anything/Depth-Anything-V2-Large-hf",
    "base": "depth-anything/Depth-Anything-V2-Base-hf",
    "small": "depth-anything/Depth-Anything-V2-Small-hf",
}
DEFAULT_DEPTH_MODEL = DEPTH_MODELS["large"]


def depth_model_id(name: str) -> str:
    """A depth model's hub id, local path or `tiny`, with the names above resolved."""
    return DEPTH_MODELS.get(name, name)


def parse_overrides(pairs: list[str] | None) -> dict:
    """`["a.b=1", "c=x"]` → `{"a": {"b": 1}, "c": "x"}`; values are read as YAML scalars."""
    out: dict = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected key=value")
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value) if value.strip() else None
    return out


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build(cls: type[T], data: dict, where: str = "") -> T:
    """`cls` from a dict, recursing into nested settings; unknown keys are a clear error."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where or cls.__name__}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, value in data.items():
        factory = fields[name].default_factory
        default = factory() if callable(factory) else None
        if dataclasses.is_dataclass(default) and not isinstance(default, type) and isinstance(value, dict):
            value = build(type(default), value, f"{where or cls.__name__}.{name}")
        elif name == "weights" and isinstance(value, dict) and isinstance(default, dict):
            value = {**default, **value}
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a value of the wrong type, met by the settings' own checks
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def read_settings(path: str | Path | None, overrides: list[str] | None = None) -> dict:
    """The settings of a YAML file (optional), with `--set` overrides merged in."""
    data: dict = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
        data = loaded
    return _merge(data, parse_overrides(overrides))


def load_settings(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Settings of type `cls` from a YAML file (optional) and `--set` overrides."""
    settings = build(cls, read_settings(path, overrides))
    for name in ("model", "data"):
        if not getattr(settings, name):
            raise ConfigError(f"{name}: required (set it in the config or with --set {name}=...)")
    return settings


def as_dict(settings) -> dict:
    return dataclasses.asdict(settings)
