"""The replay script and the decoder read the same session: transfers, registers, completions."""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_fakes import SessionWriter

from usbtrace.capture.replay_script import BulkOutStep, ControlStep, ReplayScript, WaitStep
from usbtrace.edgetpu.constants import EP_EVENT_IN, EP_OUTPUT_IN
from usbtrace.pipeline import decode_capture

PROJECT = Path(__file__).resolve().parents[1]


def _transfers(script: ReplayScript) -> list[tuple[int, int]]:
    return [
        (s.tag, int.from_bytes(s.payload[:4], "little"))
        for s in script.steps()
        if isinstance(s, BulkOutStep) and s.header and s.payload is not None
    ]


def _crosscheck(path: Path) -> None:
    script = ReplayScript.from_capture(path)
    traces = decode_capture(path).devices
    (trace,) = [t for t in traces if (t.bus, t.address) == (script.bus, script.address)]
    assert _transfers(script) == [(t.tag, t.length) for t in trace.transfers]
    controls = [s for s in script.steps() if isinstance(s, ControlStep)]
    assert len(controls) == len(trace.csr)
    waits = [s for s in script.steps() if isinstance(s, WaitStep)]
    assert sum(w.endpoint == EP_EVENT_IN for w in waits) == len(trace.events)
    assert sum(w.length for w in waits if w.endpoint == EP_OUTPUT_IN) == sum(
        o.nbytes for o in trace.outputs
    )


def test_synthetic_session(tmp_path):
    path = tmp_path / "s.pcapng"
    path.write_bytes(SessionWriter(snaplen=128).session(3))
    _crosscheck(path)


@pytest.mark.parametrize("name", ["sample-synthetic-conv.pcapng", "sample-synthetic-dense.pcapng"])
def test_committed_samples(name):
    path = PROJECT / "captures" / name
    if not path.exists():
        pytest.skip(f"{path} not in this checkout (made by scripts/make_sample.py)")
    _crosscheck(path)


@pytest.mark.parametrize("name", ["conv_50", "dense_300"])
def test_real_captures(shared_file, name):
    _crosscheck(shared_file(f"captures/real/{name}.pcapng"))
