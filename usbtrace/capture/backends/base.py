"""The interface every capture backend implements, and the fixed input they all feed."""

from __future__ import annotations

import ctypes
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from usbtrace.capture.sysfs import UsbDevice
from usbtrace.errors import UsbtraceError

LIBEDGETPU = "libedgetpu.so.1"


class BackendUnavailable(UsbtraceError):
    """The runtime a backend needs is missing; the message says how to install it."""


class BackendFailed(UsbtraceError):
    """The runtime failed while the capture ran (open, invoke or close)."""

    exit_status = 1


@dataclass(frozen=True)
class RuntimeInfo:
    """Names and versions of what will talk to the device, for the capture's metadata."""

    backend: str
    runtime: str | None = None  # e.g. "tflite_runtime 2.14.0"
    libedgetpu: str | None = None  # edgetpu_version() of the loaded library
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Backend(ABC):
    """Opens a model on the Edge TPU and runs it; one instance per capture.

    ``probe`` runs during preflight, before dumpcap starts, and must not touch the device. ``open``
    happens inside the capture so the firmware download and device open are recorded.
    """

    name: str = "backend"
    needs_model: bool = True  # False: nothing to check with the model inspector

    @abstractmethod
    def probe(self) -> RuntimeInfo:
        """Check the runtime can be loaded; raise ``BackendUnavailable`` with the fix if not."""

    @abstractmethod
    def open(self) -> None:
        """Open the device and model; must leave nothing half-open when it raises."""

    @abstractmethod
    def invoke(self) -> None:
        """Run one inference with the fixed input and wait for its output."""

    def close(self) -> None:  # noqa: B027 - closing is optional for simple backends
        """Release the device; called once after ``open`` succeeded, even after a failure."""

    def use_device(self, device: UsbDevice) -> None:  # noqa: B027 - most runtimes pick their own
        """The device preflight found (bus, address, serial from sysfs), before ``open``."""


def fixed_input(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """The constant input every backend feeds: mid-scale, so quantized inputs are not all zero.

    uint8 gets 128 (what the published captures fed), int8 0, floats 0.5.
    """
    dt = np.dtype(dtype)
    if dt == np.uint8:
        value: float = 128
    elif dt.kind in "iu":
        value = 0
    else:
        value = 0.5
    return np.full(shape, value, dtype=dt)


def libedgetpu_version() -> str | None:
    """``edgetpu_version()`` of the installed libedgetpu, or None when it cannot be loaded."""
    try:
        lib = ctypes.CDLL(LIBEDGETPU)
        fn = lib.edgetpu_version
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_char_p
    value = fn()
    return value.decode(errors="replace") if value else None
