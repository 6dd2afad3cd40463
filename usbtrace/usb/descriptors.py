"""Standard USB descriptors (device, configuration, interface, endpoint) and setup packets."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

DIR_IN = 0x80  # bmRequestType bit 7 and an endpoint address's direction bit
GET_DESCRIPTOR = 6
SET_CONFIGURATION = 9
DT_DEVICE = 1
DT_CONFIGURATION = 2
DT_STRING = 3
DT_INTERFACE = 4
DT_ENDPOINT = 5
DT_BOS = 15
DT_DEVICE_CAPABILITY = 0x10
DT_DFU_FUNCTIONAL = 0x21
DT_SS_ENDPOINT_COMPANION = 0x30
# names of the standard requests (bRequest) and descriptor types (wValue's high byte)
STANDARD_REQUESTS = {
    0: "GET_STATUS",
    1: "CLEAR_FEATURE",
    3: "SET_FEATURE",
    5: "SET_ADDRESS",
    6: "GET_DESCRIPTOR",
    7: "SET_DESCRIPTOR",
    8: "GET_CONFIGURATION",
    9: "SET_CONFIGURATION",
    10: "GET_INTERFACE",
    11: "SET_INTERFACE",
}
DESCRIPTOR_TYPES = {1: "device", 2: "configuration", 3: "string", 15: "BOS", 6: "qualifier"}
# bmAttributes of an endpoint descriptor (not usbmon's transfer-type numbers, which differ)
EP_TYPES = ("control", "iso", "bulk", "interrupt")
EP_TYPE_BULK = 2
EP_TYPE_INTERRUPT = 3


@dataclass(frozen=True, slots=True)
class Setup:
    request_type: int
    request: int
    value: int
    index: int
    length: int

    @classmethod
    def parse(cls, raw: bytes) -> Setup:
        return cls(*struct.unpack("<BBHHH", bytes(raw)))

    @property
    def direction_in(self) -> bool:
        return bool(self.request_type & DIR_IN)

    @property
    def kind(self) -> str:
        return ("standard", "class", "vendor", "reserved")[(self.request_type >> 5) & 3]


@dataclass(frozen=True, slots=True)
class DeviceDescriptor:
    bcd_usb: int
    max_packet0: int
    vendor: int
    product: int
    bcd_device: int

    @classmethod
    def parse(cls, raw: bytes) -> DeviceDescriptor | None:
        if len(raw) < 18 or raw[1] != DT_DEVICE:
            return None
        (bcd_usb,) = struct.unpack_from("<H", raw, 2)
        vendor, product, bcd_device = struct.unpack_from("<HHH", raw, 8)
        return cls(bcd_usb, raw[7], vendor, product, bcd_device)

    @property
    def speed_hint(self) -> str | None:
        """Link speed implied by bcdUSB and EP0's packet size (usbmon records no speed)."""
        if self.bcd_usb >= 0x0300 and self.max_packet0 == 9:
            return "super"
        if self.bcd_usb >= 0x0200 and self.max_packet0 == 64:
            return "high"  # could also be full speed; high is by far the likelier for 2.x
        if self.max_packet0 in (8, 16, 32):
            return "full"
        return None


@dataclass(frozen=True, slots=True)
class Endpoint:
    address: int
    kind: str
    max_packet: int
    interval: int


@dataclass(slots=True)
class ConfigDescriptor:
    value: int
    interfaces: list[tuple[int, int, int, int]] = field(
        default_factory=list
    )  # num, class, sub, proto
    endpoints: list[Endpoint] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes) -> ConfigDescriptor | None:
        if len(raw) < 9 or raw[1] != DT_CONFIGURATION:
            return None
        cfg = cls(value=raw[5])
        pos = 0
        while pos + 2 <= len(raw):
            length, dtype = raw[pos], raw[pos + 1]
            if length < 2 or pos + length > len(raw):
                break  # cut short (snaplen) or garbage: keep what was complete
            body = raw[pos : pos + length]
            if dtype == DT_INTERFACE and length >= 9:
                cfg.interfaces.append((body[2], body[5], body[6], body[7]))
            elif dtype == DT_ENDPOINT and length >= 7:
                (mps,) = struct.unpack_from("<H", body, 4)
                cfg.endpoints.append(Endpoint(body[2], EP_TYPES[body[3] & 3], mps & 0x7FF, body[6]))
            pos += length
        return cfg
