"""Bytes a synthetic session carries: headers, instruction chunks, inputs, parameters, descriptors.

Only the bytes a capture keeps are made (``keep`` = snaplen − 64, at most usbmon's data_len), so a
session with gigabytes of parameters costs no more memory than its headers.
"""

from __future__ import annotations

import hashlib
import struct

from lab.usb import descriptors as desc
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
from usbtrace.usb.descriptors import DT_DFU_FUNCTIONAL, Endpoint

INPUT_PIXEL = 0x80  # the real captures' input: a 2x2x3 image of value 128, padded to 16 bytes


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


# --- descriptors (built by lab.usb.descriptors) --------------------------------------------------


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
    return desc.device_descriptor(
        vid,
        pid,
        bcd_usb=bcd_usb,
        max_packet0=MAX_PACKET0_SUPER if speed == "super" else MAX_PACKET0_HIGH,
        bcd_device=bcd_device,
        device_class=device_class,
        protocol=protocol,
    )


def config_descriptor(speed: str) -> bytes:
    bulk = BULK_MAX_PACKET_SUPER if speed == "super" else BULK_MAX_PACKET_HIGH
    endpoints = [
        Endpoint(address, "bulk", bulk, 0)
        for address in (EP_BULK_OUT, EP_INPUT_OUT, EP_PARAM_OUT, EP_OUTPUT_IN, EP_EVENT_IN)
    ]
    endpoints.append(
        Endpoint(EP_INTERRUPT_IN, "interrupt", INTERRUPT_MAX_PACKET, INTERRUPT_INTERVAL)
    )
    cls = VENDOR_INTERFACE_CLASS
    return desc.config_descriptor(
        [
            desc.interface_descriptor(len(endpoints), cls, cls, cls),
            *(desc.endpoint_descriptor(ep, superspeed=speed == "super") for ep in endpoints),
        ],
        max_power=CONFIG_MAX_POWER,
    )


def dfu_config_descriptor() -> bytes:
    """The boot loader's configuration: one DFU-mode interface [inf: never captured]."""
    # attributes: download, upload, manifestation tolerant, will detach; DFU 1.1
    functional = struct.pack(
        "<BBBHHH", 9, DT_DFU_FUNCTIONAL, 0x0F, DFU_DETACH_TIMEOUT_MS, DFU_TRANSFER_SIZE, 0x0110
    )
    return desc.config_descriptor(
        [desc.interface_descriptor(0, 0xFE, 1, 2), functional], max_power=50
    )
