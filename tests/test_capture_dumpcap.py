"""The dumpcap wrapper with a real dumpcap on the loopback interface."""

from __future__ import annotations

import os
import socket
import time

import pytest
from capture_fakes import pid_running, require_loopback_dumpcap
from pcapng_blocks import packets

from usbtrace.capture.dumpcap import Dumpcap, DumpcapError
from usbtrace.capture.pcapng_check import check_file


@pytest.fixture(scope="module")
def loopback_dumpcap(tmp_path_factory):
    return require_loopback_dumpcap(tmp_path_factory)


def test_start_ready_stop_captures_datagrams(loopback_dumpcap, tmp_path):
    path = tmp_path / "lo.pcapng"
    marker = b"usbtrace-dumpcap-test-%d" % os.getpid()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        Dumpcap("lo", path, snaplen=128) as cap,
    ):
        rx.bind(("127.0.0.1", 0))
        cap.wait_ready()
        assert cap.alive()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            for _ in range(5):
                tx.sendto(marker, rx.getsockname())
        time.sleep(0.2)
        pid = cap.pid
    assert pid is not None and not pid_running(pid)
    assert cap.result is not None and cap.result.returncode == 0
    check = check_file(path)
    assert check.complete and check.statistics >= 1
    ours = [p for p in packets(path) if marker in p.data]
    assert len(ours) == 5
    assert cap.stop() is cap.result  # stopping twice is harmless


def test_snaplen_cuts_packets(loopback_dumpcap, tmp_path):
    path = tmp_path / "lo.pcapng"
    marker = b"usbtrace-snaplen-%d" % os.getpid()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx,
        Dumpcap("lo", path, snaplen=64) as cap,
    ):
        rx.bind(("127.0.0.1", 0))
        cap.wait_ready()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            tx.sendto(marker + bytes(500), rx.getsockname())
        time.sleep(0.2)
    big = [p for p in packets(path) if p.orig_len > 500]
    assert big and all(len(p.data) == 64 for p in big)


def test_bad_interface_is_one_line(loopback_dumpcap, tmp_path):
    cap = Dumpcap("usbtrace-no-such-if0", tmp_path / "x.pcapng", snaplen=128)
    cap.start()
    with pytest.raises(DumpcapError) as exc:
        cap.wait_ready(timeout=10)
    cap.stop()
    assert "\n" not in str(exc.value) and "usbtrace-no-such-if0" in str(exc.value)
    assert not cap.alive()


KILLED_PARENT = """
import sys, time
from usbtrace.capture.dumpcap import Dumpcap
cap = Dumpcap("lo", sys.argv[1], snaplen=128)
cap.start()
cap.wait_ready()
print(cap.pid, flush=True)
time.sleep(60)
"""


def test_dumpcap_follows_a_killed_parent(loopback_dumpcap, tmp_path):
    """Even SIGKILL of usbtrace, which no cleanup code sees, does not leave dumpcap running."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    project = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(project))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_PARENT, str(tmp_path / "k.pcapng")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid = int(child.stdout.readline())
        assert pid_running(pid)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while pid_running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_running(pid)
