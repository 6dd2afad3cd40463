"""usbtrace's reader against Wireshark's dissection of the same files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference

from usbtrace.cli.main import main
from usbtrace.formats.crosscheck import compare, ours, pyshark_tally, tshark_tally

ROOT = Path(__file__).resolve().parents[1]
needs_tshark = pytest.mark.skipif(
    shutil.which("tshark") is None, reason="tshark not installed (Debian package tshark)"
)


@pytest.fixture
def made(tmp_path):
    b = CaptureBuilder(snaplen=64 + 24)
    b.device_descriptor(0)
    for i in range(3):
        inference(b, 1000 + i * 5000, params=[300_000, 70_000])
    return b.write(tmp_path / "made.pcapng")


@needs_tshark
def test_made_capture_agrees_with_tshark(made):
    mine, theirs = ours(made), tshark_tally(made)
    assert mine.frames == theirs.frames > 0
    assert compare(mine, theirs) == []


@needs_tshark
@pytest.mark.parametrize("name", ["conv_50", "dense_300", "inout_stride_256x256x3"])
def test_real_captures_agree_with_tshark(shared_file, name):
    path = shared_file(f"captures/real/{name}.pcapng")
    assert compare(ours(path), tshark_tally(path)) == []


@needs_tshark
def test_pyshark_engine(made):
    pytest.importorskip("pyshark")
    assert compare(ours(made), pyshark_tally(made), ("usbtrace", "pyshark")) == []


def test_compare_reports_differences(made):
    a = ours(made)
    b = ours(made)
    b.frames += 1
    key = next(iter(b.per_endpoint))
    b.per_endpoint[key][1] += 5
    diffs = compare(a, b)
    assert diffs[0].startswith("frame count")
    assert any("urb_len" in d for d in diffs) and len(diffs) == 2


@needs_tshark
def test_verify_command(made, capsys):
    assert main(["verify", str(made)]) == 0
    assert "agrees with tshark" in capsys.readouterr().out


@needs_tshark
def test_installed_plugins_cannot_change_the_reference(made, tmp_path, monkeypatch):
    """verify reads Wireshark's own usb.* fields, whatever plug-in the user has installed.

    Two plug-ins in the user's folder: usbtrace's own (installed as a user would), and one that
    takes over the usbmon link type and dissects nothing, as a broken plug-in can (a Lua error in
    a wrapper of the usbmon dissector wiped every usb.* field of the later frames).
    """
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    assert main(["wireshark", "install"]) == 0
    plugins = next(tmp_path.rglob("usbtrace_edgetpu.lua")).parent
    (plugins / "hostile.lua").write_text(
        'local p = Proto("hostile_usbmon", "swallows usbmon")\n'
        "function p.dissector(tvb, pinfo, tree) return tvb:len() end\n"
        'DissectorTable.get("wtap_encap"):add(wtap_encaps.USB_LINUX_MMAPPED, p)\n'
    )
    # the hostile plug-in is loaded by a plain tshark: without isolation verify would differ
    plain = subprocess.run(
        ["tshark", "-n", "-r", str(made), "-T", "fields", "-e", "usb.urb_len"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not plain.stdout.strip(), "the hostile plug-in was not loaded: the test proves nothing"
    assert compare(ours(made), tshark_tally(made)) == []
    assert main(["verify", str(made)]) == 0


FAKE_TSHARK = """#!{python}
import sys
# as a tshark with a warning per frame: much more on stderr than a pipe holds, then the rows
sys.stderr.write("tshark: a warning about a frame\\n" * 40_000)
sys.stderr.flush()
for i in range({rows}):
    print(f"1700000000.{{i:09d}},1,3,0x81,'C',64,64,,,,,,")
sys.stderr.write("tshark: the last word\\n")
sys.exit({status})
"""
TALLY = """
from usbtrace.errors import UsageError
from usbtrace.formats.crosscheck import tshark_tally
try:
    print(tshark_tally("x").frames)
except UsageError as exc:
    print(exc)
"""


@pytest.mark.parametrize(("rows", "status", "says"), [(1000, 0, "1000"), (0, 1, "the last word")])
def test_tshark_writing_megabytes_to_stderr_does_not_hang(tmp_path, rows, status, says):
    """tshark's stderr is not a pipe left unread while its stdout is: a fake tshark on PATH
    writes 1.3 MB there before its rows. The rows still count; a failure names its last line."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "tshark"
    fake.write_text(FAKE_TSHARK.format(python=sys.executable, rows=rows, status=status))
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run(
        [sys.executable, "-c", TALLY],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,  # what a hang looks like here: stuck for good, not slow
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert says in r.stdout and len(r.stdout) < 200


def test_a_capture_on_standard_input_is_refused_not_called_different(made):
    """usbtrace read stdin, then tshark found it used up: "DIFFERENT (tshark 0 frames)", exit 1,
    a false verdict on a good capture. Refused in one line before either reads it."""
    p = subprocess.run(
        [sys.executable, "-m", "usbtrace", "verify", "-"],
        input=made.read_bytes(),
        capture_output=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        timeout=120,
    )
    err = p.stderr.decode()
    assert p.returncode == 2 and p.stdout == b"", (p.returncode, err)
    assert err.count("\n") == 1 and err.startswith("usbtrace: -: verify reads the file twice")


def test_a_fifo_is_refused_without_waiting(made, tmp_path, capsys):
    """tshark opened the FIFO after usbtrace had read it, and waited for a writer forever."""
    fifo = tmp_path / "live.pcapng"
    os.mkfifo(fifo)
    assert main(["verify", str(made), str(fifo)]) == 2
    assert f"{fifo}: verify reads the file twice" in capsys.readouterr().err
