"""The capture runner end to end with a real dumpcap on lo and a backend that sends UDP.

Each path (complete, Ctrl-C, SIGTERM, dumpcap dying, a runtime error, dumpcap failing to start)
must leave a valid pcapng with the metadata of what ran, and no dumpcap behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from capture_fakes import UdpBackend, fake_host, pid_running, require_loopback_dumpcap
from pcapng_blocks import packets

from usbtrace.capture.pcapng_check import check_file, read_metadata_payloads
from usbtrace.capture.runner import (
    CaptureConfig,
    RunnerHooks,
    output_path,
    run_capture,
)
from usbtrace.formats.metadata import merge_metadata

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def loopback_dumpcap(tmp_path_factory):
    return require_loopback_dumpcap(tmp_path_factory)


@pytest.fixture
def receiver():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        yield rx.getsockname()[1]


def _config(tmp_path, backend, **kw):
    defaults = dict(
        model="udp",
        model_path=None,
        backend=backend,
        count=3,
        warmup=1,
        interval=0.02,
        out_dir=tmp_path / "out",
        interface="lo",
        skip_device_check=True,
        name="udp",
        label="lo",
        command_line=["usbtrace", "capture", "--test"],
    )
    defaults.update(kw)
    return CaptureConfig(**defaults)


class Recorder:
    def __init__(self, tmp_path):
        self.started = []
        self.summaries = []
        self.hooks = RunnerHooks(
            paths=fake_host(tmp_path / "host"),
            summary=self.summaries.append,
            log=open(os.devnull, "w"),  # noqa: SIM115 - closed by the test process end
            on_dumpcap_started=self.started.append,
        )


def _metadata(path):
    payloads = read_metadata_payloads(path)
    assert len(payloads) == 1
    return merge_metadata(payloads)


def _assert_no_dumpcap(rec):
    assert rec.started and not pid_running(rec.started[0].pid)


def test_complete_capture(loopback_dumpcap, tmp_path, receiver):
    backend = UdpBackend(receiver)
    rec = Recorder(tmp_path)
    outcome = run_capture(_config(tmp_path, backend), rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("complete", 0)
    assert re.fullmatch(r"udp-lo-\d{8}T\d{6}\.pcapng", outcome.path.name)
    check = check_file(outcome.path)
    assert check.complete and check.metadata_blocks == 1
    meta = _metadata(outcome.path)
    assert [i.warmup for i in meta.invokes] == [True, False, False, False]
    assert meta.label == "lo" and meta.extra["status"] == "complete"
    assert meta.extra["backend"] == "udp-test" and meta.extra["capture"]["interface"] == "lo"
    assert meta.extra["capture"]["snaplen"] == 128
    assert meta.extra["host"]["kernel"] and meta.extra["usbtrace_version"]
    assert (
        meta.extra["open_ns"]["start"] <= meta.extra["open_ns"]["end"] <= meta.invokes[0].start_ns
    )
    # the host timestamps use the capture's clock: each datagram lies inside its invoke
    invoked = {
        p.data.split(b"invoke ")[-1]: p.ts_ns
        for p in packets(outcome.path)
        if b"usbtrace-test invoke" in p.data
    }
    assert len(invoked) == 4
    # (µs timestamps; the kernel may stamp a little after sendto() returned, never after the
    # next invoke began)
    starts = [i.start_ns for i in meta.invokes[1:]] + [meta.invokes[-1].end_ns + 10**9]
    for inv, next_start in zip(meta.invokes, starts, strict=True):
        ts = invoked[str(inv.index).encode()]
        assert inv.start_ns - 1000 <= ts < next_start
    assert any(b"usbtrace-test close" in p.data for p in packets(outcome.path))
    assert backend.closed and rec.summaries == [outcome.path]
    _assert_no_dumpcap(rec)


def test_wireshark_reads_the_file_with_metadata(loopback_dumpcap, tmp_path, receiver):
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    rec = Recorder(tmp_path)
    outcome = run_capture(_config(tmp_path, UdpBackend(receiver), count=1), rec.hooks)
    done = subprocess.run(
        ["tshark", "-r", str(outcome.path), "-q"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_never_overwrites(tmp_path):
    when = datetime(2026, 1, 2, 3, 4, 5)
    first = output_path(tmp_path, "m", None, when)
    assert first.name == "m-20260102T030405.pcapng"
    first.write_bytes(b"precious")
    second = output_path(tmp_path, "m", None, when)
    assert second.name == "m-20260102T030405-2.pcapng"
    assert first.read_bytes() == b"precious"


def test_interrupt_keeps_file_and_exits_130(loopback_dumpcap, tmp_path, receiver):
    def ctrl_c(backend, index):
        if index == 2:
            raise KeyboardInterrupt

    backend = UdpBackend(receiver, action=ctrl_c)
    rec = Recorder(tmp_path)
    outcome = run_capture(_config(tmp_path, backend, count=5), rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("interrupted", 130)
    assert check_file(outcome.path).complete
    meta = _metadata(outcome.path)
    assert [i.index for i in meta.invokes] == [0, 1]
    assert meta.extra["status"] == "interrupted"
    assert backend.closed
    _assert_no_dumpcap(rec)


def test_dumpcap_dying_is_reported_and_file_kept(loopback_dumpcap, tmp_path, receiver):
    rec = Recorder(tmp_path)

    def kill_dumpcap(backend, index):
        if index == 1:
            dumpcap = rec.started[0]
            os.kill(dumpcap.pid, signal.SIGKILL)
            dumpcap.process.wait()

    outcome = run_capture(_config(tmp_path, UdpBackend(receiver, action=kill_dumpcap)), rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("failed", 1)
    assert "dumpcap exited" in outcome.error
    check = check_file(outcome.path)
    assert check.complete and check.metadata_blocks == 1
    meta = _metadata(outcome.path)
    assert meta.extra["status"] == "failed" and "dumpcap" in meta.extra["error"]
    assert len(meta.invokes) == 2
    assert rec.summaries == []


def test_runtime_error_is_reported_and_file_kept(loopback_dumpcap, tmp_path, receiver):
    def boom(backend, index):
        if index == 1:
            raise RuntimeError("Edge TPU delegate: device lost")

    backend = UdpBackend(receiver, action=boom)
    rec = Recorder(tmp_path)
    outcome = run_capture(_config(tmp_path, backend), rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("failed", 1)
    assert "device lost" in outcome.error
    meta = _metadata(outcome.path)
    assert len(meta.invokes) == 1 and "device lost" in meta.extra["error"]
    assert backend.closed
    _assert_no_dumpcap(rec)


def test_dumpcap_not_starting_leaves_nothing(loopback_dumpcap, tmp_path, receiver):
    rec = Recorder(tmp_path)
    config = _config(tmp_path, UdpBackend(receiver), interface="usbtrace-no-such-if0")
    outcome = run_capture(config, rec.hooks)
    assert outcome.path is None and outcome.exit_status == 2
    assert "usbtrace-no-such-if0" in outcome.error and "\n" not in outcome.error
    assert list((tmp_path / "out").iterdir()) == []


CHILD = """
import sys
from pathlib import Path
from capture_fakes import UdpBackend, fake_host
from usbtrace.capture.runner import CaptureConfig, RunnerHooks, run_capture

out, port, pidfile = Path(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
def started(d):
    pidfile.write_text(str(d.pid))
hooks = RunnerHooks(paths=fake_host(out / "host"), summary=lambda p: None,
                    on_dumpcap_started=started)
config = CaptureConfig(model="udp", model_path=None, backend=UdpBackend(port), count=1000,
                       warmup=0, interval=0.05, out_dir=out / "caps", interface="lo", name="sig",
                       skip_device_check=True)
sys.exit(run_capture(config, hooks).exit_status)
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_real_signal_to_the_process(loopback_dumpcap, tmp_path, receiver, sig):
    pidfile = tmp_path / "dumpcap.pid"
    env = dict(os.environ, PYTHONPATH=f"{PROJECT}{os.pathsep}{PROJECT / 'tests'}")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(receiver), str(pidfile)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert pidfile.exists(), child.stderr.read() if child.poll() is not None else "no pid"
        time.sleep(1.0)  # a few invokes
        child.send_signal(sig)
        _, stderr = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, stderr
    dumpcap_pid = int(pidfile.read_text())
    assert not pid_running(dumpcap_pid)
    (path,) = (tmp_path / "caps").glob("sig-*.pcapng")
    check = check_file(path)
    assert check.complete and check.metadata_blocks == 1
    meta = _metadata(path)
    assert meta.extra["status"] == "interrupted" and len(meta.invokes) >= 1
    assert "interrupted" in stderr and str(path) in stderr


def test_replay_backend_through_the_runner(loopback_dumpcap, tmp_path, monkeypatch):
    from capture_fakes import SessionWriter
    from test_capture_replay import FakeEdgeTpu

    import usbtrace.capture.backends.replay as replay_mod
    from usbtrace.capture.usbdev import EMULATOR_SERIAL

    recorded = tmp_path / "recorded.pcapng"
    recorded.write_bytes(SessionWriter(snaplen=128).session(2))
    dev = FakeEdgeTpu()
    monkeypatch.setattr(replay_mod, "open_device", lambda ids, bus, address=None: dev)
    monkeypatch.setattr(replay_mod, "serial_of", lambda d: EMULATOR_SERIAL)
    rec = Recorder(tmp_path)
    backend = replay_mod.ReplayBackend(recorded, bus=1)
    outcome = run_capture(_config(tmp_path, backend, count=4, name="replay-recorded"), rec.hooks)
    assert outcome.status == "complete"
    meta = _metadata(outcome.path)
    assert meta.extra["backend"] == "replay"
    assert meta.extra["runtime"]["details"]["recorded_invokes"] == 2
    assert len(meta.invokes) == 5
    assert len(dev.controls) == 4


def test_vanished_device_is_named(loopback_dumpcap, tmp_path, receiver):
    from capture_fakes import edgetpu_entry

    from usbtrace.capture.backends.base import BackendFailed

    rec = Recorder(tmp_path)
    rec.hooks.paths = fake_host(tmp_path / "host2", [edgetpu_entry(bus=3, address=9)])
    entry = rec.hooks.paths.usb_devices / "3-1"

    def unplug(backend, index):
        if index == 2:
            shutil.rmtree(entry)
            raise BackendFailed("invoke failed: LIBUSB_ERROR_NO_DEVICE")

    config = _config(tmp_path, UdpBackend(receiver, action=unplug), skip_device_check=False)
    outcome = run_capture(config, rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("failed", 1)
    assert "vanished from bus 3" in outcome.error
    meta = _metadata(outcome.path)
    assert (meta.bus, meta.device, meta.link_speed) == (3, 9, "super")
    assert len(meta.invokes) == 2


def test_close_failure_is_a_warning(loopback_dumpcap, tmp_path, receiver):
    import io

    class BadClose(UdpBackend):
        def close(self) -> None:
            super().close()
            raise RuntimeError("device stalled the close sequence")

    rec = Recorder(tmp_path)
    rec.hooks.log = io.StringIO()
    outcome = run_capture(_config(tmp_path, BadClose(receiver), count=1), rec.hooks)
    assert (outcome.status, outcome.exit_status) == ("complete", 0)
    log = rec.hooks.log.getvalue()
    assert "usbtrace: warning: closing the backend failed: device stalled" in log
    assert "stalled" in _metadata(outcome.path).extra["error"]
