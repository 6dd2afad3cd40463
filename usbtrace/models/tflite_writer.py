"""Writing TFLite flatbuffers directly, without TensorFlow.

A ``GraphBuilder`` collects tensors (with optional constant data), operators and their options,
and ``finish()`` serializes one-subgraph TFLite model bytes with the ``flatbuffers`` package. Slot
numbers follow TensorFlow Lite's ``schema.fbs`` (see ``tflite_file`` for the reading side).
Constant data is 16-byte aligned, as TFLite's own converter does, so kernels may read int32 bias
vectors in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np

from usbtrace.models.tflite_file import CUSTOM_CODE

# TensorType
FLOAT32, INT32, UINT8, INT64, INT8 = 0, 2, 3, 4, 9

# BuiltinOperator codes and the builtin_options union type each one uses
ADD, AVERAGE_POOL_2D, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D = 0, 1, 2, 3, 4
FULLY_CONNECTED, LOGISTIC, RESHAPE, SOFTMAX, PAD = 9, 14, 22, 25, 34
OPTIONS_CONV_2D, OPTIONS_DEPTHWISE, OPTIONS_POOL_2D, OPTIONS_FULLY_CONNECTED = 1, 2, 5, 8
OPTIONS_SOFTMAX, OPTIONS_CONCATENATION, OPTIONS_ADD, OPTIONS_RESHAPE, OPTIONS_PAD = (
    9,
    10,
    11,
    17,
    22,
)

# Padding and ActivationFunctionType enums
SAME, VALID = 0, 1
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3

# operator versions TFLite's converter writes for int8 kernels (the Edge TPU compiler reads them)
INT8_OP_VERSIONS = {
    ADD: 2,
    AVERAGE_POOL_2D: 2,
    CONCATENATION: 2,
    CONV_2D: 3,
    DEPTHWISE_CONV_2D: 3,
    FULLY_CONNECTED: 4,
    LOGISTIC: 2,
    RESHAPE: 1,
    SOFTMAX: 2,
    PAD: 2,
}

MODEL_SCHEMA_VERSION = 3
TFLITE_IDENTIFIER = b"TFL3"
DATA_ALIGNMENT = 16


@dataclass(frozen=True)
class Quantization:
    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    dimension: int = 0


@dataclass(frozen=True)
class Options:
    """A builtin_options table: union type plus ``slot -> (kind, value)`` fields."""

    union_type: int
    fields: dict[int, tuple[str, int | float | bool | tuple[int, ...]]] = field(
        default_factory=dict
    )


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    type: int
    quantization: Quantization | None
    buffer: int


@dataclass
class _Operator:
    opcode: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Options | None
    custom_options: bytes | None


class GraphBuilder:
    def __init__(self, description: str = "usbtrace") -> None:
        self.description = description
        self.tensors: list[_Tensor] = []
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty sentinel TFLite expects
        self.operators: list[_Operator] = []
        self.opcodes: list[tuple[int, str | None, int]] = []

    def tensor(
        self,
        name: str,
        shape: tuple[int, ...] | list[int],
        dtype: int,
        quantization: Quantization | None = None,
        data: np.ndarray | bytes | None = None,
    ) -> int:
        buffer = 0
        if data is not None:
            raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
            self.buffers.append(raw)
            buffer = len(self.buffers) - 1
        self.tensors.append(
            _Tensor(name, tuple(int(d) for d in shape), dtype, quantization, buffer)
        )
        return len(self.tensors) - 1

    def shape(self, index: int) -> tuple[int, ...]:
        return self.tensors[index].shape

    def _opcode(self, builtin: int, custom_code: str | None, version: int) -> int:
        key = (builtin, custom_code, version)
        if key not in self.opcodes:
            self.opcodes.append(key)
        return self.opcodes.index(key)

    def op(
        self,
        builtin: int,
        inputs: list[int],
        outputs: list[int],
        options: Options | None = None,
        version: int | None = None,
    ) -> None:
        code = self._opcode(builtin, None, version or INT8_OP_VERSIONS.get(builtin, 1))
        self.operators.append(_Operator(code, tuple(inputs), tuple(outputs), options, None))

    def custom_op(
        self, custom_code: str, inputs: list[int], outputs: list[int], custom_options: bytes
    ) -> None:
        code = self._opcode(CUSTOM_CODE, custom_code, 1)
        self.operators.append(_Operator(code, tuple(inputs), tuple(outputs), None, custom_options))

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        size_hint = sum(len(b) + DATA_ALIGNMENT for b in self.buffers) + 64 * 1024
        b = flatbuffers.Builder(size_hint)
        # large constant data first: the builder writes back to front, so it ends up at the end
        buffer_offsets = []
        for raw in self.buffers:
            data = _aligned_bytes(b, raw) if raw else None
            b.StartObject(3)
            if data is not None:
                b.PrependUOffsetTRelativeSlot(0, data, 0)
            buffer_offsets.append(b.EndObject())
        tensor_offsets = [_write_tensor(b, t) for t in self.tensors]
        operator_offsets = [_write_operator(b, op) for op in self.operators]
        opcode_offsets = []
        for builtin, custom_code, version in self.opcodes:
            name = b.CreateString(custom_code) if custom_code is not None else None
            b.StartObject(4)
            b.PrependInt8Slot(0, min(builtin, 127), 0)
            if name is not None:
                b.PrependUOffsetTRelativeSlot(1, name, 0)
            b.PrependInt32Slot(2, version, 1)
            b.PrependInt32Slot(3, builtin, 0)
            opcode_offsets.append(b.EndObject())
        tensors_vec = _offset_vector(b, tensor_offsets)
        inputs_vec = _int32_vector(b, inputs)
        outputs_vec = _int32_vector(b, outputs)
        operators_vec = _offset_vector(b, operator_offsets)
        subgraph_name = b.CreateString("main")
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, tensors_vec, 0)
        b.PrependUOffsetTRelativeSlot(1, inputs_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, outputs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, operators_vec, 0)
        b.PrependUOffsetTRelativeSlot(4, subgraph_name, 0)
        subgraph = b.EndObject()
        opcodes_vec = _offset_vector(b, opcode_offsets)
        subgraphs_vec = _offset_vector(b, [subgraph])
        buffers_vec = _offset_vector(b, buffer_offsets)
        description = b.CreateString(self.description)
        b.StartObject(5)
        b.PrependUint32Slot(0, MODEL_SCHEMA_VERSION, 0)
        b.PrependUOffsetTRelativeSlot(1, opcodes_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, subgraphs_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, description, 0)
        b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
        b.Finish(b.EndObject(), file_identifier=TFLITE_IDENTIFIER)
        return bytes(b.Output())


def _aligned_bytes(b: flatbuffers.Builder, raw: bytes, alignment: int = DATA_ALIGNMENT) -> int:
    b.StartVector(1, len(raw), alignment)
    b.head -= len(raw)
    b.Bytes[b.head : b.head + len(raw)] = raw
    return b.EndVector()


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _int32_vector(b: flatbuffers.Builder, values: list[int] | tuple[int, ...]) -> int:
    return b.CreateNumpyVector(np.asarray(values, dtype="<i4"))


def _write_tensor(b: flatbuffers.Builder, t: _Tensor) -> int:
    shape = _int32_vector(b, t.shape)
    name = b.CreateString(t.name)
    quant = None
    if t.quantization is not None:
        scale = b.CreateNumpyVector(np.asarray(t.quantization.scale, dtype="<f4"))
        zero = b.CreateNumpyVector(np.asarray(t.quantization.zero_point, dtype="<i8"))
        b.StartObject(7)
        b.PrependUOffsetTRelativeSlot(2, scale, 0)
        b.PrependUOffsetTRelativeSlot(3, zero, 0)
        b.PrependInt32Slot(6, t.quantization.dimension, 0)
        quant = b.EndObject()
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, shape, 0)
    b.PrependInt8Slot(1, t.type, 0)
    b.PrependUint32Slot(2, t.buffer, 0)
    b.PrependUOffsetTRelativeSlot(3, name, 0)
    if quant is not None:
        b.PrependUOffsetTRelativeSlot(4, quant, 0)
    return b.EndObject()


def _write_options(b: flatbuffers.Builder, options: Options) -> int:
    vectors = {
        slot: _int32_vector(b, value)
        for slot, (kind, value) in options.fields.items()
        if kind == "int32_vector" and isinstance(value, tuple)
    }
    b.StartObject(max(options.fields, default=-1) + 1)
    for slot, (kind, value) in options.fields.items():
        if kind == "int32_vector":
            b.PrependUOffsetTRelativeSlot(slot, vectors[slot], 0)
        elif kind == "int8":
            b.PrependInt8Slot(slot, int(value), 0)  # type: ignore[arg-type]
        elif kind == "int32":
            b.PrependInt32Slot(slot, int(value), 0)  # type: ignore[arg-type]
        elif kind == "float32":
            b.PrependFloat32Slot(slot, float(value), 0.0)  # type: ignore[arg-type]
        elif kind == "bool":
            b.PrependBoolSlot(slot, bool(value), False)
        else:
            raise ValueError(f"unknown option field kind {kind!r}")
    return b.EndObject()


def _write_operator(b: flatbuffers.Builder, op: _Operator) -> int:
    inputs = _int32_vector(b, op.inputs)
    outputs = _int32_vector(b, op.outputs)
    options = _write_options(b, op.options) if op.options is not None else None
    custom = _aligned_bytes(b, op.custom_options, 4) if op.custom_options is not None else None
    b.StartObject(7)
    b.PrependUint32Slot(0, op.opcode, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs, 0)
    if options is not None:
        b.PrependUint8Slot(3, op.options.union_type, 0)  # type: ignore[union-attr]
        b.PrependUOffsetTRelativeSlot(4, options, 0)
    if custom is not None:
        b.PrependUOffsetTRelativeSlot(5, custom, 0)
    return b.EndObject()
