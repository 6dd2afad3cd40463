"""Replay scripts built from captures, the truncation guard, and the executor on a fake device."""

from __future__ import annotations

import struct
import threading

import pytest
from capture_fakes import SessionWriter

from usbtrace.capture.backends.replay import (
    ReplayExecutor,
    ReplayRefused,
    zero_fill_allowed,
)
from usbtrace.capture.replay_script import BulkOutStep, ControlStep, ReplayScript, WaitStep
from usbtrace.capture.usbdev import EMULATOR_SERIAL
from usbtrace.edgetpu.constants import (
    EP_BULK_OUT,
    EP_EVENT_IN,
    EP_OUTPUT_IN,
    REQTYPE_VENDOR_IN,
    Tag,
)
from usbtrace.errors import InputError

usb_core = pytest.importorskip("usb.core", reason="pyusb (a dev dependency) is needed")


def _script(tmp_path, snaplen=0, inferences=3):
    path = tmp_path / "session.pcapng"
    path.write_bytes(SessionWriter(snaplen=snaplen).session(inferences))
    return ReplayScript.from_capture(path)


def test_script_splits_open_invokes_close(tmp_path):
    script = _script(tmp_path, inferences=3)
    assert (script.bus, script.address) == (SessionWriter.BUS, SessionWriter.DEV)
    assert [type(s) for s in script.open] == [ControlStep, ControlStep]
    assert script.open[0].request_type == REQTYPE_VENDOR_IN
    assert len(script.invokes) == 3
    assert [s.value for s in script.close] == [0x907C, 0x907C]
    assert script.skipped_requests == 1  # GET_DESCRIPTOR stays with the kernel
    first_tags = {s.tag for s in script.invokes[0] if isinstance(s, BulkOutStep)}
    assert first_tags == {Tag.INSTRUCTIONS, Tag.PARAMETERS, Tag.INPUT}  # caching rides along
    later_tags = {s.tag for s in script.invokes[1] if isinstance(s, BulkOutStep)}
    assert later_tags == {Tag.INSTRUCTIONS, Tag.INPUT}
    waits = [(s.endpoint, s.length) for s in script.invokes[1] if isinstance(s, WaitStep)]
    assert waits == [(EP_OUTPUT_IN, 8), (EP_EVENT_IN, 16)]
    assert not script.truncated


def test_bulk_lengths_add_up_to_headers(tmp_path):
    script = _script(tmp_path)
    for invoke in script.invokes:
        steps = [s for s in invoke if isinstance(s, BulkOutStep)]
        i = 0
        while i < len(steps):
            assert steps[i].header and steps[i].payload is not None
            want = struct.unpack_from("<I", steps[i].payload)[0]
            i += 1
            got = 0
            while got < want:
                got += steps[i].length
                i += 1
            assert got == want


def test_invokes_beyond_the_recording_repeat_the_execution_only_ones(tmp_path):
    script = _script(tmp_path, inferences=3)
    assert script.invoke_for(0) is script.invokes[0]
    assert [script.invoke_for(i) for i in (3, 4, 5)] == [
        script.invokes[1],
        script.invokes[2],
        script.invokes[1],
    ]


def test_short_snaplen_marks_payloads_truncated(tmp_path):
    script = _script(tmp_path, snaplen=128)
    cut = script.truncated_steps
    assert cut and all(isinstance(s, BulkOutStep) and s.length > 64 for s in cut)
    assert all(
        s.payload is not None for s in script.steps() if isinstance(s, BulkOutStep) and s.header
    )


def test_truncated_replay_refused_on_real_device(tmp_path):
    script = _script(tmp_path, snaplen=128)
    with pytest.raises(ReplayRefused, match="real Edge TPU"):
        zero_fill_allowed(script, "0123456789", allow_zero_fill=True)
    with pytest.raises(ReplayRefused, match="not allowed"):
        zero_fill_allowed(script, EMULATOR_SERIAL, allow_zero_fill=False)
    zero_fill_allowed(script, EMULATOR_SERIAL, allow_zero_fill=True)


def test_full_payload_replay_allowed_on_real_device(tmp_path):
    zero_fill_allowed(_script(tmp_path, snaplen=0), "0123456789", allow_zero_fill=False)


class FakeEdgeTpu:
    """Answers like the device: one output and one event after each INPUT transfer completes."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: dict[int, list[bytes]] = {EP_OUTPUT_IN: [], EP_EVENT_IN: []}
        self.writes: list[tuple[int, int]] = []
        self.controls: list[tuple[int, int, int, int]] = []
        self._expect = 0
        self._tag = -1

    def ctrl_transfer(self, bm, req, value, index, data_or_len, timeout=None):
        self.controls.append((bm, req, value, index))
        return bytes(data_or_len) if isinstance(data_or_len, int) else len(data_or_len)

    def write(self, ep, data, timeout=None):
        data = bytes(data)
        self.writes.append((ep, len(data)))
        if self._expect == 0:
            self._expect, tag = struct.unpack_from("<IB", data)
            self._tag = tag
        else:
            self._expect -= len(data)
            if self._expect == 0:
                with self.cond:
                    if self._tag == Tag.PARAMETERS:
                        self.pending[EP_EVENT_IN].append(bytes(16))
                    if self._tag == Tag.INPUT:
                        self.pending[EP_OUTPUT_IN].append(bytes(8))
                        self.pending[EP_EVENT_IN].append(bytes(16))
                    self.cond.notify_all()
        return len(data)

    def read(self, ep, size, timeout=None):
        with self.cond:
            queue = self.pending.get(ep, [])
            if not self.cond.wait_for(lambda: bool(queue), (timeout or 1000) / 1000):
                raise usb_core.USBTimeoutError("timeout")
            return queue.pop(0)


def test_executor_replays_open_invokes_close(tmp_path):
    script = _script(tmp_path, inferences=2)
    dev = FakeEdgeTpu()
    ex = ReplayExecutor(dev, output_read_len=script.output_read_len, zero_fill=False)
    ex.start()
    try:
        ex.run(script.open)
        for i in range(4):
            ex.run(script.invoke_for(i))
        ex.run(script.close)
    finally:
        ex.stop()
    assert len(dev.controls) == 4
    recorded = [
        (s.endpoint, s.length) for inv in script.invokes for s in inv if isinstance(s, BulkOutStep)
    ]
    again = [(s.endpoint, s.length) for s in script.invoke_for(2) if isinstance(s, BulkOutStep)]
    assert dev.writes == recorded + again + again
    assert ex.received(EP_OUTPUT_IN) == 4 * 8
    assert all(ep == EP_BULK_OUT for ep, _ in dev.writes)


def test_executor_refuses_cut_payload_without_zero_fill(tmp_path):
    script = _script(tmp_path, snaplen=128, inferences=1)
    ex = ReplayExecutor(FakeEdgeTpu(), output_read_len=1024, zero_fill=False)
    with pytest.raises(ReplayRefused, match="payload cut"):
        ex.run(script.invokes[0])


def test_real_capture_script(shared_file):
    path = shared_file("captures/real/conv_50.pcapng")
    script = ReplayScript.from_capture(path)
    assert (script.bus, script.address) == (2, 4)
    assert len(script.open) == 52 and len(script.close) == 39  # vendor transfers, README facts
    assert len(script.invokes) == 5
    outs = [s for inv in script.invokes for s in inv if isinstance(s, BulkOutStep)]
    assert len(outs) == 26
    assert sum(s.length for s in outs) == 2_946_320
    assert script.truncated  # payloads were cut at 24 bytes: never replay on a real chip


def _fake_device(monkeypatch, serial):
    import usbtrace.capture.backends.replay as replay_mod

    dev = FakeEdgeTpu()
    opened = []

    def fake_open(ids, bus, address=None):
        opened.append((bus, address))
        return dev

    monkeypatch.setattr(replay_mod, "open_device", fake_open)
    monkeypatch.setattr(replay_mod, "serial_of", lambda d: serial)
    return dev, opened


def test_backend_replays_against_the_emulator(tmp_path, monkeypatch):
    from usbtrace.capture.backends.replay import ReplayBackend

    path = tmp_path / "cut.pcapng"
    path.write_bytes(SessionWriter(snaplen=128).session(2))
    dev, opened = _fake_device(monkeypatch, EMULATOR_SERIAL)
    backend = ReplayBackend(path, bus=5)
    info = backend.probe()
    assert info.details["recorded_invokes"] == 2 and info.details["cut_payloads"] > 0
    backend.open()
    try:
        for _ in range(3):
            backend.invoke()
    finally:
        backend.close()
    assert opened == [(5, None)]
    assert len(dev.controls) == 4  # open read+write, close writes
    assert backend.executor is None


def test_backend_refuses_cut_payloads_on_a_real_device(tmp_path, monkeypatch):
    from usbtrace.capture.backends.base import BackendFailed
    from usbtrace.capture.backends.replay import ReplayBackend

    path = tmp_path / "cut.pcapng"
    path.write_bytes(SessionWriter(snaplen=128).session(1))
    dev, _ = _fake_device(monkeypatch, "1a2b3c")
    backend = ReplayBackend(path, bus=None)
    backend.probe()
    with pytest.raises((ReplayRefused, BackendFailed), match="--snaplen 0"):
        backend.open()
    assert dev.writes == [] and dev.controls == []  # nothing reached the chip


def test_sysfs_serial_is_used(tmp_path, monkeypatch):
    from usbtrace.capture.backends.replay import ReplayBackend
    from usbtrace.capture.sysfs import UsbDevice

    path = tmp_path / "cut.pcapng"
    path.write_bytes(SessionWriter(snaplen=128).session(1))
    _fake_device(monkeypatch, None)  # pyusb could not read the string
    backend = ReplayBackend(path, bus=None)
    backend.use_device(UsbDevice("1-1", 0x18D1, 0x9302, 1, 2, "high", EMULATOR_SERIAL))
    backend.probe()
    backend.open()
    backend.invoke()
    backend.close()
    assert (backend.bus, backend.address) == (1, 2)


class DeafEdgeTpu(FakeEdgeTpu):
    """Never answers a register read, then is gone (the emulator crashed)."""

    def ctrl_transfer(self, bm, req, value, index, data_or_len, timeout=None):
        if bm == REQTYPE_VENDOR_IN:
            self.gone = True
            raise usb_core.USBTimeoutError("Operation timed out")
        if getattr(self, "gone", False):
            raise usb_core.USBError("No such device (it may have been disconnected)")
        return super().ctrl_transfer(bm, req, value, index, data_or_len, timeout)


def test_open_failure_names_the_recorded_step(tmp_path, monkeypatch):
    import usbtrace.capture.backends.replay as replay_mod
    from usbtrace.capture.backends.base import BackendFailed

    path = tmp_path / "s.pcapng"
    path.write_bytes(SessionWriter().session(1))
    monkeypatch.setattr(replay_mod, "open_device", lambda ids, bus, address=None: DeafEdgeTpu())
    monkeypatch.setattr(replay_mod, "serial_of", lambda d: EMULATOR_SERIAL)
    backend = replay_mod.ReplayBackend(path, bus=1)
    backend.probe()
    with pytest.raises(BackendFailed) as exc:
        backend.open()
    message = str(exc.value)
    first = backend.script.open[0]
    assert f"recorded frame {first.frame} (vendor IN 0x1a30c)" in message
    assert "timed out" in message  # not masked by the failing close sequence
    assert backend.executor is None


class StallingEmulator(FakeEdgeTpu):
    """Stalls every third control request once, like the GadgetFS emulator under load."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def ctrl_transfer(self, bm, req, value, index, data_or_len, timeout=None):
        self.calls += 1
        if self.calls % 3 == 0:
            raise usb_core.USBError("Pipe error", errno=32)
        return super().ctrl_transfer(bm, req, value, index, data_or_len, timeout)


def test_stalled_control_retried_only_for_the_emulator(tmp_path):
    import usbtrace.capture.backends.base as base

    script = _script(tmp_path, inferences=1)
    dev = StallingEmulator()
    ex = ReplayExecutor(dev, output_read_len=1024, zero_fill=False, retry_stall=True)
    ex.run(script.open + script.close)
    assert len(dev.controls) == len(script.open + script.close) == 4
    assert ex.stall_retries == 1
    strict = ReplayExecutor(StallingEmulator(), output_read_len=1024, zero_fill=False)
    with pytest.raises(base.BackendFailed, match="Pipe error"):
        strict.run(script.open + script.close)


def test_a_recording_with_a_firmware_download_replays_the_app_mode_device(tmp_path):
    """The boot loader (DFU ids) re-enumerates as the application-mode device: that one runs
    the inferences, so it is the one replayed (the DFU blocks are the kernel's business)."""
    from lab.synthetic.presets import preset
    from lab.synthetic.session import write_session

    path = tmp_path / "firmware.pcapng"
    session = write_session(preset("firmware"), path)
    app = session.truth.devices[0]
    script = ReplayScript.from_capture(path)
    assert (script.bus, script.address) == (app.bus, app.address)
    assert len(script.invokes) == len(app.inferences)
    assert script.skipped_requests > 0


def test_a_multi_endpoint_recording_is_refused_in_one_line(tmp_path):
    from lab.synthetic.presets import preset
    from lab.synthetic.session import write_session

    path = tmp_path / "multi.pcapng"
    write_session(preset("multi_ep"), path)
    with pytest.raises(InputError, match="multi-endpoint"):
        ReplayScript.from_capture(path)
