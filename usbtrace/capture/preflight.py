"""Checks before a capture starts; each failure is one line saying what to do (exit status 2).

Order matters: cheap host checks first, then the device, then the model and the runtime, so the
first message is the one to fix first.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path

from usbtrace.capture.backends.base import Backend, BackendUnavailable, RuntimeInfo
from usbtrace.capture.dumpcap import dumpcap_path
from usbtrace.capture.sysfs import HostPaths, UsbDevice, find_edgetpus, list_devices, usbmon_buses
from usbtrace.errors import UsageError
from usbtrace.models.inspect import ModelSummary, inspect_model

# A capture with the default snaplen is a few hundred KiB; keep room for the OS and a margin.
MIN_FREE_BYTES = 64 * 1024 * 1024
# what dumpcap's usbmon records add per transfer beyond the data, roughly (pcapng + usbmon header)
RECORD_OVERHEAD = 100


class PreflightError(UsageError):
    """A host, device or model problem found before capturing; the message names the fix."""


ModelInspector = Callable[[Path], ModelSummary]


def default_inspector() -> ModelInspector:
    """The models package's inspector (tests pass their own)."""
    return inspect_model


def check_platform(system: str | None = None) -> None:
    system = system or platform.system()
    if system != "Linux":
        raise PreflightError(
            f"capturing needs Linux usbmon; this host runs {system}"
            " (analyse captures here, capture on a Linux host)"
        )


def check_usbmon(paths: HostPaths, bus: int) -> Path:
    device = paths.usbmon_device(bus)
    if device.exists():
        return device
    if not usbmon_buses(paths):
        raise PreflightError(
            f"usbmon is not loaded (no {paths.dev}/usbmon*): run: sudo modprobe usbmon"
        )
    raise PreflightError(
        f"no {device} for bus {bus}: is bus {bus} right? (usbmon devices: "
        + ", ".join(f"usbmon{b}" for b in usbmon_buses(paths))
        + ")"
    )


def _readable(path: Path) -> bool:
    return os.access(path, os.R_OK)


def check_dumpcap(
    usbmon: Path,
    *,
    executable: str | None = None,
    euid: int | None = None,
    readable: Callable[[Path], bool] = _readable,
) -> str:
    exe = executable or dumpcap_path()
    if exe is None:
        raise PreflightError(
            "dumpcap is not installed: run: sudo apt-get install tshark (it brings dumpcap)"
        )
    euid = os.geteuid() if euid is None else euid
    if euid != 0 and not readable(usbmon):
        raise PreflightError(
            f"{usbmon} is not readable by this user, so dumpcap cannot capture it: run as root, or"
            " run `sudo dpkg-reconfigure wireshark-common` (allow non-superusers),"
            " `sudo usermod -aG wireshark $USER`, give that group the usbmon devices with a udev"
            ' rule (SUBSYSTEM=="usbmon", GROUP="wireshark", MODE="0640") and log in again'
        )
    return exe


def _pyusb_edgetpus(bus: int | None) -> list[UsbDevice]:
    """Edge TPUs found by pyusb, for hosts whose sysfs is not where we look."""
    try:
        import usb.core  # type: ignore[import-untyped]

        from usbtrace.capture.usbdev import libusb_backend
    except ImportError:
        return []
    from usbtrace.edgetpu.constants import EDGETPU_IDS

    found = []
    try:
        devices = list(usb.core.find(find_all=True, backend=libusb_backend()) or [])
    except usb.core.NoBackendError:
        return []
    for dev in devices:
        if (dev.idVendor, dev.idProduct) in EDGETPU_IDS and (bus is None or dev.bus == bus):
            found.append(
                UsbDevice(
                    sysfs_name=f"{dev.bus}-?",
                    vendor=dev.idVendor,
                    product=dev.idProduct,
                    bus=dev.bus,
                    address=dev.address,
                    speed=None,
                    serial=None,
                )
            )
    return found


def find_device(paths: HostPaths, bus: int | None, *, use_pyusb: bool = True) -> UsbDevice:
    """The one Edge TPU to capture; ``bus`` (from --bus) narrows the search."""
    have_sysfs = paths.usb_devices.is_dir() and bool(list_devices(paths))
    found = find_edgetpus(paths, bus) if have_sysfs else []
    if not have_sysfs and use_pyusb:
        found = _pyusb_edgetpus(bus)
    where = f"on bus {bus}" if bus is not None else "on any bus"
    if not found:
        raise PreflightError(
            f"no Edge TPU (18d1:9302 or 1a6e:089a) found {where}: plug the USB Accelerator in"
            " (a USB 3 port for full speed) and check `lsusb`"
        )
    if len(found) > 1:
        names = "; ".join(d.describe() for d in found)
        raise PreflightError(f"{len(found)} Edge TPUs found ({names}): choose one with --bus N")
    return found[0]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_model(path: Path, inspector: ModelInspector) -> ModelSummary:
    try:
        summary = inspector(path)
    except OSError as exc:
        raise PreflightError(f"{path}: cannot read the model: {exc.strerror}") from exc
    if not summary.compiled:
        reason = summary.reason or "not compiled for the Edge TPU: no edgetpu-custom-op"
        raise PreflightError(
            f"{path}: {reason}; it would run on the CPU and move nothing over USB:"
            f" compile it: edgetpu_compiler -o {path.parent} {path}"
        )
    return summary


def check_runtime(backend: Backend) -> RuntimeInfo:
    try:
        return backend.probe()
    except BackendUnavailable as exc:
        raise PreflightError(f"--backend {backend.name}: {exc}") from exc


def check_disk(directory: Path, needed: int) -> int:
    probe = directory
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise PreflightError(
            f"{directory}: only {free / 2**20:.0f} MiB free, the capture needs about"
            f" {needed / 2**20:.0f} MiB: free some space or choose another --out-dir"
        )
    return free


def bytes_needed(summary: ModelSummary | None, runs: int, snaplen: int) -> int:
    """A generous estimate of the file size; only matters when full payloads are kept."""
    if snaplen != 0 or summary is None:
        return MIN_FREE_BYTES
    s = summary
    per_run = s.instruction_bytes + s.input_bytes + s.streamed_bytes + s.output_bytes
    cached = s.cached_bytes
    transfers = (per_run + cached) // 1024 + 1
    return MIN_FREE_BYTES + 2 * (cached + runs * per_run) + transfers * RECORD_OVERHEAD
