"""inspect_model on compiled-model files the project writes itself (no ../shared needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from usbtrace.errors import InputError
from usbtrace.models.inspect import ExecutableType, inspect_model
from usbtrace.models.package import DmaDescriptorKind, DmaHint, DmaHintKind, LayerInfo
from usbtrace.models.package_writer import (
    compiled_model_bytes,
    make_executable,
    study_like_executables,
    write_compiled_model,
)

DOCUMENTED_KEYS = {
    "file",
    "compiled",
    "executables",
    "cached_bytes",
    "streamed_bytes",
    "instruction_bytes",
    "input_bytes",
    "output_bytes",
}
EXECUTABLE_KEYS = {
    "type",
    "caching_token",
    "instruction_bitstream_bytes",
    "parameter_bytes",
    "inputs",
    "outputs",
}


@pytest.mark.parametrize("style", ["2019", "2021"])
def test_parameter_caching_pair(tmp_path: Path, style: str) -> None:
    token = 0x0CD39B17F20CF532
    exes = study_like_executables(
        cached=300_000,
        streamed=12_345,
        eo_instructions=[4000, 2000],
        pc_instructions=800,
        token=token,
    )
    path = write_compiled_model(tmp_path / "m_edgetpu.tflite", [exes], style=style)
    summary = inspect_model(path)
    assert summary.compiled
    assert [e.type for e in summary.executables] == [
        ExecutableType.EXECUTION_ONLY,
        ExecutableType.PARAMETER_CACHING,
    ]
    assert summary.cached_bytes == 300_000
    assert summary.streamed_bytes == 12_345
    assert summary.instruction_bytes == 6000
    assert (summary.input_bytes, summary.output_bytes) == (16, 8)
    eo = summary.executables[0]
    assert eo.caching_token == token
    assert eo.instruction_bitstream_bytes == [4000, 2000]
    assert eo.inputs[0].shape == (2, 2, 3)
    assert [h.label() for h in eo.dma_hints] == [
        "Instr0",
        "Instr1",
        "INPUT 16",
        "PARAM 12345",
        "OUTPUT 8",
        "Int0",
    ]
    # bitstreams carry the instruction signature seen on the wire
    assert eo.instruction_prefixes[0][:3] == b"\x80\x0f\x00"


def test_json_has_exactly_the_documented_shape(tmp_path: Path) -> None:
    exes = study_like_executables(100, 0, [64], 32, token=0xFF)
    path = write_compiled_model(tmp_path / "x_edgetpu.tflite", [exes])
    data = json.loads(json.dumps(inspect_model(path).to_json()))
    assert set(data) == DOCUMENTED_KEYS
    assert data["file"] == str(path)
    assert data["compiled"] is True
    for exe in data["executables"]:
        assert set(exe) == EXECUTABLE_KEYS
        assert exe["caching_token"] == "0x00000000000000ff"
        for layer in exe["inputs"] + exe["outputs"]:
            assert set(layer) == {"name", "size_bytes"}
    assert data["executables"][0]["type"] == "EXECUTION_ONLY"


def test_single_executable_runs_stand_alone_whatever_its_type(tmp_path: Path) -> None:
    """One executable in a package: all its parameters go out with every inference."""
    exe = make_executable(
        ExecutableType.STANDALONE,
        bitstreams=[5024],
        parameter_bytes=777,
        inputs=[LayerInfo("in", 16, (2, 2, 3))],
        outputs=[LayerInfo("out", 262_144, (256, 256, 3))],
    )
    summary = inspect_model(write_compiled_model(tmp_path / "sa_edgetpu.tflite", [[exe]]))
    assert summary.cached_bytes == 0
    assert summary.streamed_bytes == 777
    assert summary.output_bytes == 262_144
    data = summary.to_json()
    assert data["executables"][0]["caching_token"] is None


def test_three_executables_use_the_stand_alone_one(tmp_path: Path) -> None:
    eo, pc = study_like_executables(
        cached=1000, streamed=10, eo_instructions=[100], pc_instructions=50
    )
    sa = make_executable(
        ExecutableType.STANDALONE,
        bitstreams=[300],
        parameter_bytes=1010,
        inputs=eo.inputs,
        outputs=eo.outputs,
    )
    summary = inspect_model(write_compiled_model(tmp_path / "t_edgetpu.tflite", [[eo, pc, sa]]))
    assert (summary.cached_bytes, summary.streamed_bytes, summary.instruction_bytes) == (
        0,
        1010,
        300,
    )


def test_several_custom_ops_are_summed(tmp_path: Path) -> None:
    first = study_like_executables(1000, 100, [400], 40, token=1)
    second = study_like_executables(2000, 200, [800], 80, token=2)
    summary = inspect_model(write_compiled_model(tmp_path / "two_edgetpu.tflite", [first, second]))
    assert len(summary.packages) == 2
    assert len(summary.executables) == 4
    assert summary.cached_bytes == 3000
    assert summary.streamed_bytes == 300
    assert summary.instruction_bytes == 1200


def test_layer_bytes_count_execution_count_and_all_layers(tmp_path: Path) -> None:
    inputs = [LayerInfo("a", 784, (1, 28, 28)), LayerInfo("b", 24, (1, 1, 20), execution_count=2)]
    outputs = [LayerInfo("o1", 16, (1, 1, 10)), LayerInfo("o2", 40, (1, 1, 20))]
    hints = [
        DmaHint(DmaHintKind.INSTRUCTION),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.INPUT, 784),
    ]
    exe = make_executable(
        ExecutableType.EXECUTION_ONLY,
        bitstreams=[64],
        inputs=inputs,
        outputs=outputs,
        hints=hints,
        fully_deterministic=False,
    )
    pc = make_executable(ExecutableType.PARAMETER_CACHING, bitstreams=[32], parameter_bytes=64)
    summary = inspect_model(write_compiled_model(tmp_path / "l_edgetpu.tflite", [[exe, pc]]))
    assert summary.input_bytes == 784 + 2 * 24
    assert summary.output_bytes == 56
    assert summary.executables[0].fully_deterministic is False


def test_cpu_only_compiled_file_is_recognised(tmp_path: Path) -> None:
    path = tmp_path / "cpu_edgetpu.tflite"
    path.write_bytes(compiled_model_bytes([]))
    summary = inspect_model(path)
    assert summary.compiled is False
    assert "CPU only" in (summary.reason or "")
    assert summary.to_json()["reason"] == summary.reason
    assert summary.op_counts == {"RESHAPE": 1}


def test_compiled_model_with_cpu_ops_still_counts_its_package(tmp_path: Path) -> None:
    exes = study_like_executables(10, 0, [64], 32)
    path = tmp_path / "mixed_edgetpu.tflite"
    path.write_bytes(compiled_model_bytes([exes], cpu_ops=True))
    summary = inspect_model(path)
    assert summary.compiled
    assert summary.op_counts == {"edgetpu-custom-op": 1, "RESHAPE": 1}


def test_not_a_tflite_file_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.tflite"
    path.write_text("this is not a model\n")
    with pytest.raises(InputError, match="not a TFLite model") as info:
        inspect_model(path)
    assert str(path) in str(info.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="No such file"):
        inspect_model(tmp_path / "absent.tflite")


def test_truncated_compiled_file_is_an_input_error(tmp_path: Path) -> None:
    data = compiled_model_bytes([study_like_executables(5000, 0, [64], 32)])
    path = tmp_path / "cut_edgetpu.tflite"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        inspect_model(path)


def test_damaged_package_is_an_input_error(tmp_path: Path) -> None:
    data = bytearray(compiled_model_bytes([study_like_executables(64, 0, [64], 32)]))
    at = bytes(data).find(b"DWN1")
    assert at > 0
    data[at : at + 4] = b"XXXX"  # package identifier gone
    path = tmp_path / "bad_edgetpu.tflite"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="edgetpu-custom-op 0"):
        inspect_model(path)
