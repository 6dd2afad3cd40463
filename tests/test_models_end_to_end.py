"""A synthetic compiled model explains every byte of a synthetic capture made from it.

The model's expected traffic drives the synthetic session generator; the capture goes through the
decoder and request segmentation; the reconciliation must find every request ok, including the
bulk-OUT (tag, length) order. Then one byte count is changed and the mismatch must show.
No ../shared needed.
"""

from __future__ import annotations

from pathlib import Path

import lab.synthetic as synthetic
import usbtrace.analysis.metrics as metrics_module
import usbtrace.analysis.requests as requests_module
import usbtrace.pipeline as decode
from usbtrace.models.expectations import ExpectedTraffic, reconcile_requests
from usbtrace.models.inspect import inspect_model
from usbtrace.models.package import DmaDescriptorKind, DmaHint, DmaHintKind, LayerInfo
from usbtrace.models.package_writer import ExecutableType, make_executable, write_compiled_model


def _dense_like_model(tmp_path: Path) -> Path:
    """Streams parameters between three instruction chunks, like the study's dense x300."""
    hints = [
        DmaHint(DmaHintKind.INSTRUCTION, index=0),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.INPUT, 16),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 1_038_336),
        DmaHint(DmaHintKind.INSTRUCTION, index=1),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 1_783_808),
        DmaHint(DmaHintKind.INSTRUCTION, index=2),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, 121_472),
        DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.OUTPUT, 1, outfeed=True),
        DmaHint(DmaHintKind.INTERRUPT, index=0),
    ]
    eo = make_executable(
        ExecutableType.EXECUTION_ONLY,
        bitstreams=[262_128, 261_952, 19_760],
        parameter_bytes=2_943_616,
        inputs=[LayerInfo("input_1", 16, (2, 2, 3))],
        outputs=[LayerInfo("dense", 1, (1, 1, 1))],  # 1 byte: arrives padded to 8
        hints=hints,
        caching_token=0x2E469975B41CD1E2,
    )
    pc = make_executable(
        ExecutableType.PARAMETER_CACHING,
        bitstreams=[21_168],
        parameter_bytes=1_040_896,
        caching_token=0x2E469975B41CD1E2,
    )
    return write_compiled_model(tmp_path / "dense_300_edgetpu.tflite", [[eo, pc]])


def _capture_and_requests(tmp_path: Path, expected: ExpectedTraffic, output_bytes: int):
    device = synthetic.DeviceProfile(
        caching=tuple(expected.cache_sequence),
        inference=tuple(expected.sequence),
        output_bytes=output_bytes,
        inferences=3,
        interval_us=100_000,
    )
    profile = synthetic.SessionProfile(name="from_model", model="dense_300", devices=(device,))
    path = tmp_path / "from_model.pcapng"
    synthetic.write_session(profile, path)
    (trace,) = decode.decode_capture(path).devices
    seg = requests_module.segment_arrays(trace)
    metrics = metrics_module.all_request_metrics(trace, seg)
    sequences = dict(enumerate(requests_module.tag_sequences(trace, seg)))
    return metrics, sequences


def test_synthetic_capture_from_a_model_reconciles(tmp_path: Path) -> None:
    model = inspect_model(_dense_like_model(tmp_path))
    expected = ExpectedTraffic.from_summary(model)
    metrics, sequences = _capture_and_requests(tmp_path, expected, output_bytes=8)
    result = reconcile_requests(model, metrics, sequences)
    kinds = [r.kind for _, r in result.results]
    assert kinds == ["parameter-caching", "inference", "inference", "inference"]
    assert result.ok, result.problems()
    assert all(r.sequence_ok for _, r in result.results)


def test_a_capture_that_moves_other_bytes_is_flagged(tmp_path: Path) -> None:
    model = inspect_model(_dense_like_model(tmp_path))
    expected = ExpectedTraffic.from_summary(model)
    expected.sequence[2] = (2, 1_000_000)  # the device streams less than the model says
    metrics, sequences = _capture_and_requests(tmp_path, expected, output_bytes=16)
    result = reconcile_requests(model, metrics, sequences)
    assert not result.ok
    inference = next(r for _, r in result.results if r.kind == "inference")
    assert inference.fields["parameters"].difference == 1_000_000 - 1_038_336
    assert inference.fields["output"].cell() == "+8"
    assert inference.sequence_ok is False
    assert "transfer 3" in inference.sequence_note
