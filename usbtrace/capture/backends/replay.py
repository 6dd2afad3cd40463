"""Backend ``replay:CAPTURE``: drive the device by re-issuing a recorded session's host side.

Used by the testbed to exercise the whole capture path against an emulated Edge TPU, and usable
against a real one when the recording kept full payloads (``--snaplen 0``). A recording whose bulk
payloads were cut would send zero-filled instructions to a real chip, so that is refused; only the
testbed's emulator (serial ``usbtrace-emulator``) accepts zero-filled payloads, and only when the
caller allows it explicitly (``allow_zero_fill``).

Like the real driver, the executor keeps reads pending on the output, event and interrupt
endpoints in background threads, so a recorded wait may sit after bulk OUTs of the next request
without deadlocking.
"""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from usbtrace.capture.backends.base import Backend, BackendFailed, BackendUnavailable, RuntimeInfo
from usbtrace.capture.replay_script import BulkOutStep, ControlStep, ReplayScript, Step
from usbtrace.capture.sysfs import UsbDevice
from usbtrace.capture.usbdev import EMULATOR_SERIAL, DeviceNotFound, open_device, serial_of
from usbtrace.edgetpu.constants import (
    APP_IDS,
    EP_EVENT_IN,
    EP_INTERRUPT_IN,
    EP_OUTPUT_IN,
    EVENT_LEN,
    INTERRUPT_LEN,
)
from usbtrace.errors import UsbtraceError

# Each timed-out read shows as one cancelled URB in the capture, and stopping waits for the
# pending reads to time out: 2 s keeps both small.
READ_TIMEOUT_MS = 2000
TRANSFER_TIMEOUT_MS = 6000  # libedgetpu's USB_TIMEOUT_MILLIS
WAIT_TIMEOUT_S = 10.0


def describe(step: Step) -> str:
    """A step as a user would look it up in the recording."""
    if isinstance(step, ControlStep):
        kind = "vendor IN" if step.is_in else "vendor OUT"
        register = (step.index << 16) | step.value
        return f"recorded frame {step.frame} ({kind} {register:#x})"
    if isinstance(step, BulkOutStep):
        what = "header" if step.header else "payload"
        return f"recorded frame {step.frame} (bulk OUT {what}, {step.length} bytes)"
    return f"the wait for recorded frame {step.frame} ({step.length} bytes on {step.endpoint:#04x})"


class ReplayRefused(UsbtraceError):
    """The recording cannot be replayed against this device."""


def zero_fill_allowed(script: ReplayScript, serial: str | None, allow_zero_fill: bool) -> None:
    """Raise unless the script's cut payloads may be zero-filled for this device."""
    cut = script.truncated_steps
    if not cut:
        return
    first = cut[0].frame
    if serial != EMULATOR_SERIAL:
        raise ReplayRefused(
            f"{script.source}: {len(cut)} recorded payloads were cut by the snaplen (first in frame"
            f" {first}); replaying them would send zero-filled instructions to a real Edge TPU"
            f" (serial {serial or 'unknown'}): record with --snaplen 0, or replay against the"
            f" testbed emulator"
        )
    if not allow_zero_fill:
        raise ReplayRefused(
            f"{script.source}: {len(cut)} recorded payloads were cut (first in frame {first});"
            " zero-filling them for the emulator was not allowed"
        )


class _EndpointReader(threading.Thread):
    """Keeps one read pending on an IN endpoint and counts what arrives."""

    def __init__(self, dev: Any, endpoint: int, size: int, counter: _Counters) -> None:
        super().__init__(name=f"usbtrace-read-{endpoint:#04x}", daemon=True)
        self.dev, self.endpoint, self.size, self.counter = dev, endpoint, size, counter
        self.stopping = threading.Event()

    def run(self) -> None:
        import usb.core  # type: ignore[import-untyped]

        while not self.stopping.is_set():
            try:
                data = self.dev.read(self.endpoint, self.size, timeout=READ_TIMEOUT_MS)
            except usb.core.USBTimeoutError:
                continue
            except usb.core.USBError as exc:
                if not self.stopping.is_set():
                    self.counter.fail(f"read on {self.endpoint:#04x} failed: {exc}")
                return
            self.counter.add(self.endpoint, len(data))


class _Counters:
    def __init__(self) -> None:
        self.totals: dict[int, int] = {}
        self.error: str | None = None
        self.cond = threading.Condition()

    def add(self, endpoint: int, n: int) -> None:
        with self.cond:
            self.totals[endpoint] = self.totals.get(endpoint, 0) + n
            self.cond.notify_all()

    def fail(self, message: str) -> None:
        with self.cond:
            self.error = message
            self.cond.notify_all()

    def wait_for(self, endpoint: int, total: int, timeout: float) -> None:
        with self.cond:
            ok = self.cond.wait_for(
                lambda: self.error is not None or self.totals.get(endpoint, 0) >= total, timeout
            )
            if self.error is not None:
                raise BackendFailed(self.error)
            if not ok:
                got = self.totals.get(endpoint, 0)
                raise BackendFailed(
                    f"device sent {got} of {total} bytes on {endpoint:#04x} within {timeout:g} s"
                )


class ReplayExecutor:
    """Issues script steps to an opened pyusb device."""

    def __init__(
        self, dev: Any, *, output_read_len: int, zero_fill: bool, retry_stall: bool = False
    ) -> None:
        self.dev = dev
        self.zero_fill = zero_fill
        # The testbed emulator (GadgetFS) stalls a control request that overtakes an OUT data
        # stage it has not read yet, and expects the host to send it again; a real chip never
        # does, so this is on only for the emulator.
        self.retry_stall = retry_stall
        self.stall_retries = 0
        self.counters = _Counters()
        self.readers = [
            _EndpointReader(dev, EP_OUTPUT_IN, output_read_len, self.counters),
            _EndpointReader(dev, EP_EVENT_IN, EVENT_LEN, self.counters),
            _EndpointReader(dev, EP_INTERRUPT_IN, INTERRUPT_LEN, self.counters),
        ]

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader.stopping.set()
        for reader in self.readers:
            reader.join(READ_TIMEOUT_MS / 1000 + 1)
        try:
            import usb.util  # type: ignore[import-untyped]

            usb.util.dispose_resources(self.dev)
        except (ImportError, AttributeError, TypeError):
            pass  # a test double, or pyusb gone

    def run(self, steps: Iterable[Step]) -> None:
        """Issue ``steps``; their waits count from what had arrived when this call began."""
        import usb.core  # type: ignore[import-untyped]

        expected = {r.endpoint: self.received(r.endpoint) for r in self.readers}
        for step in steps:
            try:
                if isinstance(step, ControlStep):
                    self._control(step)
                elif isinstance(step, BulkOutStep):
                    payload = step.payload
                    if payload is None:
                        if not self.zero_fill:
                            raise ReplayRefused(f"frame {step.frame}: payload cut, not replayed")
                        payload = bytes(step.length)
                    self.dev.write(step.endpoint, payload, timeout=TRANSFER_TIMEOUT_MS)
                else:
                    expected[step.endpoint] += step.length
                    try:
                        self.counters.wait_for(
                            step.endpoint, expected[step.endpoint], WAIT_TIMEOUT_S
                        )
                    except BackendFailed as exc:
                        raise BackendFailed(f"{describe(step)}: {exc}") from exc
            except usb.core.USBError as exc:
                raise BackendFailed(f"replay of {describe(step)} failed: {exc}") from exc

    def _control(self, step: ControlStep) -> None:
        if step.is_in:
            data_or_length: Any = step.length
        elif step.data is not None:
            data_or_length = step.data
        elif self.zero_fill:
            data_or_length = bytes(step.length)
        else:
            raise ReplayRefused(f"frame {step.frame}: control data cut, not replayed")
        import usb.core  # type: ignore[import-untyped]

        args = (step.request_type, step.request, step.value, step.index, data_or_length)
        try:
            self.dev.ctrl_transfer(*args, timeout=TRANSFER_TIMEOUT_MS)
        except usb.core.USBError as exc:
            if not (self.retry_stall and exc.errno == errno.EPIPE):
                raise
            self.stall_retries += 1
            self.dev.ctrl_transfer(*args, timeout=TRANSFER_TIMEOUT_MS)

    def received(self, endpoint: int) -> int:
        with self.counters.cond:
            return self.counters.totals.get(endpoint, 0)


class ReplayBackend(Backend):
    name = "replay"
    needs_model = False

    def __init__(
        self,
        capture: str | Path,
        *,
        bus: int | None,
        address: int | None = None,
        serial: str | None = None,
        allow_zero_fill: bool = True,
    ) -> None:
        self.capture = Path(capture)
        self.bus = bus
        self.address = address
        self.serial = serial  # from sysfs when preflight found the device there
        self.allow_zero_fill = allow_zero_fill
        self.script: ReplayScript | None = None
        self.executor: ReplayExecutor | None = None
        self._invokes = 0
        self._stall_retries = 0

    def use_device(self, device: UsbDevice) -> None:
        self.bus = device.bus
        self.address = device.address if device.ids == APP_IDS else None
        self.serial = self.serial or device.serial

    def probe(self) -> RuntimeInfo:
        try:
            import usb.core  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailable(
                "pyusb is not installed: pip install 'usbtrace[capture]'"
            ) from exc
        if not self.capture.is_file():
            raise BackendUnavailable(f"{self.capture}: no such capture to replay")
        self.script = ReplayScript.from_capture(self.capture)
        if not self.script.invokes:
            raise BackendUnavailable(f"{self.capture}: the recording holds no inference to replay")
        return RuntimeInfo(
            backend=self.name,
            runtime="pyusb",
            details={
                "replayed_capture": str(self.capture),
                "recorded_bus": self.script.bus,
                "recorded_device": self.script.address,
                "recorded_invokes": len(self.script.invokes),
                "cut_payloads": len(self.script.truncated_steps),
            },
        )

    def open(self) -> None:
        if self.script is None:
            self.probe()
        script = self.script
        assert script is not None
        try:
            dev = open_device([APP_IDS], self.bus, self.address)
        except DeviceNotFound as exc:
            raise BackendFailed(
                f"{exc} (replay needs the firmware already running: 18d1:9302)"
            ) from exc
        serial = self.serial or serial_of(dev)
        zero_fill_allowed(script, serial, self.allow_zero_fill)
        self.executor = ReplayExecutor(
            dev,
            output_read_len=script.output_read_len,
            zero_fill=script.truncated,
            retry_stall=serial == EMULATOR_SERIAL,
        )
        self.executor.start()
        try:
            self.executor.run(script.open)
        except BaseException:
            # leave the device closed if it still answers; the open's error is the one to report
            with contextlib.suppress(Exception):
                self.close()
            self.executor = None
            raise

    def invoke(self) -> None:
        assert self.script is not None and self.executor is not None
        steps = self.script.invoke_for(self._invokes)
        self._invokes += 1
        self.executor.run(steps)

    @property
    def stall_retries(self) -> int:
        return self.executor.stall_retries if self.executor else self._stall_retries

    def close(self) -> None:
        executor, self.executor = self.executor, None
        if executor is not None:
            self._stall_retries = executor.stall_retries
        if executor is None:
            return
        try:
            if self.script is not None:
                executor.run(self.script.close)
        finally:
            executor.stop()
