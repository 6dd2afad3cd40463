"""USB descriptors of the emulated application-mode Edge TPU (high speed, single-EP layout).

The real accelerator seen on captures is a SuperSpeed device; GadgetFS only does full and high
speed, so this is what the same device looks like on a USB 2.0 port: ``bcdUSB`` 0x0200, EP0 64,
bulk endpoints 512 (64 at full speed), interrupt 0x83 64 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.testbed import EMULATOR_MANUFACTURER, EMULATOR_PRODUCT, EMULATOR_SERIAL
from lab.usb import descriptors as desc
from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    PID_EDGETPU_APP,
    VID_GOOGLE,
)
from usbtrace.usb.descriptors import Endpoint

BCD_USB_2 = 0x0200
BCD_DEVICE = 0x0100
EP0_MAX_PACKET = 64
VENDOR_CLASS = 0xFF
MAX_POWER_500MA = 250  # bMaxPower counts 2 mA units below SuperSpeed

STRING_MANUFACTURER = 1
STRING_PRODUCT = 2
STRING_SERIAL = 3
STRINGS = {
    STRING_MANUFACTURER: EMULATOR_MANUFACTURER,
    STRING_PRODUCT: EMULATOR_PRODUCT,
    STRING_SERIAL: EMULATOR_SERIAL,
}


@dataclass(frozen=True)
class GadgetEndpoint:
    """One endpoint as GadgetFS enables it: its descriptor at full and at high speed."""

    full: Endpoint
    high: Endpoint
    gadgetfs_name: str  # the endpoint file dummy_udc offers for it

    @property
    def address(self) -> int:
        return self.high.address

    def descriptor(self, high_speed: bool) -> bytes:
        return desc.endpoint_descriptor(self.high if high_speed else self.full)


def _bulk(address: int, gadgetfs_name: str) -> GadgetEndpoint:
    return GadgetEndpoint(
        Endpoint(address, "bulk", 64, 0), Endpoint(address, "bulk", 512, 0), gadgetfs_name
    )


# dummy_udc routes URBs by the address in the enabled descriptor, so the interrupt endpoint can
# live in the "ep5in-int" file and still be 0x83 (RECIPE §5.2).
ENDPOINTS = (
    _bulk(EP_BULK_OUT, "ep1out-bulk"),
    _bulk(EP_OUTPUT_IN, "ep1in-bulk"),
    _bulk(EP_EVENT_IN, "ep2in-bulk"),
    # bInterval 1 ms at full speed; 2**(4-1) microframes = 1 ms at high speed
    GadgetEndpoint(
        Endpoint(EP_INTERRUPT_IN, "interrupt", 64, 1),
        Endpoint(EP_INTERRUPT_IN, "interrupt", 64, 4),
        "ep5in-int",
    ),
)


def device_descriptor() -> bytes:
    return desc.device_descriptor(
        VID_GOOGLE,
        PID_EDGETPU_APP,
        bcd_usb=BCD_USB_2,
        max_packet0=EP0_MAX_PACKET,
        bcd_device=BCD_DEVICE,
        strings=(STRING_MANUFACTURER, STRING_PRODUCT, STRING_SERIAL),
    )


def config_descriptor(high_speed: bool) -> bytes:
    """Configuration + the one vendor interface + its four endpoints (self-powered, 500 mA)."""
    interface = desc.interface_descriptor(len(ENDPOINTS), VENDOR_CLASS, VENDOR_CLASS, VENDOR_CLASS)
    return desc.config_descriptor(
        [interface, *(ep.descriptor(high_speed) for ep in ENDPOINTS)],
        max_power=MAX_POWER_500MA,
        attributes=desc.ATTR_SELF_POWERED,
    )


def string_descriptor(index: int) -> bytes | None:
    """String descriptor ``index`` (0 = the language list), or None for an unknown index."""
    if index == 0:
        return desc.string_descriptor(None)
    text = STRINGS.get(index)
    return None if text is None else desc.string_descriptor(text)
