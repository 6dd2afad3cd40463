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
