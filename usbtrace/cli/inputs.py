"""Expanding the capture arguments of a command: files, directories, shell-unexpanded globs."""

from __future__ import annotations

import glob
import os
import stat
from pathlib import Path

from usbtrace.errors import UsageError

CAPTURE_SUFFIXES = (".pcapng", ".pcap", ".cap")


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _folder_captures(folder: str, problems: list[str]) -> list[Path]:
    """Every capture below ``folder``, sorted; a subfolder that cannot be listed is reported,
    not skipped in silence (its captures would be missing from the results)."""

    def unreadable(exc: OSError) -> None:
        problems.append(f"{exc.filename}: cannot list folder: {_why(exc)}")

    found = []
    for root, _, names in os.walk(folder, onerror=unreadable):
        for name in names:
            f = Path(root) / name
            if f.suffix.lower() not in CAPTURE_SUFFIXES:
                continue
            try:
                if stat.S_ISREG(os.stat(f).st_mode):
                    found.append(f)
            except FileNotFoundError:
                continue  # a dangling link, or gone since the listing
            except OSError as exc:  # listed, but behind a folder without search (x) permission
                problems.append(f"{f}: {_why(exc)}")
    return sorted(found)


def require_input(path: str) -> None:
    """A single-capture command's input must name something: "no such file" only when there is
    none. Standard input, a FIFO or a file behind a folder without search permission go on to the
    reader, which reads the first two and names what is wrong with the last (``is_file()``
    called all three "no such file")."""
    if path == "-":
        return
    try:
        os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError:
        return


def expand_inputs(args: list[str]) -> tuple[list[Path], list[str]]:
    """(files to read, one line per argument that named nothing or could not be read).

    Directories give their captures, sorted."""
    files: list[Path] = []
    missing: list[str] = []
    for a in args:
        if a == "-":  # standard input: read as a stream by the pipeline
            files.append(Path(a))
            continue
        try:
            mode: int | None = os.stat(a).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:  # a folder on the way without search (x) permission, a loop…
            missing.append(f"{a}: {_why(exc)}")
            continue
        if mode is not None and stat.S_ISDIR(mode):
            problems: list[str] = []
            found = _folder_captures(a, problems)
            missing.extend(problems)
            if not found and not problems:
                missing.append(f"{a}: directory holds no .pcapng/.pcap files")
            files.extend(found)
        elif mode is not None:
            files.append(Path(a))
        elif any(ch in a for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(a))
            if not matches:
                missing.append(f"{a}: no file matches")
            files.extend(matches)
        else:
            missing.append(f"{a}: no such file")
    return files, missing
