"""usbtrace's own metadata inside a pcapng file, read as untrusted input.

The capture runner appends one pcapng Custom Block (type 0x00000BAD, "may be copied") after the
blocks dumpcap wrote, so one file carries both the traffic and what produced it, and Wireshark
still opens it (readers skip custom blocks they do not know). The block's Private Enterprise Number
is 32473, the number RFC 5612 sets aside for documentation and examples: usbtrace has no PEN of its
own, and a reserved example number cannot collide with a real vendor's blocks. The payload is the
magic ``USBTRACE-META\\0`` followed by UTF-8 JSON (an object; see ``CaptureMetadata``). When a file
holds several such blocks, later keys override earlier ones.

Anyone can write such a block, so it is parsed with limits (size, nesting depth, digits of an
integer; no NaN or Infinity) and every known field is checked against ``SCHEMA`` (type, range,
length). A field that fails is dropped and named in ``CaptureMetadata.problems``, which the
summary reports; nothing in a block can raise. Found by fuzzing and by hand: JSON nested 2,000
deep raised RecursionError, an integer of 5,000 digits ValueError (Python's int-string limit), a
300-character model name OSError when it was looked up as a file.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from usbtrace.formats.pcapng_writer import PcapngWriter
from usbtrace.usb.link import LINK_SPEEDS

METADATA_PEN = 32473
METADATA_MAGIC = b"USBTRACE-META\0"
METADATA_VERSION = 1

# Limits of what is parsed at all. The runner writes a few KiB plus ~80 bytes per invoke, so
# 200,000 invokes fit (the parsed objects then take some 100 MB); nesting is 3 deep in practice;
# int64 nanoseconds have 19 digits.
MAX_METADATA_BYTES = 16 << 20
MAX_DEPTH = 32
MAX_INT_DIGITS = 20
MAX_INVOKES = 250_000
MAX_TEXT = 255  # model, model_path, label: one file-name component at most
MAX_SECONDS = 1e6  # cpu_baseline_s: longer than 11 days per inference is not a measurement
MAX_BYTES = 1 << 40  # byte counts of a model summary


class _Rejected:
    """What the JSON parser puts where a value broke a limit; never valid for any field."""

    def __init__(self, why: str) -> None:
        self.why = why

    def __repr__(self) -> str:
        return f"<{self.why}>"


@dataclass
class InvokeTiming:
    """One host-side ``invoke()``; times are CLOCK_REALTIME nanoseconds, the clock usbmon uses."""

    index: int
    start_ns: int
    end_ns: int
    warmup: bool = False


@dataclass
class CommandRun:
    """The user's own command a capture wrapped (``usbtrace capture -- CMD``).

    ``exit_status`` is as a shell reports it (128+N when signal N ended it); times are
    CLOCK_REALTIME ns; ``run_time_s`` is measured on the monotonic clock.
    """

    argv: list[str]
    start_ns: int
    end_ns: int | None = None
    exit_status: int | None = None
    run_time_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class CaptureMetadata:
    """What the capture runner knows about a capture. Unknown keys survive a round trip.

    ``problems`` lists what was dropped when reading it (one short phrase per field or block);
    it is not written back.
    """

    model: str | None = None  # catalog name or model file stem, e.g. "conv_300"
    model_path: str | None = None
    model_sha256: str | None = None
    label: str | None = None
    link_speed: str | None = None  # one of LINK_SPEEDS
    bus: int | None = None
    device: int | None = None
    invokes: list[InvokeTiming] = field(default_factory=list)
    # what ran during the capture: "model" (a backend's invokes), "command" (the user's own
    # program: no host invoke timestamps) or "attach" (nothing started by usbtrace)
    mode: str | None = None
    command: CommandRun | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def names_device(self, bus: int, address: int) -> bool:
        """Whether the device at ``bus``.``address`` is the one the capture runner found and
        ran its workload on (``bus``, ``device``), or could be: metadata that names no device
        describes any. The model, the invokes and the model's figures are that device's only;
        another Edge TPU in the same capture ran something else."""
        return self.bus in (None, bus) and self.device in (None, address)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["usbtrace_metadata"] = METADATA_VERSION
        for key in _FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.invokes:
            out["invokes"] = [
                {"index": i.index, "start_ns": i.start_ns, "end_ns": i.end_ns, "warmup": i.warmup}
                for i in self.invokes
            ]
        if self.command is not None:
            out["command"] = self.command.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaptureMetadata:
        """Every known field checked against ``SCHEMA``; a bad one is dropped and named."""
        meta = cls()
        for key, check in SCHEMA.items():
            if data.get(key) is None:
                continue  # absent, or null: JSON's "not known" (the runner writes nulls)
            why = check(data[key])
            if why is None:
                setattr(meta, key, data[key])
            else:
                meta.problems.append(f"{key} {why}")
        meta.invokes, why = _invokes(data.get("invokes"))
        if why:
            meta.problems.append(f"invokes: {why}")
        meta.command, why = _command(data.get("command"))
        if why:
            meta.problems.append(f"command {why}")
        for key, value in data.items():
            if key in SCHEMA or key in ("invokes", "command", "usbtrace_metadata"):
                continue
            if value is None and key in EXTRA_SCHEMA:
                continue  # a known optional field the writer had no value for
            why = EXTRA_SCHEMA[key](value) if key in EXTRA_SCHEMA else _plain(value)
            if why is None:
                meta.extra[key] = value
            else:
                meta.problems.append(f"{_short(key)} {why}")
        return meta


# -- the schema: one check per known key, returning None (valid) or why not --------------------

_SEPARATOR = re.compile(r"[/\\]")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return f"is not an integer ({_kind(value)})"
        return None if lo <= value <= hi else f"is out of range {lo}..{hi}"

    return check


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"is not a string ({_kind(value)})"
    if not 0 < len(value) <= MAX_TEXT:
        return f"has {len(value)} characters (1..{MAX_TEXT})"
    if not value.isprintable():
        # the text is printed: C0/C1 controls carry terminal escapes, and format characters
        # (U+202E turns the rest of a table line around) and line separators are honoured too
        return "holds control characters"
    return None


def _name(value: Any) -> str | None:
    """A model name is looked up in the catalog, never opened: no path in it."""
    why = _text(value)
    if why is None and (_SEPARATOR.search(value) or value in (".", "..")):
        return "is a path, not a model name"
    return why


def _model_path(value: Any) -> str | None:
    """Only ever a .tflite: no device, FIFO or /proc file is opened because a block says so."""
    why = _text(value)
    if why is None and not value.endswith(".tflite"):
        return "does not name a .tflite file"
    return why


def _sha256(value: Any) -> str | None:
    ok = isinstance(value, str) and _SHA256.fullmatch(value)
    return None if ok else "is not 64 lowercase hex digits"


MODES = ("model", "command", "attach")


def _one_of(values: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in values else f"is not one of {', '.join(values)}"

    return check


def _link_speed(value: Any) -> str | None:
    return None if value in LINK_SPEEDS else f"is not one of {', '.join(LINK_SPEEDS)}"


SCHEMA: dict[str, Callable[[Any], str | None]] = {
    "model": _name,
    "model_path": _model_path,
    "model_sha256": _sha256,
    "label": _name,  # labels name files and plot series
    "link_speed": _link_speed,
    "bus": _int_in(1, 255),  # usbmon's bus numbers
    "device": _int_in(1, 127),  # USB device addresses
    "mode": _one_of(MODES),
}
_FIELDS = tuple(SCHEMA)


def _seconds(value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"is not a number ({_kind(value)})"
    return None if 0 < value <= MAX_SECONDS else f"is out of range (0, {MAX_SECONDS:g}] s"


def _model_summary(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"is not an object ({_kind(value)})"
    for key in ("cached_bytes", "streamed_bytes", "instruction_bytes"):
        if key in value and value[key] is not None:
            why = _int_in(0, MAX_BYTES)(value[key])
            if why:
                return f"{key} {why}"
    return _plain(value)


# keys the reports read from ``extra``
EXTRA_SCHEMA: dict[str, Callable[[Any], str | None]] = {
    "model_summary": _model_summary,
    "cpu_baseline_s": _seconds,
}


def _plain(value: Any) -> str | None:
    """Any other key is kept as it is, unless the parser had to reject part of it."""
    stack = [value]
    while stack:  # no recursion: the depth is bounded by the parser, but stay flat anyway
        v = stack.pop()
        if isinstance(v, _Rejected):
            return f"holds {v.why}"
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _invokes(raw: Any) -> tuple[list[InvokeTiming], str | None]:
    if raw is None:
        return [], None
    if not isinstance(raw, list):
        return [], f"not a list ({_kind(raw)})"
    if len(raw) > MAX_INVOKES:
        return [], f"{len(raw)} entries, more than {MAX_INVOKES}"
    good = [i for i in map(_invoke, raw) if i is not None]
    bad = len(raw) - len(good)
    return good, (f"{bad} of {len(raw)} dropped (not index, start_ns <= end_ns)" if bad else None)


MAX_ARGS = 4096


def _command(raw: Any) -> tuple[CommandRun | None, str | None]:
    """The wrapped command: argv strings, integer CLOCK_REALTIME times, status, seconds."""
    if raw is None:
        return None, None
    if not isinstance(raw, dict):
        return None, f"is not an object ({_kind(raw)})"
    argv, start = raw.get("argv"), raw.get("start_ns")
    if not isinstance(argv, list) or not 0 < len(argv) <= MAX_ARGS:
        return None, f"argv is not a list of 1..{MAX_ARGS} strings"
    if not all(isinstance(a, str) and len(a) <= 1 << 16 for a in argv):
        return None, "argv holds something other than strings of at most 64 KiB"
    if not isinstance(start, int) or not _is_int(start) or not 0 <= start < 2**63:
        return None, "start_ns is not a time in ns"
    run = CommandRun(argv=argv, start_ns=start)
    end, status, seconds = raw.get("end_ns"), raw.get("exit_status"), raw.get("run_time_s")
    if end is not None and (not _is_int(end) or not start <= end < 2**63):
        return run, "end_ns is not a time in ns after start_ns"
    run.end_ns = end
    if status is not None and (not _is_int(status) or not 0 <= status <= 255):
        return run, "exit_status is not 0..255"
    run.exit_status = status
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    if seconds is not None and not (number and 0 <= seconds <= MAX_SECONDS):
        return run, f"run_time_s is not a number of seconds in 0..{MAX_SECONDS:g}"
    run.run_time_s = seconds
    return run, None


def _invoke(item: Any) -> InvokeTiming | None:
    if not isinstance(item, dict):
        return None
    index, start, end = (item.get(k) for k in ("index", "start_ns", "end_ns"))
    warmup = item.get("warmup", False)
    if not (
        isinstance(index, int)
        and isinstance(start, int)
        and isinstance(end, int)
        and not any(isinstance(v, bool) for v in (index, start, end))
        and isinstance(warmup, bool)
    ):
        return None
    if not (0 <= index < 2**31 and 0 <= start <= end < 2**63):
        return None
    return InvokeTiming(index, start, end, warmup=warmup)


def _kind(value: Any) -> str:
    if isinstance(value, _Rejected):
        return value.why
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}.get(
        type(value), "object" if isinstance(value, dict) else "null"
    )


def _short(key: str) -> str:
    """A key as a problem names it. Problems are printed to the terminal, so a key holding
    control characters (an escape sequence, a newline) is quoted as repr() escapes it, never
    shown raw."""
    if len(key) > 40:
        return repr(key[:40] + "…")
    return key if key.isprintable() else repr(key)


# -- parsing with limits ---------------------------------------------------------------------------

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


_DEPTH_CHUNK = 1 << 20


def _max_depth(text: bytes) -> int:
    """Deepest [ / { nesting, counted on arrays in 1 MiB steps (no recursion; strings skipped)."""
    b = np.frombuffer(_STRING.sub(b'""', text), dtype=np.uint8)
    deepest = depth = 0
    for i in range(0, len(b), _DEPTH_CHUNK):
        low = b[i : i + _DEPTH_CHUNK] | 0x20  # "[" -> "{", "]" -> "}", and nothing else does
        brackets = low[(low == ord("{")) | (low == ord("}"))]
        steps = np.where(brackets == ord("{"), 1, -1).cumsum() + depth
        if len(steps):
            deepest, depth = max(deepest, int(steps.max())), int(steps[-1])
    return deepest


def _parse_int(digits: str) -> int | _Rejected:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        return _Rejected(f"an integer of {len(digits)} digits")
    return int(digits)


def _parse_float(text: str) -> float | _Rejected:
    value = float(text)
    return value if math.isfinite(value) else _Rejected("a number out of range")


def _parse_constant(name: str) -> _Rejected:
    return _Rejected(name)  # NaN, Infinity, -Infinity: not JSON


class _Duplicates(dict):  # type: ignore[type-arg]
    """An object that remembers the keys it held twice (the later value wins, as in JSON.parse)."""

    repeated: list[str]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = _Duplicates(pairs)
    if len(out) < len(pairs):
        seen: set[str] = set()
        out.repeated = [k for k, _ in pairs if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    return out


@dataclass
class MetadataBlock:
    """One metadata block's JSON object (None when none could be read) and what was wrong."""

    data: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


def parse_metadata_payload(payload: bytes) -> MetadataBlock | None:
    """A custom block's payload (after the PEN) read with limits; None if the block is not ours."""
    if not payload.startswith(METADATA_MAGIC):
        return None
    body = payload[len(METADATA_MAGIC) :].rstrip(b"\0")
    if len(body) > MAX_METADATA_BYTES:
        return MetadataBlock(None, [f"block of {len(body)} bytes, over {MAX_METADATA_BYTES}"])
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return MetadataBlock(None, [f"block is not UTF-8 (at byte {exc.start})"])
    depth = _max_depth(body)
    if depth > MAX_DEPTH:
        return MetadataBlock(None, [f"block is nested {depth} deep (at most {MAX_DEPTH})"])
    try:
        data = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
            object_pairs_hook=_pairs,
        )
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        return MetadataBlock(None, [f"block is not JSON ({str(exc)[:80]})"])
    if not isinstance(data, dict):
        return MetadataBlock(None, [f"block is not a JSON object ({_kind(data)})"])
    problems = [f"{_short(k)} given twice" for k in getattr(data, "repeated", [])]
    return MetadataBlock(dict(data), problems)


def decode_metadata_payload(payload: bytes) -> dict[str, Any] | None:
    """The JSON object in a custom block's payload (after the PEN); None: not ours, unreadable."""
    block = parse_metadata_payload(payload)
    return None if block is None else block.data


def merge_metadata(
    payloads: list[dict[str, Any]], problems: Iterable[str] = ()
) -> CaptureMetadata | None:
    """The blocks' objects merged in file order (later keys win), then checked by the schema."""
    problems = list(problems)
    if not payloads and not problems:
        return None
    merged: dict[str, Any] = {}
    for p in payloads:
        merged.update(p)
    meta = CaptureMetadata.from_json(merged)
    meta.problems[:0] = problems
    return meta


def metadata_from_blocks(blocks: Iterable[tuple[int, bytes]]) -> CaptureMetadata | None:
    """The capture's metadata from its custom blocks ((PEN, payload) in file order)."""
    payloads: list[dict[str, Any]] = []
    problems: list[str] = []
    for pen, payload in blocks:
        block = parse_metadata_payload(payload) if pen == METADATA_PEN else None
        if block is None:
            continue
        problems += block.problems
        if block.data is not None:
            payloads.append(block.data)
    return merge_metadata(payloads, problems)


def encode_metadata(meta: CaptureMetadata) -> bytes:
    return METADATA_MAGIC + json.dumps(meta.to_json(), sort_keys=True).encode()


def append_metadata(path: str, meta: CaptureMetadata) -> None:
    """Append a metadata block to a pcapng file; the traffic already in it is untouched."""
    with open(path, "ab") as stream:
        PcapngWriter(stream, section=False).custom(METADATA_PEN, encode_metadata(meta))


def trailing_invokes(
    found: tuple[list[tuple[int, bytes]], bool] | None,
) -> list[InvokeTiming] | None:
    """The host invokes of the metadata at the end of a file, known before the file streams
    (``capture.trailing_custom_blocks``): those of the last of these blocks that has an
    ``invokes`` key, as ``merge_metadata`` takes them (later keys win). [] when the complete run
    of trailing blocks has none; None when it cannot be known here."""
    if found is None:
        return None
    blocks, complete = found
    for pen, payload in reversed(blocks):
        block = parse_metadata_payload(payload) if pen == METADATA_PEN else None
        if block is not None and block.data is not None and "invokes" in block.data:
            return _invokes(block.data["invokes"])[0]
    return [] if complete else None
