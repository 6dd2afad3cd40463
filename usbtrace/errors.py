"""Errors a user can cause, and the one-line form they are reported in.

Anything raised as an ``InputError`` reaches the user as ``usbtrace: FILE: at byte N: what`` with
exit status 2 and no traceback. Code below the CLI raises these and never prints or exits itself.
"""

from __future__ import annotations

from pathlib import Path


class UsbtraceError(Exception):
    """Base class for errors that are reported to the user without a traceback."""

    exit_status = 2


class InputError(UsbtraceError):
    """A file that cannot be read as what it was supposed to be."""

    def __init__(self, path: str | Path | None, message: str, offset: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.offset = offset
        self.message = message
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(self.path)
        if self.offset is not None:
            parts.append(f"at byte {self.offset}")
        parts.append(self.message)
        return ": ".join(parts)


class OutputError(UsbtraceError):
    """A file or folder usbtrace was asked to write cannot or must not be written."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{self.path}: {message}")


class UsageError(UsbtraceError):
    """The command line asks for something that cannot be done."""


class CaptureWarning(UserWarning):
    """Something in a capture was skipped or suspicious, but decoding went on."""


def printable(text: str) -> str:
    """``text`` as it may reach a terminal: every character that is not printable (a control
    character, so an escape sequence or a newline; a format character such as U+202E) escaped
    as repr() writes it. File names come from folder listings and other people's captures: a
    name holding ESC or a newline would drive the terminal or split a one-line message."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
