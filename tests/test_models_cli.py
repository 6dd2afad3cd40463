"""`usbtrace models inspect` and `list` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from usbtrace.cli.main import main
from usbtrace.models.catalog import MODELS_DIR_ENV
from usbtrace.models.package_writer import study_like_executables, write_compiled_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _model(tmp_path: Path) -> Path:
    exes = study_like_executables(
        cached=2_471_488,
        streamed=0,
        eo_instructions=[93_360],
        pc_instructions=7_856,
        token=0x0CD39B17F20CF532,
    )
    return write_compiled_model(tmp_path / "model_conv_128x128x3x32x7x50_edgetpu.tflite", [exes])


def test_inspect_json(tmp_path: Path, capsys) -> None:
    path = _model(tmp_path)
    assert main(["models", "inspect", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compiled"] is True
    assert (data["cached_bytes"], data["streamed_bytes"]) == (2_471_488, 0)
    assert data["instruction_bytes"] == 93_360
    assert [e["type"] for e in data["executables"]] == ["EXECUTION_ONLY", "PARAMETER_CACHING"]


def test_inspect_text_fits_a_terminal(tmp_path: Path, capsys) -> None:
    assert main(["models", "inspect", str(_model(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "cached on chip once:" in out
    assert "2,471,488 B" in out
    assert "DMA order: Instr0, INPUT 16, OUTPUT 8, Int0" in out
    assert all(len(line) <= 100 for line in out.splitlines())


def test_inspect_catalog_name_not_built_says_how(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "inspect", "conv_300"]) == 2
    err = capsys.readouterr().err
    assert "usbtrace models build conv_300" in err


def test_inspect_uncompiled_catalog_model(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "build", "dense_100"]) == 0
    capsys.readouterr()
    assert main(["models", "inspect", "dense_100", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["compiled"] is False
    assert "FULLY_CONNECTED 101" in data["reason"]


def test_inspect_bad_file_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "capture.pcapng"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + bytes(60))
    proc = subprocess.run(
        [sys.executable, "-m", "usbtrace", "models", "inspect", str(bad)],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"usbtrace: {bad}: not a TFLite model")
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_list_table(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == ["name", "built"]
    assert any(line.startswith("ssd_mobilenet_v1") for line in out)
    assert "21 models, 0 built, 0 compiled" in out
