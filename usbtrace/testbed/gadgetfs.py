"""The GadgetFS side of the emulator: bind descriptors, serve EP0, enable the endpoint files.

GadgetFS (``mount -t gadgetfs gadgetfs /dev/gadget``) exposes one controller file named after
the UDC and one file per hardware endpoint. Writing descriptors to the controller file connects
the device; reads on it return 12-byte events; SETUP requests that the kernel does not answer
itself are answered by writing (IN) or reading (OUT) the controller file, and stalled by doing
the opposite with length 0.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from usbtrace.testbed.descriptors import (
    CONFIG_VALUE,
    DT_STRING,
    ENDPOINTS,
    Endpoint,
    config_descriptor,
    device_descriptor,
    string_descriptor,
)

EVENT_LEN = 12
EVENT_NOP = 0
EVENT_CONNECT = 1
EVENT_DISCONNECT = 2
EVENT_SETUP = 3
EVENT_SUSPEND = 4
EVENT_NAMES = {0: "nop", 1: "connect", 2: "disconnect", 3: "setup", 4: "suspend"}

DIR_IN = 0x80
TYPE_MASK = 0x60
TYPE_STANDARD = 0x00
REQ_GET_DESCRIPTOR = 6
REQ_SET_CONFIGURATION = 9
REQ_SET_INTERFACE = 11

MAX_CONTROL_DATA = 4096

_SETUP = struct.Struct("<BBHHH")


@dataclass(frozen=True)
class Setup:
    request_type: int
    request: int
    value: int
    index: int
    length: int

    @property
    def device_to_host(self) -> bool:
        return bool(self.request_type & DIR_IN)


@dataclass(frozen=True)
class GadgetEvent:
    kind: int
    setup: Setup | None = None
    speed: int | None = None


def parse_events(data: bytes) -> list[GadgetEvent]:
    events = []
    for off in range(0, len(data) - EVENT_LEN + 1, EVENT_LEN):
        raw = data[off : off + EVENT_LEN]
        (kind,) = struct.unpack_from("<I", raw, 8)
        if kind == EVENT_SETUP:
            events.append(GadgetEvent(kind, setup=Setup(*_SETUP.unpack_from(raw))))
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


def enable_endpoint(mount: Path, ep: Endpoint) -> int:
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
        if setup.device_to_host:
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
        self.orphan: bytes | None = None
        self.aborted = 0

    def serve_forever(self) -> None:
        while True:
            data = os.read(self.fd, EVENT_LEN * 8)
            for event in parse_events(data):
                self.handle(event)

    def handle(self, event: GadgetEvent) -> None:
        if event.kind == EVENT_SETUP and event.setup is not None:
            self.setup(event.setup)
        elif event.kind == EVENT_DISCONNECT:
            self.on_disconnect()
        elif event.kind == EVENT_CONNECT:
            self.log(f"connect (speed {event.speed})")

    def setup(self, s: Setup) -> None:
        if s.request_type & TYPE_MASK == TYPE_STANDARD:
            self.standard(s)
            return
        data = b""
        if not s.device_to_host and s.length:
            data = self.out_data(s)
            if data is None:
                return
        try:
            reply = self.vendor(s, data)
        except ValueError as exc:
            self.log(f"stall {s}: {exc}")
            stall(self.fd, s)
            return
        if s.device_to_host:
            os.write(self.fd, (reply or b"")[: s.length])
        elif not s.length:
            ack(self.fd)

    def out_data(self, s: Setup) -> bytes | None:
        """The data stage of an OUT request, or None when it was lost.

        GadgetFS completes an OUT data stage in the kernel, so the host may send its next
        SETUP before this process has read the data; the read then fails with EIDRM and the
        kernel treats the following read as the data stage of that next request. Such bytes
        are kept in ``orphan`` and used when their SETUP event is read. A lost write is logged
        and counted (``aborted``); the host saw it succeed.
        """
        if self.orphan is not None and len(self.orphan) == s.length:
            data, self.orphan = self.orphan, None
            return data
        try:
            return os.read(self.fd, s.length)
        except OSError as exc:
            if exc.errno != errno.EIDRM:
                raise
        self.aborted += 1
        self.log(f"host sent its next request before the data of {s} was read; value lost")
        # The next request is pending and GadgetFS is in its data stage. poll() tells whether
        # it is an IN request (writable): its SETUP event is still queued, but unreadable until
        # that stage ends, so it can only be stalled. An OUT request's data can be read now.
        writable = select.poll()
        writable.register(self.fd, select.POLLOUT)
        if writable.poll(0):
            self.log("stalling the request that overtook it")
            with contextlib.suppress(OSError):
                os.read(self.fd, 0)
        else:
            self.orphan = os.read(self.fd, MAX_CONTROL_DATA)
        return None

    def standard(self, s: Setup) -> None:
        if s.request == REQ_GET_DESCRIPTOR and s.device_to_host and s.value >> 8 == DT_STRING:
            desc = string_descriptor(s.value & 0xFF)
            if desc is None:
                stall(self.fd, s)
            else:
                os.write(self.fd, desc[: s.length])
        elif s.request == REQ_SET_CONFIGURATION and not s.device_to_host:
            # Endpoints first, then the status stage: otherwise the host's first bulk URB can
            # reach dummy_hcd before the endpoint exists (RECIPE §5.2).
            if s.value == CONFIG_VALUE:
                self.enable_endpoints()
            ack(self.fd)
            if s.value == CONFIG_VALUE:
                self.on_configured(self.endpoint_fds)
        elif s.request == REQ_SET_INTERFACE and not s.device_to_host:
            ack(self.fd)
        else:
            self.log(f"stall standard request {s}")
            stall(self.fd, s)

    def enable_endpoints(self) -> None:
        for ep in ENDPOINTS:
            if ep.address not in self.endpoint_fds:
                self.endpoint_fds[ep.address] = enable_endpoint(self.mount, ep)
