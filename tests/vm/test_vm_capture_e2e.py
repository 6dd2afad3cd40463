"""``usbtrace capture`` end to end on a real kernel USB stack: the replay backend drives the
emulated Edge TPU, dumpcap records usbmon, and ``usbtrace summarize`` must find the source
capture's requests in the new file. Fault tests unplug the device or kill dumpcap mid-run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lab.testbed import vm
from tests.pcapng_blocks import metadata, packet_count
from tests.vm.conftest import SCENARIOS, source_capture
from tests.vm.summaries import (
    inference_verdicts,
    median_device_wait,
    request_bytes,
    summarize,
)


def runner_output(folder: Path) -> tuple[int, str, Path | None]:
    """The runner's exit status, its stderr, and the capture it wrote (None if none)."""
    rc = int((folder / "capture.rc").read_text().strip())
    err = (folder / "capture.err").read_text(errors="replace")
    files = sorted((folder / "runs").glob("*.pcapng")) if (folder / "runs").exists() else []
    assert len(files) <= 1, f"more than one capture: {files}"
    return rc, err, files[0] if files else None


def completed_capture(folder: Path) -> Path:
    rc, err, path = runner_output(folder)
    assert rc == 0, f"usbtrace capture exited {rc}:\n{err[-3000:]}"
    assert path is not None, "usbtrace capture reported success but wrote no file"
    return path


def source_of(name: str) -> Path:
    src = source_capture(SCENARIOS[name].source or "")
    assert isinstance(src, Path), src
    return src


def verify_exit(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", "verify", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(vm.REPO)},
    )


REPLAYS = (
    "capture_conv_50",
    "capture_dense_300_usb_bound",
    "capture_real_conv_50",
    "capture_real_dense_300",
)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.vm_scenario(n)) for n in REPLAYS]
)
def test_replayed_capture_has_the_source_requests(guest, name: str) -> None:
    folder = guest.scenario(name)
    path = completed_capture(folder)
    (new,) = summarize(path)
    (old,) = summarize(source_of(name))
    assert request_bytes(new) == request_bytes(old)
    assert new["link_speed"] == "high"
    assert new["summary"]["integrity"] == {"ok": True, "problems": []}
    meta = metadata(path)
    assert meta.get("usbtrace_metadata") == 1
    assert meta.get("status") == "complete"
    assert len([i for i in meta.get("invokes", []) if not i.get("warmup")]) == 5


@pytest.mark.vm_scenario("capture_dense_300_usb_bound", "capture_dense_300_paced")
def test_replayed_verdicts_follow_the_pace_setting(guest) -> None:
    (fast,) = summarize(completed_capture(guest.scenario("capture_dense_300_usb_bound")))
    (slow,) = summarize(completed_capture(guest.scenario("capture_dense_300_paced")))
    print(
        f"[vm] replay verdicts: unpaced {inference_verdicts(fast)}, "
        f"paced {inference_verdicts(slow)}"
    )
    # the emulator's 4 MB/s (and its 1.5 MB/s pace) are far below what a High-Speed link carries
    # (36.5 MB/s in usbtrace's link model): usbtrace calls both device-bound, and the paced run
    # waits on the device longer
    assert set(inference_verdicts(fast)) == {"device-bound"}
    assert set(inference_verdicts(slow)) == {"device-bound"}
    assert median_device_wait(slow) > median_device_wait(fast)
    assert request_bytes(fast) == request_bytes(slow)


@pytest.mark.vm_scenario("capture_conv_50")
def test_replayed_capture_passes_verify(guest) -> None:
    path = completed_capture(guest.scenario("capture_conv_50"))
    result = verify_exit(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.vm_scenario("fault_unplug")
def test_unplugged_device_is_reported_and_the_file_kept(guest) -> None:
    folder = guest.scenario("fault_unplug")
    rc, err, path = runner_output(folder)
    assert rc != 0, "the runner did not notice the device going away"
    assert err.strip(), "the runner said nothing about the failure"
    assert "Traceback" not in err
    assert path is not None, f"no capture kept:\n{err}"
    assert packet_count(path) > 0  # whole blocks up to the end, and traffic in them
    meta = metadata(path)
    assert meta.get("status") in ("failed", "interrupted"), meta
    stats = json.loads((folder / "fault_unplug.stats.json").read_text())
    assert 2 <= len(stats["requests"]) < 6  # it really was cut mid-run


@pytest.mark.vm_scenario("fault_kill_dumpcap")
def test_killed_dumpcap_is_reported_and_the_file_kept(guest) -> None:
    folder = guest.scenario("fault_kill_dumpcap")
    killed = (folder / "killed_pid").read_text().strip()
    if killed == "none":
        pytest.fail("no dumpcap child of the runner was found to kill")
    rc, err, path = runner_output(folder)
    assert rc != 0, "the runner did not notice dumpcap dying"
    assert "dumpcap" in err
    assert "Traceback" not in err
    assert path is not None, f"no capture kept:\n{err}"
    assert packet_count(path) > 0
