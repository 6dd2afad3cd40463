"""The USB traffic a compiled model predicts, and its reconciliation with what a capture shows.

``ExpectedTraffic.from_summary`` turns a ``ModelSummary`` into the bytes of the two request kinds
(protocol reference §7-§8): the parameter-caching request (the PARAMETER_CACHING executable's
instruction bitstreams and parameters, sent once) and every inference (the EXECUTION_ONLY or
stand-alone executable's bitstreams, input layers, parameters and output layers). The DMA hints
give the exact (tag, length) order of the bulk-OUT transfers.

Output padding rule: the device returns each output layer rounded up to a multiple of 8 bytes at
most (the study's 1-byte output arrives as 8 bytes). An observed output is accepted when it lies
between the model's output bytes and the sum over output layers of each layer's bytes rounded up
to 8. Every other field must match exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from usbtrace.edgetpu.constants import OUTPUT_PAD_MULTIPLE, Tag
from usbtrace.models.inspect import ModelSummary, hint_sequence
from usbtrace.models.package import DmaDescriptorKind, DmaHintKind, Executable

RequestKind = Literal["inference", "parameter-caching"]
INFERENCE: RequestKind = "inference"
PARAMETER_CACHING: RequestKind = "parameter-caching"
FIELDS = ("instructions", "input", "parameters", "output")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def out_sequence(executable: Executable) -> list[tuple[int, int]]:
    """The (tag, length) of every bulk-OUT transfer the executable's hints ask for, in order."""
    sequence = []
    for hint in hint_sequence(executable):
        if hint.kind == DmaHintKind.INSTRUCTION:
            sizes = executable.instruction_bitstream_bytes
            if 0 <= hint.index < len(sizes):
                sequence.append((int(Tag.INSTRUCTIONS), sizes[hint.index]))
        elif hint.kind == DmaHintKind.DESCRIPTOR and not hint.outfeed:
            if hint.descriptor == DmaDescriptorKind.PARAMETER:
                sequence.append((int(Tag.PARAMETERS), hint.size_bytes))
            elif hint.descriptor in (DmaDescriptorKind.INPUT, DmaDescriptorKind.SCRATCH):
                sequence.append((int(Tag.INPUT), hint.size_bytes))
    return sequence


@dataclass
class ExpectedTraffic:
    cache_instruction_bytes: int = 0  # once, from the PARAMETER_CACHING executable; 0 when none
    cache_parameter_bytes: int = 0
    instruction_bytes: list[int] = field(default_factory=list)  # per inference, one per transfer
    input_bytes: int = 0
    parameter_bytes: int = 0  # streamed with every inference
    output_bytes: int = 0
    output_bytes_max: int = 0  # output_bytes with each output layer rounded up to 8
    sequence: list[tuple[int, int]] = field(default_factory=list)  # per inference (tag, length)
    cache_sequence: list[tuple[int, int]] = field(default_factory=list)
    deterministic: bool = True  # False when an executable's hints are not fully deterministic
    caching_tokens: list[int] = field(default_factory=list)

    @property
    def has_caching(self) -> bool:
        return self.cache_instruction_bytes + self.cache_parameter_bytes > 0

    @classmethod
    def from_summary(cls, summary: ModelSummary) -> ExpectedTraffic:
        if not summary.compiled:
            raise ValueError(f"{summary.file}: {summary.reason}")
        expected = cls()
        for use in summary.packages:
            main, caching = use.main, use.caching
            if main.dma_hints:
                sequence = out_sequence(main)
                expected.instruction_bytes += [n for tag, n in sequence if tag == Tag.INSTRUCTIONS]
            else:  # no hints: every bitstream once, in stored order
                expected.instruction_bytes += main.instruction_bitstream_bytes
            batch = main.batch_size
            expected.input_bytes += (
                sum(i.size_bytes * i.execution_count for i in main.inputs) * batch
            )
            expected.parameter_bytes += main.parameter_bytes
            outputs = [o.size_bytes * o.execution_count * batch for o in main.outputs]
            expected.output_bytes += sum(outputs)
            expected.output_bytes_max += sum(_round_up(o, OUTPUT_PAD_MULTIPLE) for o in outputs)
            expected.sequence.extend(out_sequence(main))
            expected.deterministic &= main.fully_deterministic
            if main.caching_token is not None:
                expected.caching_tokens.append(main.caching_token)
            if caching is not None:
                expected.cache_instruction_bytes += sum(caching.instruction_bitstream_bytes)
                expected.cache_parameter_bytes += caching.parameter_bytes
                expected.cache_sequence.extend(out_sequence(caching))
                expected.deterministic &= caching.fully_deterministic
        return expected

    def for_kind(self, kind: RequestKind) -> dict[str, tuple[int, int]]:
        """field -> (lowest, highest) accepted byte count for one request of this kind."""
        if kind == PARAMETER_CACHING:
            return {
                "instructions": (self.cache_instruction_bytes,) * 2,
                "input": (0, 0),
                "parameters": (self.cache_parameter_bytes,) * 2,
                "output": (0, 0),
            }
        instructions = sum(self.instruction_bytes)
        return {
            "instructions": (instructions, instructions),
            "input": (self.input_bytes, self.input_bytes),
            "parameters": (self.parameter_bytes, self.parameter_bytes),
            "output": (self.output_bytes, max(self.output_bytes, self.output_bytes_max)),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "cache_instruction_bytes": self.cache_instruction_bytes,
            "cache_parameter_bytes": self.cache_parameter_bytes,
            "instruction_bytes": list(self.instruction_bytes),
            "input_bytes": self.input_bytes,
            "parameter_bytes": self.parameter_bytes,
            "output_bytes": self.output_bytes,
            "output_bytes_max": self.output_bytes_max,
            "sequence": [list(item) for item in self.sequence],
            "cache_sequence": [list(item) for item in self.cache_sequence],
        }


@dataclass
class ObservedRequestBytes:
    """Bytes of one request as decoded from a capture (header lengths, 0x81 completions)."""

    kind: RequestKind
    instructions: int = 0
    input: int = 0
    parameters: int = 0
    output: int = 0
    sequence: list[tuple[int, int]] | None = None  # bulk-OUT (tag, length) in order, if known

    @classmethod
    def from_request(
        cls, request: RequestBytes, sequence: list[tuple[int, int]] | None = None
    ) -> ObservedRequestBytes:
        """From any object with ``kind``, ``instructions``, ``input``, ``parameters`` and
        ``output`` attributes (such as the analysis layer's per-request metrics)."""
        kind = str(request.kind)
        if kind not in (INFERENCE, PARAMETER_CACHING):
            raise ValueError(f"a model predicts inference and caching requests, not {kind!r}")
        return cls(
            kind=INFERENCE if kind == INFERENCE else PARAMETER_CACHING,
            instructions=int(request.instructions),
            input=int(request.input),
            parameters=int(request.parameters),
            output=int(request.output),
            sequence=sequence,
        )


class RequestBytes(Protocol):
    """What ``ObservedRequestBytes.from_request`` reads of a request."""

    @property
    def kind(self) -> object: ...
    @property
    def instructions(self) -> int: ...
    @property
    def input(self) -> int: ...
    @property
    def parameters(self) -> int: ...
    @property
    def output(self) -> int: ...


@dataclass(frozen=True)
class FieldCheck:
    field: str
    expected: int  # the model's figure (lowest accepted)
    expected_max: int  # highest accepted (differs only for padded output)
    observed: int

    @property
    def ok(self) -> bool:
        return self.expected <= self.observed <= self.expected_max

    @property
    def difference(self) -> int:
        """Observed minus the nearest accepted value; 0 when ok."""
        if self.observed < self.expected:
            return self.observed - self.expected
        if self.observed > self.expected_max:
            return self.observed - self.expected_max
        return 0

    def cell(self) -> str:
        """``ok`` or the signed difference, for a table cell."""
        return "ok" if self.ok else f"{self.difference:+d}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "expected": self.expected,
            "observed": self.observed,
            "ok": self.ok,
            "difference": self.difference,
        }
        if self.expected_max != self.expected:
            out["expected_max"] = self.expected_max
        return out


@dataclass
class Reconciliation:
    kind: RequestKind
    fields: dict[str, FieldCheck]
    sequence_ok: bool | None  # None: not checked (no observed sequence, or hints not deterministic)
    sequence_note: str = ""

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.fields.values()) and self.sequence_ok is not False

    def problems(self) -> list[str]:
        """One line per mismatch, for an integrity report."""
        lines = [
            f"{self.kind} {c.field}: {c.observed} bytes on the wire, model says {c.expected}"
            + (f"..{c.expected_max}" if c.expected_max != c.expected else "")
            for c in self.fields.values()
            if not c.ok
        ]
        if self.sequence_ok is False:
            lines.append(f"{self.kind} transfer order: {self.sequence_note}")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ok": self.ok,
            **{name: check.to_json() for name, check in self.fields.items()},
            "sequence": {"ok": self.sequence_ok, "note": self.sequence_note},
        }


def _compare_sequences(
    expected: list[tuple[int, int]], observed: list[tuple[int, int]]
) -> tuple[bool, str]:
    for i, (want, got) in enumerate(zip(expected, observed, strict=False)):
        if tuple(want) != tuple(got):
            return False, (
                f"transfer {i + 1} is (tag {got[0]}, {got[1]} B), "
                f"model says (tag {want[0]}, {want[1]} B)"
            )
    if len(expected) != len(observed):
        return False, f"{len(observed)} transfers, model says {len(expected)}"
    return True, f"{len(expected)} transfers in the model's order"


def reconcile(expected: ExpectedTraffic, observed: ObservedRequestBytes) -> Reconciliation:
    bounds = expected.for_kind(observed.kind)
    fields = {
        name: FieldCheck(name, low, high, int(getattr(observed, name)))
        for name, (low, high) in bounds.items()
    }
    sequence_ok: bool | None = None
    note = "not checked: no transfer order observed"
    if observed.sequence is not None:
        if not expected.deterministic:
            note = "not checked: the model's DMA hints are not fully deterministic"
        else:
            want = (
                expected.cache_sequence if observed.kind == PARAMETER_CACHING else expected.sequence
            )
            sequence_ok, note = _compare_sequences(want, observed.sequence)
    return Reconciliation(observed.kind, fields, sequence_ok, note)


@dataclass
class CaptureReconciliation:
    """Every request of one capture checked against one compiled model."""

    model: str
    results: list[tuple[int, Reconciliation]]  # (request index, result)
    skipped: list[int] = field(default_factory=list)  # requests of another kind

    @property
    def ok(self) -> bool:
        return all(result.ok for _, result in self.results)

    def problems(self) -> list[str]:
        return [
            f"request {index}: {line}"
            for index, result in self.results
            for line in result.problems()
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "requests": [{"index": index, **result.to_json()} for index, result in self.results],
            "skipped_requests": list(self.skipped),
            "problems": self.problems(),
        }


def reconcile_requests(
    summary: ModelSummary,
    requests: list[Any],
    sequences: dict[int, list[tuple[int, int]]] | None = None,
) -> CaptureReconciliation:
    """Reconcile every inference and parameter-caching request of a capture with a model.

    ``requests`` are objects with ``index``, ``kind``, ``instructions``, ``input``,
    ``parameters`` and ``output`` (the analysis layer's per-request metrics); ``sequences`` may
    give the bulk-OUT (tag, length) order per request index. Requests of any other kind are
    listed as skipped.
    """
    expected = ExpectedTraffic.from_summary(summary)
    result = CaptureReconciliation(model=summary.file, results=[])
    for request in requests:
        index = int(request.index)
        if request.kind not in (INFERENCE, PARAMETER_CACHING):
            result.skipped.append(index)
            continue
        observed = ObservedRequestBytes.from_request(request, (sequences or {}).get(index))
        result.results.append((index, reconcile(expected, observed)))
    return result
