"""The Edge TPU ``DWN1`` package inside an ``edgetpu-custom-op`` and the executables in it.

Field slots are those of libedgetpu's ``executable/executable.fbs`` (listed in the protocol
reference, §8.4). Only what predicts USB traffic is read: executable type, caching token,
instruction bitstreams, parameters, input/output layers and the DMA hints.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from flatbuffers import flexbuffers

from usbtrace.edgetpu.constants import (
    CUSTOM_OPTION_PACKAGE,
    PACKAGE_IDENTIFIER,
    DmaDescriptorKind,
    DmaHintKind,
    ExecutableType,
)
from usbtrace.models.flatbuf import Table, nested_root

__all__ = [
    "DmaDescriptorKind",
    "DmaHint",
    "DmaHintKind",
    "Executable",
    "ExecutableType",
    "FlexbufferError",
    "LayerInfo",
    "Package",
    "package_from_custom_options",
    "parse_package",
]


@dataclass(frozen=True)
class DmaHint:
    kind: DmaHintKind
    descriptor: DmaDescriptorKind | None = None  # for DESCRIPTOR hints
    size_bytes: int = 0  # for DESCRIPTOR hints
    index: int = 0  # instruction chunk index, or interrupt number
    outfeed: bool = False  # direction: device to host

    def label(self) -> str:
        """The short form used in the protocol reference: ``Instr0``, ``INPUT 16``, ``Int0``."""
        if self.kind == DmaHintKind.INSTRUCTION:
            return f"Instr{self.index}"
        if self.kind == DmaHintKind.INTERRUPT:
            return f"Int{self.index}"
        if self.kind == DmaHintKind.FENCE:
            return "Fence"
        if self.descriptor is None:
            name = "?"
        elif self.descriptor == DmaDescriptorKind.PARAMETER:
            name = "PARAM"
        else:
            name = self.descriptor.name
        return f"{name} {self.size_bytes}"


@dataclass(frozen=True)
class LayerInfo:
    name: str
    size_bytes: int
    shape: tuple[int, int, int]  # (y, x, z)
    execution_count: int = 1  # execution_count_per_inference


@dataclass
class Executable:
    type: ExecutableType
    caching_token: int | None
    instruction_bitstream_bytes: list[int]
    parameter_bytes: int
    inputs: list[LayerInfo]
    outputs: list[LayerInfo]
    dma_hints: list[DmaHint]
    fully_deterministic: bool
    batch_size: int = 1
    chip: str = ""
    estimated_cycles: int = 0
    instruction_prefixes: list[bytes] = field(default_factory=list)  # first 24 bytes, to match wire


@dataclass
class Package:
    min_runtime_version: int
    compiler_version: str
    executables: list[Executable]


def _layer(table: Table) -> LayerInfo:
    return LayerInfo(
        name=table.string(0),
        size_bytes=table.integer(1),
        shape=(table.integer(2), table.integer(3), table.integer(4)),
        execution_count=table.integer(9, default=1),
    )


def _hint(table: Table) -> DmaHint:
    kind_code = table.integer(0, "uint8")
    value = table.table(1)
    outfeed = table.integer(2, "int16") == 1
    try:
        kind = DmaHintKind(kind_code)
    except ValueError:
        return DmaHint(
            DmaHintKind.FENCE, outfeed=outfeed
        )  # unknown hint: moves nothing usbtrace knows
    if value is None:
        return DmaHint(kind, outfeed=outfeed)
    if kind == DmaHintKind.DESCRIPTOR:
        meta = value.table(0)
        desc = meta.integer(0, "int16") if meta is not None else DmaDescriptorKind.OUTPUT
        return DmaHint(kind, DmaDescriptorKind(desc), size_bytes=value.integer(2), outfeed=outfeed)
    if kind in (DmaHintKind.INSTRUCTION, DmaHintKind.INTERRUPT):
        index = value.integer(0, "int32" if kind == DmaHintKind.INSTRUCTION else "int16")
        return DmaHint(kind, index=index, outfeed=outfeed)
    return DmaHint(kind, outfeed=outfeed)


def parse_executable(data: memoryview) -> Executable:
    table = nested_root(data)
    bitstreams = [bs.bytes(0) for bs in table.tables(5)]
    hints_table = table.table(7)
    hints = [_hint(h) for h in hints_table.tables(0)] if hints_table is not None else []
    token = table.integer(14, "uint64")
    return Executable(
        type=ExecutableType(table.integer(13, "int16")),
        caching_token=token or None,
        instruction_bitstream_bytes=[len(b) for b in bitstreams],
        parameter_bytes=table.vector_len(6),
        inputs=[_layer(t) for t in table.tables(8)],
        outputs=[_layer(t) for t in table.tables(9)],
        dma_hints=hints,
        fully_deterministic=bool(hints_table.scalar(1, "bool", False)) if hints_table else False,
        batch_size=table.integer(3, default=1) or 1,
        chip=table.string(10),
        estimated_cycles=table.integer(11),
        instruction_prefixes=[bytes(b[:24]) for b in bitstreams],
    )


def parse_package(data: memoryview) -> Package:
    """A ``DWN1`` package; raises ``FlatbufferError``/``ValueError`` if it is damaged."""
    package = nested_root(data, PACKAGE_IDENTIFIER)
    multi = nested_root(package.bytes(1))
    return Package(
        min_runtime_version=package.integer(0),
        compiler_version=package.string(4),
        executables=[parse_executable(raw) for raw in multi.byte_vectors(0)],
    )


class FlexbufferError(ValueError):
    """The op's custom options are not a readable FlexBuffer map."""


def custom_option_bytes(options: bytes, key: str) -> bytes | None:
    """The raw bytes of ``key`` in the op's FlexBuffer map (a string or a blob); None if absent.

    Read with the flatbuffers package's FlexBuffers reader. A model file is input: whatever its
    bytes, the reader's IndexError, struct.error and the like become a ``FlexbufferError``.
    """
    if len(options) < 3 or options[-1] not in (1, 2, 4, 8):  # the root's byte width
        raise FlexbufferError("custom options are not a FlexBuffer (no valid root)")
    try:
        entries = flexbuffers.GetRoot(options).AsMap
        try:
            value = entries[key]  # a binary search of the sorted keys
        except KeyError:
            return None
        # the compilers store the package as a string of raw bytes (not UTF-8): never decoded
        return bytes(value.AsBlob if value.IsBlob else value.AsStringBytes)
    except (IndexError, KeyError, TypeError, ValueError, OverflowError, struct.error) as exc:
        raise FlexbufferError(f"custom options are not a FlexBuffer map: {exc}") from None


def package_from_custom_options(options: bytes) -> Package:
    package = custom_option_bytes(options, CUSTOM_OPTION_PACKAGE)
    if package is None:
        raise ValueError(f"custom options have no package (key {CUSTOM_OPTION_PACKAGE!r})")
    return parse_package(memoryview(package))
