"""The one builder of standard USB descriptors, for the simulated and the emulated devices.

Endpoints are the product's own ``usbtrace.usb.descriptors.Endpoint`` (what the decoder reads back
out of a configuration descriptor), so what the lab writes and what the analyzer parses are the
same fields.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from usbtrace.usb.descriptors import (
    DT_BOS,
    DT_CONFIGURATION,
    DT_DEVICE,
    DT_DEVICE_CAPABILITY,
    DT_ENDPOINT,
    DT_INTERFACE,
    DT_SS_ENDPOINT_COMPANION,
    DT_STRING,
    EP_TYPE_INTERRUPT,
    EP_TYPES,
    Endpoint,
)

LANGID_EN_US = 0x0409
CONFIG_VALUE = 1
ATTR_BUS_POWERED = 0x80  # bmAttributes bit 7 is reserved and always set
ATTR_SELF_POWERED = 0xC0


def setup_packet(request_type: int, request: int, value: int, index: int, length: int) -> bytes:
    return struct.pack("<BBHHH", request_type, request, value, index, length)


def device_descriptor(
    vid: int,
    pid: int,
    *,
    bcd_usb: int,
    max_packet0: int,
    bcd_device: int,
    device_class: int = 0,
    protocol: int = 0,
    strings: tuple[int, int, int] = (0, 0, 0),  # iManufacturer, iProduct, iSerialNumber
) -> bytes:
    return struct.pack(
        "<BBHBBBBHHHBBBB",
        18,
        DT_DEVICE,
        bcd_usb,
        device_class,
        0,
        protocol,
        max_packet0,
        vid,
        pid,
        bcd_device,
        *strings,
        1,  # one configuration
    )


def endpoint_descriptor(ep: Endpoint, *, superspeed: bool = False) -> bytes:
    """The endpoint, and at SuperSpeed its companion (burst 0, as a plain device says)."""
    attributes = EP_TYPES.index(ep.kind)
    raw = struct.pack("<BBBBHB", 7, DT_ENDPOINT, ep.address, attributes, ep.max_packet, ep.interval)
    if not superspeed:
        return raw
    per_interval = ep.max_packet if attributes == EP_TYPE_INTERRUPT else 0
    return raw + struct.pack("<BBBBH", 6, DT_SS_ENDPOINT_COMPANION, 0, 0, per_interval)


def interface_descriptor(
    endpoints: int, cls: int, subclass: int, protocol: int, number: int = 0
) -> bytes:
    return struct.pack(
        "<BBBBBBBBB", 9, DT_INTERFACE, number, 0, endpoints, cls, subclass, protocol, 0
    )


def config_descriptor(
    parts: Sequence[bytes], *, max_power: int, attributes: int = ATTR_BUS_POWERED
) -> bytes:
    """A configuration header (value 1, one interface) in front of ``parts``."""
    body = b"".join(parts)
    head = struct.pack(
        "<BBHBBBBB", 9, DT_CONFIGURATION, 9 + len(body), 1, CONFIG_VALUE, 0, attributes, max_power
    )
    return head + body


def string_descriptor(text: str | None) -> bytes:
    """String descriptor of ``text``; None gives descriptor 0, the list of languages."""
    if text is None:
        return struct.pack("<BBH", 4, DT_STRING, LANGID_EN_US)
    body = text.encode("utf-16-le")
    return struct.pack("<BB", 2 + len(body), DT_STRING) + body


def bos_descriptor() -> bytes:
    """USB 2.0 extension (LPM) and SuperSpeed capability, as a SuperSpeed device reports."""
    usb2_ext = struct.pack("<BBBI", 7, DT_DEVICE_CAPABILITY, 2, 0x2)
    superspeed = struct.pack("<BBBBHBBH", 10, DT_DEVICE_CAPABILITY, 3, 0, 0x000C, 2, 0, 0)
    body = usb2_ext + superspeed
    return struct.pack("<BBHB", 5, DT_BOS, 5 + len(body), 2) + body
