"""The GadgetFS side of the emulator: bind descriptors, serve EP0, enable the endpoint files.

GadgetFS (``mount -t gadgetfs gadgetfs /dev/gadget``) exposes one controller file named after
the UDC and one file per hardware endpoint. Writing descriptors to the controller file connects
the device; reads on it return 12-byte events; SETUP requests that the kernel does not answer
itself are answered by writing (IN) or reading (OUT) the controller file, and stalled by doing
the opposite with length 0.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.testbed.descriptors import (
    ENDPOINTS,
    GadgetEndpoint,
    config_descriptor,
    device_descriptor,
    string_descriptor,
)
from lab.usb.descriptors import CONFIG_VALUE
from usbtrace.usb.descriptors import DIR_IN, DT_STRING, Setup

GADGETFS_EVENT_LEN = 12
EVENT_NOP = 0
EVENT_CONNECT = 1
EVENT_DISCONNECT = 2
EVENT_SETUP = 3
EVENT_SUSPEND = 4
EVENT_NAMES = {0: "nop", 1: "connect", 2: "disconnect", 3: "setup", 4: "suspend"}

TYPE_MASK = 0x60
TYPE_STANDARD = 0x00
REQ_GET_DESCRIPTOR = 6
REQ_SET_CONFIGURATION = 9
REQ_SET_INTERFACE = 11

MAX_CONTROL_DATA = 4096
DATA_STAGE_WAIT_S = 2.0
DATA_STAGE_POLL_S = 0.0002
DATA_STAGE_SPIN_S = 0.005

_SETUP_EVENT_TYPE = struct.pack("<I", EVENT_SETUP)


@dataclass(frozen=True)
class GadgetEvent:
    kind: int
    setup: Setup | None = None
    speed: int | None = None


def parse_events(data: bytes) -> list[GadgetEvent]:
    events = []
    for off in range(0, len(data) - GADGETFS_EVENT_LEN + 1, GADGETFS_EVENT_LEN):
        raw = data[off : off + GADGETFS_EVENT_LEN]
        (kind,) = struct.unpack_from("<I", raw, 8)
        if kind == EVENT_SETUP:
            events.append(GadgetEvent(kind, setup=Setup.parse(raw[:8])))
        elif kind == EVENT_CONNECT:
            events.append(GadgetEvent(kind, speed=struct.unpack_from("<I", raw)[0]))
        else:
            events.append(GadgetEvent(kind))
    return events


def controller_file(mount: Path) -> Path:
    """The one file in a GadgetFS mount that is not an endpoint (named after the UDC)."""
    names = sorted(p for p in mount.iterdir() if not p.name.startswith("ep"))
    if not names:
        raise FileNotFoundError(f"{mount}: no GadgetFS controller file (is gadgetfs mounted?)")
    return names[0]


def bind_descriptors(fd: int) -> None:
    """Connect the device: tag 0, full-speed config, high-speed config, device descriptor."""
    os.write(
        fd,
        struct.pack("<I", 0)
        + config_descriptor(high_speed=False)
        + config_descriptor(high_speed=True)
        + device_descriptor(),
    )


def enable_endpoint(mount: Path, ep: GadgetEndpoint) -> int:
    """Open and enable one endpoint file; returns its file descriptor."""
    fd = os.open(mount / ep.gadgetfs_name, os.O_RDWR)
    try:
        os.write(
            fd,
            struct.pack("<I", 1) + ep.descriptor(high_speed=False) + ep.descriptor(high_speed=True),
        )
    except OSError:
        os.close(fd)
        raise
    return fd


def ack(fd: int) -> None:
    """Status stage of a request without data (or with its data already read)."""
    os.read(fd, 0)


def stall(fd: int, setup: Setup) -> None:
    try:
        if setup.direction_in:
            os.read(fd, 0)
        else:
            os.write(fd, b"")
    except OSError:
        pass  # the stall itself is reported as an error by GadgetFS


class Ep0Server:
    """Answers SETUP requests; vendor requests go to ``vendor(setup, data) -> reply | None``."""

    def __init__(
        self,
        fd: int,
        mount: Path,
        vendor: Callable[[Setup, bytes], bytes | None],
        on_configured: Callable[[dict[int, int]], None],
        on_disconnect: Callable[[], None],
        log: Callable[[str], None],
    ) -> None:
        self.fd = fd
        self.mount = mount
        self.vendor = vendor
        self.on_configured = on_configured
        self.on_disconnect = on_disconnect
        self.log = log
        self.endpoint_fds: dict[int, int] = {}
        self.debug = bool(os.environ.get("USBTRACE_EMULATOR_DEBUG"))
        self.aborted = 0
        self.blind_replies = 0

    def serve_forever(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN | select.POLLOUT)
        while True:
            mask = poller.poll()[0][1]
            if not mask & select.POLLIN and mask & select.POLLOUT:
                # GadgetFS sits in the SETUP state of a request whose event we cannot read
                # (an earlier request was overtaken): an event read would stall it. Answer it.
                self.blind_reply()
                continue
            try:
                raw = os.read(self.fd, GADGETFS_EVENT_LEN * 8)
            except OSError as exc:
                if exc.errno not in (errno.EIDRM, errno.EL2HLT, errno.EINVAL, errno.EAGAIN):
                    raise
                # a race reported (EIDRM), or a SETUP state we lost track of ended by this read
                if self.debug:
                    self.log(f"event read: {exc.strerror}; going on")
                continue
            # Fast path, before any parsing: GadgetFS completes an OUT data stage in the kernel
            # and the host may already be sending its next SETUP (see out_data). A SETUP is
            # always the last event of a read.
            early = None
            if (
                len(raw) >= GADGETFS_EVENT_LEN
                and raw[-4:] == _SETUP_EVENT_TYPE
                and not raw[-GADGETFS_EVENT_LEN] & DIR_IN
                and (raw[-6] | raw[-5] << 8)
            ):
                early = self.read_out_data(raw[-6] | raw[-5] << 8)
            for event in parse_events(raw):
                try:
                    self.handle(event, early)
                except OSError as exc:
                    # GadgetFS left the SETUP state under us (the host raced ahead or went
                    # away): the request is over whatever we do; the next event is what counts.
                    self.log(f"answer failed ({exc}); going on")

    def handle(self, event: GadgetEvent, early: bytes | None = None) -> None:
        if self.debug:
            self.log(f"event {EVENT_NAMES.get(event.kind, event.kind)} {event.setup or ''}")
        if event.kind == EVENT_SETUP and event.setup is not None:
            self.setup(event.setup, early)
        elif event.kind == EVENT_DISCONNECT:
            self.on_disconnect()
        elif event.kind == EVENT_CONNECT:
            self.log(f"connect (speed {event.speed})")

    def setup(self, s: Setup, early: bytes | None = None) -> None:
        if s.request_type & TYPE_MASK == TYPE_STANDARD:
            self.standard(s)
            return
        data = b""
        if not s.direction_in and s.length:
            data = early
            if data is None:
                self.log(f"data of {s} lost (the host raced ahead); ignoring the request")
                return
        try:
            reply = self.vendor(s, data)
        except ValueError as exc:
            self.log(f"stall {s}: {exc}")
            stall(self.fd, s)
            return
        if s.direction_in:
            os.write(self.fd, (reply or b"")[: s.length])
        elif not s.length:
            ack(self.fd)

    def _read_data_stage(self, length: int) -> bytes:
        """Read an OUT data stage without blocking on it.

        A blocking read waits for this request's data even when the host has meanwhile sent
        another request (IN, say) whose data never comes: both would hang. Non-blocking, the
        read says EAGAIN until the data is there, and EIDRM once another SETUP overtook it.
        """
        flags = fcntl.fcntl(self.fd, fcntl.F_GETFL)
        fcntl.fcntl(self.fd, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        try:
            start = time.monotonic()
            while True:
                try:
                    return os.read(self.fd, length)
                except BlockingIOError:
                    waited = time.monotonic() - start
                    if waited > DATA_STAGE_WAIT_S:
                        raise OSError(errno.ETIMEDOUT, "OUT data stage never came") from None
                    # the data is normally there within microseconds: spin, yielding, at first
                    time.sleep(0 if waited < DATA_STAGE_SPIN_S else DATA_STAGE_POLL_S)
        finally:
            fcntl.fcntl(self.fd, fcntl.F_SETFL, flags)

    def read_out_data(self, length: int) -> bytes | None:
        """The data stage of the OUT request just announced, or None when it was lost.

        GadgetFS completes an OUT data stage in the kernel, so the host may send its next
        SETUP before this process has read the data. The read then fails with EIDRM and the
        value is lost (the host saw the write succeed); GadgetFS is then already in the SETUP
        state of the next request, which ``serve_forever`` answers with ``blind_reply``.
        """
        try:
            return self._read_data_stage(length)
        except OSError as exc:
            if exc.errno not in (errno.EIDRM, errno.ETIMEDOUT):
                raise
        self.aborted += 1
        self.log("host raced ahead of an OUT data stage; that register write is lost")
        return None

    def blind_reply(self) -> None:
        """Answer a pending IN request whose SETUP we could not see: zeros, cut to wLength.

        When its event shows up later it is answered again; that reply finds no host
        transfer and dummy_hcd drops it at the next SETUP (see tb_ep0_flush for the unplug).
        """
        self.blind_replies += 1
        self.log("answering a request we could not read with zeros")
        try:
            os.write(self.fd, bytes(MAX_CONTROL_DATA))
        except OSError as exc:
            self.log(f"blind reply failed: {exc.strerror}")

    def standard(self, s: Setup) -> None:
        if s.request == REQ_GET_DESCRIPTOR and s.direction_in and s.value >> 8 == DT_STRING:
            desc = string_descriptor(s.value & 0xFF)
            if desc is None:
                stall(self.fd, s)
            else:
                os.write(self.fd, desc[: s.length])
        elif s.request == REQ_SET_CONFIGURATION and not s.direction_in:
            # Endpoints first, then the status stage: otherwise the host's first bulk URB can
            # reach dummy_hcd before the endpoint exists (RECIPE §5.2).
            if s.value == CONFIG_VALUE:
                self.enable_endpoints()
            ack(self.fd)
            if s.value == CONFIG_VALUE:
                self.on_configured(self.endpoint_fds)
        elif s.request == REQ_SET_INTERFACE and not s.direction_in:
            ack(self.fd)
        else:
            self.log(f"stall standard request {s}")
            stall(self.fd, s)

    def enable_endpoints(self) -> None:
        for ep in ENDPOINTS:
            if ep.address not in self.endpoint_fds:
                self.endpoint_fds[ep.address] = enable_endpoint(self.mount, ep)
