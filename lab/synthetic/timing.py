"""When things happen in a synthetic session: a small, deterministic host/link/device model.

Host: the driver submits bulk-OUT URBs one after another, ``host_gap_us`` apart, with at most
``MAX_ASYNC_BULK_OUT`` in flight (headers included). Each logical transfer is one 8-byte header
(single-EP) and payload chunks of at most ``MAX_BULK_OUT_CHUNK``; the next header follows only
after every chunk of the transfer was submitted.

Link and device: the bulk-OUT endpoint is a FIFO. A URB starts when it was submitted and the one
before it completed, and takes ``urb_overhead_us + ceil(len / rate)``; the rate is the link's, or
``min(link, param_bytes_per_s)`` for the streamed parameters of an inference request (the device
consuming them sets the pace). Execution starts when the input was accepted (and the previous
request finished); a request's payload URBs are accepted only after the previous request's event
(its headers may go before). The first streamed parameter after the input is accepted no earlier
than ``cached_compute_us`` later (cached layers run first). The first output chunk completes at the
later of ``execution start + compute_us`` and ``last OUT accepted + tail_us``; further chunks
follow at the IN link rate (each needs a pending read); the tag-4 event comes
``event_after_output_us`` after the last chunk. A caching request's event comes
``caching_tail_us`` after its last OUT URB was accepted.

Everything is integer microseconds, so the ground truth is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.synthetic.profile import Timing, TransferSpec
from usbtrace.edgetpu.constants import HEADER_LEN, MAX_ASYNC_BULK_OUT, MAX_BULK_OUT_CHUNK, Tag


def transfer_us(length: int, bytes_per_s: int) -> int:
    """Whole microseconds to move ``length`` bytes at ``bytes_per_s``, rounded up."""
    return -(-length * 1_000_000 // bytes_per_s)


def chunk_lengths(length: int) -> list[int]:
    """Payload URB lengths of one logical transfer."""
    full, rest = divmod(length, MAX_BULK_OUT_CHUNK)
    return [MAX_BULK_OUT_CHUNK] * full + ([rest] if rest else [])


@dataclass
class OutUrb:
    """One bulk-OUT URB: a header or a payload chunk."""

    request: int
    transfer: int  # index of the logical transfer within its request
    tag: int
    length: int
    header: bool
    submit_us: int = 0
    start_us: int = 0  # the device starts accepting it
    complete_us: int = 0
    serial: int = 0  # the record serial, once emitted


@dataclass
class RequestOut:
    """The bulk-OUT side of one request, scheduled."""

    index: int
    kind: str
    transfers: tuple[TransferSpec, ...]
    urbs: list[OutUrb] = field(default_factory=list)
    exec_start_us: int | None = None  # input accepted (and the previous request done)

    @property
    def last_complete_us(self) -> int:
        return max(u.complete_us for u in self.urbs)

    @property
    def input_complete_us(self) -> int | None:
        done = [u.complete_us for u in self.urbs if u.tag == Tag.INPUT and not u.header]
        return max(done) if done else None


class OutScheduler:
    """Schedules the bulk-OUT URBs of one device, request after request."""

    def __init__(self, timing: Timing, *, headers: bool) -> None:
        self.timing = timing
        self.headers = headers
        self._completions: list[int] = []  # of every URB so far, in FIFO order
        self._last_submit = -(10**18)

    def schedule(
        self,
        index: int,
        kind: str,
        transfers: tuple[TransferSpec, ...],
        host_start_us: int,
        previous_done_us: int,
    ) -> RequestOut:
        t = self.timing
        req = RequestOut(index, kind, transfers)
        for ti, (tag, length) in enumerate(transfers):
            if self.headers:
                req.urbs.append(OutUrb(index, ti, tag, HEADER_LEN, True))
            for n in chunk_lengths(length):
                req.urbs.append(OutUrb(index, ti, tag, n, False))
        seen_input = False
        gated = False
        for urb in req.urbs:
            slot_free = (
                self._completions[-MAX_ASYNC_BULK_OUT]
                if len(self._completions) >= MAX_ASYNC_BULK_OUT
                else -(10**18)
            )
            urb.submit_us = max(self._last_submit + t.host_gap_us, slot_free + t.host_gap_us)
            urb.submit_us = max(urb.submit_us, host_start_us)
            self._last_submit = urb.submit_us
            start = urb.submit_us
            if self._completions:
                start = max(start, self._completions[-1])
            if not urb.header:
                # the device takes the next request's data only once the previous one finished
                # (real captures: the header is accepted just before the event, the payload after)
                start = max(start, previous_done_us)
            rate = t.link_out_bytes_per_s
            streamed = kind != "parameter-caching" and urb.tag == Tag.PARAMETERS and not urb.header
            if streamed and t.param_bytes_per_s is not None:
                rate = min(rate, t.param_bytes_per_s)
            if streamed and seen_input and not gated:
                # the device runs its cached layers before it takes the first streamed parameter
                gated = True
                assert req.exec_start_us is not None
                start = max(start, req.exec_start_us + t.cached_compute_us)
            urb.start_us = start
            urb.complete_us = start + t.urb_overhead_us + transfer_us(urb.length, rate)
            self._completions.append(urb.complete_us)
            if urb.tag == Tag.INPUT and not urb.header and self._is_last_input(req, urb):
                seen_input = True
                req.exec_start_us = max(urb.complete_us, previous_done_us)
        return req

    @staticmethod
    def _is_last_input(req: RequestOut, urb: OutUrb) -> bool:
        later = req.urbs[req.urbs.index(urb) + 1 :]
        return not any(u.tag == Tag.INPUT and not u.header for u in later)

    @property
    def last_submit_us(self) -> int:
        return self._last_submit
