"""What the commands print on an 80-column terminal: every line fits, nothing the user needs
is dropped or cut, and data in a cell is never taken for rich markup."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from usbtrace.cli.inspect_cmd import COLUMNS as INSPECT_COLUMNS
from usbtrace.cli.main import main
from usbtrace.report.table import Column, render_table

ROOT = Path(__file__).resolve().parents[1]
CONV = str(ROOT / "captures" / "sample-synthetic-conv.pcapng")
DENSE = str(ROOT / "captures" / "sample-synthetic-dense.pcapng")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """Standard output as a terminal: the commands draw for one (rich tables, wrapping)."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def terminal(monkeypatch) -> Terminal:
    monkeypatch.setenv("COLUMNS", "80")  # the width rich and the commands read first
    return Terminal()


def screen(out: Terminal) -> list[str]:
    return ANSI.sub("", out.getvalue()).splitlines()


def run(terminal: Terminal, *argv: str) -> list[str]:
    with contextlib.redirect_stdout(terminal):
        assert main(list(argv)) == 0
    lines = screen(terminal)
    wide = [line for line in lines if len(line) > 80]
    assert not wide, wide
    return lines


def test_cells_and_titles_are_text_not_markup(terminal):
    render_table(
        [Column("model"), Column("file")],
        [["conv_50 [metadata]", "run[1].pcapng"]],
        title="A (2.4, conv_50 [metadata])",
        stream=terminal,
    )
    text = "\n".join(screen(terminal))
    assert text.count("[metadata]") == 2
    assert "run[1].pcapng" in text


def test_a_table_that_just_does_not_fit_leaves_a_column_out_instead_of_cutting(terminal):
    # 39 + 40 characters, one between them and one at each edge: 82 columns
    render_table([Column("a"), Column("b", priority=50)], [["x" * 39, "y" * 40]], stream=terminal)
    lines = screen(terminal)
    assert not any("…" in line for line in lines)
    assert any("x" * 39 in line for line in lines)
    assert any("too narrow for: b" in line for line in lines)


def test_predict_keeps_the_prediction_on_a_narrow_terminal(terminal):
    lines = run(terminal, "predict", "--link", "high", CONV, DENSE)
    header = " ".join(lines[:4])
    for column in ("model", "measured", "predicted", "change"):
        assert column in header
    assert any("43.17 ms" in line for line in lines)  # conv_50 on USB 2, as the pipe prints it


def test_summarize_findings_wrap_under_their_dash(terminal):
    lines = run(terminal, "summarize", DENSE)
    start = lines.index("# findings (what costs the most time, costliest first)")
    findings = lines[start + 2 :]
    assert findings[0].startswith("  - 2.9 MB of parameters streamed per inference")
    assert findings[1].startswith("    ") and "in this capture]" in findings[1]


def test_diff_fits(terminal):
    lines = run(terminal, "diff", CONV, DENSE)
    assert "[metadata]" in " ".join(lines[:3])  # the models' sources, in the title
    assert any(line.startswith("no regression; changed:") for line in lines)


def test_inspect_rows_fit_and_say_what_was_left_out(terminal):
    lines = run(terminal, "inspect", DENSE)
    left_out = [line for line in lines if line.startswith("(too narrow for:")]
    assert len(left_out) == 1
    shown = [c.title for c in INSPECT_COLUMNS if c.title not in left_out[0]]
    assert {"time s", "kind", "bytes"} <= set(shown)
    assert any("parameters" in line and "1,040,896" in line for line in lines)


def test_inspect_in_a_pipe_keeps_every_column(capsys):
    assert main(["inspect", DENSE]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert re.split(r"\s{2,}", header.strip()) == [c.title for c in INSPECT_COLUMNS]
