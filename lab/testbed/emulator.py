"""The emulated Edge TPU: register file on EP0, framed bulk OUT on 0x01, outputs on 0x81 and
one 16-byte tag-4 completion event on 0x82 per request.

Each endpoint has its own thread, because a GadgetFS read or write blocks until the host moves
the data: the bulk-OUT reader keeps taking data while outputs and events wait for the host's
reads, as on the real device. A request's event is sent after its output was taken (or after
``OUTPUT_WAIT_S`` if the host never reads it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from lab.testbed.framing import BadHeader, read_transfers
from lab.testbed.gadgetfs import (
    Ep0Server,
    bind_descriptors,
    controller_file,
)
from lab.testbed.matcher import CompletedRequest, RequestMatcher
from lab.testbed.profile import EmulatorProfile
from lab.testbed.registers import RegisterFile, csr_address
from usbtrace.edgetpu.constants import (
    COMPLETION_TAG,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    Tag,
)
from usbtrace.edgetpu.wire import encode_event
from usbtrace.usb.descriptors import Setup

OUTPUT_WAIT_S = 5.0
# errors a blocked endpoint read/write gets when the host resets or the device is disconnected
LINK_GONE = {
    errno.ESHUTDOWN,
    errno.ECONNRESET,
    errno.ENODEV,
    errno.EPIPE,
    errno.EIO,
    errno.ENOENT,
    errno.EL2HLT,
    errno.EBUSY,
}
RETRY_S = 0.05
EP0_RT_PRIORITY = 50


def completion_event(tag: Tag = COMPLETION_TAG) -> bytes:
    """The 16-byte event: u64 address 0, u32 length 0, tag in byte 12 (interrupt events)."""
    return encode_event(tag)


@dataclass
class EmulatorStats:
    """What the emulator served; written as JSON to ``--stats`` at exit."""

    requests: list[dict[str, object]] = field(default_factory=list)
    bad_headers: int = 0
    short_transfers: int = 0
    csr_reads: int = 0
    csr_writes: int = 0
    unknown_registers: list[int] = field(default_factory=list)
    configured: int = 0
    disconnects: int = 0
    aborted_control_writes: int = 0
    blind_control_replies: int = 0


@dataclass
class _Output:
    nbytes: int
    done: threading.Event = field(default_factory=threading.Event)


class EdgeTpuEmulator:
    def __init__(
        self,
        mount: Path,
        profile: EmulatorProfile,
        pace: float = 0.0,
        link_rate: float = 0.0,
        compute_s: float = 0.0,
        log: TextIO = sys.stderr,
        ready_file: Path | None = None,
    ) -> None:
        self.mount = mount
        self.profile = profile
        self.pace = pace
        self.link_rate = link_rate
        self.compute_s = compute_s
        self._log = log
        self.ready_file = ready_file
        self.registers = RegisterFile()
        self.matcher = RequestMatcher(profile)
        self.stats = EmulatorStats()
        self.fds: dict[int, int] = {}
        self.configured = threading.Event()
        self.outputs: queue.Queue[_Output] = queue.Queue()
        self.events: queue.Queue[bytes] = queue.Queue()
        self._threads_started = False
        self.ep0: Ep0Server | None = None
        self.t0 = time.monotonic()

    # --- EP0 ---------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[emulator {time.monotonic() - self.t0:8.3f}] {message}", file=self._log, flush=True)

    def vendor(self, setup: Setup, data: bytes) -> bytes | None:
        width = self.registers.width_of_request(setup.request)
        if width is None or setup.request_type not in (REQTYPE_VENDOR_IN, REQTYPE_VENDOR_OUT):
            raise ValueError("not a register access")
        address = csr_address(setup.value, setup.index)
        if setup.request_type == REQTYPE_VENDOR_IN:
            self.stats.csr_reads += 1
            return self.registers.read(address, width).to_bytes(width // 8, "little")
        if len(data) != width // 8:
            raise ValueError(f"register write of {len(data)} bytes for a {width}-bit register")
        self.stats.csr_writes += 1
        self.registers.write(address, width, int.from_bytes(data, "little"))
        return None

    def on_configured(self, fds: dict[int, int]) -> None:
        self.fds = fds
        self.stats.configured += 1
        self.configured.set()
        if not self._threads_started:
            self._threads_started = True
            for target in (self._bulk_out_loop, self._output_loop, self._event_loop):
                threading.Thread(target=target, daemon=True, name=target.__name__).start()
        self.log("configured")
        if self.ready_file is not None:
            self.ready_file.write_text(f"{os.getpid()}\n")

    def on_disconnect(self) -> None:
        if self.configured.is_set():
            self.stats.disconnects += 1
            self.log("disconnect")

    # --- bulk endpoints ------------------------------------------------------------------------

    def _read_out(self, n: int) -> bytes:
        return os.read(self.fds[EP_BULK_OUT], n)

    def _rate_for(self, tag: Tag) -> float:
        """Bytes per second for the transfer whose header just came.

        ``link_rate`` caps every transfer, standing in for a link with a steady rate (dummy_hcd
        moves data at a rate that varies a lot under emulation). ``pace`` holds back streamed
        parameters only: a real device writes cached ones straight into on-chip memory at link
        speed, while streamed ones wait for compute.
        """
        rates = [self.link_rate]
        if tag == Tag.PARAMETERS and self.matcher.streaming():
            rates.append(self.pace)
        limits = [r for r in rates if r > 0]
        return min(limits) if limits else 0.0

    def _bulk_out_loop(self) -> None:
        while True:
            self.configured.wait()
            try:
                for item in read_transfers(self._read_out, self._rate_for):
                    if isinstance(item, BadHeader):
                        self.stats.bad_headers += 1
                        self.log(f"not a header: {item.data[:16].hex()} ({len(item.data)} B)")
                        continue
                    done = self.matcher.feed(item.tag, item.length)
                    if done is not None:
                        self._finish(done)
            except OSError as exc:
                if exc.errno not in LINK_GONE:
                    raise
                self.matcher.reset()
                time.sleep(RETRY_S)

    def _finish(self, done: CompletedRequest) -> None:
        if self.compute_s > 0:
            time.sleep(self.compute_s)
        if done.output_bytes:
            out = _Output(done.output_bytes)
            self.outputs.put(out)
            out.done.wait(OUTPUT_WAIT_S)
        self.events.put(completion_event())
        record = {
            "index": done.index,
            "kind": done.kind,
            "transfers": [[int(t), n] for t, n in done.transfers],
            "output_bytes": done.output_bytes,
        }
        self.stats.requests.append(record)
        self.log(
            f"request {done.index} {done.kind}: {record['transfers']} -> {done.output_bytes} B"
        )

    def _write_in(self, address: int, data: bytes) -> None:
        while True:
            self.configured.wait()
            try:
                os.write(self.fds[address], data)
                return
            except OSError as exc:
                if exc.errno not in LINK_GONE:
                    raise
                time.sleep(RETRY_S)

    def _output_loop(self) -> None:
        while True:
            out = self.outputs.get()
            chunk = self.registers.output_chunk_bytes()
            left = out.nbytes
            while left > 0:  # full chunks, then one short chunk: the host sees the end
                n = min(chunk, left)
                self._write_in(EP_OUTPUT_IN, bytes(n))
                left -= n
            out.done.set()

    def _event_loop(self) -> None:
        while True:
            self._write_in(EP_EVENT_IN, self.events.get())

    # --- lifecycle -----------------------------------------------------------------------------

    def run(self) -> None:
        """Connect and serve until interrupted.

        The controller file is deliberately left open: closing it while an endpoint thread is
        blocked in a transfer deadlocks in GadgetFS (``destroy_ep_files`` waits for the
        endpoint's lock). The process exit ends those threads first and then closes the files,
        which unplugs the device; so stop the emulator by ending its process.
        """
        path = controller_file(self.mount)
        fd = os.open(path, os.O_RDWR)
        bind_descriptors(fd)
        self.log(
            f"bound to {path.name}: profile {self.profile.name}, pace {self.pace:g} B/s, "
            f"link rate {self.link_rate:g} B/s"
        )
        # The host does not wait for us to read an OUT request's data (see Ep0Server.out_data),
        # so EP0 must be answered at once: real-time priority for this (the EP0) thread where
        # allowed (root in the VM), and a short GIL switch interval against the bulk threads.
        sys.setswitchinterval(0.0005)
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(EP0_RT_PRIORITY))
            self.log(f"EP0 thread at real-time priority {EP0_RT_PRIORITY}")
        self.ep0 = Ep0Server(
            fd, self.mount, self.vendor, self.on_configured, self.on_disconnect, self.log
        )
        self.ep0.serve_forever()

    def stats_json(self) -> str:
        self.stats.unknown_registers = sorted(self.registers.unknown)
        if self.ep0 is not None:
            self.stats.aborted_control_writes = self.ep0.aborted
            self.stats.blind_control_replies = self.ep0.blind_replies
        return json.dumps(asdict(self.stats), indent=1)


def install_stop_handlers() -> None:
    import signal

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
