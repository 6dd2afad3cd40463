"""pyusb access to the Edge TPU: the libusb backend and finding a device by ids and bus."""

from __future__ import annotations

from typing import Any

from usbtrace.edgetpu.constants import EMULATOR_SERIAL  # noqa: F401  (re-exported)
from usbtrace.errors import UsbtraceError


class DeviceNotFound(UsbtraceError):
    pass


def libusb_backend() -> Any:
    """pyusb's libusb1 backend, from the system's libusb or else the libusb-package wheel."""
    import usb.backend.libusb1  # type: ignore[import-untyped]

    backend = usb.backend.libusb1.get_backend()
    if backend is not None:
        return backend
    try:
        import libusb_package  # type: ignore[import-untyped]
    except ImportError:
        return None
    return libusb_package.get_libusb1_backend()


def open_device(ids: list[tuple[int, int]], bus: int | None, address: int | None = None) -> Any:
    """The first pyusb device with one of ``ids`` on ``bus`` (and ``address`` when given)."""
    try:
        import usb.core  # type: ignore[import-untyped]
    except ImportError as exc:
        raise DeviceNotFound("pyusb is not installed: pip install 'usbtrace[capture]'") from exc
    backend = libusb_backend()
    if backend is None:
        raise DeviceNotFound(
            "no libusb found: pip install libusb-package, or apt-get install libusb-1.0-0"
        )
    for vendor, product in ids:
        for dev in usb.core.find(
            find_all=True, idVendor=vendor, idProduct=product, backend=backend
        ):
            if bus is not None and dev.bus != bus:
                continue
            if address is not None and dev.address != address:
                continue
            return dev
    where = f" on bus {bus}" if bus is not None else ""
    names = " or ".join(f"{v:04x}:{p:04x}" for v, p in ids)
    raise DeviceNotFound(f"no {names} device{where} reachable through libusb")


def serial_of(dev: Any) -> str | None:
    try:
        import usb.util  # type: ignore[import-untyped]

        return usb.util.get_string(dev, dev.iSerialNumber) if dev.iSerialNumber else None
    except (ValueError, OSError, ImportError, NotImplementedError):
        # pyusb's USBError is an OSError; a device without language ids gives ValueError
        return None
