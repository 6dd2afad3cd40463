"""The output-flag convention every command follows, and the old spellings it replaced.

* ``-o/--output FILE`` names the one file a command writes (instead of standard output, where
  the command prints);
* ``--out-dir DIR`` names the folder of a command that writes several files;
* the format is chosen by a flag (``--json``, ``--csv``, ``--parquet``) or, for images, by the
  file's suffix, never by the flag that names the place.

Old spellings (``summarize --csv PATH``, ``export --csv DIR``, ``plot -o DIR``, ``--out``) still
work and print one deprecation note on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def note(text: str) -> None:
    print(f"usbtrace: note: {text}", file=sys.stderr)


class Deprecated(argparse.Action):
    """An old spelling: stores into the new option's ``dest`` and says what to write now."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, use: str, **kw: Any) -> None:
        self.use = use
        kw.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        note(f"{option_string} is deprecated; use {self.use}")
        setattr(namespace, self.dest, values)


def add_output_file(
    p: argparse.ArgumentParser, help: str, *, metavar: str = "FILE", old: str | None = None
) -> None:
    """``-o/--output FILE`` (dest ``output``); ``old`` is a deprecated long spelling."""
    p.add_argument("-o", "--output", metavar=metavar, help=help)
    if old:
        p.add_argument(old, dest="output", action=Deprecated, use="-o/--output")


def add_out_dir(
    p: argparse.ArgumentParser,
    help: str,
    *,
    old: Sequence[str] = (),
    default: Path | None = None,
) -> None:
    """``--out-dir DIR`` (dest ``out_dir``, a Path); ``old`` spellings are deprecated."""
    p.add_argument("--out-dir", type=Path, default=default, metavar="DIR", help=help)
    if old:
        p.add_argument(*old, dest="out_dir", type=Path, action=Deprecated, use="--out-dir")


class FormatOrLegacyPath(argparse.Action):
    """``--csv`` (a format flag) that also accepts the old ``--csv PATH``: the flag stores True;
    a value stores the path and prints the deprecation note."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, use: str, **kw: Any) -> None:
        self.use = use
        super().__init__(option_strings, dest, nargs="?", const=True, **kw)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if isinstance(values, str):
            note(
                f"{option_string} {values}: naming the place after {option_string} is "
                f"deprecated; use {self.use}"
            )
        setattr(namespace, self.dest, values)
