"""Building the catalog's models without TensorFlow, checked with our reader and a TFLite
interpreter (ai-edge-litert, in the dev extra)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from usbtrace.cli.main import main
from usbtrace.models.builders import build_model
from usbtrace.models.catalog import MODELS_DIR_ENV
from usbtrace.models.inspect import inspect_model
from usbtrace.models.tflite_file import parse_tflite

CONV_WEIGHTS = 7 * 7 * 32  # one output channel of a 7x7x32 filter


def _interpreter(data: bytes):
    litert = pytest.importorskip(
        "ai_edge_litert.interpreter", reason="ai-edge-litert (dev extra) is not installed"
    )
    # without the default XNNPACK delegate, so the op list is the model's own
    interpreter = litert.Interpreter(
        model_content=data,
        experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    return interpreter


def _shapes(details: list[dict]) -> list[list[int]]:
    return [list(map(int, d["shape"])) for d in details]


@pytest.mark.parametrize(
    ("family", "size", "ops", "inputs", "outputs"),
    [
        ("conv", 10, {"PAD": 1, "CONV_2D": 11}, [[1, 2, 2, 3]], [[1, 1, 1, 1]]),
        ("dense", 100, {"RESHAPE": 1, "FULLY_CONNECTED": 101}, [[1, 2, 2, 3]], [[1, 1]]),
        (
            "mobilenet_v1",
            224,
            {
                "CONV_2D": 15,
                "DEPTHWISE_CONV_2D": 13,
                "AVERAGE_POOL_2D": 1,
                "RESHAPE": 1,
                "SOFTMAX": 1,
            },
            [[1, 224, 224, 3]],
            [[1, 1001]],
        ),
        (
            "mobilenet_v2",
            224,
            {
                "CONV_2D": 36,
                "DEPTHWISE_CONV_2D": 17,
                "ADD": 10,
                "AVERAGE_POOL_2D": 1,
                "RESHAPE": 1,
                "SOFTMAX": 1,
            },
            [[1, 224, 224, 3]],
            [[1, 1001]],
        ),
        (
            "ssd_mobilenet_v1",
            300,
            {
                "CONV_2D": 14 + 8 + 12,
                "DEPTHWISE_CONV_2D": 13,
                "RESHAPE": 12,
                "CONCATENATION": 2,
                "LOGISTIC": 1,
            },
            [[1, 300, 300, 3]],
            [[1, 1917, 4], [1, 1917, 91]],
        ),
    ],
)
def test_built_models_load_in_a_tflite_interpreter(
    tmp_path: Path, family: str, size: int, ops: dict[str, int], inputs, outputs
) -> None:
    data = build_model(family, size)
    model = parse_tflite(data, tmp_path / f"{family}.tflite")
    assert dict(model.op_counts()) == ops
    assert all(t.type_name in ("int8", "int32") for t in model.tensors)
    interpreter = _interpreter(data)
    assert _shapes(interpreter.get_input_details()) == inputs
    assert _shapes(interpreter.get_output_details()) == outputs
    assert {d["dtype"] for d in interpreter.get_input_details()} == {np.int8}
    op_names = Counter(op["op_name"] for op in interpreter._get_ops_details())
    assert op_names == ops


def test_small_models_run_an_inference() -> None:
    for family, size in (("conv", 10), ("dense", 100)):
        interpreter = _interpreter(build_model(family, size))
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.full(detail["shape"], 5, np.int8))
        interpreter.invoke()
        out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert out.dtype == np.int8


def test_conv_300_weights_follow_from_its_shape(tmp_path: Path) -> None:
    """300 layers of 7x7x32 filters: the constant buffers hold exactly the int8 weights and
    int32 biases the architecture implies (first layer 3 input channels, final 1 filter)."""
    data = build_model("conv", 300)
    weights = 7 * 7 * 3 * 32 + 299 * 7 * 7 * 32 * 32 + CONV_WEIGHTS
    biases = 4 * (300 * 32 + 1)
    assert len(data) > weights + biases
    assert len(data) < (weights + biases) * 1.01  # little besides the constants
    model = parse_tflite(data, tmp_path / "conv_300.tflite")
    assert model.op_counts()["CONV_2D"] == 301
    assert inspect_model_bytes(tmp_path, data).compiled is False


def inspect_model_bytes(tmp_path: Path, data: bytes):
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    return inspect_model(path)


def test_builds_are_deterministic() -> None:
    assert build_model("dense", 100) == build_model("dense", 100)


def test_cli_build_writes_into_the_models_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "build", "conv_10", "dense_100"]) == 0
    assert (tmp_path / "conv_10.tflite").is_file()
    assert (tmp_path / "dense_100.tflite").is_file()
    assert "conv_10: wrote" in capsys.readouterr().out
    assert main(["models", "list", "--json"]) == 0
    import json

    listing = json.loads(capsys.readouterr().out)
    built = {m["name"] for m in listing["models"] if m["source"]}
    assert built == {"conv_10", "dense_100"}


def test_cli_build_a_whole_family(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert main(["models", "build", "dense", "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("dense_*.tflite"))) == 9


def test_cli_build_unknown_name_is_a_usage_error(capsys) -> None:
    assert main(["models", "build", "resnet_50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usbtrace: unknown model 'resnet_50'")
    assert len(err.strip().splitlines()) == 1


def test_make_models_script(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "make_models.py"),
            "conv_25",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    model = parse_tflite((tmp_path / "conv_25.tflite").read_bytes(), tmp_path / "conv_25.tflite")
    assert model.op_counts()["CONV_2D"] == 26


def test_flatbuffers_is_a_core_dependency() -> None:
    """`usbtrace models build` and `inspect` need it: it may not hide behind an extra."""
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml")
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    core = [d.split(">")[0].split("=")[0].strip() for d in project["project"]["dependencies"]]
    assert "flatbuffers" in core
