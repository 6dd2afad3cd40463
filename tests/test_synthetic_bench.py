"""The bulk benchmark-capture writer: a tiled capture is still one consistent session."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from synthetic_pcapng_walker import out_transfers, pair_urbs, walk

from lab.synthetic.bench import make_bench_capture, parse_size

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory):
    path = tmp_path_factory.mktemp("bench") / "bench.pcapng"
    result = make_bench_capture(path, frames=20_000, snaplen=96)
    return result, walk(path)


def test_frame_count_and_size(bench) -> None:
    result, cap = bench
    assert len(cap.packets) == result.frames
    assert 20_000 <= result.frames < 20_000 + 1_000
    assert result.bytes == result.path.stat().st_size
    assert cap.snaplen == 96 and all(p.caplen <= 96 for p in cap.packets)


def test_tiled_capture_is_one_consistent_session(bench) -> None:
    result, cap = bench
    times = [p.ts_us for p in cap.packets]
    assert times == sorted(times)
    assert all(p.ts_us == p.hdr_ts_us for p in cap.packets)
    tpu = [p for p in cap.packets if p.device == 4]
    urbs = pair_urbs(tpu)  # fails if an id is reused in flight
    assert all(u.complete is not None for u in urbs if u.submit.xfer == 3 and not u.submit.is_in)
    transfers = out_transfers(urbs)
    events = [p for p in tpu if p.endpoint == 0x82 and p.kind == "C" and p.status == 0]
    assert len(events) == result.inferences + 1  # and the caching request
    params = [t for t in transfers if t.tag == 2]
    per_inference = result.per_inference.bytes_by_tag[2]
    assert sum(t.length for t in params) == 1_040_896 + result.inferences * per_inference


def test_every_tiled_inference_has_the_same_latency(bench) -> None:
    result, cap = bench
    tpu = [p for p in cap.packets if p.device == 4]
    headers = [p for p in tpu if p.kind == "S" and p.endpoint == 0x01 and p.urb_len == 8]
    starts = [
        p.ts_us for p in headers if p.data[4] == 0 and p.data[:4] == bytes.fromhex("f0ff0300")
    ]
    events = [p.ts_us for p in tpu if p.endpoint == 0x82 and p.kind == "C" and p.status == 0]
    latencies = {e - s for s, e in zip(starts[1:], events[2:], strict=True)}
    assert latencies == {result.per_inference.latency_us}


def test_parse_size() -> None:
    assert parse_size("1.5G") == 3 * 2**29
    assert parse_size("200M") == 200 * 2**20
    assert parse_size("4096") == 4096
    with pytest.raises(ValueError):
        parse_size("lots")


def test_script_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "taken.pcapng"
    out.write_bytes(b"keep me")
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "make_bench_capture.py"),
            "--frames",
            "10",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 2 and "exists" in result.stderr
    assert out.read_bytes() == b"keep me"
