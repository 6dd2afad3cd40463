"""The documentation speaks of the product, not of how the project was written."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest
from conftest import PROJECT_ROOT

DOCS = [*sorted((PROJECT_ROOT / "docs").glob("*.md")), PROJECT_ROOT / "README.md"]
# notes between the people who wrote it: paste-in sections, hand-offs, instructions to a lead
WORKSHOP = re.compile(r"for the lead|to paste|README section|lead to|hand(ed)? off", re.I)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_no_notes_about_writing_the_project(doc):
    hits = [
        f"{doc.name}:{n}: {line.strip()}"
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if WORKSHOP.search(line)
    ]
    assert not hits, hits


def _setup_commands() -> list[str]:
    """The README's first code block: the set-up commands, one a line."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    last = [line for line in ci.splitlines() if line.strip() and not line.startswith("#")][-1]
    first, tests = _setup_commands()
    assert last == tests
    # Debian 12 and Raspberry Pi OS refuse `pip install` outside a venv (PEP 668): both
    # commands make one and use its pip; nothing is installed into the system's Python
    for command in (first, tests):
        assert command.startswith("python3 -m venv .venv && .venv/bin/pip install")
        assert "python3 -m pip" not in command and "sudo" not in command


HARDENING = PROJECT_ROOT / "docs" / "hardening.md"
# each core bug of docs/hardening.md (a phrase of its item) and a line of the code that holds its
# fix or the part of it the item speaks of: a module the item names must hold that line
FIXES = [
    ("damage anywhere in a read chunk", "self.error = exc"),
    ("if_tsresol", "exp - 9 >= 19"),
    ("if_tsresol", "abs(offset) < MAX_TSOFFSET_S"),
    ("wrong types", "a bad one is dropped and named"),
    ("multi_bo_ep", "d.multi_ep_from = item.complete_frame"),
    ("headerless bulk-OUT", "GIVE_UP_UNFRAMED - f.unframed"),
    ("off 0x01", "Runs of 0x01 and of other endpoints"),
    ("error statuses", 'f"endpoint {ep:#04x} completed with status {s}"'),  # USB's, counted
    ("error statuses", "sorted({**u.stats.errors, **d.errors}.items())"),  # listed
]


def _core_bugs() -> list[str]:
    text = HARDENING.read_text(encoding="utf-8")
    section = text.split("Bugs the fuzzer found in the core", 1)[1].split("\n## ", 1)[0]
    return [" ".join(item.split()) for item in section.split("\n* ")[1:]]


@pytest.mark.parametrize(("phrase", "code"), FIXES, ids=[f"{p}: {c[:30]}" for p, c in FIXES])
def test_hardening_names_the_modules_that_hold_each_fix(phrase, code):
    (item,) = [i for i in _core_bugs() if phrase in i]
    named = re.findall(r"`([a-z_/]+\.py)`", item)
    assert named and all((PROJECT_ROOT / "usbtrace" / n).is_file() for n in named), named
    holders = [n for n in named if code in (PROJECT_ROOT / "usbtrace" / n).read_text()]
    assert holders, f"{code!r} is in none of {named}"


def test_hardening_gives_the_reader_chunk_size():
    from usbtrace.formats.capture import CHUNK_BYTES

    text = " ".join(HARDENING.read_text(encoding="utf-8").split())
    sizes = re.findall(r"chunk \((\d+) MiB|files over (\d+) MiB", text)
    assert len(sizes) == 3
    assert {int(a or b) for a, b in sizes} == {CHUNK_BYTES >> 20}


# --- the README's names against the checkout: each check a newcomer would make by hand ---

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
# prose only: the fenced blocks are commands and outputs, checked by running them
PROSE = re.sub(r"```.*?```", "", README, flags=re.S)
SPANS = re.findall(r"`([^`\n]+)`", PROSE)
# named in the README but not in the checkout, by design: made by a command, or outside it
ELSEWHERE = ("/", "~", ".venv", "shared/", "../", "bench/")
FILE_SUFFIXES = (".py", ".md", ".sh", ".json", ".lua", ".pcapng", ".tflite", ".txt", ".html")


def _section(title: str) -> str:
    return PROSE.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def _in_checkout(name: str) -> bool:
    """A path as the README writes it: from the checkout, from the package, or a bare file name
    next to a path it follows (``metrics.py`` after ``usbtrace/analysis/requests.py``)."""
    if (PROJECT_ROOT / name).exists() or (PROJECT_ROOT / "usbtrace" / name).exists():
        return True
    return "/" not in name and any(
        p.name == name
        for d in ("usbtrace", "lab", "scripts", "tests")
        for p in (PROJECT_ROOT / d).rglob(name)
    )


def test_every_path_the_readme_names_exists():
    def is_path(s: str) -> bool:
        if not re.fullmatch(r"[\w.\-/]+", s) or s == "n/a" or s.startswith(ELSEWHERE):
            return False  # "n/a" is the verdict
        if s.startswith(".") or re.search(r"\b[A-Z]{3,}", s):
            return False  # a suffix alone, or a pattern (``NAME_edgetpu.tflite``)
        if s.endswith(FILE_SUFFIXES):
            return True
        # a folder, or a file without a suffix; not ``usb/devices.UrbStage`` (a name in one)
        return "/" in s and "." not in s.rsplit("/", 1)[-1]

    paths = {s for s in SPANS if is_path(s)}
    assert len(paths) > 60
    missing = sorted(p for p in paths if not _in_checkout(p))
    assert not missing, missing


def _defines(module: pathlib.Path, name: str) -> bool:
    files = sorted(module.rglob("*.py")) if module.is_dir() else [module]
    pattern = re.compile(rf"^\s*(class|def)\s+{name}\b|^\s*{name}\s*[:=]", re.M)
    return any(pattern.search(f.read_text(encoding="utf-8")) for f in files)


def _module(path: str) -> pathlib.Path:
    for base in (PROJECT_ROOT, PROJECT_ROOT / "usbtrace"):
        if (base / path).exists():
            return base / path
    raise AssertionError(f"no module {path}")


def test_glossary_names_are_defined_where_it_says():
    table = PROSE.split("### Glossary: one name per concept", 1)[1].split("\n## ", 1)[0]
    checked = 0
    for row in table.splitlines()[3:]:
        names, modules = row.split("|")[1:3]
        paths = re.findall(r"`([\w/.]+)`", modules)
        for name in re.findall(r"`(\w+)`", names):
            where = [_module(p) for p in paths]
            assert any(_defines(m, name) for m in where), (name, paths)
            checked += 1
    assert checked > 40


def test_dotted_names_resolve():
    """``usb/devices.UrbStage``, ``pipeline.timeline_file``, ``usbtrace.pipeline.predict_file``:
    a module of the package and a name it defines."""
    ref_pattern = re.compile(r"(usbtrace\.)?[a-z_/]+(\.[a-z_]+)*\.[A-Za-z_]\w*")
    dotted = {s for s in SPANS if ref_pattern.fullmatch(s) and not s.endswith(FILE_SUFFIXES)}
    checked = 0
    for ref in sorted(dotted):
        module, name = ref.removeprefix("usbtrace.").replace(".", "/").rsplit("/", 1)
        path = PROJECT_ROOT / "usbtrace" / f"{module}.py"
        if not path.is_file():
            continue  # not a module of the package (``sys.path``, ``usb.capdata``)
        assert _defines(path, name), ref
        checked += 1
    assert checked >= 6


def test_the_readme_lists_every_synthetic_preset():
    from lab.synthetic import PRESETS

    listed = PROSE.split("\nPresets: ", 1)[1].split(".", 1)[0]
    assert sorted(" ".join(listed.split()).split(", ")) == sorted(PRESETS)


def test_the_commands_table_names_real_commands_and_options():
    from usbtrace.cli.main import COMMANDS, build_parser

    table = _section("What it does").split("\n\n", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| `usbtrace ")]
    named = set()
    for row in rows:
        commands = re.findall(r"`usbtrace (\w+)|, `(\w+)`", row.split("|")[1])
        commands = [a or b for a, b in commands]
        named.update(commands)
        if len(commands) != 1:
            continue
        parser = build_parser(commands[0])
        sub = next(a for a in parser._actions if a.dest == "command").choices[commands[0]]
        flags = {f for a in sub._actions for f in a.option_strings}
        for flag in re.findall(r"`(--[a-z-]+)", row):
            if flag != "--":
                assert flag in flags, (commands[0], flag)
    assert named == set(COMMANDS)


def test_export_columns_are_the_exported_ones():
    from usbtrace.report.export import CAPTURE_COLUMNS, REQUEST_COLUMNS

    text = " ".join(PROSE.split("**Export columns.**", 1)[1].split())
    requests, captures = (
        text.split(f"`{name}.csv`, one row per ", 1)[1].split(". ", 1)[0]
        for name in ("requests", "captures")
    )
    assert re.findall(r"`(\w+)`", requests) == [c.name for c in REQUEST_COLUMNS]
    assert re.findall(r"`(\w+)`", captures) == [c.name for c in CAPTURE_COLUMNS]


SCRIPTS = sorted(set(re.findall(r"\b(scripts/\w+\.py)", README)))


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s != "scripts/fuzz_atheris.py"])
def test_every_script_the_readme_runs_answers_help(script):
    """``--help`` says what the script does and does nothing (it rewrote tests/corpus once);
    fuzz_atheris.py takes libFuzzer's flags (-help=1) and needs atheris."""
    run = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("usage: ")
