"""The FlexBuffer and flatbuffer readers, checked against the flatbuffers package's own reader."""

from __future__ import annotations

import flatbuffers
import pytest
from flatbuffers import flexbuffers

from usbtrace.models import flexbuf
from usbtrace.models.flatbuf import FlatbufferError, root_table


def test_flexbuffer_map_round_trip_and_agrees_with_reference_reader() -> None:
    package = bytes(range(256)) * 3  # not UTF-8: must come back byte for byte
    data = flexbuf.dumps_map({"1": 0, "4": package, "5": -1, "6": [18], "7": []})
    ours = {k: v.value() for k, v in flexbuf.root(data).as_map().items()}
    assert ours == {"1": 0, "4": package, "5": -1, "6": [18], "7": []}
    reference = flexbuffers.GetRoot(data).AsMap
    assert [k.AsKey for k in reference.Keys] == ["1", "4", "5", "6", "7"]
    assert reference["4"].AsStringBytes == package
    assert reference["5"].AsInt == -1
    assert list(reference["6"].AsTypedVector.Value) == [18]


def test_flexbuffer_reader_handles_builder_output_of_other_widths() -> None:
    """Maps written by the reference builder use 1- and 2-byte widths; we must read them too."""
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Key("a")
        builder.Int(-3)
        builder.Key("b")
        builder.UInt(70000)
        builder.Key("s")
        builder.String("hello")
        builder.Key("v")
        builder.VectorFromElements([1, 2, 300])
        builder.Key("f")
        builder.Float(1.5)
    data = bytes(builder.Finish())
    values = {k: v.value() for k, v in flexbuf.root(data).as_map().items()}
    assert values["a"] == -3
    assert values["b"] == 70000
    assert values["s"] == b"hello"
    assert values["v"] == [1, 2, 300]
    assert values["f"] == 1


def test_flexbuffer_rejects_garbage() -> None:
    with pytest.raises(flexbuf.FlexbufferError):
        flexbuf.root(b"\x00")
    with pytest.raises(flexbuf.FlexbufferError):
        flexbuf.root(b"\x00\x00\x24\x07")  # root width 7 is not a width


def _table_with_fields() -> bytes:
    b = flatbuffers.Builder(64)
    name = b.CreateString("layer")
    vec = b.CreateByteVector(b"\x01\x02\x03")
    b.StartObject(4)
    b.PrependInt32Slot(0, 42, 0)
    b.PrependUOffsetTRelativeSlot(1, name, 0)
    b.PrependUOffsetTRelativeSlot(2, vec, 0)
    b.Finish(b.EndObject(), file_identifier=b"TEST")
    return bytes(b.Output())


def test_flatbuffer_table_reads_slots_and_defaults() -> None:
    table = root_table(_table_with_fields(), b"TEST")
    assert table.int(0) == 42
    assert table.string(1) == "layer"
    assert bytes(table.bytes(2)) == b"\x01\x02\x03"
    assert table.int(3, default=7) == 7  # absent from the vtable
    assert table.int(10, default=-1) == -1  # beyond the vtable: newer schema field


def test_flatbuffer_checks_identifier_and_bounds() -> None:
    data = _table_with_fields()
    with pytest.raises(FlatbufferError):
        root_table(data, b"DWN1")
    with pytest.raises(FlatbufferError):
        root_table(data[:6])
    corrupt = bytearray(data)
    corrupt[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(FlatbufferError):
        root_table(bytes(corrupt)).int(0)


def test_flexbuffer_round_trip_property() -> None:
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis (dev extra) not installed")
    st = hypothesis.strategies
    values = st.one_of(
        st.integers(-(2**31), 2**31 - 1),
        st.binary(max_size=300),
        st.lists(st.integers(-(2**31), 2**31 - 1), max_size=20),
    )
    keys = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=6)

    @hypothesis.given(st.dictionaries(keys, values, max_size=8))
    @hypothesis.settings(max_examples=150, deadline=None)
    def check(mapping: dict) -> None:
        data = flexbuf.dumps_map(mapping)
        ours = {k: v.value() for k, v in flexbuf.root(data).as_map().items()}
        assert ours == mapping
        reference = flexbuffers.GetRoot(data).AsMap
        assert sorted(k.AsKey for k in reference.Keys) == sorted(mapping)

    check()
