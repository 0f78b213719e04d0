"""The layers import downwards only (ARCHITECTURE.md): an import that points the wrong way fails here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Highest first; a package may import the packages below it, never one above it.
LAYERS = ["cli", "pipelines", "workbench", "evaluation", "inference", "training", "datagen", "db", "common", "sif"]


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(project package, line) for every import in the file, function-level ones included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYERS)
    return found


def layer_violations(package: str) -> list[str]:
    allowed = set(LAYERS[LAYERS.index(package) :])
    return [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for target, line in sorted(imported_packages(path))
        if target not in allowed
    ]


@pytest.mark.parametrize("package", LAYERS)
def test_imports_point_down_the_layers(package):
    assert layer_violations(package) == []


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from workbench.app import launch\n    import training.sft\n")
    assert imported_packages(bad) == {("workbench", 2), ("training", 3)}
