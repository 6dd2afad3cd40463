"""Expanding the capture arguments of a command: files, directories, shell-unexpanded globs."""

from __future__ import annotations

import glob
from pathlib import Path

CAPTURE_SUFFIXES = (".pcapng", ".pcap", ".cap")


def expand_inputs(args: list[str]) -> tuple[list[Path], list[str]]:
    """(files to read, arguments that named nothing). Directories give their captures, sorted."""
    files: list[Path] = []
    missing: list[str] = []
    for a in args:
        p = Path(a)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.suffix.lower() in CAPTURE_SUFFIXES and f.is_file()
            )
            if not found:
                missing.append(f"{a}: directory holds no .pcapng/.pcap files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        elif any(ch in a for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(a))
            if not matches:
                missing.append(f"{a}: no file matches")
            files.extend(matches)
        else:
            missing.append(f"{a}: no such file")
    return files, missing
