"""Bytes a synthetic session carries: headers, instruction chunks, inputs, parameters, descriptors.

Only the bytes a capture keeps are made (``keep`` = snaplen − 64, at most usbmon's data_len), so a
session with gigabytes of parameters costs no more memory than its headers.
"""

from __future__ import annotations

import hashlib
import struct

from usbtrace.edgetpu.constants import (
    BCD_DEVICE_APP,
    BCD_USB_HIGH,
    BCD_USB_SUPER,
    BULK_MAX_PACKET_HIGH,
    BULK_MAX_PACKET_SUPER,
    CONFIG_MAX_POWER,
    DFU_DETACH_TIMEOUT_MS,
    DFU_TRANSFER_SIZE,
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INPUT_OUT,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EP_PARAM_OUT,
    INSTRUCTION_CHUNK_SIGNATURE,
    INTERRUPT_INTERVAL,
    INTERRUPT_MAX_PACKET,
    MAX_PACKET0_HIGH,
    MAX_PACKET0_SUPER,
    VENDOR_INTERFACE_CLASS,
    Tag,
)
from usbtrace.edgetpu.wire import encode_header
from usbtrace.usb.descriptors import (
    DT_BOS,
    DT_CONFIGURATION,
    DT_DEVICE,
    DT_DEVICE_CAPABILITY,
    DT_DFU_FUNCTIONAL,
    DT_ENDPOINT,
    DT_INTERFACE,
    DT_SS_ENDPOINT_COMPANION,
    EP_TYPE_BULK,
    EP_TYPE_INTERRUPT,
)

INPUT_PIXEL = 0x80  # the real captures' input: a 2x2x3 image of value 128, padded to 16 bytes

out_header = encode_header  # kept under the name the session code uses


def pseudo_random(label: str, n: int) -> bytes:
    """Deterministic filler (weights, firmware): SHAKE-128 of a label."""
    return hashlib.shake_128(label.encode()).digest(n) if n else b""


def instruction_chunk(length: int, label: str, keep: int) -> bytes:
    # bytes 3-5 as u24 n with 4n + 32 = chunk length, as on every real chunk (an inference)
    n = (max(length - 32, 0) // 4) & 0xFFFFFF
    head = INSTRUCTION_CHUNK_SIGNATURE + n.to_bytes(3, "little")
    return (head + pseudo_random(label, max(keep - len(head), 0)))[: min(keep, length)]


def input_bytes(offset: int, n: int) -> bytes:
    return bytes(INPUT_PIXEL if (offset + i) % 16 < 12 else 0 for i in range(n))


def payload(tag: int, length: int, offset: int, label: str, keep: int) -> bytes:
    """The first ``keep`` bytes of a payload URB at ``offset`` into its logical transfer."""
    n = min(keep, length)
    if tag == Tag.INSTRUCTIONS and offset == 0:
        return instruction_chunk(length, label, keep)
    if tag == Tag.INPUT:
        return input_bytes(offset, n)
    return pseudo_random(label, n)


# --- descriptors --------------------------------------------------------------------------------


def device_descriptor(
    vid: int,
    pid: int,
    speed: str,
    bcd_device: int = BCD_DEVICE_APP,
    *,
    bcd_usb: int | None = None,
    device_class: int = 0,
    protocol: int = 0,
) -> bytes:
    if bcd_usb is None:
        bcd_usb = BCD_USB_SUPER if speed == "super" else BCD_USB_HIGH
    max0 = MAX_PACKET0_SUPER if speed == "super" else MAX_PACKET0_HIGH
    return struct.pack(
        "<BBHBBBBHHHBBBB",
        18,
        DT_DEVICE,
        bcd_usb,
        device_class,
        0,
        protocol,
        max0,
        vid,
        pid,
        bcd_device,
        0,
        0,
        0,
        1,
    )


def bos_descriptor() -> bytes:
    usb2_ext = struct.pack("<BBBI", 7, DT_DEVICE_CAPABILITY, 2, 0x2)
    superspeed = struct.pack("<BBBBHBBH", 10, DT_DEVICE_CAPABILITY, 3, 0, 0x000C, 2, 0, 0)
    body = usb2_ext + superspeed
    return struct.pack("<BBHB", 5, DT_BOS, 5 + len(body), 2) + body


def _endpoint(address: int, kind: int, max_packet: int, interval: int, speed: str) -> bytes:
    ep = struct.pack("<BBBBHB", 7, DT_ENDPOINT, address, kind, max_packet, interval)
    if speed != "super":
        return ep
    # companion contents are not in the real export; burst 0, as a plain device would say [inf]
    per_interval = max_packet if kind == EP_TYPE_INTERRUPT else 0
    return ep + struct.pack("<BBBBH", 6, DT_SS_ENDPOINT_COMPANION, 0, 0, per_interval)


def config_descriptor(speed: str) -> bytes:
    bulk = BULK_MAX_PACKET_SUPER if speed == "super" else BULK_MAX_PACKET_HIGH
    endpoints = b"".join(
        [
            _endpoint(EP_BULK_OUT, EP_TYPE_BULK, bulk, 0, speed),
            _endpoint(EP_INPUT_OUT, EP_TYPE_BULK, bulk, 0, speed),
            _endpoint(EP_PARAM_OUT, EP_TYPE_BULK, bulk, 0, speed),
            _endpoint(EP_OUTPUT_IN, EP_TYPE_BULK, bulk, 0, speed),
            _endpoint(EP_EVENT_IN, EP_TYPE_BULK, bulk, 0, speed),
            _endpoint(
                EP_INTERRUPT_IN, EP_TYPE_INTERRUPT, INTERRUPT_MAX_PACKET, INTERRUPT_INTERVAL, speed
            ),
        ]
    )
    cls = VENDOR_INTERFACE_CLASS
    interface = struct.pack("<BBBBBBBBB", 9, DT_INTERFACE, 0, 0, 6, cls, cls, cls, 0)
    total = 9 + len(interface) + len(endpoints)
    config = struct.pack("<BBHBBBBB", 9, DT_CONFIGURATION, total, 1, 1, 0, 0x80, CONFIG_MAX_POWER)
    return config + interface + endpoints


def dfu_config_descriptor() -> bytes:
    """The boot loader's configuration: one DFU-mode interface [inf: never captured]."""
    interface = struct.pack("<BBBBBBBBB", 9, DT_INTERFACE, 0, 0, 0, 0xFE, 1, 2, 0)
    # attributes: download, upload, manifestation tolerant, will detach; DFU 1.1
    functional = struct.pack(
        "<BBBHHH", 9, DT_DFU_FUNCTIONAL, 0x0F, DFU_DETACH_TIMEOUT_MS, DFU_TRANSFER_SIZE, 0x0110
    )
    total = 9 + len(interface) + len(functional)
    config = struct.pack("<BBHBBBBB", 9, DT_CONFIGURATION, total, 1, 1, 0, 0x80, 50)
    return config + interface + functional


def setup_packet(request_type: int, request: int, value: int, index: int, length: int) -> bytes:
    return struct.pack("<BBHHH", request_type, request, value, index, length)
