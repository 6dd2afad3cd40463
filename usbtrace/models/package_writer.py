"""Writing synthetic compiled Edge TPU model files (``*_edgetpu.tflite``).

The result has the structure the Edge TPU compiler produces: a TFLite model whose only operator is
an ``edgetpu-custom-op`` with FlexBuffer options holding a ``DWN1`` package, which holds a
``MultiExecutable`` of serialized ``Executable`` flatbuffers (slots as in the protocol reference
§8.4). Bitstreams and parameters are filler of the requested sizes: the files exist to test the
inspector and the reconciliation without the real models, never to run on a device. Instruction
bitstreams start with the ``80 0f 00`` signature seen on the wire (reference §3.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import flatbuffers
import numpy as np
from flatbuffers import flexbuffers

from usbtrace.edgetpu.constants import (
    CHIP_NAME,
    CUSTOM_OPTION_CHIP,
    CUSTOM_OPTION_EXECUTION_PREFERENCE,
    CUSTOM_OPTION_PACKAGE,
    CUSTOM_OPTION_VERSION,
    EDGETPU_CUSTOM_OP,
    INSTRUCTION_CHUNK_SIGNATURE,
    PACKAGE_IDENTIFIER,
    DmaDescriptorKind,
    DmaHintKind,
    ExecutableType,
)
from usbtrace.models import tflite_writer as tw
from usbtrace.models.package import DmaHint, Executable, LayerInfo
from usbtrace.models.tflite_writer import GraphBuilder, Quantization

CHIP = CHIP_NAME
IO_QUANT = Quantization((1.0 / 128,), (0,))


def instruction_bytes(length: int) -> bytes:
    """Filler bitstream of ``length`` bytes that starts like a real instruction chunk."""
    body = bytearray(length)
    head = INSTRUCTION_CHUNK_SIGNATURE + ((max(length - 32, 0) // 4) & 0xFFFFFF).to_bytes(
        3, "little"
    )
    body[: min(length, len(head))] = head[:length]
    return bytes(body)


def default_hints(
    exe_type: ExecutableType,
    bitstreams: Sequence[int],
    parameter_bytes: int,
    inputs: Sequence[LayerInfo],
    outputs: Sequence[LayerInfo],
) -> list[DmaHint]:
    """The hint order the real files show: instructions, inputs, parameters, outputs, Int0."""
    hints = [DmaHint(DmaHintKind.INSTRUCTION, index=i) for i in range(len(bitstreams))]
    if exe_type != ExecutableType.PARAMETER_CACHING:
        hints += [
            DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.INPUT, i.size_bytes) for i in inputs
        ]
    if parameter_bytes:
        hints.append(DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.PARAMETER, parameter_bytes))
    if exe_type != ExecutableType.PARAMETER_CACHING:
        hints += [
            DmaHint(DmaHintKind.DESCRIPTOR, DmaDescriptorKind.OUTPUT, o.size_bytes, outfeed=True)
            for o in outputs
        ]
    hints.append(DmaHint(DmaHintKind.INTERRUPT, index=0))
    return hints


def make_executable(
    exe_type: ExecutableType,
    *,
    bitstreams: Sequence[int],
    parameter_bytes: int = 0,
    inputs: Sequence[LayerInfo] = (),
    outputs: Sequence[LayerInfo] = (),
    caching_token: int | None = None,
    hints: list[DmaHint] | None = None,
    fully_deterministic: bool = True,
) -> Executable:
    return Executable(
        type=exe_type,
        caching_token=caching_token,
        instruction_bitstream_bytes=list(bitstreams),
        parameter_bytes=parameter_bytes,
        inputs=list(inputs),
        outputs=list(outputs),
        dma_hints=hints
        if hints is not None
        else default_hints(exe_type, bitstreams, parameter_bytes, inputs, outputs),
        fully_deterministic=fully_deterministic,
        chip=CHIP,
    )


def _layer(b: flatbuffers.Builder, layer: LayerInfo) -> int:
    name = b.CreateString(layer.name)
    b.StartObject(10)
    b.PrependUOffsetTRelativeSlot(0, name, 0)
    b.PrependInt32Slot(1, layer.size_bytes, 0)
    b.PrependInt32Slot(2, layer.shape[0], 0)
    b.PrependInt32Slot(3, layer.shape[1], 0)
    b.PrependInt32Slot(4, layer.shape[2], 0)
    b.PrependInt32Slot(9, layer.execution_count, 1)
    return b.EndObject()


def _hint(b: flatbuffers.Builder, hint: DmaHint) -> int:
    if hint.kind == DmaHintKind.DESCRIPTOR:
        b.StartObject(1)
        b.PrependInt16Slot(0, int(hint.descriptor or 0), 0)
        meta = b.EndObject()
        b.StartObject(3)
        b.PrependUOffsetTRelativeSlot(0, meta, 0)
        b.PrependInt32Slot(2, hint.size_bytes, 0)
        value = b.EndObject()
    elif hint.kind == DmaHintKind.INSTRUCTION:
        b.StartObject(1)
        b.PrependInt32Slot(0, hint.index, 0)
        value = b.EndObject()
    elif hint.kind == DmaHintKind.INTERRUPT:
        b.StartObject(1)
        b.PrependInt16Slot(0, hint.index, 0)
        value = b.EndObject()
    else:
        b.StartObject(0)
        value = b.EndObject()
    b.StartObject(3)
    b.PrependUint8Slot(0, int(hint.kind), 0)
    b.PrependUOffsetTRelativeSlot(1, value, 0)
    b.PrependInt16Slot(2, 1 if hint.outfeed else 0, 0)
    return b.EndObject()


def _vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def executable_bytes(exe: Executable, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    b = flatbuffers.Builder(exe.parameter_bytes + sum(exe.instruction_bitstream_bytes) + 4096)
    parameters = b.CreateNumpyVector(rng.integers(0, 256, exe.parameter_bytes, dtype=np.uint8))
    bitstreams = []
    for length in exe.instruction_bitstream_bytes:
        data = b.CreateByteVector(instruction_bytes(length))
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, data, 0)
        bitstreams.append(b.EndObject())
    bitstream_vec = _vector(b, bitstreams)
    hint_vec = _vector(b, [_hint(b, h) for h in exe.dma_hints])
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, hint_vec, 0)
    b.PrependBoolSlot(1, exe.fully_deterministic, False)
    hints = b.EndObject()
    inputs = _vector(b, [_layer(b, layer) for layer in exe.inputs])
    outputs = _vector(b, [_layer(b, layer) for layer in exe.outputs])
    chip = b.CreateString(exe.chip or CHIP)
    b.StartObject(17)
    b.PrependInt32Slot(3, exe.batch_size, 0)
    b.PrependUOffsetTRelativeSlot(5, bitstream_vec, 0)
    b.PrependUOffsetTRelativeSlot(6, parameters, 0)
    b.PrependUOffsetTRelativeSlot(7, hints, 0)
    b.PrependUOffsetTRelativeSlot(8, inputs, 0)
    b.PrependUOffsetTRelativeSlot(9, outputs, 0)
    b.PrependUOffsetTRelativeSlot(10, chip, 0)
    b.PrependInt32Slot(11, exe.estimated_cycles, 0)
    b.PrependInt16Slot(13, int(exe.type), 0)
    b.PrependUint64Slot(14, exe.caching_token or 0, 0)
    b.Finish(b.EndObject())
    return bytes(b.Output())


def package_bytes(executables: Sequence[Executable], min_runtime_version: int = 12) -> bytes:
    serialized = [executable_bytes(e, seed=i) for i, e in enumerate(executables)]
    multi = flatbuffers.Builder(sum(len(s) for s in serialized) + 1024)
    strings = [multi.CreateByteVector(s) for s in serialized]
    vec = _vector(multi, strings)
    multi.StartObject(1)
    multi.PrependUOffsetTRelativeSlot(0, vec, 0)
    multi.Finish(multi.EndObject())
    multi_bytes = bytes(multi.Output())

    b = flatbuffers.Builder(len(multi_bytes) + 1024)
    data = b.CreateByteVector(multi_bytes)
    compiler = b.CreateString("cl/")
    b.StartObject(8)
    b.PrependInt32Slot(0, min_runtime_version, 0)
    b.PrependUOffsetTRelativeSlot(1, data, 0)
    b.PrependUOffsetTRelativeSlot(4, compiler, 0)
    b.PrependInt32Slot(5, 0, 0)
    b.Finish(b.EndObject(), file_identifier=PACKAGE_IDENTIFIER)
    return bytes(b.Output())


def custom_options(package: bytes, style: str = "2021") -> bytes:
    """The op's FlexBuffer map, with the keys the 2019 or the 2021 compilers wrote."""
    values: dict[str, int | bytes | list[int]] = {
        CUSTOM_OPTION_VERSION: 0,
        CUSTOM_OPTION_PACKAGE: package,
        CUSTOM_OPTION_EXECUTION_PREFERENCE: -1,
    }
    if style == "2019":
        values[CUSTOM_OPTION_CHIP] = CHIP.encode()
    else:
        values["6"] = [18]
        values["7"] = []
    return flexbuffer_map(values)


def flexbuffer_map(values: dict[str, int | bytes | list[int]]) -> bytes:
    """A FlexBuffer map as the Edge TPU compilers write it: bytes become *strings* of raw bytes.

    The flatbuffers package's Builder writes a str as UTF-8 and bytes only as a blob; the
    compilers' package is a string holding non-UTF-8 bytes (seen in every real compiled model),
    so bytes go through the Builder's own string writer, which takes the bytes as they are.
    """
    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in sorted(values.items()):
            fbb.Key(key)
            if isinstance(value, bytes):
                fbb._WriteBlob(value, append_zero=True, type_=flexbuffers.Type.STRING)
            elif isinstance(value, list):
                fbb.TypedVectorFromElements(value, flexbuffers.Type.INT)
            else:
                fbb.Int(value)
    return bytes(fbb.Finish())


def compiled_model_bytes(
    packages: Sequence[Sequence[Executable]], style: str = "2021", cpu_ops: bool = False
) -> bytes:
    """A TFLite model running each package as one ``edgetpu-custom-op``, chained input to output.

    ``cpu_ops`` appends a RESHAPE after the last custom op, as when part of a model stays on the
    CPU. An empty ``packages`` gives a model with no custom op (a CPU-only "compiled" file).
    """
    g = GraphBuilder("usbtrace synthetic compiled model")
    model_inputs: list[int] = []
    current: list[int] = []
    if not packages:
        x = g.tensor("input", (1, 4), tw.INT8, IO_QUANT)
        model_inputs = [x]
        current = [x]
    for number, executables in enumerate(packages):
        main = next(
            (e for e in executables if e.type != ExecutableType.PARAMETER_CACHING), executables[0]
        )
        if number == 0:
            model_inputs = [
                g.tensor(layer.name, (1, *layer.shape), tw.UINT8, IO_QUANT) for layer in main.inputs
            ]
            current = model_inputs
        outputs = [
            g.tensor(f"{layer.name}", (1, *layer.shape), tw.UINT8, IO_QUANT)
            for layer in main.outputs
        ]
        options = custom_options(package_bytes(executables), style)
        g.custom_op(EDGETPU_CUSTOM_OP, current, outputs, options)
        current = outputs
    if cpu_ops or not packages:
        size = int(np.prod(g.shape(current[0])))
        shape = g.tensor("reshape/shape", (2,), tw.INT32, None, np.asarray([1, size], "<i4"))
        out = g.tensor("reshape", (1, size), tw.UINT8, IO_QUANT)
        g.op(tw.RESHAPE, [current[0], shape], [out], version=1)
        current = [out]
    return g.finish(model_inputs, current)


def write_compiled_model(
    path: str | Path,
    packages: Sequence[Sequence[Executable]],
    style: str = "2021",
    cpu_ops: bool = False,
) -> Path:
    path = Path(path)
    path.write_bytes(compiled_model_bytes(packages, style, cpu_ops))
    return path


def study_like_executables(
    cached: int,
    streamed: int,
    eo_instructions: Sequence[int],
    pc_instructions: int,
    input_bytes: int = 16,
    output_bytes: int = 8,
    token: int = 0x1234_5678_9ABC_DEF0,
) -> list[Executable]:
    """An EO + PC pair shaped like the study's conv/dense models (2x2x3 in, 1x1x1 out)."""
    inputs = [LayerInfo("input_1", input_bytes, (2, 2, 3))]
    outputs = [LayerInfo("output", output_bytes, (1, 1, 1))]
    eo = make_executable(
        ExecutableType.EXECUTION_ONLY,
        bitstreams=eo_instructions,
        parameter_bytes=streamed,
        inputs=inputs,
        outputs=outputs,
        caching_token=token,
    )
    pc = make_executable(
        ExecutableType.PARAMETER_CACHING,
        bitstreams=[pc_instructions],
        parameter_bytes=cached,
        caching_token=token,
    )
    return [eo, pc]
