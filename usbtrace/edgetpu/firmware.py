"""Firmware downloads: which Edge TPU a boot loader's DFU requests were for.

A download is found by its DFU class requests alone (``is_firmware_download``), or by the boot
loader's descriptor. The boot loader then re-enumerates as the app-mode device: the download
belongs to the Edge TPU that appears next on the same bus, or to the same device when it came
back at the same address. A boot loader nothing followed is reported as itself when its
descriptor names it, else it is just another device.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from usbtrace.edgetpu.constants import APP_IDS, DFU_IDS, DfuRequest
from usbtrace.edgetpu.control import DfuStep, is_firmware_download
from usbtrace.edgetpu.trace import FirmwareDownload
from usbtrace.usb.devices import DeviceKey, UsbDevice


def downloads(
    devices: Sequence[tuple[UsbDevice, list[DfuStep]]], found: Collection[DeviceKey]
) -> dict[DeviceKey, DeviceKey]:
    """Each firmware download, by the Edge TPU it was for: {Edge TPU: device that received
    the download}. ``devices``: every device with its DFU requests; ``found``: the Edge TPUs."""
    out: dict[DeviceKey, DeviceKey] = {}
    # oldest first: a later download of the same Edge TPU replaces an earlier one
    for x, dfu in sorted(devices, key=lambda d: d[0].last_frame):
        key = x.key
        if x.ids == DFU_IDS:
            if not dfu:
                continue
        elif x.ids not in (None, APP_IDS) or not is_firmware_download(dfu):
            continue
        elif key in found:
            out[key] = key  # the download ran at the address the Edge TPU came back at
            continue
        later = [
            (d.first_frame, d.key)
            for d, _ in devices
            if d.key in found and d.bus == x.bus and d.ids != DFU_IDS
            and d.first_frame > x.last_frame
        ]  # fmt: skip
        if later:
            out[min(later)[1]] = key
        elif key in found:
            out[key] = key
    return out


def firmware_download(device: UsbDevice, dfu: list[DfuStep]) -> FirmwareDownload:
    """The download a device received, from its DFU requests (in frame order)."""
    down = [s for s in dfu if s.request == DfuRequest.DNLOAD.name]
    up = [s for s in dfu if s.request == DfuRequest.UPLOAD.name]
    return FirmwareDownload(
        bus=device.bus,
        address=device.address,
        blocks=sum(1 for s in down if s.length > 0),
        nbytes=sum(s.length for s in down),
        uploaded=sum(s.length for s in up),
        t_start_ns=dfu[0].t_ns,
        t_end_ns=dfu[-1].t_ns,
        status_ok=all(s.status == 0 for s in dfu),
        steps=dfu,
    )
