"""One error family: every command turns a `SifError` (or an OS error about a file) into
`error: …` and exit 1, through the one handler in cli/main.py."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cli.main import SifGroup, app
from sif.errors import ConfigError, RecordError, SifError

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "sft", "--set", "no_such_setting=1", "--set", "model=m", "--set", "data=d"], "unknown setting"),
        (["train", "grpo", "--set", "model=m"], "data: required"),
        (["export", "rl", "--out", "x.jsonl", "--db", "missing.db"], "no store at missing.db"),
        (["stats", "--db", "missing.db"], "no store at missing.db"),
        (["synth", "out", "--sizes", "320by240"], "--sizes: '320by240' is not WIDTHxHEIGHT"),
        (["eval", "report", "run-nope", "--db", "missing.db"], "error:"),
        (["infer", "--image", "img.png", "--question", "q", "--model", "demo"], "not built yet"),
        (["merge", "--base", "b", "--adapter", ".", "--out", "o"], "no adapter_config.json"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SIF_HOME", str(tmp_path / "home"))
    (tmp_path / "img.png").write_bytes(b"")
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and message in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, SifError)


def test_the_family():
    assert issubclass(ConfigError, SifError) and issubclass(ConfigError, ValueError)
    err = RecordError("expected 4 numbers", field="bbox_3d[0]")
    assert str(err) == "bbox_3d[0]: expected 4 numbers" and err.field == "bbox_3d[0]"
    assert isinstance(app.registered_commands, list) and app.info.cls is SifGroup
