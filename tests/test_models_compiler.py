"""Parsing edgetpu_compiler output, and `usbtrace models compile` with a stand-in compiler.

The real compiler is not installable here (only from Coral's own apt repository), so the texts
below are written from its documented output format, and a small script plays the compiler.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from usbtrace.cli.main import main
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import OutputError, UsageError
from usbtrace.models.catalog import MODELS_DIR_ENV
from usbtrace.models.compiler import parse_compiler_output, parse_size, run_compiler

PROJECT_ROOT = Path(__file__).resolve().parents[1]

UNMAPPED = "Operation is otherwise supported, but not mapped due to some unspecified limitation"
NEW_STYLE = f"""\
Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 2841 ms.

Input model: conv_300.tflite
Input size: 14.47MiB
Output model: conv_300_edgetpu.tflite
Output size: 14.53MiB
On-chip memory used for caching model parameters: 6.91MiB
On-chip memory remaining for caching model parameters: 1.25KiB
Off-chip memory used for streaming uncached model parameters: 7.44MiB
Number of Edge TPU subgraphs: 1
Total number of operations: 303
Operation log: conv_300_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of
the model will instead run on the CPU, which is slower.
Number of operations that will run on Edge TPU: 302
Number of operations that will run on CPU: 1

Operator                       Count      Status

PAD                            1          Mapped to Edge TPU
CONV_2D                        301        Mapped to Edge TPU
SOFTMAX                        1          {UNMAPPED}
Compilation child process completed within timeout period.
Compilation succeeded!
"""

OLD_STYLE = """\
Edge TPU Compiler version 1.0.249710469
INFO: Initialized TensorFlow Lite runtime.

Model compiled successfully in 371 ms.

Input model: model_conv_128x128x3x32x7x50.tflite
Input size: 2.38MiB
Output model: model_conv_128x128x3x32x7x50_edgetpu.tflite
Output size: 2.48MiB

Operator                       Count      Status

PAD                            1          Mapped to Edge TPU
CONV_2D                        51         Mapped to Edge TPU
"""


def test_parse_size() -> None:
    assert parse_size("0.00B") == 0
    assert parse_size("1.25KiB") == 1280
    assert parse_size("2.00MiB") == 2 << 20
    with pytest.raises(ValueError):
        parse_size("lots")


def test_parse_new_compiler_output() -> None:
    report = parse_compiler_output(NEW_STYLE)
    assert report.version == "16.0.384591198"
    assert report.succeeded is True
    assert report.on_chip_used == round(6.91 * (1 << 20))
    assert report.on_chip_remaining == 1280
    assert report.on_chip_available == report.on_chip_used + 1280
    assert report.off_chip_streaming == round(7.44 * (1 << 20))
    assert (report.edgetpu_subgraphs, report.total_operations) == (1, 303)
    assert (report.operations_on_tpu, report.operations_on_cpu) == (302, 1)
    assert [(r.operator, r.count, r.mapped) for r in report.operators] == [
        ("PAD", 1, True),
        ("CONV_2D", 301, True),
        ("SOFTMAX", 1, False),
    ]
    assert report.unmapped[0].status.startswith("Operation is otherwise supported")


def test_parse_2019_compiler_output_has_only_the_table() -> None:
    report = parse_compiler_output(OLD_STYLE)
    assert report.version == "1.0.249710469"
    assert report.on_chip_used is None
    assert report.off_chip_streaming is None
    assert report.on_chip_available is None
    assert [(r.operator, r.count) for r in report.operators] == [("PAD", 1), ("CONV_2D", 51)]
    assert not report.unmapped
    assert report.to_json()["operators"][1]["mapped"] is True


def _fake_compiler(folder: Path, stdout: str, exit_code: int = 0, write: bool = True) -> None:
    """An `edgetpu_compiler` stand-in: writes a synthetic compiled model and prints `stdout`."""
    script = folder / "edgetpu_compiler"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
        "from pathlib import Path\n"
        "from usbtrace.models.package_writer import study_like_executables, write_compiled_model\n"
        "args = sys.argv[1:]\n"
        "assert args[0] == '-s' and args[1] == '-o', args\n"
        "out, src = Path(args[2]), Path(args[3])\n"
        f"if {write!r}:\n"
        "    exes = study_like_executables(2_000_000, 500_000, [90_000], 8_000)\n"
        "    write_compiled_model(out / (src.stem + '_edgetpu.tflite'), [exes])\n"
        f"sys.stdout.write({stdout!r})\n"
        f"sys.exit({exit_code})\n"
    )
    script.chmod(0o755)


def test_missing_compiler_says_where_it_comes_from(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UsageError, match="Coral's own apt repository"):
        run_compiler(tmp_path / "m.tflite", tmp_path, tmp_path / "m.txt", OutputGuard())


def test_cli_compile_builds_compiles_and_keeps_stdout(tmp_path: Path, monkeypatch, capsys) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_compiler(bin_dir, NEW_STYLE)
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv(MODELS_DIR_ENV, str(models))
    assert main(["models", "compile", "conv_10"]) == 0
    out = capsys.readouterr().out
    assert "conv_10: built" in out
    assert "not on the Edge TPU: SOFTMAX x1" in out
    assert "cached 2,000,000 B, streamed 500,000 B" in out
    assert (models / "conv_10.tflite").is_file()
    assert (models / "conv_10_edgetpu.tflite").is_file()
    assert (models / "conv_10_edgetpu.compiler.txt").read_text().startswith(NEW_STYLE)
    assert main(["models", "list", "--json"]) == 0
    import json

    listing = {m["name"]: m for m in json.loads(capsys.readouterr().out)["models"]}
    assert listing["conv_10"]["cached_bytes"] == 2_000_000
    assert listing["conv_10"]["streamed_bytes"] == 500_000
    assert listing["conv_25"]["compiled"] is None


def test_cli_compile_failure_is_reported(tmp_path: Path, monkeypatch, capsys) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_compiler(bin_dir, "ERROR: something broke\n", exit_code=1, write=False)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "compile", "dense_100"]) == 1
    assert "edgetpu_compiler failed (exit 1)" in capsys.readouterr().err
    assert "something broke" in (tmp_path / "dense_100_edgetpu.compiler.txt").read_text()


def test_compiler_stdout_never_replaces_a_capture(tmp_path: Path, monkeypatch, capsys) -> None:
    """The compiler's output is kept through the output guard, checked again as it is written:
    a capture that appears at its path while the compiler runs is left as it is."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_compiler(bin_dir, NEW_STYLE)
    capture = b"\x0a\x0d\x0d\x0a" + bytes(60)  # a pcapng section header's magic
    script = bin_dir / "edgetpu_compiler"
    # the stand-in drops a capture where its output is to be kept, then prints as before
    script.write_text(
        script.read_text().replace(
            "sys.stdout.write(",
            f"(out / (src.stem + '_edgetpu.compiler.txt')).write_bytes({capture!r})\n"
            "sys.stdout.write(",
            1,
        )
    )
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "compile", "dense_100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a capture" in err, err
    assert (tmp_path / "dense_100_edgetpu.compiler.txt").read_bytes() == capture
    # and called on its own, with a fresh guard
    with pytest.raises(OutputError, match="holds a capture"):
        run_compiler(
            tmp_path / "dense_100.tflite",
            tmp_path,
            tmp_path / "dense_100_edgetpu.compiler.txt",
            OutputGuard(),
        )
    assert (tmp_path / "dense_100_edgetpu.compiler.txt").read_bytes() == capture
