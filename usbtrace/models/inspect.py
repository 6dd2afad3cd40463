"""What a compiled Edge TPU model will send over USB, read from the model file alone.

``inspect_model`` finds the ``edgetpu-custom-op`` operator(s), opens the ``DWN1`` package in each
and states the bytes that the runtime moves: cached once on chip, streamed with every inference,
instruction bytes per inference, and input/output bytes.

Which executables the runtime uses (protocol reference §8.2): a package with one executable runs
it stand-alone whatever its type (all parameters every inference); two are PARAMETER_CACHING +
EXECUTION_ONLY (cache once, then run); with three, the STAND_ALONE one is used and nothing is
cached. With several custom ops, each runs as its own request and the figures are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from usbtrace.errors import InputError
from usbtrace.models.flatbuf import FlatbufferError
from usbtrace.models.package import (
    DmaHint,
    DmaHintKind,
    Executable,
    ExecutableType,
    FlexbufferError,
    LayerInfo,
    Package,
    package_from_custom_options,
)
from usbtrace.models.tflite_file import TfliteModel, read_tflite

__all__ = [
    "DmaHint",
    "ExecutableInfo",
    "ExecutableType",
    "LayerInfo",
    "ModelSummary",
    "PackageUse",
    "inspect_model",
]

# What the rest of usbtrace calls an executable description.
ExecutableInfo = Executable


@dataclass
class PackageUse:
    """One package (one custom op) and the executables the runtime picks from it."""

    package: Package
    main: Executable  # runs every inference (EXECUTION_ONLY or stand-alone)
    caching: Executable | None  # runs once before the first inference, or None


def choose_executables(executables: list[Executable]) -> tuple[Executable, Executable | None]:
    if len(executables) == 1:
        return executables[0], None
    by_type = {e.type: e for e in executables}
    if ExecutableType.STANDALONE in by_type and len(executables) >= 3:
        return by_type[ExecutableType.STANDALONE], None
    main = by_type.get(ExecutableType.EXECUTION_ONLY) or by_type.get(ExecutableType.STANDALONE)
    if main is None:
        raise ValueError("package has no execution-only or stand-alone executable")
    return main, by_type.get(ExecutableType.PARAMETER_CACHING)


def _layer_bytes(layers: list[LayerInfo], batch_size: int) -> int:
    return sum(layer.size_bytes * layer.execution_count for layer in layers) * batch_size


@dataclass
class ModelSummary:
    file: str
    compiled: bool
    executables: list[Executable] = field(default_factory=list)
    cached_bytes: int = 0
    streamed_bytes: int = 0
    instruction_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    reason: str | None = None  # why compiled is False
    packages: list[PackageUse] = field(default_factory=list)
    op_counts: dict[str, int] = field(default_factory=dict)  # TFLite operators in the file

    @property
    def main_executables(self) -> list[Executable]:
        return [use.main for use in self.packages]

    @property
    def caching_executables(self) -> list[Executable]:
        return [use.caching for use in self.packages if use.caching is not None]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "compiled": self.compiled,
            "executables": [
                {
                    "type": e.type.name,
                    "caching_token": None
                    if e.caching_token is None
                    else f"0x{e.caching_token:016x}",
                    "instruction_bitstream_bytes": list(e.instruction_bitstream_bytes),
                    "parameter_bytes": e.parameter_bytes,
                    "inputs": [{"name": i.name, "size_bytes": i.size_bytes} for i in e.inputs],
                    "outputs": [{"name": o.name, "size_bytes": o.size_bytes} for o in e.outputs],
                }
                for e in self.executables
            ],
            "cached_bytes": self.cached_bytes,
            "streamed_bytes": self.streamed_bytes,
            "instruction_bytes": self.instruction_bytes,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
        }
        if not self.compiled:
            out["reason"] = self.reason
        return out


def _not_compiled_reason(model: TfliteModel) -> str:
    counts = ", ".join(f"{name} {n}" for name, n in sorted(model.op_counts().items()))
    ops = f"{len(model.operators)} operators: {counts}" if model.operators else "no operators"
    if model.path.name.endswith("_edgetpu.tflite"):
        return (
            f"no edgetpu-custom-op ({ops}): the compiler mapped nothing to the Edge TPU, "
            "so the model runs on the CPU only"
        )
    return f"not compiled for the Edge TPU: no edgetpu-custom-op ({ops})"


def summarize_model(model: TfliteModel) -> ModelSummary:
    summary = ModelSummary(file=str(model.path), compiled=False, op_counts=dict(model.op_counts()))
    ops = model.edgetpu_ops()
    if not ops:
        summary.reason = _not_compiled_reason(model)
        return summary
    for number, op in enumerate(ops):
        try:
            package = package_from_custom_options(op.custom_options)
            main, caching = choose_executables(package.executables)
        except (FlatbufferError, FlexbufferError) as exc:
            raise InputError(
                model.path, f"edgetpu-custom-op {number}: damaged package: {exc}"
            ) from None
        except ValueError as exc:
            raise InputError(model.path, f"edgetpu-custom-op {number}: {exc}") from None
        summary.packages.append(PackageUse(package, main, caching))
        summary.executables.extend(package.executables)
        summary.cached_bytes += caching.parameter_bytes if caching else 0
        summary.streamed_bytes += main.parameter_bytes
        summary.instruction_bytes += sum(main.instruction_bitstream_bytes)
        summary.input_bytes += _layer_bytes(main.inputs, main.batch_size)
        summary.output_bytes += _layer_bytes(main.outputs, main.batch_size)
    summary.compiled = True
    return summary


def inspect_model(path: str | Path) -> ModelSummary:
    """Summarize a ``.tflite`` file; ``InputError`` if it is not a readable TFLite model."""
    return summarize_model(read_tflite(path))


def hint_sequence(executable: Executable) -> list[DmaHint]:
    """The hints that move bytes or end a request, in order (fences dropped)."""
    return [h for h in executable.dma_hints if h.kind != DmaHintKind.FENCE]
