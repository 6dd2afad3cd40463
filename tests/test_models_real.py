"""inspect_model on the real compiled models in ../shared/models (skipped when absent).

Expected values are the facts listed for these files in shared/models/README.md.
"""

from __future__ import annotations

import pytest
from conftest import shared_path

from usbtrace.models.expectations import ExpectedTraffic
from usbtrace.models.inspect import inspect_model

EO, PC, SA = "EXECUTION_ONLY", "PARAMETER_CACHING", "STANDALONE"

# file: (types in stored order, cached, streamed, {type: bitstreams}, input, output, token, hints)
REAL = {
    "model_conv_128x128x3x32x7x10_edgetpu.tflite": (
        [EO, PC],
        459_328,
        0,
        {EO: [24_688], PC: [2_352]},
        16,
        8,
        0x7A290C9ED469C94B,
        "Instr0, INPUT 16, OUTPUT 8, Int0",
    ),
    "model_conv_128x128x3x32x7x25_edgetpu.tflite": (
        [EO, PC],
        1_213_888,
        0,
        {EO: [50_368], PC: [4_272]},
        16,
        8,
        0x1105B026A2374A67,
        "Instr0, INPUT 16, OUTPUT 8, Int0",
    ),
    "model_conv_128x128x3x32x7x50_edgetpu.tflite": (
        [EO, PC],
        2_471_488,
        0,
        {EO: [93_360], PC: [7_856]},
        16,
        8,
        0x0CD39B17F20CF532,
        "Instr0, INPUT 16, OUTPUT 8, Int0",
    ),
    "model_dense_2x2x3x100x100_edgetpu.tflite": (
        [EO, PC],
        1_040_896,
        281_216,
        {EO: [153_216], PC: [21_168]},
        16,
        8,
        0x2E469975B41CD1E2,
        "Instr0, INPUT 16, PARAM 281216, OUTPUT 8, Int0",
    ),
    "model_padding_256x256x3_edgetpu.tflite": (
        [SA],
        0,
        0,
        {SA: [5_024]},
        16,
        262_144,
        0xFFDFF21678B5A64C,
        "Instr0, INPUT 16, OUTPUT 262144, Int0",
    ),
    "model_stride_256x256x3_edgetpu.tflite": (
        [EO, PC],
        64,
        0,
        {EO: [4_832], PC: [1_072]},
        196_608,
        8,
        0xD6BFEAF5A5658E7F,
        "Instr0, INPUT 196608, OUTPUT 8, Int0",
    ),
    "mobilenet_v1_1.0_224_quant_embedding_extractor_edgetpu.tflite": (
        [EO, PC],
        3_363_072,
        0,
        {EO: [87_584], PC: [4_688]},
        150_528,
        1_024,
        0x7344024D6CFF6B4A,
        "Instr0, INPUT 150528, OUTPUT 1024, Int0",
    ),
    "cocompilation_mobilenet_v1_0.25_128_quant_cocompiled_with_3quant_edgetpu.tflite": (
        [EO, PC],
        315_840,
        251_072,
        {EO: [182_928], PC: [4_560]},
        49_152,
        1_008,
        0x99B484BE30458CDE,
        "Instr0, INPUT 49152, PARAM 251072, OUTPUT 1008, Int0",
    ),
    "cocompilation_mobilenet_v1_0.5_160_quant_cocompiled_with_3quant_edgetpu.tflite": (
        [EO, PC],
        1_024_960,
        448_320,
        {EO: [217_792], PC: [5_328]},
        76_800,
        1_008,
        0x99B484BE30458CDE,
        "Instr0, INPUT 76800, PARAM 448320, OUTPUT 1008, Int0",
    ),
    "keras_lstm_mnist_ptq_edgetpu.tflite": (
        [EO, PC],
        43_968,
        576,
        {EO: [60_864], PC: [3_152]},
        784 + 24 + 40,
        16 + 24 + 40,
        0x6CAD28922F0B3DB3,
        "Instr0, PARAM 576, INPUT 784, INPUT 24, INPUT 40",
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_compiled_model_facts(name: str) -> None:
    types, cached, streamed, bitstreams, input_bytes, output_bytes, token, hints = REAL[name]
    summary = inspect_model(shared_path(f"models/{name}"))
    assert summary.compiled
    assert [e.type.name for e in summary.executables] == types
    assert summary.cached_bytes == cached
    assert summary.streamed_bytes == streamed
    for exe in summary.executables:
        assert exe.instruction_bitstream_bytes == bitstreams[exe.type.name]
        assert exe.caching_token == token
    main = summary.packages[0].main
    assert summary.instruction_bytes == sum(bitstreams[main.type.name])
    assert summary.input_bytes == input_bytes
    assert summary.output_bytes == output_bytes
    assert ", ".join(h.label() for h in main.dma_hints) == hints
    assert main.fully_deterministic is (name != "keras_lstm_mnist_ptq_edgetpu.tflite")
    data = summary.to_json()
    assert data["executables"][0]["caching_token"] == f"0x{token:016x}"


@pytest.mark.parametrize(
    ("name", "ops"),
    [
        ("model_conv_128x128x3x32x7x10.tflite", {"PAD": 1, "CONV_2D": 11}),
        ("model_conv_128x128x3x32x7x50.tflite", {"PAD": 1, "CONV_2D": 51}),
        ("model_dense_2x2x3x100x100.tflite", {"FULLY_CONNECTED": 101}),
        ("model_padding_256x256x3.tflite", {"PAD": 1}),
        ("model_stride_256x256x3.tflite", {"CONV_2D": 1}),
    ],
)
def test_real_uncompiled_models_are_recognised(name: str, ops: dict[str, int]) -> None:
    summary = inspect_model(shared_path(f"models/{name}"))
    assert summary.compiled is False
    assert "not compiled for the Edge TPU" in (summary.reason or "")
    assert summary.op_counts == ops


def test_conv_50_bitstream_starts_as_on_the_wire() -> None:
    summary = inspect_model(shared_path("models/model_conv_128x128x3x32x7x50_edgetpu.tflite"))
    main, caching = summary.packages[0].main, summary.packages[0].caching
    assert main.instruction_prefixes[0].hex().startswith("800f00245b00")
    assert caching is not None
    assert caching.instruction_prefixes[0].hex().startswith("800f00a40700")


def test_dense_300_sequence_prediction_from_the_100_layer_model() -> None:
    """The dense 100x100 model caches exactly what the dense x300 capture's caching request
    sends (INSTR 21 168 + PARAM 1 040 896)."""
    expected = ExpectedTraffic.from_summary(
        inspect_model(shared_path("models/model_dense_2x2x3x100x100_edgetpu.tflite"))
    )
    assert expected.cache_sequence == [(0, 21_168), (2, 1_040_896)]
    assert expected.sequence == [(0, 153_216), (1, 16), (2, 281_216)]
