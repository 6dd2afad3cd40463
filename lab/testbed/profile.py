"""Request profiles: which logical transfers make up each request the emulated device serves.

A profile is a list of request shapes, each an ordered list of (tag, length) bulk-OUT transfers
plus the number of output bytes the device returns on 0x81 when it is done. The emulator matches
what the host sends against these shapes to know when a request is complete.

Profiles come from the built-in table (``conv_50``, ``dense_300``: the shapes of the two complete
real captures), from a JSON file (``to_json``/``from_json``), from a recorded capture (through the
decoder), or from a compiled model's inspect summary.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usbtrace.edgetpu.constants import Tag
from usbtrace.errors import InputError

KIND_CACHING = "caching"
KIND_INFERENCE = "inference"


@dataclass(frozen=True)
class TransferShape:
    tag: Tag
    length: int


@dataclass(frozen=True)
class RequestShape:
    kind: str  # KIND_CACHING or KIND_INFERENCE
    transfers: tuple[TransferShape, ...]
    output_bytes: int

    @property
    def key(self) -> tuple[tuple[int, int], ...]:
        return tuple((int(t.tag), t.length) for t in self.transfers)

    def bytes_by_tag(self) -> dict[Tag, int]:
        out: dict[Tag, int] = {}
        for t in self.transfers:
            out[t.tag] = out.get(t.tag, 0) + t.length
        return out


@dataclass(frozen=True)
class EmulatorProfile:
    name: str
    requests: tuple[RequestShape, ...]

    @property
    def default_output_bytes(self) -> int:
        outputs = [r.output_bytes for r in self.requests if r.kind == KIND_INFERENCE]
        return max(outputs, default=0)

    def session(self, count: int) -> list[RequestShape]:
        """What a host runs for ``count`` inferences: each caching request once, then inferences."""
        caching = [r for r in self.requests if r.kind == KIND_CACHING]
        inference = [r for r in self.requests if r.kind == KIND_INFERENCE]
        if not inference:
            return caching
        return caching + [inference[i % len(inference)] for i in range(count)]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "requests": [
                {
                    "kind": r.kind,
                    "transfers": [[int(t.tag), t.length] for t in r.transfers],
                    "output_bytes": r.output_bytes,
                }
                for r in self.requests
            ],
        }

    @classmethod
    def from_json(cls, data: Any, source: str | None = None) -> EmulatorProfile:
        try:
            requests = tuple(
                RequestShape(
                    kind=str(r["kind"]),
                    transfers=tuple(
                        TransferShape(Tag(int(tag)), int(n)) for tag, n in r["transfers"]
                    ),
                    output_bytes=int(r.get("output_bytes", 0)),
                )
                for r in data["requests"]
            )
            profile = cls(name=str(data.get("name", source or "profile")), requests=requests)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(source, f"not a request profile ({exc})") from None
        profile.check(source)
        return profile

    def check(self, source: str | None = None) -> None:
        if not self.requests:
            raise InputError(source, "the profile has no requests")
        for r in self.requests:
            if r.kind not in (KIND_CACHING, KIND_INFERENCE):
                raise InputError(source, f"unknown request kind {r.kind!r}")
            if not r.transfers or any(t.length <= 0 for t in r.transfers):
                raise InputError(source, f"a {r.kind} request needs transfers of positive length")
            if r.output_bytes < 0:
                raise InputError(source, "output_bytes must not be negative")


def _shape(kind: str, transfers: Iterable[tuple[Tag, int]], output: int) -> RequestShape:
    return RequestShape(kind, tuple(TransferShape(t, n) for t, n in transfers), output)


INS, INP, PAR = Tag.INSTRUCTIONS, Tag.INPUT, Tag.PARAMETERS

# Shapes of the two complete real captures (protocol reference §9.2, §9.3): conv x50 caches all its
# parameters; dense x300 streams 2.8 MiB of parameters with every inference.
BUILTIN_PROFILES = {
    "conv_50": EmulatorProfile(
        "conv_50",
        (
            _shape(KIND_CACHING, [(INS, 7_856), (PAR, 2_471_488)], 0),
            _shape(KIND_INFERENCE, [(INS, 93_360), (INP, 16)], 8),
        ),
    ),
    "dense_300": EmulatorProfile(
        "dense_300",
        (
            _shape(KIND_CACHING, [(INS, 21_168), (PAR, 1_040_896)], 0),
            _shape(
                KIND_INFERENCE,
                [
                    (INS, 262_128),
                    (INP, 16),
                    (PAR, 1_038_336),
                    (INS, 261_952),
                    (PAR, 1_783_808),
                    (INS, 19_760),
                    (PAR, 121_472),
                ],
                8,
            ),
        ),
    ),
}


def load_profile(spec: str) -> EmulatorProfile:
    """A built-in name, a ``.json`` profile, or a capture file (``.pcapng``/``.pcap``)."""
    if spec in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[spec]
    path = Path(spec)
    if not path.exists():
        names = ", ".join(sorted(BUILTIN_PROFILES))
        raise InputError(spec, f"no such file, and not a built-in profile ({names})")
    if path.suffix in (".pcapng", ".pcap"):
        return profile_from_capture(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"cannot read as JSON ({exc})") from None
    if isinstance(data, dict) and "requests" in data:
        return EmulatorProfile.from_json(data, str(path))
    return profile_from_model_summary(data, source=str(path))


def profile_from_requests(
    name: str, requests: Sequence[tuple[str, Sequence[tuple[int, int]], int]]
) -> EmulatorProfile:
    """Distinct request shapes in first-seen order, from (kind, [(tag, length)], output)."""
    seen: dict[tuple[str, tuple[tuple[int, int], ...]], RequestShape] = {}
    for kind, transfers, output in requests:
        shape = _shape(kind, [(Tag(t), n) for t, n in transfers], output)
        seen.setdefault((kind, shape.key), shape)
    profile = EmulatorProfile(name, tuple(seen.values()))
    profile.check(name)
    return profile


def profile_from_capture(path: Path) -> EmulatorProfile:
    """The request shapes of a recorded capture (needs the capture decoder)."""
    from lab.testbed.capture_profile import requests_of_capture

    return profile_from_requests(path.stem, requests_of_capture(path))


def profile_from_model_summary(data: Any, source: str | None = None) -> EmulatorProfile:
    """Request shapes from a compiled model's summary (the inspector's JSON).

    Accepted form: ``{"name": ..., "executables": [{"type": "parameter_caching" |
    "execution_only" | "stand_alone", "instruction_bytes": [..], "parameter_bytes": N,
    "input_bytes": N, "output_bytes": N}, ...]}``. Without DMA hints the order is the common one:
    instructions, input, parameters (one PARAMETERS transfer per executable).
    """
    try:
        executables = data["executables"]
        name = str(data.get("name", source or "model"))
        shapes = []
        kinds = {str(e["type"]).lower() for e in executables}
        stand_alone_only = len(executables) == 1
        for exe in executables:
            kind = str(exe["type"]).lower()
            if kind == "stand_alone" and not stand_alone_only and "parameter_caching" in kinds:
                continue  # PC + EO + SA: the runtime uses SA without caching; keep PC + EO here
            transfers: list[tuple[Tag, int]] = [(INS, int(n)) for n in exe["instruction_bytes"]]
            if kind == "parameter_caching":
                transfers.append((PAR, int(exe["parameter_bytes"])))
                shapes.append(_shape(KIND_CACHING, transfers, 0))
                continue
            if int(exe.get("input_bytes", 0)):
                transfers.insert(1, (INP, int(exe["input_bytes"])))
            if int(exe.get("parameter_bytes", 0)):
                transfers.append((PAR, int(exe["parameter_bytes"])))
            shapes.append(_shape(KIND_INFERENCE, transfers, int(exe.get("output_bytes", 0))))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(source, f"not a model summary or request profile ({exc})") from None
    profile = EmulatorProfile(name, tuple(shapes))
    profile.check(source)
    return profile
