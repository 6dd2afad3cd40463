"""Shared test fixtures: where ../shared lives, and a helper that skips when it does not."""

from __future__ import annotations

import os
import pathlib

import pytest

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = pathlib.Path(os.environ.get("USBTRACE_SHARED", PROJECT_ROOT.parent / "shared"))
# a fresh clone has no ../shared: the skip says what is missing and where it was looked for
SHARED_HINT = "reference material beside the checkout, not in it: ../shared or $USBTRACE_SHARED"


def shared_path(relpath: str) -> pathlib.Path:
    """A file under ../shared, or a skip naming where it was looked for."""
    path = SHARED / relpath
    if not path.exists():
        pytest.skip(f"shared fixture missing: {path} ({SHARED_HINT})")
    return path


@pytest.fixture
def shared_file():
    return shared_path
