"""Rows of different captures with the same name are told apart."""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.fuzzing.oracle import run_cli
from usbtrace.report.table import distinct_names

ROOT = Path(__file__).resolve().parents[1]
CONV = ROOT / "captures" / "sample-synthetic-conv.pcapng"
DENSE = ROOT / "captures" / "sample-synthetic-dense.pcapng"


def test_shortest_distinguishing_paths():
    assert distinct_names(["a/x.pcapng", "b/x.pcapng", "c/y.pcapng"]) == [
        "a/x.pcapng",
        "b/x.pcapng",
        "y.pcapng",
    ]
    # deeper clashes take more parts; the same path twice keeps one name
    assert distinct_names(["h1/run/x.pcapng", "h2/run/x.pcapng", "h1/run/x.pcapng"]) == [
        "h1/run/x.pcapng",
        "h2/run/x.pcapng",
        "h1/run/x.pcapng",
    ]
    assert distinct_names(["x.pcapng", "d/x.pcapng"]) == ["x.pcapng", "d/x.pcapng"]
    assert distinct_names(["./a/../b/x.pcapng", "c/x.pcapng"]) == ["b/x.pcapng", "c/x.pcapng"]


def _table(o) -> list[list[str]]:
    assert o.status == 0, o.stderr
    table = o.stdout.split("\n\n")[0]  # the findings follow the table, after a blank line
    return [line.split() for line in table.splitlines()[1:]]


def test_same_model_in_two_folders_gets_a_capture_column(tmp_path: Path):
    for host in ("host-a", "host-b"):
        (tmp_path / host).mkdir()
        shutil.copy(CONV, tmp_path / host / "run.pcapng")
    shutil.copy(DENSE, tmp_path / "dense.pcapng")
    head, *rows = _table(run_cli(["summarize", str(tmp_path)]))
    assert head[:3] == ["model", "capture", "link"]
    assert [r[:2] for r in rows] == [
        ["conv_50", "host-a/run.pcapng"],
        ["conv_50", "host-b/run.pcapng"],
        ["dense_300", "dense.pcapng"],
    ]


def test_distinct_models_need_no_capture_column(tmp_path: Path):
    head, *rows = _table(run_cli(["summarize", str(CONV), str(DENSE)]))
    assert "capture" not in head and [r[0] for r in rows] == ["conv_50", "dense_300"]


def test_a_file_name_is_never_shown_as_a_model(tmp_path: Path):
    """Without metadata or a catalog match, the model cell says "-", and the files' names go in
    the capture column, never under "model" (a name like dense.txt would read as a model)."""
    for name in ("dense.txt", "other.txt"):
        shutil.copy(DENSE, tmp_path / name)
        path = tmp_path / name
        data = path.read_bytes()
        # drop the metadata block (the last block, usbtrace's custom block): no model known
        end = data.rfind(b"USBTRACE-META")
        assert end > 0
        start = data.rfind(b"\xad\x0b\x00\x00", 0, end)  # custom block type 0x00000BAD
        path.write_bytes(data[:start])
    files = [str(tmp_path / "dense.txt"), str(tmp_path / "other.txt")]
    head, *rows = _table(run_cli(["summarize", *files]))
    assert head[:3] == ["model", "capture", "link"]
    assert [r[:2] for r in rows] == [["-", "dense.txt"], ["-", "other.txt"]]


HOSTILE_NAME = "conv_50\x1b[31mRED\x1b]0;title\x07\nline2\u202e.pcapng"


def test_file_names_with_control_characters_reach_the_terminal_escaped(tmp_path):
    """Names from a folder listing (a capture someone sent) went to the terminal raw: an escape
    sequence drove it and a newline split the one-line error in two."""
    d = tmp_path / "caps"
    d.mkdir()
    shutil.copy(CONV, d / HOSTILE_NAME)
    (d / ("empty\x1b[2J\n.pcapng")).write_bytes(b"")
    for argv in (
        ["summarize", "--jobs", "1", str(d)],
        ["summarize", "--jobs", "1", "--per-inference", str(d)],
        ["predict", str(d)],
        ["inspect", str(d / HOSTILE_NAME)],
        ["inspect", str(d / "empty\x1b[2J\n.pcapng")],
    ):
        o = run_cli(argv)
        assert o.traceback is None, o.traceback
        for text in (o.stdout, o.stderr):
            assert "\x1b" not in text and "\u202e" not in text, (argv, text)
        assert all(line.startswith("usbtrace: ") for line in o.stderr.splitlines()), o.stderr
    assert "empty\\x1b[2J\\n.pcapng: at byte 0: is empty" in o.stderr


def test_table_cells_are_text_not_rich_markup():
    """On a terminal, rich read "[...]" in a cell as markup: a label "[link=...]usb3" became a
    hyperlink escape, and "[/]" in a title (a path through a folder named "[") raised."""
    import io

    from usbtrace.report.table import Column, render_table

    out = io.StringIO()
    render_table(
        [Column("label")],
        [["[link=http://x]usb3 [/y]"]],
        title="/tmp/[/]x.pcapng",
        stream=out,
        rich_output=True,
    )
    assert "[link=http://x]usb3 [/y]" in out.getvalue()
    assert "/tmp/[/]x.pcapng" in out.getvalue()
