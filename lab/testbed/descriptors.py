"""USB descriptors of the emulated application-mode Edge TPU (high speed, single-EP layout).

The real accelerator seen on captures is a SuperSpeed device; GadgetFS only does full and high
speed, so this is what the same device looks like on a USB 2.0 port: ``bcdUSB`` 0x0200, EP0 64,
bulk endpoints 512 (64 at full speed), interrupt 0x83 64 bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from lab.testbed import EMULATOR_MANUFACTURER, EMULATOR_PRODUCT, EMULATOR_SERIAL
from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    PID_EDGETPU_APP,
    VID_GOOGLE,
)
from usbtrace.usb.descriptors import (
    DT_CONFIGURATION,
    DT_DEVICE,
    DT_ENDPOINT,
    DT_INTERFACE,
    DT_STRING,
    EP_TYPE_BULK,
    EP_TYPE_INTERRUPT,
)

BCD_USB_2 = 0x0200
BCD_DEVICE = 0x0100
EP0_MAX_PACKET = 64
VENDOR_CLASS = 0xFF
CONFIG_VALUE = 1
LANGID_EN_US = 0x0409

STRING_MANUFACTURER = 1
STRING_PRODUCT = 2
STRING_SERIAL = 3
STRINGS = {
    STRING_MANUFACTURER: EMULATOR_MANUFACTURER,
    STRING_PRODUCT: EMULATOR_PRODUCT,
    STRING_SERIAL: EMULATOR_SERIAL,
}


@dataclass(frozen=True)
class Endpoint:
    address: int
    xfer: int  # EP_TYPE_BULK or EP_TYPE_INTERRUPT (bmAttributes)
    max_packet_fs: int
    max_packet_hs: int
    interval_fs: int = 0
    interval_hs: int = 0
    gadgetfs_name: str = ""  # the endpoint file dummy_udc offers for it

    def descriptor(self, high_speed: bool) -> bytes:
        size = self.max_packet_hs if high_speed else self.max_packet_fs
        interval = self.interval_hs if high_speed else self.interval_fs
        return struct.pack("<BBBBHB", 7, DT_ENDPOINT, self.address, self.xfer, size, interval)


# dummy_udc routes URBs by the address in the enabled descriptor, so the interrupt endpoint can
# live in the "ep5in-int" file and still be 0x83 (RECIPE §5.2).
ENDPOINTS = (
    Endpoint(EP_BULK_OUT, EP_TYPE_BULK, 64, 512, gadgetfs_name="ep1out-bulk"),
    Endpoint(EP_OUTPUT_IN, EP_TYPE_BULK, 64, 512, gadgetfs_name="ep1in-bulk"),
    Endpoint(EP_EVENT_IN, EP_TYPE_BULK, 64, 512, gadgetfs_name="ep2in-bulk"),
    # bInterval 1 ms at full speed; 2**(4-1) microframes = 1 ms at high speed
    Endpoint(EP_INTERRUPT_IN, EP_TYPE_INTERRUPT, 64, 64, 1, 4, gadgetfs_name="ep5in-int"),
)


def device_descriptor() -> bytes:
    return struct.pack(
        "<BBHBBBBHHHBBBB",
        18,
        DT_DEVICE,
        BCD_USB_2,
        0,
        0,
        0,
        EP0_MAX_PACKET,
        VID_GOOGLE,
        PID_EDGETPU_APP,
        BCD_DEVICE,
        STRING_MANUFACTURER,
        STRING_PRODUCT,
        STRING_SERIAL,
        1,
    )


def config_descriptor(high_speed: bool) -> bytes:
    """Configuration + the one vendor interface + its four endpoints."""
    interface = struct.pack(
        "<BBBBBBBBB",
        9,
        DT_INTERFACE,
        0,
        0,
        len(ENDPOINTS),
        VENDOR_CLASS,
        VENDOR_CLASS,
        VENDOR_CLASS,
        0,
    )
    endpoints = b"".join(ep.descriptor(high_speed) for ep in ENDPOINTS)
    total = 9 + len(interface) + len(endpoints)
    # self-powered, 500 mA (bMaxPower counts 2 mA units below SuperSpeed)
    header = struct.pack("<BBHBBBBB", 9, DT_CONFIGURATION, total, 1, CONFIG_VALUE, 0, 0xC0, 250)
    return header + interface + endpoints


def string_descriptor(index: int) -> bytes | None:
    """String descriptor ``index`` (0 = the language list), or None for an unknown index."""
    if index == 0:
        return struct.pack("<BBH", 4, DT_STRING, LANGID_EN_US)
    text = STRINGS.get(index)
    if text is None:
        return None
    body = text.encode("utf-16-le")
    return struct.pack("<BB", 2 + len(body), DT_STRING) + body
