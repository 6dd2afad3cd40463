"""A recorded Edge TPU session, host side only, as steps that can be issued again.

``ReplayScript.from_capture`` reads a usbmon capture with the analyzer itself (the reader, the
decoder's device finding and bulk-OUT framing, the request segmentation) and keeps what the host
did to the device, in capture order: register accesses, bulk OUT URBs of the recorded sizes (with
their payload when the capture kept all of it), and, at the position where the recorded completion
arrived, a wait for the device's output bytes or events. Standard requests (enumeration) are the
kernel's business and DFU requests need a re-enumeration, so neither is replayed.

The steps are cut into ``open`` (before the first bulk OUT), ``invokes`` (one per recorded host
``invoke()``: an inference request and the requests without input before it, such as the
parameter caching the first invoke triggers) and ``close`` (what follows the last invoke).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from usbtrace.analysis.requests import KIND_INFERENCE, KINDS, segment_arrays
from usbtrace.edgetpu.constants import (
    CSR_REQUEST_32,
    CSR_REQUEST_64,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    OUTPUT_READ_LEN_USB3,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
)
from usbtrace.edgetpu.decode import DecodedCapture
from usbtrace.edgetpu.framing import ROLE_HEADER, ROLE_UNFRAMED
from usbtrace.edgetpu.trace import EdgeTpuTrace
from usbtrace.errors import InputError
from usbtrace.formats.capture import Capture
from usbtrace.pipeline import decode_capture
from usbtrace.usb.descriptors import DIR_IN


@dataclass(frozen=True)
class ControlStep:
    """A control transfer: ``data`` for OUT (None when the capture cut it), ``length`` for IN."""

    frame: int
    request_type: int
    request: int
    value: int
    index: int
    length: int
    data: bytes | None = None

    @property
    def is_in(self) -> bool:
        return bool(self.request_type & DIR_IN)


@dataclass(frozen=True)
class BulkOutStep:
    """One bulk OUT URB; ``payload`` None when the capture kept less than ``length`` bytes."""

    frame: int
    endpoint: int
    length: int
    payload: bytes | None
    tag: int  # of the logical transfer this URB belongs to
    header: bool  # the 8-byte header in front of a logical transfer


@dataclass(frozen=True)
class WaitStep:
    """Wait for one recorded completion: ``length`` more bytes from the device on ``endpoint``.

    Waits count bytes, not reads: a device may split or merge chunks differently and still
    deliver the same bytes.
    """

    frame: int
    endpoint: int
    length: int


Step = ControlStep | BulkOutStep | WaitStep


@dataclass
class ReplayScript:
    source: str
    bus: int
    address: int
    open: list[Step] = field(default_factory=list)
    invokes: list[list[Step]] = field(default_factory=list)
    close: list[Step] = field(default_factory=list)
    output_read_len: int = OUTPUT_READ_LEN_USB3
    skipped_requests: int = 0  # standard and DFU control transfers left to the kernel

    def steps(self) -> Iterable[Step]:
        yield from self.open
        for invoke in self.invokes:
            yield from invoke
        yield from self.close

    @property
    def truncated_steps(self) -> list[BulkOutStep | ControlStep]:
        out: list[BulkOutStep | ControlStep] = []
        for step in self.steps():
            cut_bulk = isinstance(step, BulkOutStep) and step.payload is None
            cut_control = isinstance(step, ControlStep) and not step.is_in and step.data is None
            if cut_bulk or cut_control:
                out.append(step)  # type: ignore[arg-type]
        return out

    @property
    def truncated(self) -> bool:
        return bool(self.truncated_steps)

    def invoke_for(self, index: int) -> list[Step]:
        """Steps of the ``index``-th replayed invoke: the recorded ones in order, then the later
        ones again in turn (the first recorded invoke also carries the parameter caching)."""
        if not self.invokes:
            return []
        if index < len(self.invokes):
            return self.invokes[index]
        repeatable = self.invokes[1:] or self.invokes
        return repeatable[(index - len(self.invokes)) % len(repeatable)]

    @classmethod
    def from_capture(
        cls, path: str | Path, *, bus: int | None = None, address: int | None = None
    ) -> ReplayScript:
        decoded, data = read_recording(path)
        trace = _pick_edgetpu(path, decoded.devices, bus, address)
        return _build(str(path), trace, data)


def read_recording(path: str | Path) -> tuple[DecodedCapture, dict[int, bytes]]:
    """The analyzer's reading of a recording: its decoded Edge TPUs, and what the capture kept of
    each frame's data (the bytes to send again). The one place the replay calls the analyzer."""
    decoded = decode_capture(path)
    data: dict[int, bytes] = {}
    for batch in Capture(path, keep_data=True).batches():
        data.update(batch.data)
    return decoded, data


def _pick_edgetpu(
    path: str | Path, traces: list[EdgeTpuTrace], bus: int | None, address: int | None
) -> EdgeTpuTrace:
    """The Edge TPU to replay: the one asked for, else the first known by its descriptor, else
    the busiest bulk-OUT sender."""
    mine = [
        t
        for t in traces
        if (bus is None or t.bus == bus) and (address is None or t.address == address)
    ]
    if not mine:
        raise InputError(path, "no Edge TPU traffic found (no device descriptor, no bulk OUT)")
    known = [t for t in mine if t.identified_by == "descriptor"]
    if known:
        return min(known, key=lambda t: t.first_frame)
    return max(mine, key=lambda t: len(t.out_urbs))


def _control_steps(trace: EdgeTpuTrace) -> list[Step]:
    """Register accesses, the only vendor requests libedgetpu makes."""
    steps: list[Step] = []
    for c in trace.csr:
        nbytes = c.width // 8
        data = None
        if c.write and c.value is not None:
            data = c.value.to_bytes(nbytes, "little")
        steps.append(
            ControlStep(
                c.frame,
                REQTYPE_VENDOR_OUT if c.write else REQTYPE_VENDOR_IN,
                CSR_REQUEST_64 if c.width == 64 else CSR_REQUEST_32,
                c.address & 0xFFFF,
                c.address >> 16,
                nbytes,
                data,
            )
        )
    return steps


def _bulk_out_steps(source: str, trace: EdgeTpuTrace, data: dict[int, bytes]) -> list[Step]:
    """Every framed bulk-OUT URB in the decoder's framing: headers and the payloads they cover."""
    urbs = trace.out_urbs
    unframed = urbs[(urbs["tidx"] < 0) | (urbs["role"] == ROLE_UNFRAMED)]
    if len(unframed):
        raise InputError(
            source,
            f"frame {int(unframed['s_frame'].min())}: {len(unframed)} bulk OUT URB(s) outside any"
            " header's transfer: the recording cannot be replayed",
        )
    steps: list[Step] = []
    table = trace.table
    for tidx, role, frame, length in zip(
        urbs["tidx"].tolist(),
        urbs["role"].tolist(),
        urbs["s_frame"].tolist(),
        urbs["length"].tolist(),
    ):
        if not frame:
            continue  # the submit was not captured: nothing to send again
        kept = data.get(frame, b"")
        payload = kept[:length] if len(kept) >= length else None
        tag, endpoint = int(table["tag"][tidx]), int(table["endpoint"][tidx])
        steps.append(BulkOutStep(frame, endpoint, length, payload, tag, role == ROLE_HEADER))
    return steps


def _wait_steps(trace: EdgeTpuTrace) -> list[Step]:
    """The outputs and completion events the host waited for, where their completions came."""
    chunks = trace.output_chunks
    events = trace.event_table
    return [
        *(
            WaitStep(f, EP_OUTPUT_IN, n)
            for f, n in zip(chunks["frame"].tolist(), chunks["length"].tolist())
        ),
        *(WaitStep(f, EP_EVENT_IN, EVENT_LEN) for f in events["frame"].tolist()),
    ]


def _build(source: str, trace: EdgeTpuTrace, data: dict[int, bytes]) -> ReplayScript:
    if trace.multi_ep:
        raise InputError(source, "multi-endpoint mode recordings cannot be replayed")
    script = ReplayScript(source=source, bus=trace.bus, address=trace.address)
    # standard requests (enumeration) are the kernel's, DFU needs a re-enumeration
    script.skipped_requests = len(trace.standard) + len(trace.dfu)
    if len(trace.output_chunks):
        script.output_read_len = int(trace.output_chunks["asked"][0])
    steps = sorted(
        [*_control_steps(trace), *_bulk_out_steps(source, trace, data), *_wait_steps(trace)],
        key=lambda step: step.frame,
    )
    _cut(script, steps, _invoke_starts(trace))
    return script


def _invoke_starts(trace: EdgeTpuTrace) -> tuple[list[int], int | None]:
    """First frames of the recorded invokes, and of what follows the last one (None: nothing).

    Requests come from the analyzer's segmentation. A host ``invoke()`` runs one inference
    request, and before it any request that does not infer (the parameter caching it triggers);
    requests after the last inference belong to the close.
    """
    seg = segment_arrays(trace)
    inference = seg.kind_codes() == KINDS.index(KIND_INFERENCE)
    # a request's invoke: how many inferences come before it
    group = np.cumsum(inference) - inference
    urbs = trace.out_urbs
    headers = urbs[(urbs["role"] == ROLE_HEADER) & (urbs["s_frame"] > 0)]
    first = np.full(int(inference.sum()) + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, group[seg.transfer_request[headers["tidx"]]], headers["s_frame"])
    starts = [f for f in first[:-1].tolist() if f != np.iinfo(np.int64).max]
    tail = int(first[-1])
    return starts, None if tail == np.iinfo(np.int64).max else tail


def _cut(script: ReplayScript, steps: list[Step], bounds: tuple[list[int], int | None]) -> None:
    starts, tail = bounds
    first_out = next((s.frame for s in steps if isinstance(s, BulkOutStep)), None)
    if first_out is None or not starts:
        script.open = [s for s in steps if first_out is None or s.frame < first_out]
        script.close = [s for s in steps if first_out is not None and s.frame >= first_out]
        return
    starts = [first_out, *starts[1:]]
    ends = [*starts[1:], tail]
    script.open = [s for s in steps if s.frame < first_out]
    for lo, hi in zip(starts, ends):
        script.invokes.append([s for s in steps if lo <= s.frame and (hi is None or s.frame < hi)])
    if tail is not None:
        script.close = [s for s in steps if s.frame >= tail]
    else:
        # control transfers after the last wait of the last invoke are the close sequence
        last = script.invokes[-1]
        end = len(last)
        while end > 0 and isinstance(last[end - 1], ControlStep):
            end -= 1
        script.invokes[-1], script.close = last[:end], last[end:]
