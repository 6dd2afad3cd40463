"""The output guard: no command overwrites an input or a capture, whatever the file is called and
whatever --force says; writes are atomic; the output flags follow one convention."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import stat
import threading
from pathlib import Path

import pytest

from lab.fuzzing.oracle import run_cli
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import OutputError
from usbtrace.formats.sniff import capture_format

ROOT = Path(__file__).resolve().parents[1]
CONV = ROOT / "captures" / "sample-synthetic-conv.pcapng"
DENSE = ROOT / "captures" / "sample-synthetic-dense.pcapng"
USBMON_TEXT = b"ffff88003b8a7a00 3575914555 S Ci:1:001:0 s a3 00 0000 0003 0004 4 <\n"


@pytest.fixture
def caps(tmp_path: Path) -> tuple[Path, Path]:
    d = tmp_path / "caps"
    d.mkdir()
    return Path(shutil.copy(CONV, d)), Path(shutil.copy(DENSE, d))


def one_line_error(o, *words: str) -> None:
    assert o.traceback is None, o.traceback
    assert o.status == 2, (o.status, o.stderr)
    errors = [line for line in o.stderr.splitlines() if not line.startswith("usbtrace: note:")]
    assert len(errors) == 1 and errors[0].startswith("usbtrace: "), o.stderr
    for w in words:
        assert w in errors[0], errors[0]


# -- item 1: the reported cases ---------------------------------------------------------------


def test_summarize_csv_before_a_glob_leaves_the_first_capture_alone(caps) -> None:
    a, b = caps
    before = a.read_bytes()
    o = run_cli(["summarize", "--csv", str(a), str(b)])  # the shell expanded dir/*.pcapng
    one_line_error(o, str(a), "holds a capture (pcapng)")
    assert a.read_bytes() == before


def test_summarize_csv_naming_its_own_input_is_refused(caps) -> None:
    a, _ = caps
    before = a.read_bytes()
    one_line_error(run_cli(["summarize", str(a), "--csv", str(a)]), "is an input")
    assert a.read_bytes() == before


def test_report_force_never_replaces_a_capture_named_html(caps, tmp_path: Path) -> None:
    a, _ = caps
    disguised = tmp_path / "C.html"
    shutil.copy(DENSE, disguised)
    o = run_cli(["report", str(a), "-o", str(disguised), "--force"])
    one_line_error(o, "holds a capture")
    assert disguised.read_bytes() == DENSE.read_bytes()


def test_a_hard_link_to_an_input_is_the_input(caps, tmp_path: Path) -> None:
    a, _ = caps
    bogus = tmp_path / "notes.txt"  # not a capture by content: only its identity protects it
    bogus.write_text("not a capture")
    link = tmp_path / "link.csv"
    os.link(bogus, link)
    o = run_cli(["summarize", str(a), str(bogus), "-o", str(link)])
    one_line_error(o, "is an input")
    assert bogus.read_text() == "not a capture"


@pytest.mark.parametrize(
    "content, fmt",
    [
        (CONV.read_bytes(), "pcapng"),
        (bytes.fromhex("d4c3b2a1") + bytes(20), "pcap"),  # little-endian µs pcap
        (bytes.fromhex("a1b23c4d") + bytes(20), "pcap"),  # big-endian ns pcap
        (gzip.compress(CONV.read_bytes()), "pcapng+gzip"),
        (USBMON_TEXT, "usbmon-text"),
    ],
)
def test_guard_refuses_every_capture_format_even_forced(tmp_path: Path, content, fmt) -> None:
    assert capture_format(content[:512]) == fmt
    victim = tmp_path / "report.html"
    victim.write_bytes(content)
    with pytest.raises(OutputError, match=r"holds a capture"):
        OutputGuard(force=True).check_file(victim)
    with pytest.raises(OutputError), OutputGuard(force=True).open(victim) as f:
        f.write("x")
    assert victim.read_bytes() == content


@pytest.mark.parametrize("text", [b"", b"file,device\n", b"<html>", b"\x1f\x8bnot gzip"])
def test_guard_replaces_what_is_not_a_capture(tmp_path: Path, text: bytes) -> None:
    assert capture_format(text) is None
    f = tmp_path / "out.csv"
    f.write_bytes(text)
    with OutputGuard().open(f) as stream:
        stream.write("new")
    assert f.read_text() == "new"
    with pytest.raises(OutputError, match="--force"):
        OutputGuard().check_file(f, replace=False)
    assert OutputGuard(force=True).check_file(f, replace=False) == f


def _commands(tmp: Path, a: Path) -> dict[str, tuple[list[str], Path]]:
    """Every command that writes a file, with the file it would write."""
    lua = tmp / "edgetpu.lua"
    return {
        "summarize -o": (["summarize", str(a), "-o", str(tmp / "t.txt")], tmp / "t.txt"),
        "summarize --csv -o": (["summarize", str(a), "--csv", "-o", str(tmp / "c")], tmp / "c"),
        "summarize --by-size --csv -o": (
            ["summarize", str(a), "--by-size", "--csv", "-o", str(tmp / "s")],
            tmp / "s",
        ),
        "export --csv": (
            ["export", str(a), "--csv", "--out-dir", str(tmp / "e"), "--jobs", "1"],
            tmp / "e" / "captures.csv",
        ),
        "export --parquet": (
            ["export", str(a), "--parquet", "--out-dir", str(tmp / "p"), "--jobs", "1"],
            tmp / "p" / "requests.parquet",
        ),
        "plot": (["plot", str(a), "--out-dir", str(tmp / "pl")], tmp / "pl" / "conv-latency.png"),
        "report": (["report", str(a), "-o", str(tmp / "r.html"), "--force"], tmp / "r.html"),
        "timeline": (["timeline", str(a), "-o", str(tmp / "t.png"), "--force"], tmp / "t.png"),
        "wireshark lua": (["wireshark", "lua", "-o", str(lua), "--force"], lua),
        "wireshark install": (
            ["wireshark", "install", "--dir", str(tmp / "ws"), "--force"],
            tmp / "ws" / "usbtrace_edgetpu.lua",
        ),
    }


COMMANDS = list(_commands(Path("/x"), Path("/y")))


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_writes_its_file_and_never_over_a_capture(caps, tmp_path, name) -> None:
    if name.startswith(("plot", "report", "timeline")):
        pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    if name == "export --parquet":
        pytest.importorskip("pyarrow", reason="pyarrow (extra `parquet`) is not installed")
    a, _ = caps
    argv, target = _commands(tmp_path, a)[name]
    o = run_cli(argv)
    assert o.status == 0 and o.traceback is None, o.stderr
    assert target.is_file() and target.stat().st_size > 0
    # the same command again, now that a capture sits where its output goes
    shutil.copy(DENSE, target)
    one_line_error(run_cli(argv), str(target), "holds a capture")
    assert target.read_bytes() == DENSE.read_bytes()
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_models_build_never_writes_over_a_capture(tmp_path: Path) -> None:
    out = tmp_path / "m"
    out.mkdir()
    shutil.copy(CONV, out / "conv_10.tflite")
    o = run_cli(["models", "build", "conv_10", "--out-dir", str(out)])
    one_line_error(o, "holds a capture")
    assert (out / "conv_10.tflite").read_bytes() == CONV.read_bytes()


def test_a_name_with_a_capture_suffix_is_refused(caps, tmp_path: Path) -> None:
    a, _ = caps
    one_line_error(run_cli(["summarize", str(a), "-o", str(tmp_path / "n.pcap")]), "named like")
    assert not (tmp_path / "n.pcap").exists()


# -- atomic writes ----------------------------------------------------------------------------


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    f = tmp_path / "table.csv"
    f.write_text("old")

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match="No space left"):
        OutputGuard().write(f, half_then_fail)
    assert f.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]
    with pytest.raises(KeyboardInterrupt), OutputGuard().open(f) as stream:
        stream.write("half")
        raise KeyboardInterrupt
    assert f.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv"]


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with OutputGuard().open(tmp_path / "a.csv") as stream:
            stream.write("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.csv").stat().st_mode) == 0o644


def test_a_fifo_is_written_in_place(caps, tmp_path: Path) -> None:
    a, _ = caps
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    o = run_cli(["summarize", str(a), "--csv", "-o", str(fifo)])
    reader.join(timeout=30)
    assert o.status == 0, o.stderr
    assert stat.S_ISFIFO(fifo.lstat().st_mode)  # still a FIFO, not replaced by a file
    assert got and got[0].startswith(b"file,device,model")


def test_a_symlink_to_a_file_is_followed_and_kept(caps, tmp_path: Path) -> None:
    a, _ = caps
    real = tmp_path / "real.csv"
    real.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    assert run_cli(["summarize", str(a), "--csv", "-o", str(link)]).status == 0
    assert link.is_symlink() and real.read_text().startswith("file,device")


# -- item 14: one convention, old spellings still work ----------------------------------------


def test_summarize_output_formats(caps, tmp_path: Path) -> None:
    a, _ = caps
    for flags, start in (
        ([], "# usbtrace summary"),
        (["--json"], '{"captures"'),
        (["--csv"], "file,"),
    ):
        o = run_cli(["summarize", str(a), *flags, "-o", str(tmp_path / "out")])
        assert o.status == 0 and o.stdout == "", o.stderr
        assert (tmp_path / "out").read_text().startswith(start)
    o = run_cli(["summarize", str(a), "--csv"])
    assert o.status == 0 and o.stdout.startswith("file,device,model")
    one_line_error(run_cli(["summarize", str(a), "--csv", "--json"]), "one format")


@pytest.mark.parametrize(
    "old, new, made",
    [
        (["summarize", "{a}", "--csv", "{t}/x.csv"], "--csv -o FILE", "x.csv"),
        (["export", "{a}", "--csv", "{t}/d", "--jobs", "1"], "--csv --out-dir DIR", "d"),
        (["plot", "{a}", "-o", "{t}/p"], "use --out-dir", "p"),
        (["plot", "{a}", "--out", "{t}/p"], "use --out-dir", "p"),
        (["report", "{a}", "--out", "{t}/r.html"], "use -o/--output", "r.html"),
        (["timeline", "{a}", "--out", "{t}/t.png"], "use -o/--output", "t.png"),
    ],
)
def test_old_spellings_work_with_one_note(caps, tmp_path: Path, old, new, made) -> None:
    if old[0] in ("plot", "report", "timeline"):
        pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")
    a, _ = caps
    o = run_cli([w.format(a=a, t=tmp_path) for w in old])
    assert o.status == 0, o.stderr
    notes = [line for line in o.stderr.splitlines() if line.startswith("usbtrace: note:")]
    assert len(notes) == 1 and "deprecated" in notes[0] and new in notes[0]
    assert (tmp_path / made).exists()


@pytest.mark.parametrize(
    "argv, dest",
    [
        (["capture", "--out", "X"], "out"),
        (["sweep", "--family", "conv", "--sizes", "10", "--out", "X"], "out"),
        (["models", "build", "conv_10", "--out", "X"], "out"),
    ],
)
def test_folder_flags_of_the_runners_take_the_old_spelling(argv, dest, capsys) -> None:
    from usbtrace.cli.main import build_parser

    args = build_parser(argv[0]).parse_args(argv)
    assert str(getattr(args, dest)) == "X"
    assert "--out is deprecated; use --out-dir" in capsys.readouterr().err
    new = [w if w != "--out" else "--out-dir" for w in argv]
    assert str(getattr(build_parser(argv[0]).parse_args(new), dest)) == "X"
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "argv, made",
    [
        (["export", "{a}", "--csv", "--out", "{t}/d", "--jobs", "1"], "d"),  # was --out-dir
        (["export", "{a}", "--csv", "--out-d", "{t}/d", "--jobs", "1"], "d"),
        (["summarize", "{a}", "--jso", "-o", "{t}/s.json"], "s.json"),  # was --json
        (["summarize", "{a}", "--per-inf", "-o", "{t}/s.txt"], "s.txt"),
        (["summarize", "{a}", "--outp", "{t}/s.txt"], "s.txt"),  # was --output
    ],
)
def test_abbreviated_long_options_are_refused(caps, tmp_path: Path, argv, made) -> None:
    """Only full spellings and the declared old ones: argparse took any unambiguous prefix."""
    a, _ = caps
    o = run_cli([w.format(a=a, t=tmp_path) for w in argv])
    assert o.traceback is None and o.status == 2, o.stderr
    assert "unrecognized arguments" in o.stderr or "expected one argument" in o.stderr, o.stderr
    assert not (tmp_path / made).exists()


def test_no_parser_takes_abbreviations() -> None:
    from usbtrace.cli.main import build_parser

    stack, seen = [build_parser()], 0
    while stack:
        p = stack.pop()
        assert p.allow_abbrev is False, p.prog
        seen += 1
        for action in p._actions:
            if isinstance(getattr(action, "choices", None), dict):
                stack.extend(action.choices.values())
    assert seen > 15  # the commands, and the actions of models and wireshark


def test_every_output_flag_follows_the_convention() -> None:
    """No command offers a visible output flag other than -o/--output FILE or --out-dir DIR
    (besides the format flags and wireshark's plug-in --dir)."""
    from usbtrace.cli.main import COMMANDS, build_parser

    allowed = {"-o", "--output", "--out-dir", "--csv", "--parquet", "--json", "--dir"}
    suspicious = ("out", "dir", "save", "write", "dest")
    parser = build_parser()
    seen = set()
    stack = [parser]
    while stack:
        p = stack.pop()
        for action in p._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                stack.extend(choices.values())
                continue
            if action.help == "==SUPPRESS==":
                continue  # a deprecated spelling
            for opt in action.option_strings:
                seen.add(opt)
                if any(w in opt for w in suspicious):
                    assert opt in allowed, f"{p.prog} {opt}"
    assert {"-o", "--output", "--out-dir"} <= seen and len(COMMANDS) > 5


def test_models_compile_never_lets_the_compiler_write_over_a_capture(tmp_path, monkeypatch):
    from test_models_compiler import NEW_STYLE, _fake_compiler

    from usbtrace.models.catalog import MODELS_DIR_ENV

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_compiler(bin_dir, NEW_STYLE)
    models = tmp_path / "models"
    models.mkdir()
    victim = models / "conv_10_edgetpu.compiler.txt"
    shutil.copy(CONV, victim)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv(MODELS_DIR_ENV, str(models))
    one_line_error(run_cli(["models", "compile", "conv_10"]), str(victim), "holds a capture")
    assert victim.read_bytes() == CONV.read_bytes()
    assert not (models / "conv_10_edgetpu.tflite").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["summarize", "{bad}", "{a}", "-o", "{t}/nodir/x.csv"],
        ["report", "{bad}", "{a}", "-o", "{t}/nodir/r.html"],
        ["export", "{bad}", "{a}", "--csv", "--out-dir", "{t}/file.txt", "--jobs", "1"],
    ],
)
def test_outputs_are_refused_before_the_analysis(caps, tmp_path: Path, argv) -> None:
    a, _ = caps
    bad = tmp_path / "bad.pcapng"
    bad.write_bytes(b"not a capture")  # analysed, it would add a line of its own
    (tmp_path / "file.txt").write_text("a file, not a folder")
    o = run_cli([w.format(a=a, bad=bad, t=tmp_path) for w in argv])
    one_line_error(o)
    assert str(bad) not in o.stderr


@pytest.mark.parametrize("fmt", ["usbpcap-pcap", "usbpcap-pcapng", "darwin-pcap", "darwin-pcapng",
                                 "usbmon-text"])  # fmt: skip
def test_every_format_usbtrace_reads_is_protected(tmp_path: Path, fmt: str) -> None:
    """A file summarize reads as a capture (written by the lab's converter) is one the guard
    will not replace, whatever its name: the reader and the guard agree."""
    from lab.usb.convert import convert

    victim = tmp_path / "notes.csv"
    convert(CONV, victim, fmt)
    o = run_cli(["summarize", "--json", str(victim)])
    assert o.status == 0, o.stderr
    assert json.loads(o.stdout)["captures"][0]["summary"]["inferences"] == 5  # as the original
    before = victim.read_bytes()
    o = run_cli(["summarize", str(CONV), "--csv", "-o", str(victim)])
    one_line_error(o, "holds a capture")
    assert victim.read_bytes() == before


def _file_writes(path: Path) -> list[str]:
    """Where a module opens or writes a file by itself: ``open(...)``, ``x.open(...)``,
    ``x.write_text(...)``, ``x.write_bytes(...)``."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
        if name in ("open", "write_text", "write_bytes"):
            found.append(f"{path.name}:{node.lineno} {name}")
    return found


def test_report_writers_write_only_what_the_guard_opened(tmp_path: Path) -> None:
    """The report modules write to a stream or a temporary path the command got from its
    ``OutputGuard``; one that opened a path itself would overwrite a user's file unchecked."""
    import usbtrace.report

    folder = Path(usbtrace.report.__file__).parent
    assert [w for p in sorted(folder.glob("*.py")) for w in _file_writes(p)] == []
    # the checker sees what it looks for
    f = tmp_path / "m.py"
    f.write_text("def f(p):\n    open(p, 'w')\n    p.write_text('')\n    p.read_text()\n")
    assert _file_writes(f) == ["m.py:2 open", "m.py:3 write_text"]


@pytest.mark.parametrize(
    "flags", [[], ["--json"], ["--csv"], ["--by-size", "--json"], ["--by-size", "--csv"]]
)
def test_summarize_with_nothing_analysed_leaves_the_output_file_alone(tmp_path, flags) -> None:
    """No input gave a result (exit 2): --json and --csv replaced the file at -o with an empty
    document, a failed run destroying the good table of the last one. Standard output still
    gets the empty document."""
    bad = tmp_path / "empty.pcapng"
    bad.write_bytes(b"")
    kept = tmp_path / "table.json"
    kept.write_text("the last run's table\n")
    o = run_cli(["summarize", "--jobs", "1", str(bad), *flags, "-o", str(kept)])
    one_line_error(o, str(bad), "is empty")
    assert kept.read_text() == "the last run's table\n"
    new = tmp_path / "new.json"
    assert run_cli(["summarize", "--jobs", "1", str(bad), *flags, "-o", str(new)]).status == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.pcapng", "table.json"]
    if flags == ["--json"]:
        assert json.loads(run_cli(["summarize", str(bad), *flags]).stdout) == {"captures": []}
