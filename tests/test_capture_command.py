"""``usbtrace capture -- CMD`` and ``--attach/--duration``: the command line, the wrapped
program's exit status, output and signals, and the notes, with a real dumpcap on lo.

The capture interface comes from ``USBTRACE_CAPTURE_INTERFACE=lo`` (no USB here); the VM
testbed runs the same modes on a real usbmon with an emulated Edge TPU (tests/vm).
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capture_fakes import SessionWriter, require_loopback_dumpcap

from lab.usb.writer import encode
from usbtrace.capture.pcapng_check import check_file, read_metadata_payloads
from usbtrace.capture.runner import RunnerHooks, _print_summary
from usbtrace.cli.capture_cmd import command_name
from usbtrace.cli.main import build_parser, main
from usbtrace.formats.metadata import merge_metadata

PROJECT = Path(__file__).resolve().parents[1]


def _encoded(writer: SessionWriter) -> bytes:
    """The records a SessionWriter holds so far, as the pcapng it writes."""
    return encode(writer.records, writer.layout).data


@pytest.fixture(scope="module")
def loopback_dumpcap(tmp_path_factory):
    return require_loopback_dumpcap(tmp_path_factory)


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        PYTHONPATH=f"{PROJECT}{os.pathsep}{PROJECT / 'tests'}",
        USBTRACE_CAPTURE_INTERFACE="lo",
    )


def _capture(out: Path, *argv: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", "capture", "--out-dir", str(out), *argv],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        **kw,
    )


def _only_capture(out: Path) -> Path:
    (path,) = out.glob("*.pcapng")
    return path


def _meta(path: Path):
    return merge_metadata(read_metadata_payloads(path))


# -- parsing, no capture --------------------------------------------------------------------------


def test_everything_after_the_double_dash_is_the_command():
    args = build_parser("capture").parse_args(
        ["capture", "--label", "cam", "--", "python3", "-m", "app", "--count", "3", "--", "x"]
    )
    assert args.label == "cam" and args.count is None
    assert args.command == ["python3", "-m", "app", "--count", "3", "--", "x"]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--count", "3", "--", "true"], "--count"),
        (["--backend", "tflite", "--", "true"], "--backend"),
        (["--duration", "5", "--", "true"], "not with -- CMD"),
        (["--duration", "0"], "--duration"),
        (["--attach", "--interval", "1"], "--interval"),
    ],
)
def test_options_that_cannot_go_with_a_command_or_attach(capsys, argv, needle):
    assert main(["capture", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("usbtrace: ") and "\n" not in err and needle in err


def test_file_names_of_commands():
    assert command_name(["python3", "-m", "lab.testbed.replay_app", "x.pcapng"]) == "replay_app"
    assert command_name(["/usr/bin/python3.11", "-u", "tools/bench.py", "--n", "3"]) == "bench"
    assert command_name(["sh", "-c", "exit 3"]) == "sh"
    assert command_name(["./my camera!"]) == "my_camera"


# -- with dumpcap on lo ---------------------------------------------------------------------------


def test_missing_command_is_one_line_and_leaves_nothing(loopback_dumpcap, tmp_path):
    out = tmp_path / "out"
    done = _capture(out, "--", "usbtrace-no-such-program", "--flag")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "usbtrace: usbtrace-no-such-program: command not found (not on PATH)"
    )
    assert not out.exists() or list(out.iterdir()) == []


def test_exit_status_output_and_metadata(loopback_dumpcap, tmp_path):
    out = tmp_path / "out"
    script = "import sys, time; print('to stdout'); time.sleep(0.3); sys.stderr.write('to err\\n');"
    done = _capture(out, "--label", "t", "--", sys.executable, "-c", script + "sys.exit(3)")
    assert done.returncode == 3, done.stderr
    assert done.stdout.splitlines()[0] == "to stdout"  # passed through, before any summary
    assert "to err" in done.stderr
    assert "usbtrace: command " in done.stderr and "exited with status 3" in done.stderr
    path = _only_capture(out)
    assert path.name.startswith("python3-t-") or path.name.startswith("python-t-")
    assert check_file(path).complete
    meta = _meta(path)
    assert meta.mode == "command" and meta.extra["status"] == "complete"
    assert meta.command is not None
    assert meta.command.argv == [sys.executable, "-c", script + "sys.exit(3)"]
    assert meta.command.exit_status == 3
    assert 0.3 <= meta.command.run_time_s < 30
    assert meta.command.start_ns < meta.command.end_ns
    assert meta.invokes == []  # no host invoke timestamps in this mode
    assert "count" not in meta.extra["capture"]


def test_a_successful_command_exits_0(loopback_dumpcap, tmp_path):
    done = _capture(tmp_path / "out", "--", "true")
    assert done.returncode == 0, done.stderr
    assert _meta(_only_capture(tmp_path / "out")).command.exit_status == 0


def test_command_killed_by_a_signal_reports_128_plus_n(loopback_dumpcap, tmp_path):
    done = _capture(tmp_path / "out", "--", "sh", "-c", "kill -TERM $$")
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert _meta(_only_capture(tmp_path / "out")).command.exit_status == 143


def test_command_without_edge_tpu_traffic_keeps_the_capture_with_a_note(loopback_dumpcap, tmp_path):
    done = _capture(tmp_path / "out", "--", "true")
    path = _only_capture(tmp_path / "out")
    assert check_file(path).complete
    assert f"usbtrace: wrote {path}" in done.stderr
    assert "usbtrace: note:" in done.stderr  # lo is no usbmon: it says it cannot analyse it
    assert "Traceback" not in done.stderr


def test_note_when_the_capture_holds_no_edge_tpu_request(tmp_path):
    """On a usbmon capture with no Edge TPU request (what such a command gives on a real
    bus), the runner says so and prints no summary table."""
    writer = SessionWriter()
    writer.csr_read32(0x1A30C, 0x59)  # a register read: traffic, but no request
    path = tmp_path / "quiet.pcapng"
    path.write_bytes(_encoded(writer))
    summaries: list[Path] = []
    log = io.StringIO()
    _print_summary(path, RunnerHooks(summary=summaries.append), "command", log)
    assert "the command moved no Edge TPU request over USB" in log.getvalue()
    assert "the capture is kept" in log.getvalue()
    assert summaries == []


def test_summary_says_there_are_no_host_timestamps(tmp_path):
    path = tmp_path / "session.pcapng"
    path.write_bytes(SessionWriter().session(2))
    summaries: list[Path] = []
    log = io.StringIO()
    _print_summary(path, RunnerHooks(summary=summaries.append), "command", log)
    assert "no host invoke timestamps" in log.getvalue()
    assert summaries == [path]


def _spawn(tmp_path: Path, *argv: str, **kw) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "usbtrace", "capture", "--out-dir", str(tmp_path / "out"), *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        **kw,
    )


WAITS_FOR_SIGINT = """
import signal, sys, time
from pathlib import Path
Path(sys.argv[1]).write_text("started")
try:
    time.sleep(60)
except KeyboardInterrupt:
    print("app: stopping cleanly", flush=True)
    sys.exit(7)
"""


def _wait_for(path: Path, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert path.exists(), proc.communicate(timeout=30)


@pytest.mark.parametrize("to_group", [True, False], ids=["terminal-ctrl-c", "sigint-to-usbtrace"])
def test_ctrl_c_reaches_the_command_and_its_status_is_usbtraces(
    loopback_dumpcap, tmp_path, to_group
):
    flag = tmp_path / "started"
    # its own process group, as a shell gives a job: the terminal's Ctrl-C goes to the group
    proc = _spawn(
        tmp_path, "--", sys.executable, "-c", WAITS_FOR_SIGINT, str(flag), process_group=0
    )
    try:
        _wait_for(flag, proc)
        if to_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)  # only usbtrace: it passes SIGINT on
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 7, stderr
    assert "app: stopping cleanly" in stdout
    assert "Traceback" not in stderr
    path = _only_capture(tmp_path / "out")
    assert check_file(path).complete
    meta = _meta(path)
    assert meta.extra["status"] == "interrupted" and meta.command.exit_status == 7


def test_sigterm_is_passed_on_to_the_command(loopback_dumpcap, tmp_path):
    flag = tmp_path / "started"
    proc = _spawn(tmp_path, "--", sys.executable, "-c", WAITS_FOR_SIGINT, str(flag))
    try:
        _wait_for(flag, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, stderr  # Python's default SIGTERM action
    meta = _meta(_only_capture(tmp_path / "out"))
    assert meta.extra["status"] == "interrupted" and meta.command.exit_status == 143


def test_attach_for_a_duration(loopback_dumpcap, tmp_path):
    t0 = time.monotonic()
    done = _capture(tmp_path / "out", "--duration", "1.5", "--label", "now")
    took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert took >= 1.5
    path = _only_capture(tmp_path / "out")
    assert path.name.startswith("attach-now-")
    meta = _meta(path)
    assert meta.mode == "attach" and meta.extra["status"] == "complete"
    assert meta.extra["capture"]["duration_s"] == 1.5
    assert 1.5 <= meta.extra["attach"]["recorded_s"] < 30
    assert meta.command is None and meta.invokes == []


def test_attach_until_ctrl_c_is_a_complete_capture(loopback_dumpcap, tmp_path):
    proc = _spawn(tmp_path, "--attach")
    try:
        deadline = time.monotonic() + 60
        while "capturing" not in _peek(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # dumpcap running
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    meta = _meta(_only_capture(tmp_path / "out"))
    assert meta.mode == "attach" and meta.extra["status"] == "complete"


def _peek(tmp_path: Path) -> str:
    out = tmp_path / "out"
    return "capturing" if out.exists() and list(out.glob("*.pcapng")) else ""


# -- the metadata fields of these modes ----------------------------------------------------------


def test_command_metadata_round_trip_and_untrusted_values():
    from usbtrace.formats.metadata import CaptureMetadata, CommandRun

    run = CommandRun(["python3", "app.py"], 10, 20, exit_status=3, run_time_s=0.5)
    back = CaptureMetadata.from_json(CaptureMetadata(mode="command", command=run).to_json())
    assert (back.mode, back.command, back.problems) == ("command", run, [])
    bad = CaptureMetadata.from_json(
        {
            "mode": "daemon",
            "command": {"argv": ["a"], "start_ns": 10, "end_ns": 5, "exit_status": 0},
        }
    )
    assert bad.mode is None
    assert bad.command == CommandRun(["a"], 10)  # what was valid before the bad field
    assert bad.problems == [
        "mode is not one of model, command, attach",
        "command end_ns is not a time in ns after start_ns",
    ]
    for raw, why in [
        ([], "is not an object (list)"),
        ({"argv": "python3 app.py", "start_ns": 1}, "argv is not a list of 1..4096 strings"),
        ({"argv": ["a", 1], "start_ns": 1}, "argv holds something other than strings"),
        ({"argv": ["a"], "start_ns": -1}, "start_ns is not a time in ns"),
        ({"argv": ["a"], "start_ns": 1, "exit_status": 300}, "exit_status is not 0..255"),
        ({"argv": ["a"], "start_ns": 1, "run_time_s": "1"}, "run_time_s is not a number"),
    ]:
        problems = CaptureMetadata.from_json({"command": raw}).problems
        assert len(problems) == 1 and problems[0].startswith(f"command {why}"), problems
