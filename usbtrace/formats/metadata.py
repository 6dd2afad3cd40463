"""usbtrace's own metadata inside a pcapng file.

The capture runner appends one pcapng Custom Block (type 0x00000BAD, "may be copied") after the
blocks dumpcap wrote, so one file carries both the traffic and what produced it, and Wireshark
still opens it (readers skip custom blocks they do not know). The block's Private Enterprise Number
is 32473, the number RFC 5612 sets aside for documentation and examples: usbtrace has no PEN of its
own, and a reserved example number cannot collide with a real vendor's blocks. The payload is the
magic ``USBTRACE-META\\0`` followed by UTF-8 JSON (an object; see ``CaptureMetadata``). When a file
holds several such blocks, later keys override earlier ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from usbtrace.formats.pcapng_writer import PcapngWriter

METADATA_PEN = 32473
METADATA_MAGIC = b"USBTRACE-META\0"
METADATA_VERSION = 1


@dataclass
class InvokeTiming:
    """One host-side ``invoke()``; times are CLOCK_REALTIME nanoseconds, the clock usbmon uses."""

    index: int
    start_ns: int
    end_ns: int
    warmup: bool = False


@dataclass
class CaptureMetadata:
    """What the capture runner knows about a capture. Unknown keys survive a round trip."""

    model: str | None = None  # catalog name, e.g. "conv_300"
    model_path: str | None = None
    model_sha256: str | None = None
    label: str | None = None
    link_speed: str | None = None  # "super" | "high" | "full" | "low"
    bus: int | None = None
    device: int | None = None
    invokes: list[InvokeTiming] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["usbtrace_metadata"] = METADATA_VERSION
        for key in ("model", "model_path", "model_sha256", "label", "link_speed", "bus", "device"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.invokes:
            out["invokes"] = [
                {"index": i.index, "start_ns": i.start_ns, "end_ns": i.end_ns, "warmup": i.warmup}
                for i in self.invokes
            ]
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaptureMetadata:
        # The JSON comes from a file: a known key whose value has the wrong type (or an invoke
        # that is not an object of integers) is dropped rather than trusted. Found by fuzzing:
        # `"invokes": null`, `"model": 1.5` and the like raised TypeError/ValueError deep in
        # summarize.
        known = {"model", "model_path", "model_sha256", "label", "link_speed", "bus", "device"}
        meta = cls(**{k: data[k] for k in known if k in data and _typed(k, data[k])})
        raw = data.get("invokes")
        invokes = (_invoke(i) for i in (raw if isinstance(raw, list) else []))
        meta.invokes = [i for i in invokes if i is not None]
        meta.extra = {
            k: v for k, v in data.items() if k not in known | {"invokes", "usbtrace_metadata"}
        }
        return meta


_INT_KEYS = ("bus", "device")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


def _typed(key: str, value: Any) -> bool:
    return _is_int(value) if key in _INT_KEYS else isinstance(value, str)


def _invoke(item: Any) -> InvokeTiming | None:
    if not isinstance(item, dict):
        return None
    values = [item.get(k) for k in ("index", "start_ns", "end_ns")]
    if not all(_is_int(v) for v in values):
        return None
    return InvokeTiming(*values, warmup=bool(item.get("warmup", False)))


def encode_metadata(meta: CaptureMetadata) -> bytes:
    return METADATA_MAGIC + json.dumps(meta.to_json(), sort_keys=True).encode()


def decode_metadata_payload(payload: bytes) -> dict[str, Any] | None:
    """The JSON object in a custom block's payload (after the PEN); None if not ours."""
    if not payload.startswith(METADATA_MAGIC):
        return None
    try:
        data = json.loads(payload[len(METADATA_MAGIC) :].rstrip(b"\0").decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def merge_metadata(payloads: list[dict[str, Any]]) -> CaptureMetadata | None:
    if not payloads:
        return None
    merged: dict[str, Any] = {}
    for p in payloads:
        merged.update(p)
    return CaptureMetadata.from_json(merged)


def append_metadata(path: str, meta: CaptureMetadata) -> None:
    """Append a metadata block to a pcapng file; the traffic already in it is untouched."""
    with open(path, "ab") as stream:
        PcapngWriter(stream, section=False).custom(METADATA_PEN, encode_metadata(meta))
