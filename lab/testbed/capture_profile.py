"""Request shapes of a recorded capture, for the emulator's profile (through the decoder).

The emulator must recognise every request the replayed host will send; the decoder and the
request segmentation of ``usbtrace summarize`` cut the recording into the same requests.
"""

from __future__ import annotations

from pathlib import Path

from usbtrace.analysis.metrics import all_request_metrics
from usbtrace.analysis.requests import KIND_CACHING, KIND_INFERENCE, segment_arrays, tag_sequences
from usbtrace.errors import InputError
from usbtrace.pipeline import decode_capture

# the profile's kind names for the analyzer's
_KINDS = {KIND_CACHING: "caching", KIND_INFERENCE: "inference"}


def requests_of_capture(path: Path) -> list[tuple[str, list[tuple[int, int]], int]]:
    """(kind, [(tag, length)] in submit order, output bytes) of each complete request."""
    decoded = decode_capture(path)
    traces = [t for t in decoded.devices if len(t.transfers)]
    if not traces:
        raise InputError(path, "no Edge TPU bulk-OUT traffic to take a profile from")
    trace = max(traces, key=lambda t: len(t.transfers))  # the busiest Edge TPU in the file
    seg = segment_arrays(trace)
    metrics = all_request_metrics(trace, seg)
    out = []
    for m, sequence in zip(metrics, tag_sequences(trace, seg)):
        if m.kind in _KINDS and m.has_event and sequence:
            out.append((_KINDS[m.kind], sequence, m.output))
    if not out:
        raise InputError(path, "no complete caching or inference request in the capture")
    return out
