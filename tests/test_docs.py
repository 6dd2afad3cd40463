"""The documentation speaks of the product, not of how the project was written."""

from __future__ import annotations

import re

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
