"""Edge TPU devices and usbmon interfaces as the kernel lists them in sysfs and /dev.

Everything reads below two roots so tests can point them at a fake tree: ``USBTRACE_SYSFS_ROOT``
(default ``/sys``) and ``USBTRACE_DEV_ROOT`` (default ``/dev``), or the ``HostPaths`` passed in.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from usbtrace.edgetpu.constants import APP_IDS, DFU_IDS, EDGETPU_IDS

# sysfs ``speed`` is in Mbit/s; the names are the ones usbtrace reports (constants.LINK_SPEEDS).
_SPEED_BY_MBPS = {"1.5": "low", "12": "full", "480": "high"}


@dataclass(frozen=True)
class HostPaths:
    sysfs: Path
    dev: Path

    @classmethod
    def from_env(cls) -> HostPaths:
        return cls(
            sysfs=Path(os.environ.get("USBTRACE_SYSFS_ROOT", "/sys")),
            dev=Path(os.environ.get("USBTRACE_DEV_ROOT", "/dev")),
        )

    @property
    def usb_devices(self) -> Path:
        return self.sysfs / "bus" / "usb" / "devices"

    def usbmon_device(self, bus: int) -> Path:
        return self.dev / f"usbmon{bus}"


@dataclass(frozen=True)
class UsbDevice:
    """One USB device from sysfs (``/sys/bus/usb/devices/B-P.P``)."""

    sysfs_name: str
    vendor: int
    product: int
    bus: int
    address: int
    speed: str | None  # "super" | "high" | "full" | "low"
    serial: str | None

    @property
    def ids(self) -> tuple[int, int]:
        return (self.vendor, self.product)

    @property
    def is_edgetpu(self) -> bool:
        return self.ids in EDGETPU_IDS

    @property
    def state(self) -> str:
        if self.ids == APP_IDS:
            return "firmware running"
        if self.ids == DFU_IDS:
            return "boot loader, firmware not loaded yet"
        return "not an Edge TPU"

    def describe(self) -> str:
        return (
            f"{self.vendor:04x}:{self.product:04x} on bus {self.bus} device {self.address}"
            f" ({self.state}, {self.speed or 'unknown'} speed)"
        )


def speed_name(sysfs_speed: str) -> str | None:
    """usbtrace's link speed name for a sysfs ``speed`` value (Mbit/s)."""
    value = sysfs_speed.strip()
    if value in _SPEED_BY_MBPS:
        return _SPEED_BY_MBPS[value]
    try:
        return "super" if float(value) >= 5000 else None
    except ValueError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_device(entry: Path) -> UsbDevice | None:
    """A device from its sysfs folder; None for interfaces, hubs' ports and unreadable entries."""
    vendor, product = _read(entry / "idVendor"), _read(entry / "idProduct")
    bus, address = _read(entry / "busnum"), _read(entry / "devnum")
    if None in (vendor, product, bus, address):
        return None
    try:
        speed_raw = _read(entry / "speed")
        return UsbDevice(
            sysfs_name=entry.name,
            vendor=int(vendor, 16),  # type: ignore[arg-type]
            product=int(product, 16),  # type: ignore[arg-type]
            bus=int(bus),  # type: ignore[arg-type]
            address=int(address),  # type: ignore[arg-type]
            speed=speed_name(speed_raw) if speed_raw else None,
            serial=_read(entry / "serial"),
        )
    except ValueError:
        return None


def list_devices(paths: HostPaths) -> list[UsbDevice]:
    root = paths.usb_devices
    if not root.is_dir():
        return []
    found = (read_device(entry) for entry in sorted(root.iterdir()))
    return [d for d in found if d is not None]


def find_edgetpus(paths: HostPaths, bus: int | None = None) -> list[UsbDevice]:
    return [d for d in list_devices(paths) if d.is_edgetpu and (bus is None or d.bus == bus)]


def usbmon_buses(paths: HostPaths) -> list[int]:
    """Buses with a usbmon character device (``/dev/usbmonN``; 0 means all buses)."""
    buses = []
    if paths.dev.is_dir():
        for entry in paths.dev.iterdir():
            suffix = entry.name.removeprefix("usbmon")
            if entry.name.startswith("usbmon") and suffix.isdigit():
                buses.append(int(suffix))
    return sorted(buses)
