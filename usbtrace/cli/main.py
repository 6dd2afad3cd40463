"""``usbtrace`` entry point: dispatches to one module per sub-command.

Each module in ``COMMANDS`` defines ``register(subparsers)`` (adds its parser and sets
``func=run``) and ``run(args) -> int``. Errors derived from ``UsbtraceError`` become one line on
stderr and their exit status (2); nothing below the CLI prints tracebacks at the user.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import re
import sys
import textwrap
import warnings
from collections.abc import Sequence
from typing import Any

from usbtrace import __version__
from usbtrace.allocator import tune_allocator
from usbtrace.errors import UsbtraceError, printable

# Order is the order in --help.
COMMANDS = (
    "capture",
    "summarize",
    "predict",
    "inspect",
    "verify",
    "models",
    "sweep",
    "plot",
    "timeline",
    "report",
    "diff",
    "export",
    "wireshark",
)

DESCRIPTION = """\
USB traffic capture and protocol analysis for the Google Coral Edge TPU USB Accelerator.
Splits every inference into instructions, input, cached and streamed parameters, output and
completion, tells what bounds each inference (the link, the device or the host), and predicts
what another link, clock or caching would gain."""


class HelpFormatter(argparse.HelpFormatter):
    """Descriptions and epilogs as the modules write them, fitted to the terminal: argparse's
    default joins all paragraphs into one, and its raw formatter prints lines as written,
    wider than an 80-column terminal. Here each paragraph's plain lines are re-wrapped to the
    width, and indented lines (examples, a list of actions) are kept line for line."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = []
        for paragraph in re.split(r"\n[ \t]*\n", text.strip("\n")):
            runs: list[list[str]] = []  # consecutive lines that are all prose, or all indented
            for line in paragraph.splitlines():
                if runs and runs[-1][0][:1].isspace() == line[:1].isspace():
                    runs[-1].append(line)
                else:
                    runs.append([line])
            paragraphs.append(
                "\n".join(
                    "\n".join(indent + line for line in run)
                    if run[0][:1].isspace()
                    else textwrap.fill(
                        " ".join(" ".join(run).split()),
                        width,
                        initial_indent=indent,
                        subsequent_indent=indent,
                        break_on_hyphens=False,
                    )
                    for run in runs
                )
            )
        return "\n\n".join(paragraphs)


class Parser(argparse.ArgumentParser):
    """Long options only as spelled (and their declared deprecated aliases): argparse would take
    any unambiguous prefix, so ``export --out`` meant ``--out-dir`` and a later option sharing
    the prefix would change what old command lines do. Sub-commands' parsers are of this class
    too (``add_subparsers`` makes its parsers of the class of the parser it belongs to)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with ``only``, just that command (the others' modules are never imported,
    which keeps a plain `usbtrace summarize` from paying for plotting, capture or Wireshark code).
    """
    parser = Parser(
        prog="usbtrace",
        description=DESCRIPTION,
    )
    parser.add_argument("--version", action="version", version=f"usbtrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        importlib.import_module(f"usbtrace.cli.{name}_cmd").register(sub)
    return parser


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning no command caught, said in the one-line form of every other message: Python's
    own form is two lines naming usbtrace's source file and line, which tell the user nothing
    (a cut capture's CaptureWarning already names the file)."""
    text = " ".join(str(message).split())
    print(f"usbtrace: warning: {printable(text)}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    with warnings.catch_warnings():  # restores the caller's showwarning (tests call main())
        warnings.showwarning = _one_line_warning
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    tune_allocator()
    words = list(sys.argv[1:] if argv is None else argv)
    first = next((w for w in words if not w.startswith("-")), None)
    parser = build_parser(first if first in COMMANDS else None)
    args = parser.parse_args(words)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a full disk behind `> file` shows here, not at interpreter exit
        return status
    except UsbtraceError as exc:
        print(f"usbtrace: {printable(str(exc))}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print("usbtrace: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into `head` and closed early: not an error worth a message
        _silence_stdout()
        return 0
    except OSError as exc:
        print(f"usbtrace: {printable(_os_error_line(exc))}", file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's last flush of what is left in stdout's
    buffer succeeds, instead of printing an "Exception ignored" traceback and exiting 120."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError):
        return  # not a real file (a test's StringIO): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


# Errors only a write gives. Writes of files go through the output guard, which names the file,
# so such an error without a file name is standard output's. (EIO is left out: a read of a
# capture can give it too.)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _os_error_line(exc: OSError) -> str:
    """One line for an OSError nothing below caught: which file, and what went wrong."""
    why = exc.strerror or str(exc)
    if exc.filename is not None:
        return f"{exc.filename}: {why}"
    if exc.errno in _WRITE_ERRNOS:
        _silence_stdout()
        return f"standard output: {why}"
    return why
