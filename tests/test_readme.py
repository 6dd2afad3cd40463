"""The README's quoted output is what the command prints today (it drifted once already)."""

from __future__ import annotations

import subprocess
import sys

from conftest import PROJECT_ROOT

PROMPT = "$ usbtrace "


def quoted_runs() -> list[tuple[list[str], str]]:
    """Every ``$ usbtrace ...`` line in a README code block, with the text printed after it."""
    lines = (PROJECT_ROOT / "README.md").read_text().splitlines()
    runs = []
    for i, line in enumerate(lines):
        if line.startswith(PROMPT):
            out = []
            for following in lines[i + 1 :]:
                if following.startswith("```") or following.startswith(PROMPT):
                    break
                out.append(following)
            runs.append((line[len(PROMPT) :].split(), "\n".join(out)))
    return runs


def test_readme_quotes_real_output():
    runs = quoted_runs()
    assert runs, "the README quotes no command output"
    for argv, expected in runs:
        got = subprocess.run(
            [sys.executable, "-m", "usbtrace", *argv],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=120,
        )
        assert got.returncode == 0, got.stderr
        assert got.stdout.rstrip("\n") == expected, f"README output of `usbtrace {' '.join(argv)}`"
