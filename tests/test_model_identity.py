"""Which model a capture ran: metadata, --model or its bytes; a file name is only a guess.

conv_50 copied to dense_900.pcapng was reported as dense_900 with 18.0 M ops per inference.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import CaptureBuilder, inference

from usbtrace.cli.main import main
from usbtrace.edgetpu import constants as C
from usbtrace.formats.metadata import CaptureMetadata, append_metadata
from usbtrace.models.package_writer import study_like_executables, write_compiled_model
from usbtrace.pipeline import summarize_file
from usbtrace.report.size_table import size_rows

INSTR, P = C.Tag.INSTRUCTIONS, C.Tag.PARAMETERS
CACHED, PC_INSTR, EO_INSTR = 300_000, 7_856, 93_360


def conv_like(path: Path, *, model: str | None = None) -> Path:
    """A caching request and three inferences with the bytes of the compiled model below."""
    b = CaptureBuilder()
    b.device_descriptor(0)
    b.transfer(INSTR, PC_INSTR, 1000, 1010)
    b.header(P, CACHED, 1011, 1012)
    b.payload(CACHED, 1012, 3012)
    b.event(1000, 3100)
    t = 10_000
    for _ in range(3):
        t = inference(b, t, instr=EO_INSTR) + 5000
    b.write(path)
    if model is not None:
        append_metadata(str(path), CaptureMetadata(model=model))
    return path


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    """A models folder holding one compiled catalog model, conv_50, with the bytes above."""
    folder = tmp_path / "models"
    folder.mkdir()
    execs = study_like_executables(CACHED, 0, [EO_INSTR], PC_INSTR)
    write_compiled_model(folder / "conv_50_edgetpu.tflite", [execs])
    monkeypatch.setenv("USBTRACE_MODELS_DIR", str(folder))
    return folder


@pytest.fixture
def no_models(tmp_path, monkeypatch) -> None:
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("USBTRACE_MODELS_DIR", str(tmp_path / "empty"))


def test_file_name_is_only_a_guess(tmp_path, no_models, capsys):
    path = conv_like(tmp_path / "dense_900.pcapng")
    (s,) = summarize_file(path)
    assert (s.model, s.model_source) == ("dense_900", "file name (guess)")
    assert s.known_model is None and s.model_label == "dense_900?"
    assert main(["summarize", str(path)]) == 0
    assert "dense_900? " in capsys.readouterr().out
    (row,) = size_rows([s])
    assert row.model == "dense_900?" and (row.family, row.size) == ("?", None)
    assert row.ops is None and row.ops_per_s is None  # no 18.0 M ops from a file name
    assert main(["summarize", "--by-size", "--json", str(path)]) == 0
    (size,) = json.loads(capsys.readouterr().out)["sizes"]
    assert size["ops_per_inference"] is None and size["ops_per_s"] is None


def test_metadata_names_the_model(tmp_path, no_models):
    (s,) = summarize_file(conv_like(tmp_path / "dense_900.pcapng", model="conv_50"))
    assert (s.model, s.model_source, s.model_label) == ("conv_50", "metadata", "conv_50")
    assert s.to_json()["model_source"] == "metadata"
    (row,) = size_rows([s])
    assert (row.family, row.size) == ("conv", 50) and row.ops is not None


def test_bytes_name_the_model(tmp_path, models):
    (s,) = summarize_file(conv_like(tmp_path / "dense_900.pcapng"))
    assert (s.model, s.model_source) == ("conv_50", "bytes")
    (row,) = size_rows([s])
    assert (row.model, row.family, row.size) == ("conv_50", "conv", 50)


def test_bytes_that_match_nothing_or_two_models_decide_nothing(tmp_path, models):
    other = conv_like(tmp_path / "x.pcapng")
    write_compiled_model(  # a second catalog model with the same bytes: ambiguous
        models / "conv_75_edgetpu.tflite",
        [study_like_executables(CACHED, 0, [EO_INSTR], PC_INSTR)],
    )
    (s,) = summarize_file(other)
    assert (s.model, s.model_source) == (None, None)
    (models / "conv_75_edgetpu.tflite").unlink()
    b = CaptureBuilder()
    b.device_descriptor(0)
    inference(b, 1000, instr=EO_INSTR + 8)  # not what conv_50 sends
    (s,) = summarize_file(b.write(tmp_path / "conv_10.pcapng"))
    assert (s.model, s.model_source) == ("conv_10", "file name (guess)")


def test_option_names_the_model(tmp_path, models, capsys):
    path = conv_like(tmp_path / "dense_900.pcapng", model="dense_300")
    (s,) = summarize_file(path, model="conv_50")
    assert (s.model, s.model_source) == ("conv_50", "option")  # the user's word wins
    assert s.reconciliation is not None and s.reconciliation["ok"]
    (s,) = summarize_file(path, model=models / "conv_50_edgetpu.tflite")
    assert (s.model, s.model_source) == ("conv_50", "option")


def test_by_size_keeps_unrelated_captures_apart(tmp_path, no_models):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    files = [
        conv_like(a / "conv_50.pcapng"),  # two guesses of the same name: maybe unrelated
        conv_like(b / "conv_50.pcapng"),
        conv_like(tmp_path / "run1.pcapng"),  # no name at all
        conv_like(tmp_path / "run2.pcapng"),
        conv_like(tmp_path / "m1.pcapng", model="conv_50"),  # known: these two pool
        conv_like(tmp_path / "m2.pcapng", model="conv_50"),
    ]
    summaries = [s for f in files for s in summarize_file(f)]
    rows = size_rows(summaries)
    assert sorted(len(r.files) for r in rows) == [1, 1, 1, 1, 2]
    (pooled,) = [r for r in rows if len(r.files) == 2]
    assert pooled.model == "conv_50" and pooled.inferences == 6


def test_a_model_described_says_how_it_is_known():
    from usbtrace.models.identity import ModelIdentity

    assert ModelIdentity("conv_50", "bytes").described == "conv_50 [bytes]"
    assert ModelIdentity("dense_900", "file name (guess)").described == (
        "dense_900? [file name (guess)]"
    )
    assert ModelIdentity(None, None).described == "no model"


def test_summarize_csv_says_how_each_model_is_known(tmp_path, no_models, capsys):
    """``model_source`` beside ``model`` on every row, the JSON's value (empty for none)."""
    import csv

    paths = [
        conv_like(tmp_path / "dense_900.pcapng"),  # a guess from the file name
        conv_like(tmp_path / "b.pcapng", model="conv_50"),  # named by the metadata
        conv_like(tmp_path / "c.pcapng"),  # nothing to go by
    ]
    assert main(["summarize", *map(str, paths), "--csv"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split(",")
    assert header[header.index("model") + 1] == "model_source"
    rows = list(csv.DictReader(out.splitlines()))
    assert main(["summarize", "--json", *map(str, paths)]) == 0
    want = {
        c["file"]: c["model_source"] or "" for c in json.loads(capsys.readouterr().out)["captures"]
    }
    assert {r["file"]: r["model_source"] for r in rows if r["row"] == "capture"} == want
    assert sorted(want.values()) == ["", "file name (guess)", "metadata"]
    assert {(r["file"], r["model_source"]) for r in rows} == set(want.items())  # requests too
    assert len(rows) > len(paths)
