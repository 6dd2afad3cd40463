"""The model catalog manifest, name parsing and resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from usbtrace.errors import InputError, UsageError
from usbtrace.models.catalog import (
    MODELS_DIR_ENV,
    catalog_entries,
    load_catalog,
    model_sort_key,
    parse_model_name,
    resolve,
)


def test_catalog_has_the_study_families() -> None:
    families = {f.family: f.sizes for f in load_catalog()}
    assert families["conv"] == (10, 25, 50, 75, 100, 150, 200, 250, 300)
    assert families["dense"] == tuple(range(100, 1000, 100))
    for single in ("mobilenet_v1", "mobilenet_v2", "ssd_mobilenet_v1"):
        assert len(families[single]) == 1
    names = [e.name for e in catalog_entries()]
    assert len(names) == len(set(names)) == 21
    assert {"conv_300", "dense_900", "mobilenet_v1", "mobilenet_v2", "ssd_mobilenet_v1"} <= set(
        names
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conv_300", ("conv", 300)),
        ("dense_100", ("dense", 100)),
        ("model_conv_128x128x3x32x7x50_edgetpu.tflite", ("conv", 50)),
        ("model_dense_2x2x3x100x300", ("dense", 300)),
        ("/some/dir/model_conv_128x128x3x32x7x10.tflite", ("conv", 10)),
        ("mobilenet_v1", ("mobilenet_v1", 224)),
        ("mobilenet_v1_1.0_224_quant_edgetpu.tflite", ("mobilenet_v1", 224)),
        ("mobilenet_v2_1.0_224_quant_edgetpu.tflite", ("mobilenet_v2", 224)),
        ("ssd_mobilenet_v1_coco_quant_postprocess_edgetpu.tflite", ("ssd_mobilenet_v1", 300)),
        ("model_padding_256x256x3_edgetpu.tflite", ("padding", 256)),
        ("conv_300_edgetpu.tflite", ("conv", 300)),
        ("keras_lstm_mnist_ptq_edgetpu.tflite", None),
        ("notes", None),
    ],
)
def test_parse_model_name(name: str, expected: tuple[str, int] | None) -> None:
    assert parse_model_name(name) == expected


def test_sort_key_orders_by_family_then_size() -> None:
    names = ["dense_300", "conv_300", "weird", "conv_50", "model_conv_128x128x3x32x7x25"]
    assert sorted(names, key=model_sort_key) == [
        "model_conv_128x128x3x32x7x25",
        "conv_50",
        "conv_300",
        "dense_300",
        "weird",
    ]


def test_resolve_catalog_name_and_study_name(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    entry = resolve("conv_300")
    assert (entry.family, entry.size, entry.in_catalog) == ("conv", 300, True)
    assert entry.source == tmp_path / "conv_300.tflite"
    assert entry.compiled == tmp_path / "conv_300_edgetpu.tflite"
    assert not entry.source_exists and not entry.compiled_exists
    assert resolve("model_conv_128x128x3x32x7x50").name == "conv_50"
    (tmp_path / "conv_300_edgetpu.tflite").write_bytes(b"x")
    assert resolve("conv_300").compiled_exists


def test_missing_compiled_model_says_how_to_make_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    with pytest.raises(UsageError) as info:
        resolve("conv_300").require_compiled()
    message = str(info.value)
    assert "usbtrace models build conv_300" in message
    assert "usbtrace models compile conv_300" in message
    assert "edgetpu_compiler" in message


def test_resolve_paths(tmp_path: Path) -> None:
    compiled = tmp_path / "model_dense_2x2x3x100x300_edgetpu.tflite"
    compiled.write_bytes(b"x")
    entry = resolve(str(compiled))
    assert not entry.in_catalog
    assert (entry.family, entry.size) == ("dense", 300)
    assert entry.compiled == compiled and entry.compiled_exists
    assert entry.source == tmp_path / "model_dense_2x2x3x100x300.tflite"
    with pytest.raises(InputError, match="no such model file"):
        resolve(str(tmp_path / "absent_edgetpu.tflite"))


def test_unknown_name_lists_the_catalog() -> None:
    with pytest.raises(UsageError, match="conv_300"):
        resolve("resnet_50")


def test_model_for_capture(tmp_path: Path, monkeypatch) -> None:
    from usbtrace.models.catalog import model_for_capture

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert model_for_capture(None, None, "conv_50") is None  # not compiled: nothing to compare
    assert model_for_capture(None, None, "resnet") is None
    with pytest.raises(UsageError, match="usbtrace models compile conv_50"):
        model_for_capture("conv_50")
    compiled = tmp_path / "conv_50_edgetpu.tflite"
    compiled.write_bytes(b"x")
    assert model_for_capture(None, None, "conv_50") == compiled
    assert model_for_capture("conv_50") == compiled
    elsewhere = tmp_path / "sub" / "m_edgetpu.tflite"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"x")
    assert model_for_capture(None, str(elsewhere), "conv_50") == elsewhere
    assert model_for_capture(None, str(tmp_path / "gone_edgetpu.tflite"), "conv_50") == compiled
    odd_name = tmp_path / "mine.tflite"
    odd_name.write_bytes(b"x")
    assert model_for_capture(str(odd_name)) == odd_name
