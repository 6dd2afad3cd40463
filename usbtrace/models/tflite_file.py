"""Reading the parts of a TFLite flatbuffer (``TFL3``) that usbtrace needs.

Slots follow TensorFlow Lite's ``schema.fbs``: Model (1 operator_codes, 2 subgraphs, 4 buffers),
OperatorCode (0 deprecated_builtin_code, 1 custom_code, 3 builtin_code), SubGraph (0 tensors,
1 inputs, 2 outputs, 3 operators), Tensor (0 shape, 1 type, 2 buffer, 3 name), Operator
(0 opcode_index, 1 inputs, 2 outputs, 5 custom_options).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from usbtrace.edgetpu.constants import EDGETPU_CUSTOM_OP
from usbtrace.errors import InputError
from usbtrace.models.flatbuf import FlatbufferError, Table, root_table

TFLITE_IDENTIFIER = b"TFL3"

# builtin operator codes usbtrace names (schema.fbs BuiltinOperator)
BUILTIN_NAMES = {
    0: "ADD",
    1: "AVERAGE_POOL_2D",
    2: "CONCATENATION",
    3: "CONV_2D",
    4: "DEPTHWISE_CONV_2D",
    6: "DEQUANTIZE",
    9: "FULLY_CONNECTED",
    14: "LOGISTIC",
    17: "MAX_POOL_2D",
    18: "MUL",
    19: "RELU",
    21: "RELU6",
    22: "RESHAPE",
    25: "SOFTMAX",
    32: "CUSTOM",
    34: "PAD",
    40: "MEAN",
    114: "QUANTIZE",
}
CUSTOM_CODE = 32
# codes above 127 live only in builtin_code; deprecated_builtin_code saturates at this value
_PLACEHOLDER_FOR_GREATER_OP_CODES = 127

TENSOR_TYPE_NAMES = {0: "float32", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}
TENSOR_TYPE_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: int

    @property
    def type_name(self) -> str:
        return TENSOR_TYPE_NAMES.get(self.type, f"type{self.type}")

    @property
    def size_bytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * TENSOR_TYPE_BYTES.get(self.type, 1)


@dataclass(frozen=True)
class OperatorInfo:
    name: str  # builtin name, or the custom code for CUSTOM ops
    custom: bool
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    custom_options: bytes = b""


@dataclass
class TfliteModel:
    path: Path
    version: int
    operators: list[OperatorInfo] = field(default_factory=list)
    tensors: list[TensorInfo] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    subgraph_count: int = 1

    def op_counts(self) -> Counter[str]:
        return Counter(op.name for op in self.operators)

    def edgetpu_ops(self) -> list[OperatorInfo]:
        return [op for op in self.operators if op.custom and op.name == EDGETPU_CUSTOM_OP]


def _op_name(code: Table) -> tuple[str, bool]:
    builtin = max(code.integer(0, "int8"), code.integer(3, "int32"))
    if builtin == CUSTOM_CODE:
        return code.string(1, "?"), True
    if builtin == _PLACEHOLDER_FOR_GREATER_OP_CODES:
        builtin = code.integer(3, "int32")
    return BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}"), False


def parse_tflite(data: bytes | memoryview, path: Path) -> TfliteModel:
    """Parse a TFLite flatbuffer; raises ``InputError`` naming ``path`` if it is not one."""
    view = memoryview(data)
    if len(view) < 8 or bytes(view[4:8]) != TFLITE_IDENTIFIER:
        found = bytes(view[4:8]) if len(view) >= 8 else b""
        raise InputError(
            path, f"not a TFLite model (file identifier {found!r}, expected {TFLITE_IDENTIFIER!r})"
        )
    try:
        model = root_table(view, TFLITE_IDENTIFIER)
        codes = [_op_name(code) for code in model.tables(1)]
        subgraphs = model.tables(2)
        if not subgraphs:
            raise InputError(path, "TFLite model has no subgraph")
        main = subgraphs[0]
        tensors = [
            TensorInfo(
                name=t.string(3),
                shape=tuple(int(d) for d in t.scalars(0, "int32")),
                type=t.integer(1, "int8"),
            )
            for t in main.tables(0)
        ]
        operators = []
        for op in main.tables(3):
            index = op.integer(0, "uint32")
            if index >= len(codes):
                raise InputError(path, f"operator uses opcode {index} of {len(codes)}", op.pos)
            name, custom = codes[index]
            operators.append(
                OperatorInfo(
                    name=name,
                    custom=custom,
                    inputs=tuple(int(i) for i in op.scalars(1, "int32")),
                    outputs=tuple(int(i) for i in op.scalars(2, "int32")),
                    custom_options=bytes(op.bytes(5)) if custom else b"",
                )
            )
        return TfliteModel(
            path=path,
            version=model.integer(0, "uint32"),
            operators=operators,
            tensors=tensors,
            inputs=[int(i) for i in main.scalars(1, "int32")],
            outputs=[int(i) for i in main.scalars(2, "int32")],
            subgraph_count=len(subgraphs),
        )
    except FlatbufferError as exc:
        raise InputError(path, f"damaged TFLite flatbuffer: {exc}", exc.offset) from None


def read_tflite(path: str | Path) -> TfliteModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    return parse_tflite(data, path)
