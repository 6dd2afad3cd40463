"""``usbtrace capture -- CMD`` and ``--attach`` on a real kernel USB stack: the user's program is
the project's pyusb replay of a real capture (``lab.testbed.replay_app``), the emulated Edge TPU
runs at its full rate, and the capture must hold the source capture's requests and bytes, drop
no packet, and (wrapped, on a pseudo-terminal) draw the live view with the right counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pcapng_blocks import metadata
from tests.vm.conftest import SCENARIOS, source_capture
from tests.vm.summaries import request_bytes, summarize

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _source(name: str) -> Path:
    src = source_capture(SCENARIOS[name].source or "")
    assert isinstance(src, Path), src
    return src


def _capture(folder: Path) -> tuple[int, Path]:
    rc = int((folder / "capture.rc").read_text().strip())
    files = sorted((folder / "runs").glob("*.pcapng")) if (folder / "runs").exists() else []
    assert len(files) == 1, f"captures written: {files}"
    return rc, files[0]


@pytest.mark.vm_scenario("wrap_real_dense_300")
def test_wrapped_program_capture_has_the_source_requests(guest) -> None:
    folder = guest.scenario("wrap_real_dense_300")
    tty = ANSI.sub("", (folder / "capture.tty").read_text(errors="replace"))
    rc, path = _capture(folder)
    assert rc == 0, tty[-3000:]
    (new,) = summarize(path)
    (old,) = summarize(_source("wrap_real_dense_300"))
    assert request_bytes(new) == request_bytes(old)
    assert new["summary"]["integrity"] == {"ok": True, "problems": []}
    meta = metadata(path)
    assert meta["mode"] == "command" and meta["status"] == "complete"
    assert meta["command"]["exit_status"] == 0
    assert meta["command"]["argv"][1:3] == ["-m", "lab.testbed.replay_app"]
    assert meta["command"]["run_time_s"] > 0
    assert meta["capture"]["dropped"] == 0  # the live view cost the capture no packet
    assert "invokes" not in meta
    # the program's own output passed through, and the runner said how it ended
    assert "inference 4:" in tty
    assert "exited with status 0" in tty
    assert "no host invoke timestamps" in tty
    # the live view drew growing counts, ending at the capture's requests
    counts = [int(n) for n in re.findall(r"requests (\d+)  inferences \d+", tty)]
    assert counts, tty[-3000:]
    assert counts == sorted(counts)
    assert counts[-1] == len(new["requests"])
    inferences = [int(m) for m in re.findall(r"requests \d+  inferences (\d+)", tty)]
    assert inferences[-1] == new["summary"]["inferences"]
    print(f"[vm] wrapped: {len(counts)} live frames, final requests {counts[-1]}")


@pytest.mark.vm_scenario("attach_real_dense_300")
def test_attached_capture_records_the_program_it_did_not_start(guest) -> None:
    folder = guest.scenario("attach_real_dense_300")
    err = (folder / "capture.err").read_text(errors="replace")
    assert (folder / "app.rc").read_text().strip() == "0", (folder / "app.err").read_text()
    rc, path = _capture(folder)
    assert rc == 0, err[-3000:]
    assert "Traceback" not in err
    (new,) = summarize(path)
    (old,) = summarize(_source("attach_real_dense_300"))
    assert request_bytes(new) == request_bytes(old)
    assert new["summary"]["integrity"] == {"ok": True, "problems": []}
    meta = metadata(path)
    assert meta["mode"] == "attach" and meta["status"] == "complete"
    assert meta["capture"]["dropped"] == 0
    assert "command" not in meta and "invokes" not in meta
