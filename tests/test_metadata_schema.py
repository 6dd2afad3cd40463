"""usbtrace's metadata block is untrusted input: parsed with limits, checked field by field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference

from usbtrace.formats.metadata import (
    MAX_DEPTH,
    METADATA_MAGIC,
    METADATA_PEN,
    CaptureMetadata,
    InvokeTiming,
    append_metadata,
    encode_metadata,
    metadata_from_blocks,
    parse_metadata_payload,
)
from usbtrace.formats.pcapng_writer import PcapngWriter
from usbtrace.pipeline import summarize_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def block(text: bytes) -> list[tuple[int, bytes]]:
    return [(METADATA_PEN, METADATA_MAGIC + text)]


def capture_with_block(path: Path, payload: bytes) -> Path:
    b = CaptureBuilder()
    b.device_descriptor(0)
    inference(b, 1000)
    b.write(path)
    with path.open("ab") as stream:
        PcapngWriter(stream, section=False).custom(METADATA_PEN, METADATA_MAGIC + payload)
    return path


# the three tracebacks, and the rest of what a hostile block can hold
HOSTILE = {
    "deep": b'{"extra": ' + b"[" * 2000 + b"]" * 2000 + b', "label": "x"}',
    "huge-int": b'{"bus": ' + b"9" * 5000 + b', "label": "x"}',
    "long-model": json.dumps({"model": "m" * 300, "model_path": "/" + "p" * 300}).encode(),
    "not-utf8": b'{"model": "\xff\xfe"}',
    "nan": b'{"cpu_baseline_s": NaN, "label": "x"}',
    "duplicate": b'{"model": "conv_50", "model": "dense_900"}',
    "not-object": b"[1, 2, 3]",
    "truncated": b'{"model": "conv_',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_block_never_raises_and_is_named(name: str) -> None:
    meta = metadata_from_blocks(block(HOSTILE[name]))
    assert meta is not None and meta.problems, name
    assert all(isinstance(p, str) and "\n" not in p for p in meta.problems)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"\\u001b[31mEVIL\\n": NaN}',  # a key that fails, holding an escape and a newline
        b'{"\\u001b[2J": 1, "\\u001b[2J": 2}',  # a key given twice
        b'{"\\u009b2J\\u202e": [Infinity]}',  # C1 CSI and a right-to-left override
    ],
)
def test_keys_named_in_problems_are_never_raw_control_characters(payload: bytes) -> None:
    """Problems are printed on the terminal (stderr, the summary's integrity column): a key from
    the block is quoted with its control characters escaped, not passed to the terminal."""
    meta = metadata_from_blocks(block(payload))
    assert meta is not None and meta.problems
    assert all(p.isprintable() for p in meta.problems), meta.problems
    assert any("\\x1b" in p or "\\x9b" in p for p in meta.problems), meta.problems


def test_depth_is_measured_without_recursion_and_strings_do_not_count() -> None:
    deep = parse_metadata_payload(METADATA_MAGIC + b"[" * 100_000 + b"]" * 100_000)
    assert deep is not None and deep.data is None
    assert deep.problems == [f"block is nested 100000 deep (at most {MAX_DEPTH})"]
    quoted = b'{"label": "' + b"[" * 500 + b'\\"{{{"}'
    ok = parse_metadata_payload(METADATA_MAGIC + quoted)
    assert ok is not None and ok.problems == [] and ok.data == {"label": "[" * 500 + '"{{{'}


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("bus", 0, "out of range 1..255"),
        ("bus", 256, "out of range 1..255"),
        ("bus", True, "not an integer"),
        ("device", 128, "out of range 1..127"),
        ("link_speed", "ultra", "is not one of"),
        ("model", "m" * 256, "256 characters"),
        ("model", "../../etc/passwd", "is a path"),
        ("model", "conv\x1b[2J", "control characters"),
        ("model", "conv\x9b2J", "control characters"),  # CSI as one C1 character
        ("label", "usb\u202e3", "control characters"),  # right-to-left override
        ("label", "usb\u20283", "control characters"),  # line separator
        ("model", "", "0 characters"),
        ("model_path", "/dev/zero", "does not name a .tflite"),
        ("model_path", "/m\0.tflite", "control characters"),
        ("model_sha256", "xyz", "64 lowercase hex"),
        ("label", 5, "not a string"),
        ("cpu_baseline_s", -1.0, "out of range"),
        ("model_summary", {"cached_bytes": -5}, "cached_bytes is out of range"),
    ],
)
def test_each_field_is_checked(field: str, value: object, why: str) -> None:
    good = {"model": "conv_50", "bus": 2, "device": 4, "link_speed": "super", "label": "usb3"}
    meta = CaptureMetadata.from_json({**good, field: value})
    assert len(meta.problems) == 1 and why in meta.problems[0], meta.problems
    assert meta.problems[0].startswith(field)
    kept = {k: getattr(meta, k) for k in good if k != field}
    assert kept == {k: v for k, v in good.items() if k != field}  # only the bad field is dropped
    assert getattr(meta, field, None) is None and field not in meta.extra


def test_invokes_are_bounded_int_pairs() -> None:
    meta = CaptureMetadata.from_json(
        {
            "invokes": [
                {"index": 0, "start_ns": 10, "end_ns": 20},
                {"index": 1, "start_ns": 30, "end_ns": 25},  # ends before it starts
                {"index": 2, "start_ns": -1, "end_ns": 5},
                {"index": 3, "start_ns": 40, "end_ns": 50, "warmup": "yes"},
                {"index": 4, "start_ns": 60, "end_ns": 70, "warmup": True},
            ]
        }
    )
    assert [(i.index, i.warmup) for i in meta.invokes] == [(0, False), (4, True)]
    assert meta.problems == ["invokes: 3 of 5 dropped (not index, start_ns <= end_ns)"]
    assert CaptureMetadata.from_json({"invokes": {"a": 1}}).problems == [
        "invokes: not a list (object)"
    ]


def test_what_the_runner_writes_passes_unchanged() -> None:
    meta = CaptureMetadata(
        model="conv_300",
        model_path="/home/me/models/conv_300_edgetpu.tflite",
        model_sha256="ab" * 32,
        label="usb3",
        link_speed="super",
        bus=2,
        device=4,
        invokes=[InvokeTiming(0, 10, 20, warmup=True), InvokeTiming(1, 30, 40)],
        extra={"model_summary": {"cached_bytes": 5, "streamed_bytes": 0}, "cpu_baseline_s": 0.5},
    )
    back = metadata_from_blocks([(METADATA_PEN, encode_metadata(meta))])
    assert back == meta and back.problems == []


def test_null_fields_are_not_known_not_bad() -> None:
    """The capture runner writes null where it has no value (model_summary without a compiled
    model, bus before the device was found): absent, not a problem to report."""
    payload = METADATA_MAGIC + json.dumps(
        {"usbtrace_metadata": 1, "model": None, "bus": None, "link_speed": None,
         "model_summary": None, "label": "usb2"}
    ).encode()  # fmt: skip
    meta = metadata_from_blocks([(METADATA_PEN, payload)])
    assert meta is not None
    assert meta.problems == []
    assert (meta.model, meta.bus, meta.link_speed, meta.label) == (None, None, None, "usb2")
    assert "model_summary" not in meta.extra


def test_summary_reports_dropped_fields_in_integrity(tmp_path: Path) -> None:
    path = capture_with_block(tmp_path / "c.pcapng", HOSTILE["huge-int"])
    (s,) = summarize_file(path)
    assert s.metadata is not None and s.metadata.label == "x"
    assert [p for p in s.integrity.problems if p.startswith("metadata: ")] == [
        "metadata: dropped bus is not an integer (an integer of 5000 digits)"
    ]


def test_model_name_from_metadata_is_never_opened_as_a_path(tmp_path: Path, monkeypatch) -> None:
    """A name that is a path is dropped; a long one never reaches the file system."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sneaky.tflite").write_bytes(b"not a model")
    path = tmp_path / "c.pcapng"
    capture_with_block(path, json.dumps({"model": "./sneaky.tflite"}).encode())
    (s,) = summarize_file(path)
    assert s.model is None and s.reconciliation is None
    assert any("model is a path" in p for p in s.integrity.problems)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "usbtrace", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_hostile_files_do_not_stop_a_batch(tmp_path: Path, jobs: str) -> None:
    """One warning line per bad file, every file still in the output, no traceback."""
    files = [capture_with_block(tmp_path / f"{n}.pcapng", HOSTILE[n]) for n in sorted(HOSTILE)]
    good = tmp_path / "good.pcapng"
    capture_with_block(good, b'{"label": "fine"}')
    result = run_cli("summarize", "--json", "--jobs", jobs, *map(str, files), str(good))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert len(doc["captures"]) == len(files) + 1
    lines = result.stderr.splitlines()
    for f in files:
        mine = [line for line in lines if line.startswith(f"usbtrace: {f}: metadata: dropped ")]
        assert len(mine) == 1, (f, lines)
    assert not any(str(good) in line for line in lines)
    by_file = {c["file"]: c["summary"]["integrity"] for c in doc["captures"]}
    assert by_file[str(good)]["ok"]
    assert all(not by_file[str(f)]["ok"] for f in files)


def test_append_then_read_round_trip(tmp_path: Path) -> None:
    path = capture_with_block(tmp_path / "c.pcapng", b'{"label": "a"}')
    append_metadata(str(path), CaptureMetadata(label="b", bus=3))
    (s,) = summarize_file(path)
    assert s.metadata is not None and (s.metadata.label, s.metadata.bus) == ("b", 3)
    assert s.integrity.ok, s.integrity.problems
