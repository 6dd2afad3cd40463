"""The fuzz campaign's "special files" class: inputs and outputs that are not plain files.

Standard output on a full disk or closed early, /dev/full and folders as output files, output
folders that cannot be written, inputs behind a folder without search permission, FIFOs and
devices. Whatever happens, each command answers with one line ``usbtrace: PATH: what`` and exit
status 2 (or quietly, for a pipe closed by ``head``), never a traceback, and no file it was given
changes. Runs are real processes, so what reaches the terminal is what is checked.

Permission cases need a process the kernel refuses: as root, the command runs under ``setpriv``
with every capability dropped (root then meets the permission bits like any owner).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from lab.fuzzing.oracle import run_cli

ROOT = Path(__file__).resolve().parents[1]
CONV = ROOT / "captures" / "sample-synthetic-conv.pcapng"
DENSE = ROOT / "captures" / "sample-synthetic-dense.pcapng"
SETPRIV = shutil.which("setpriv")


def usbtrace(
    *argv: str, stdout=subprocess.PIPE, unprivileged: bool = False, timeout: float = 120
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "usbtrace", *argv]
    if unprivileged and os.geteuid() == 0:
        if SETPRIV is None:
            pytest.skip("running as root and setpriv is missing: cannot drop the capabilities")
        cmd = [SETPRIV, "--bounding-set=-all", "--inh-caps=-all", *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        cmd, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=timeout, env=env, cwd=ROOT
    )


def assert_one_line(p: subprocess.CompletedProcess, *words: str, status: int = 2) -> str:
    assert "Traceback" not in p.stderr, p.stderr
    lines = [ln for ln in p.stderr.splitlines() if not ln.startswith("usbtrace: note:")]
    assert p.returncode == status, (p.returncode, p.stderr)
    assert len(lines) == 1 and lines[0].startswith("usbtrace: "), p.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def caps(tmp_path: Path) -> Path:
    d = tmp_path / "caps"
    d.mkdir()
    shutil.copy(CONV, d)
    shutil.copy(DENSE, d)
    return d


# -- standard output ---------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize(
    "argv",
    [
        ["summarize", str(CONV)],
        ["summarize", "--json", str(CONV)],
        ["inspect", str(CONV)],
        ["inspect", "--json", str(CONV)],
    ],
)
def test_stdout_on_a_full_disk(argv) -> None:
    with open("/dev/full", "w") as full:
        p = usbtrace(*argv, stdout=full)
    assert_one_line(p, "standard output", "No space left on device")


def test_stdout_closed_early_is_quiet() -> None:
    # like `usbtrace inspect --json FILE | head -1`: the reader goes away after one line
    proc = subprocess.Popen(
        [sys.executable, "-m", "usbtrace", "inspect", "--json", str(DENSE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert err == ""


# -- special files as outputs -----------------------------------------------------------------


def _output_cases(tmp: Path, caps: Path) -> dict[str, list[str]]:
    """Each writing command with OUT standing for the file it writes."""
    return {
        "summarize --csv PATH": ["summarize", str(caps), "--csv", "OUT"],
        "summarize --csv -o": ["summarize", str(caps), "--csv", "-o", "OUT"],
        "summarize -o": ["summarize", str(caps), "-o", "OUT"],
        "report": ["report", str(caps), "-o", "OUT", "--force"],
        "timeline": ["timeline", str(caps / CONV.name), "-o", "OUT", "--force"],
        "wireshark lua": ["wireshark", "lua", "-o", "OUT", "--force"],
    }


OUTPUT_CASES = list(_output_cases(Path("/x"), Path("/y")))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
@pytest.mark.parametrize("name", [n for n in OUTPUT_CASES if n != "timeline"])  # wants .png
def test_dev_full_as_the_output_file(caps, tmp_path, name) -> None:
    if name == "report":
        pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    argv = [w if w != "OUT" else "/dev/full" for w in _output_cases(tmp_path, caps)[name]]
    o = run_cli(argv)
    assert o.traceback is None
    assert o.status == 2 and "/dev/full: No space left on device" in o.stderr
    assert os.path.exists("/dev/full") and not Path("/dev/full").is_file()  # still the device


@pytest.mark.parametrize("name", OUTPUT_CASES)
def test_a_folder_as_the_output_file(caps, tmp_path, name) -> None:
    folder = tmp_path / ("out.png" if name == "timeline" else "out.html")
    folder.mkdir()
    argv = [w if w != "OUT" else str(folder) for w in _output_cases(tmp_path, caps)[name]]
    o = run_cli(argv)
    assert o.traceback is None and o.status == 2, o.stderr
    assert f"{folder}: is a folder" in o.stderr
    assert folder.is_dir() and not any(folder.iterdir())


def test_export_where_a_table_is_a_folder(caps, tmp_path) -> None:
    out = tmp_path / "e"
    (out / "requests.csv").mkdir(parents=True)
    o = run_cli(["export", str(caps), "--csv", "--out-dir", str(out), "--jobs", "1"])
    assert o.traceback is None and o.status == 2
    assert "requests.csv: is a folder, not a file" in o.stderr
    assert sorted(p.name for p in out.iterdir()) == ["requests.csv"]


def _unwritable_cases(ro: Path, caps: Path) -> dict[str, list[str]]:
    return {
        "export": ["export", str(caps), "--csv", "--out-dir", str(ro), "--jobs", "1"],
        "export (new subfolder)": ["export", str(caps), "--csv", "--out-dir", str(ro / "sub")],
        "report": ["report", str(caps), "-o", str(ro / "r.html")],
        "plot": ["plot", str(caps), "--out-dir", str(ro)],
        "timeline": ["timeline", str(caps / CONV.name), "-o", str(ro / "t.png")],
        "summarize --csv PATH": ["summarize", str(caps), "--csv", str(ro / "s.csv")],
        "summarize -o": ["summarize", str(caps), "-o", str(ro / "s.txt")],
    }


@pytest.mark.parametrize("name", list(_unwritable_cases(Path("/x"), Path("/y"))))
def test_an_output_folder_that_cannot_be_written(caps, tmp_path, name) -> None:
    if name in ("report", "plot", "timeline"):
        pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        p = usbtrace(*_unwritable_cases(ro, caps)[name], unprivileged=True)
    finally:
        ro.chmod(0o755)
    assert_one_line(p, str(ro), "Permission denied")
    assert list(ro.iterdir()) == []


# -- special files as inputs ------------------------------------------------------------------


def test_an_input_behind_a_folder_without_search_permission(caps, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    shutil.copy(CONV, locked / "a.pcapng")
    locked.chmod(0o600)  # readable listing, no search (x): the file inside cannot be opened
    try:
        p = usbtrace("summarize", str(locked / "a.pcapng"), unprivileged=True)
        assert_one_line(p, str(locked / "a.pcapng"), "Permission denied")
        # with a good input beside it: that one is reported, the bad one named, exit 1
        p = usbtrace("summarize", str(locked / "a.pcapng"), str(DENSE), unprivileged=True)
        assert_one_line(p, "Permission denied", status=1)
        assert "dense_300" in p.stdout
        # the folder above: the listing names the file, which cannot be reached; the others
        # are still analysed
        p = usbtrace("summarize", str(tmp_path), unprivileged=True)
        assert "Traceback" not in p.stderr and p.returncode == 1
        assert f"{locked / 'a.pcapng'}: Permission denied" in p.stderr
        assert "conv_50" in p.stdout and "dense_300" in p.stdout
        # a folder that cannot even be listed is named too, not skipped in silence
        locked.chmod(0o100)
        p = usbtrace("summarize", str(tmp_path), unprivileged=True)
        assert "Traceback" not in p.stderr and p.returncode == 1
        assert f"{locked}: cannot list folder: Permission denied" in p.stderr
    finally:
        locked.chmod(0o755)


def test_a_fifo_as_input_gives_its_capture(tmp_path) -> None:
    fifo = tmp_path / "live.pcapng"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(CONV.read_bytes()))
    writer.start()
    p = usbtrace("summarize", "--json", str(fifo), timeout=60)
    writer.join(timeout=10)
    assert "Traceback" not in p.stderr
    assert p.returncode in (0, 2), p.stderr
    if p.returncode == 2:
        # today's reader seeks, which a FIFO cannot: one line, no traceback (reading FIFOs and
        # stdin belongs to the streaming reader; then this gives the capture)
        assert_one_line(p)
    else:
        assert '"model":"conv_50"' in p.stdout.replace(" ", "")


@pytest.mark.parametrize("special", ["/dev/null", "/dev/zero"])
def test_a_device_as_input(special) -> None:
    if not os.path.exists(special):
        pytest.skip(f"no {special} on this system")
    o = run_cli(["summarize", special])
    assert o.traceback is None and o.status == 2
    assert o.stderr.startswith(f"usbtrace: {special}: ")


@pytest.mark.parametrize("command", ["timeline", "diff"])
@pytest.mark.parametrize("source", ["stdin", "fifo"])
def test_single_capture_commands_read_a_pipe(tmp_path, command, source) -> None:
    """timeline and diff stream their capture like the other commands, but checked it with
    is_file() first and called standard input and a FIFO "no such file"."""
    name = "-"
    writer = None
    if source == "fifo":
        fifo = tmp_path / "live.pcapng"
        os.mkfifo(fifo)
        name = str(fifo)
        writer = threading.Thread(
            target=lambda: fifo.write_bytes(CONV.read_bytes()), daemon=True
        )  # daemon: a reader that never opens the FIFO leaves it blocked
        writer.start()
    argv = {
        "timeline": ["timeline", "-o", str(tmp_path / "t.svg"), name],
        "diff": ["diff", str(CONV), name],
    }[command]
    cmd = [sys.executable, "-m", "usbtrace", *argv]
    p = subprocess.run(
        cmd,
        input=CONV.read_bytes() if source == "stdin" else b"",
        capture_output=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    if writer is not None:
        writer.join(timeout=10)
    assert p.returncode == 0, p.stderr.decode()
    if command == "timeline":
        assert (tmp_path / "t.svg").read_bytes().lstrip().startswith(b"<?xml")
    else:
        assert b"no regression" in p.stdout


def test_closed_standard_input_is_called_closed() -> None:
    """`usbtrace summarize - <&-`: standard input is closed, not "a terminal"."""
    p = subprocess.run(
        [sys.executable, "-m", "usbtrace", "summarize", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        preexec_fn=lambda: os.close(0),
    )
    assert_one_line(p, "usbtrace: -: standard input is closed")
