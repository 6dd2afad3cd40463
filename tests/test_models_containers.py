"""The custom-options FlexBuffer (flatbuffers' reader) and our flatbuffer reader, on odd input."""

from __future__ import annotations

import contextlib

import flatbuffers
import pytest
from flatbuffers import flexbuffers

from usbtrace.models.flatbuf import FlatbufferError, root_table
from usbtrace.models.package import (
    FlexbufferError,
    custom_option_bytes,
    package_from_custom_options,
)
from usbtrace.models.package_writer import flexbuffer_map


def test_custom_options_round_trip_as_the_compilers_write_them() -> None:
    package = bytes(range(256)) * 3  # not UTF-8: must come back byte for byte
    data = flexbuffer_map({"1": 0, "4": package, "5": -1, "6": [18], "7": []})
    assert custom_option_bytes(data, "4") == package
    assert custom_option_bytes(data, "9") is None
    reference = flexbuffers.GetRoot(data).AsMap
    assert [k.AsKey for k in reference.Keys] == ["1", "4", "5", "6", "7"]
    assert reference["4"].IsString  # a string, as in every real compiled model, not a blob
    assert reference["5"].AsInt == -1
    assert list(reference["6"].AsTypedVector.Value) == [18]


def test_custom_options_of_other_widths_and_blobs() -> None:
    """Maps written with 1- and 2-byte widths, and a package stored as a blob, are read too."""
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Key("a")
        builder.Int(-3)
        builder.Key("b")
        builder.UInt(70000)
        builder.Key("s")
        builder.String("hello")
        builder.Key("z")
        builder.Blob(b"\xff\x00raw")
    data = bytes(builder.Finish())
    assert custom_option_bytes(data, "s") == b"hello"
    assert custom_option_bytes(data, "z") == b"\xff\x00raw"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00\x24\x07",  # root width 7 is not a width
        b"\xff" * 40,
        bytes(range(64)),
        b"\xff" * 10 + b"\x24\x01",  # a map whose offsets point outside
        b"\x10\x14\x01",  # a string where the map should be
    ],
)
def test_damaged_custom_options_raise_one_error(data: bytes) -> None:
    with pytest.raises(FlexbufferError):
        custom_option_bytes(data, "4")


def test_map_without_package_is_named() -> None:
    assert custom_option_bytes(b"\x01\x24\x01", "4") is None  # a map, but no key "4"
    with pytest.raises(ValueError, match="no package"):
        package_from_custom_options(flexbuffer_map({"1": 0}))


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
    assert table.integer(0) == 42
    assert table.string(1) == "layer"
    assert bytes(table.bytes(2)) == b"\x01\x02\x03"
    assert table.integer(3, default=7) == 7  # absent from the vtable
    assert table.integer(10, default=-1) == -1  # beyond the vtable: newer schema field


def test_flatbuffer_checks_identifier_and_bounds() -> None:
    data = _table_with_fields()
    with pytest.raises(FlatbufferError):
        root_table(data, b"DWN1")
    with pytest.raises(FlatbufferError):
        root_table(data[:6])
    corrupt = bytearray(data)
    corrupt[0:4] = (len(data) + 100).to_bytes(4, "little")
    with pytest.raises(FlatbufferError):
        root_table(bytes(corrupt)).integer(0)


def test_custom_options_round_trip_property() -> None:
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
        data = flexbuffer_map(mapping)
        reference = flexbuffers.GetRoot(data).AsMap
        assert sorted(k.AsKey for k in reference.Keys) == sorted(mapping)
        for key, value in mapping.items():
            if isinstance(value, bytes):
                assert custom_option_bytes(data, key) == value
            elif isinstance(value, int):
                assert reference[key].AsInt == value
            else:
                assert list(reference[key].AsTypedVector.Value) == value

    check()

    @hypothesis.given(st.binary(max_size=200))
    @hypothesis.settings(max_examples=300, deadline=None)
    def garbage(data: bytes) -> None:
        with contextlib.suppress(FlexbufferError):  # and no other exception
            custom_option_bytes(data, "4")

    garbage()
