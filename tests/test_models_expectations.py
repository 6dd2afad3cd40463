"""Expected traffic from a compiled model, and reconciliation with observed request bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import shared_path

from usbtrace.models.expectations import (
    ExpectedTraffic,
    ObservedRequestBytes,
    reconcile,
    reconcile_requests,
)
from usbtrace.models.inspect import inspect_model
from usbtrace.models.package import LayerInfo
from usbtrace.models.package_writer import (
    ExecutableType,
    make_executable,
    study_like_executables,
    write_compiled_model,
)
from usbtrace.pipeline import summarize_file


@pytest.fixture
def dense_like(tmp_path: Path) -> ExpectedTraffic:
    """Shaped like the study's dense x300: three instruction chunks interleaved with parameters."""
    from usbtrace.models.package import DmaDescriptorKind, DmaHint, DmaHintKind

    inputs = [LayerInfo("input_1", 16, (2, 2, 3))]
    outputs = [LayerInfo("out", 1, (1, 1, 1))]
    hints = [
        DmaHint(DmaHintKind.INSTRUCTION, index=0),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.INPUT, 16),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 1_000),
        DmaHint(DmaHintKind.INSTRUCTION, index=1),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 2_000),
        DmaHint(DmaHintKind.INSTRUCTION, index=2),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 500),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.OUTPUT, 1, outfeed=True),
        DmaHint(DmaHintKind.INTERRUPT, index=0),
    ]
    eo = make_executable(
        ExecutableType.EXECUTION_ONLY,
        bitstreams=[400, 300, 40],
        parameter_bytes=3_500,
        inputs=inputs,
        outputs=outputs,
        hints=hints,
        caching_token=7,
    )
    pc = make_executable(
        ExecutableType.PARAMETER_CACHING, bitstreams=[64], parameter_bytes=9_000, caching_token=7
    )
    path = write_compiled_model(tmp_path / "dense_like_edgetpu.tflite", [[eo, pc]])
    return ExpectedTraffic.from_summary(inspect_model(path))


def test_expected_traffic_follows_the_hints(dense_like: ExpectedTraffic) -> None:
    e = dense_like
    assert (e.cache_instruction_bytes, e.cache_parameter_bytes) == (64, 9_000)
    assert e.instruction_bytes == [400, 300, 40]
    assert (e.input_bytes, e.parameter_bytes, e.output_bytes) == (16, 3_500, 1)
    assert e.output_bytes_max == 8
    assert e.sequence == [(0, 400), (1, 16), (2, 1_000), (0, 300), (2, 2_000), (0, 40), (2, 500)]
    assert e.cache_sequence == [(0, 64), (2, 9_000)]
    assert e.caching_tokens == [7]


def test_matching_inference_is_ok(dense_like: ExpectedTraffic) -> None:
    observed = ObservedRequestBytes("inference", 740, 16, 3_500, 8, sequence=dense_like.sequence)
    result = reconcile(dense_like, observed)
    assert result.ok
    assert result.sequence_ok is True
    assert {name: check.cell() for name, check in result.fields.items()} == dict.fromkeys(
        ("instructions", "input", "parameters", "output"), "ok"
    )
    assert result.problems() == []


@pytest.mark.parametrize(("output", "ok"), [(1, True), (8, True), (0, False), (9, False)])
def test_output_padding_rule(dense_like: ExpectedTraffic, output: int, ok: bool) -> None:
    """A 1-byte output layer may arrive padded up to 8 bytes, never more, never less."""
    result = reconcile(dense_like, ObservedRequestBytes("inference", 740, 16, 3_500, output))
    assert result.fields["output"].ok is ok
    assert result.ok is ok


def test_mismatch_gives_the_difference(dense_like: ExpectedTraffic) -> None:
    observed = ObservedRequestBytes("inference", 740, 16, 3_000, 16)
    result = reconcile(dense_like, observed)
    assert not result.ok
    assert result.fields["parameters"].difference == -500
    assert result.fields["parameters"].cell() == "-500"
    assert result.fields["output"].cell() == "+8"  # past the padded maximum of 8
    data = result.to_json()
    assert data["ok"] is False
    assert data["parameters"] == {
        "expected": 3_500,
        "observed": 3_000,
        "ok": False,
        "difference": -500,
    }
    assert data["output"]["expected_max"] == 8
    assert len(result.problems()) == 2


def test_wrong_order_is_a_problem(dense_like: ExpectedTraffic) -> None:
    swapped = list(dense_like.sequence)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    observed = ObservedRequestBytes("inference", 740, 16, 3_500, 8, sequence=swapped)
    result = reconcile(dense_like, observed)
    assert result.sequence_ok is False
    assert not result.ok
    assert "transfer 3" in result.sequence_note


def test_caching_request_compares_with_the_caching_executable(dense_like: ExpectedTraffic) -> None:
    good = ObservedRequestBytes(
        "parameter-caching", 64, 0, 9_000, 0, sequence=[(0, 64), (2, 9_000)]
    )
    assert reconcile(dense_like, good).ok
    bad = ObservedRequestBytes("parameter-caching", 64, 16, 9_000, 0)
    assert reconcile(dense_like, bad).fields["input"].difference == 16


def test_model_without_caching_expects_no_cache_fill(tmp_path: Path) -> None:
    exe = make_executable(
        ExecutableType.STANDALONE,
        bitstreams=[100],
        parameter_bytes=50,
        inputs=[LayerInfo("i", 16, (2, 2, 3))],
        outputs=[LayerInfo("o", 8, (1, 1, 1))],
    )
    expected = ExpectedTraffic.from_summary(
        inspect_model(write_compiled_model(tmp_path / "sa_edgetpu.tflite", [[exe]]))
    )
    assert not expected.has_caching
    result = reconcile(expected, ObservedRequestBytes("parameter-caching", 100, 0, 50, 0))
    assert not result.ok  # a cache fill the model never asks for


def test_uncompiled_model_cannot_give_expectations(tmp_path: Path) -> None:
    from usbtrace.models.builders import build_model

    path = tmp_path / "dense_100.tflite"
    path.write_bytes(build_model("dense", 100))
    with pytest.raises(ValueError, match="not compiled"):
        ExpectedTraffic.from_summary(inspect_model(path))


class _Metrics:
    """Stands in for the analysis layer's per-request metrics."""

    def __init__(self, index, kind, instructions, input, parameters, output):
        self.index, self.kind = index, kind
        self.instructions, self.input = instructions, input
        self.parameters, self.output = parameters, output


def test_reconcile_requests_of_a_capture(tmp_path: Path) -> None:
    exes = study_like_executables(
        cached=5_000, streamed=0, eo_instructions=[900], pc_instructions=100
    )
    summary = inspect_model(write_compiled_model(tmp_path / "c_edgetpu.tflite", [exes]))
    requests = [
        _Metrics(0, "parameter-caching", 100, 0, 5_000, 0),
        _Metrics(1, "inference", 900, 16, 0, 8),
        _Metrics(2, "other", 0, 0, 0, 0),
        _Metrics(3, "inference", 900, 16, 64, 8),
    ]
    result = reconcile_requests(summary, requests)
    assert not result.ok
    assert result.skipped == [2]
    assert result.problems() == [
        "request 3: inference parameters: 64 bytes on the wire, model says 0"
    ]
    data = result.to_json()
    assert [r["index"] for r in data["requests"]] == [0, 1, 3]
    assert [r["ok"] for r in data["requests"]] == [True, True, False]


def _summaries(capture: str):
    return summarize_file(shared_path(f"captures/real/{capture}"))


def test_real_conv_50_capture_reconciles_with_its_model() -> None:
    model = inspect_model(shared_path("models/model_conv_128x128x3x32x7x50_edgetpu.tflite"))
    (capture,) = _summaries("conv_50.pcapng")
    result = reconcile_requests(model, capture.requests)
    assert [r.kind for _, r in result.results] == ["parameter-caching"] + ["inference"] * 5
    assert result.ok, result.problems()


def test_real_dense_300_capture_against_the_100_layer_model() -> None:
    """Same caching request; the x300 model streams 2 662 400 more parameter bytes per inference
    (2 943 616 on the wire, 281 216 in the 100-layer model) and has other instruction chunks."""
    model = inspect_model(shared_path("models/model_dense_2x2x3x100x100_edgetpu.tflite"))
    (capture,) = _summaries("dense_300.pcapng")
    result = reconcile_requests(model, capture.requests)
    caching = [r for _, r in result.results if r.kind == "parameter-caching"]
    inferences = [r for _, r in result.results if r.kind == "inference"]
    assert len(caching) == 1 and caching[0].ok
    assert len(inferences) == 5
    for r in inferences:
        assert r.fields["parameters"].difference == 2_943_616 - 281_216
        assert r.fields["instructions"].difference == 543_840 - 153_216
        assert r.fields["input"].ok and r.fields["output"].ok
