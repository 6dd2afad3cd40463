"""The command line as a user meets it: help, inspect output, bad input without tracebacks."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import pytest
from builders import CaptureBuilder, inference

from usbtrace.cli.main import COMMANDS, main
from usbtrace.edgetpu import constants as C


def usbtrace(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", *argv], capture_output=True, text=True, timeout=120
    )


def test_help_lists_commands():
    r = usbtrace("--help")
    assert r.returncode == 0
    for cmd in ("summarize", "inspect", "verify"):
        assert cmd in r.stdout


HELP_PAGES = [
    (),
    *[(c,) for c in COMMANDS],
    *[("models", a) for a in ("list", "build", "compile", "inspect")],
    *[("wireshark", a) for a in ("install", "uninstall", "path", "fields", "lua")],
]


def _help(words: tuple[str, ...], monkeypatch, columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))  # what argparse reads the width from
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as stop:
        main([*words, "--help"])
    assert stop.value.code == 0
    return out.getvalue()


@pytest.mark.parametrize("words", HELP_PAGES, ids=lambda w: " ".join(w) or "usbtrace")
def test_every_help_fits_an_80_column_terminal(words, monkeypatch):
    text = _help(words, monkeypatch, 80)
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, wide
    assert "usage: usbtrace" in text


def test_help_prose_follows_the_width_and_keeps_its_paragraphs(monkeypatch):
    """Descriptions are re-wrapped, not printed as written: narrow on a narrow terminal, and on a
    wide one a paragraph is not broken where the source broke it; indented examples stay."""
    narrow = _help(("capture",), monkeypatch, 60)
    description = narrow.split("\n\n", 1)[1].split("\npositional arguments:")[0]
    assert max(len(line) for line in description.splitlines()) <= 60
    wide = _help(("capture",), monkeypatch, 200)
    assert "into one pcapng file, then print its summary.\n\nChecks the host first" in wide
    assert "\n  usbtrace capture --model conv_300\n" in wide


@pytest.fixture
def capture(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0)
    b.csr(C.CSR_OUTFEED_CHUNK_LENGTH, 100, value=0x80)
    b.csr(0x1A000, 300, width=32, read_value=0x0219089A)
    inference(b, 1000, params=[200_000])  # 401 MB/s: a SuperSpeed link can (see test_link_ceiling)
    return b.write(tmp_path / "c.pcapng")


def test_inspect_plain_table(capture):
    r = usbtrace("inspect", str(capture))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "Edge TPU 2.4 (18d1:9302" in lines[0]
    body = "\n".join(lines)
    assert "CSR outfeed_chunk_length := 0x80" in body
    assert "CSR omc0_00 -> 0x219089a" in body
    kinds = [
        ln.split()[4] for ln in lines[2:] if ln.split()[2] == "OUT" and ln.split()[3] == "0x01"
    ]
    assert kinds == ["instructions", "input", "parameters"]


def test_inspect_json_lines(capture):
    r = usbtrace("inspect", "--json", str(capture))
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    params = [x for x in rows if x["kind"] == "parameters"]
    assert len(params) == 1 and params[0]["bytes"] == 200_000
    assert params[0]["duration_s"] == pytest.approx(499e-6)  # header submit -> last completion
    assert params[0]["rate_Bps"] == pytest.approx(200_000 / 499e-6)
    events = [x for x in rows if x["kind"].startswith("event")]
    assert [e["endpoint"] for e in events] == [0x82]


@pytest.mark.parametrize(
    "content, expect",
    [(b"", "is empty"), (b"\x00" * 100, "not a pcap"), (b"\x0a\x0d\x0d\x0a\xff\xff", "")],
)
def test_bad_files_one_line_exit_2(tmp_path, content, expect):
    p = tmp_path / "bad.pcapng"
    p.write_bytes(content)
    for cmd in ("inspect", "summarize"):
        r = usbtrace(cmd, str(p))
        assert r.returncode == 2, (cmd, r.stderr)
        assert "Traceback" not in r.stderr
        assert r.stderr.startswith("usbtrace: ") and str(p) in r.stderr
        assert expect in r.stderr


def test_cut_file_is_decoded_with_a_warning(capture, tmp_path):
    data = capture.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 30])
    r = usbtrace("inspect", str(cut))
    assert r.returncode == 0
    assert "warning" in r.stderr and "middle of a block" in r.stderr
    assert "instructions" in r.stdout


def test_device_flag_validation(capture):
    r = usbtrace("inspect", "--device", "four", str(capture))
    assert r.returncode == 2 and "BUS.ADDRESS" in r.stderr
