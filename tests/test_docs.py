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
