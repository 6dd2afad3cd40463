"""The streaming pipeline: windowed results equal whole-capture ones, memory follows the
requests in flight, and captures arrive from files, FIFOs and standard input."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference

from lab.fuzzing.mutate import make_case
from lab.synthetic import PRESETS, preset, write_session
from lab.synthetic.bench import make_bench_capture
from usbtrace import pipeline
from usbtrace.errors import InputError
from usbtrace.formats import capture
from usbtrace.report.inspect_view import inspect_rows

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("USBTRACE_SHARED", ROOT.parent / "shared"))
WINDOWS = (1, 3, 31, 500)  # frames per window; 1 closes a window after every record


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> list[Path]:
    """Every synthetic preset, the committed samples, the fuzz corpus, some fuzz cases and,
    when ../shared is there, the real captures."""
    folder = tmp_path_factory.mktemp("pipeline")
    paths = [write_session(preset(n), folder / f"{n}.pcapng") and folder / f"{n}.pcapng"
             for n in sorted(PRESETS)]  # fmt: skip
    paths += sorted((ROOT / "captures").glob("*.pcapng"))
    paths += sorted((ROOT / "tests" / "corpus").glob("*.pcap*"))
    for seed in range(0, 60, 4):
        p = folder / f"fuzz{seed}.pcapng"
        p.write_bytes(make_case(seed).data)
        paths.append(p)
    paths += sorted((SHARED / "captures" / "real").glob("*.pcapng"))
    return paths


# Measured on each window's URBs (the link model is fitted per window, README "The pipeline"):
# the same as the whole capture's only when the capture fits in one window.
PER_WINDOW = {
    "verdict",
    "verdict_share",
    "link_busy_s",
    "device_wait_s",
    "host_gap_s",
    "verdict_share_median",
    "findings",
}


def _drop_per_window(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _drop_per_window(v) for k, v in doc.items() if k not in PER_WINDOW}
    if isinstance(doc, list):
        return [_drop_per_window(v) for v in doc]
    return doc


def _summaries(path: Path, window: int | None, per_window: bool = True) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = pipeline.summarize_file(path, window_frames=window)
        except InputError as exc:
            return f"error: {exc}"
    docs = [s.to_json() for s in found]
    return json.dumps(docs if per_window else _drop_per_window(docs))


def test_streamed_summaries_equal_whole_capture_ones(captures):
    checked = 0
    for path in captures:
        whole = _summaries(path, 1 << 40, per_window=False)  # one window: nothing released
        for window in WINDOWS:
            assert _summaries(path, window, per_window=False) == whole, (path.name, window)
        checked += whole.count('"index"')
    assert checked > 100  # requests compared, not only errors


def test_a_capture_within_one_window_is_computed_as_a_whole(captures):
    """Every key, the timing verdicts and findings too, at the default window size: these
    captures are shorter than one window."""
    checked = 0
    for path in captures:
        whole = _summaries(path, 1 << 40)
        assert _summaries(path, None) == whole, path.name
        checked += whole.count('"verdict_share"')
    assert checked > 100


def _inspected(path: Path, window: int, monkeypatch) -> object:
    monkeypatch.setattr(pipeline, "INSPECT_WINDOW_FRAMES", window)
    rows: dict[str, list] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            decoded = pipeline.inspect(
                path, None, lambda t, got, t0: rows.setdefault(t.name, []).extend(got)
            )
        except InputError as exc:
            return f"error: {exc}"
    return rows, {t.name: t.problems for t in decoded.devices}


def test_streamed_inspect_rows_equal_whole_capture_ones(captures, monkeypatch):
    checked = 0
    for path in captures:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                decoded = pipeline.decode_capture(path, partial_ok=True)
                rows = {t.name: list(inspect_rows(t)) for t in decoded.devices}
                want = (
                    {name: r for name, r in rows.items() if r},
                    {t.name: t.problems for t in decoded.devices},
                )
            except InputError as exc:
                want = f"error: {exc}"
        for window in WINDOWS:
            assert _inspected(path, window, monkeypatch) == want, (path.name, window)
        checked += 0 if isinstance(want, str) else sum(map(len, want[0].values()))
    assert checked > 1000


def test_memory_follows_the_requests_in_flight(tmp_path):
    """A 30,000-frame capture of about 900 inferences: between windows the decoder holds a
    handful of transfers and events, not the capture's."""
    path = tmp_path / "bench.pcapng"
    make_bench_capture(path, frames=30_000)
    held: list[tuple[int, int, int]] = []
    streamer = pipeline._Streamer({})

    def window(decoder):
        streamer(decoder)
        for d in decoder.devices.values():
            held.append((len(d.state.held["gidx"]), len(d.state.rows), sum(map(len, d.events))))

    decoded = pipeline.decode(path, on_window=window, window_frames=1024)
    (trace,) = decoded.devices
    log = streamer.logs[(trace.bus, trace.address)]
    assert log.count > 800  # requests finished while streaming
    assert max(h[0] for h in held) < 40  # transfers
    assert max(h[1] for h in held) < 400  # bulk-OUT URBs
    assert max(h[2] for h in held) < 40  # events


def _usbtrace(*argv: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", *argv], capture_output=True, env=env, **kw
    )


def test_standard_input_gives_the_same_summary_as_the_file():
    sample = ROOT / "captures" / "sample-synthetic-dense.pcapng"
    from_file = json.loads(_usbtrace("summarize", "--json", str(sample)).stdout)
    piped = _usbtrace("summarize", "--json", "-", input=sample.read_bytes())
    assert piped.returncode == 0, piped.stderr
    from_pipe = json.loads(piped.stdout)
    assert from_pipe["captures"][0]["file"] == "-"
    from_pipe["captures"][0]["file"] = from_file["captures"][0]["file"]
    assert from_pipe == from_file
    inspected = _usbtrace("inspect", "--json", "-", input=sample.read_bytes())
    assert inspected.returncode == 0 and inspected.stdout.count(b"\n") > 20


def test_fifo_with_a_writer_is_read_as_a_stream(tmp_path):
    fifo = tmp_path / "cap.fifo"
    os.mkfifo(fifo)
    sample = ROOT / "captures" / "sample-synthetic-conv.pcapng"
    data = sample.read_bytes()

    def write() -> None:
        with open(fifo, "wb") as f:
            for i in range(0, len(data), 1000):  # in pieces: short reads must not end it
                f.write(data[i : i + 1000])
                f.flush()

    threading.Thread(target=write, daemon=True).start()
    (got,) = pipeline.summarize_file(fifo)
    (want,) = pipeline.summarize_file(sample)
    assert got.to_json()["requests"] == want.to_json()["requests"]


def test_fifo_without_a_writer_gives_up_with_a_message(tmp_path):
    fifo = tmp_path / "nobody.fifo"
    os.mkfifo(fifo)
    said: list[str] = []
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"no writer opened this FIFO within 0\.5 s"):
        capture.open_source(fifo, fifo_wait_s=0.5, notify=said.append)
    assert time.monotonic() - t0 < 5
    assert said and "waiting up to 0.5 s for a writer" in said[0]


def _open_fifo_writer(fifo: Path, proc: subprocess.Popen, deadline: float) -> int:
    """The FIFO's write end, once the reader has opened it (never blocks: a reader that died
    before opening it fails the test instead of hanging it)."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            assert time.monotonic() < deadline, "inspect never opened the FIFO"
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd


def _inspect_from_fifo(tmp_path: Path) -> tuple[subprocess.Popen, int, float]:
    """``usbtrace inspect --json`` reading a FIFO: the child, the FIFO's write end (open once
    the child has opened the FIFO) and the test's deadline."""
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "usbtrace", "inspect", "--json", str(fifo)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 60
    return proc, _open_fifo_writer(fifo, proc, deadline), deadline


def _first_line_then_head(data: bytes, piece: int, pause: float, tmp_path: Path) -> bytes:
    """Feed ``data`` to ``inspect`` through a FIFO a piece at a time, from a thread (a write
    blocks while inspect has not read it), with the FIFO held open: the first line must come
    while inspect still waits for more. Then go away as ``| head`` does: stop writing and
    reading, close the FIFO; inspect must stop, exit 0, without a traceback.

    Nobody reads inspect's output after the first line, so the writer must stop rather than
    push the rest: inspect, blocked writing a full stdout pipe, reads no more of the FIFO."""
    proc, fd, deadline = _inspect_from_fifo(tmp_path)
    stop = threading.Event()

    def write() -> None:
        try:
            for at in range(0, len(data), piece):
                if stop.is_set():
                    return
                os.write(fd, data[at : at + piece])
                time.sleep(pause)
        except BrokenPipeError:  # inspect has gone: nothing more to write
            return

    writer = threading.Thread(target=write, daemon=True)
    try:
        writer.start()
        first = _readline_by(proc, deadline)
        assert proc.poll() is None  # the rest of the capture is still to come
    finally:
        stop.set()
        proc.stdout.close()  # the reader goes away (`| head`)
        writer.join(timeout=max(0.0, deadline - time.monotonic()))
        if writer.is_alive():  # stuck: end the child, which ends the write
            proc.kill()
            writer.join()
        os.close(fd)
    assert proc.wait(timeout=60) == 0
    assert b"Traceback" not in proc.stderr.read()
    return first


def test_inspect_prints_rows_before_its_input_ends(tmp_path):
    """Streaming for real: with the FIFO's writer still open, the first rows are out."""
    big = tmp_path / "big.pcapng"
    make_bench_capture(big, frames=40_000)
    data = big.read_bytes()
    first = _first_line_then_head(data[: len(data) // 2], 1 << 16, 0.0, tmp_path)
    assert json.loads(first)["device"] == "2.4"


def test_inspect_prints_rows_of_big_records_before_a_window_of_frames(tmp_path):
    """Records of whole payloads: 8,192 frames (a window of inspect's) can be gigabytes, so a
    window also ends by the clock. Half the capture trickles in through a FIFO, far fewer
    frames than a window: the first rows are out while the writer still holds it open."""
    big = tmp_path / "payloads.pcapng"
    profile = preset("dense_300", snaplen=1 << 18)
    devices = tuple(replace(d, inferences=10) for d in profile.devices)
    write_session(replace(profile, devices=devices), big)
    data = big.read_bytes()
    assert len(data) > 2 << 20  # a few MB, in a few hundred frames
    half, piece = data[: len(data) // 2], 1 << 18
    assert len(half) > 6 * piece
    # spread over more than one of inspect's clock windows, so some piece comes after one
    first = _first_line_then_head(half, piece, pipeline.INSPECT_WINDOW_S / 4, tmp_path)
    assert json.loads(first)["device"] == "2.4"


@pytest.mark.parametrize("more_rows", [True, False])
def test_inspect_from_a_source_gone_quiet(tmp_path, more_rows):
    """A live source that stops sending (a capture with no traffic) but stays open: the rows
    of what came still go out, and when the reader of the rows goes away (``| head``)
    inspect exits 0, not waiting for the source to say something. It finds out when it
    writes its next rows (``more_rows``), or, with nothing more to write, while the source is
    quiet (it used to wait for the source, perhaps for ever)."""
    capture_file = tmp_path / "short.pcapng"
    make_bench_capture(capture_file, frames=3000)  # fewer frames than one window
    data = capture_file.read_bytes()
    proc, fd, deadline = _inspect_from_fifo(tmp_path)

    def write(part: bytes) -> None:
        def run() -> None:
            with contextlib.suppress(BrokenPipeError):
                os.write(fd, part)

        threading.Thread(target=run, daemon=True).start()

    try:
        write(data[: len(data) // 2])
        first = _readline_by(proc, deadline)  # from a window ended while nothing came
        assert json.loads(first)["device"] == "2.4"
        proc.stdout.close()  # the reader goes away
        if more_rows:
            write(data[len(data) // 2 : -4096])
        # inspect exits while the FIFO is still open and quiet
        assert proc.wait(timeout=30) == 0
        assert b"Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(fd)


def _readline_by(proc: subprocess.Popen, deadline: float) -> bytes:
    """One line of the child's stdout, or a failure (not a hang) past the deadline."""
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout=max(0.0, deadline - time.monotonic()))
    if not line:
        proc.kill()
        raise AssertionError("inspect printed no line within 60 s while its input was open")
    return line[0]


def test_inspect_keeps_the_readable_prefix_like_summarize(tmp_path):
    b = CaptureBuilder()
    b.device_descriptor(0)
    inference(b, 1000)
    inference(b, 5000)
    path = b.write(tmp_path / "ok.pcapng")
    data = bytearray(path.read_bytes())
    # a lying block length in the last block: the file breaks off there
    last = len(data) - int.from_bytes(data[-4:], "little")
    data[last + 4 : last + 8] = (4).to_bytes(4, "little")
    bad = tmp_path / "lying.pcapng"
    bad.write_bytes(bytes(data))
    r = _usbtrace("inspect", str(bad))
    assert r.returncode == 0, r.stderr
    assert b"instructions" in r.stdout and b"event" in r.stdout
    assert b"unreadable after byte" in r.stderr and b"Traceback" not in r.stderr
    s = _usbtrace("summarize", "--json", str(bad))
    assert s.returncode == 0
    problems = json.loads(s.stdout)["captures"][0]["summary"]["integrity"]["problems"]
    assert any("unreadable after byte" in p for p in problems)
