"""The one way a command writes a file or a folder: the output guard.

Every command that writes anything goes through an ``OutputGuard``, which

* refuses a path that is one of the command's inputs (the same file, by device and inode, so a
  different spelling or a hard link is caught too);
* refuses to replace any existing file that holds a capture, judged by its content
  (``usbtrace.formats.sniff``), never by its name, whatever ``--force`` says: usbtrace never
  destroys what the user captured;
* refuses a name with a capture's suffix (``.pcapng``…): what it writes is no capture;
* refuses an existing file unless the command replaces its outputs (``replace=True``) or the
  user gave ``--force``; refuses a folder where a file is wanted and a file where a folder is;
* writes a regular file through a temporary file beside it, renamed over the target only when
  complete, so a failure (a full disk, Ctrl-C) never leaves half a file; a special file that
  already exists (``/dev/stdout``, a FIFO, ``/dev/null``) is written in place, since renaming
  over it would replace the device or the pipe with a plain file;
* turns every ``OSError`` into one ``OutputError``: ``usbtrace: PATH: what``, exit status 2.

Checks run twice: when the command starts (``check_file``/``folder``, before a long analysis)
and again right before the rename, in case a capture appeared at the path meanwhile.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from usbtrace.cli.inputs import CAPTURE_SUFFIXES, expand_inputs
from usbtrace.errors import OutputError
from usbtrace.formats.sniff import file_capture_format

NEVER_OVERWRITTEN = "usbtrace never overwrites a capture"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputGuard:
    """Checks and writes a command's outputs; see the module docstring for the rules."""

    def __init__(self, inputs: Iterable[str | Path] = (), *, force: bool = False) -> None:
        self.force = force
        self._inputs: dict[tuple[int, int], str] = {}
        self.add_inputs(inputs)

    def add_inputs(self, inputs: Iterable[str | Path]) -> None:
        """Remember the identity of every input file (folders: the captures in them)."""
        files, _ = expand_inputs([str(p) for p in inputs])
        for f in files:
            try:
                st = os.stat(f)
            except OSError:
                continue  # what cannot be stat'ed cannot be read either: not an input
            self._inputs[(st.st_dev, st.st_ino)] = str(f)

    # -- checks -----------------------------------------------------------------------------

    def check_file(self, path: str | Path, *, replace: bool = True) -> Path:
        """The path to write to (a symlink resolved), or OutputError saying why not.

        ``replace``: an existing ordinary file may be replaced (``--force`` also allows it)."""
        target = Path(path)
        try:
            st = os.stat(target)
        except FileNotFoundError:
            self._check_name(path)
            self._probe(path, target.parent)  # a folder that cannot take it: said now
            return target
        except OSError as exc:
            raise OutputError(path, f"cannot write: {_why(exc)}") from None
        mode = st.st_mode
        if (st.st_dev, st.st_ino) in self._inputs:
            raise OutputError(path, "is an input of this command; refusing to overwrite it")
        if stat.S_ISDIR(mode):
            raise OutputError(path, "is a folder, not a file")
        if stat.S_ISBLK(mode):
            raise OutputError(path, "is a block device; refusing to write to it")
        if not stat.S_ISREG(mode):
            return target  # a character device or a FIFO: written in place
        if target.is_symlink():
            target = Path(os.path.realpath(target))  # replace the file, keep the link
        try:
            fmt = file_capture_format(target)
        except OSError as exc:
            # unreadable: it could be a capture, so it is not replaced
            why = _why(exc)
            raise OutputError(path, f"exists and cannot be read ({why}); not replaced") from None
        if fmt is not None:
            raise OutputError(path, f"holds a capture ({fmt}); {NEVER_OVERWRITTEN}")
        self._check_name(path)
        if not (replace or self.force):
            raise OutputError(path, "exists (use --force to overwrite)")
        return target

    @staticmethod
    def _check_name(path: str | Path) -> None:
        suffix = Path(path).suffix
        if suffix.lower() in CAPTURE_SUFFIXES:
            # what usbtrace writes here is no capture: named .pcapng, it would pass for one
            raise OutputError(path, f"is named like a capture ({suffix}); choose another name")

    def folder(self, path: str | Path) -> Path:
        """A folder to write several files into: created if missing, and shown writable now
        (a probe file is made and removed) rather than after a long analysis."""
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise OutputError(path, "exists and is not a folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(path, f"cannot create folder: {_why(exc)}") from None
        self._probe(path, out)
        return out

    @staticmethod
    def _probe(path: str | Path, folder: Path) -> None:
        """Show that ``folder`` takes new files by making one and removing it."""
        try:
            fd, probe = tempfile.mkstemp(prefix=".usbtrace-probe.", dir=folder)
            os.close(fd)
            os.unlink(probe)
        except FileNotFoundError:
            raise OutputError(path, f"cannot write: folder {folder} does not exist") from None
        except OSError as exc:
            raise OutputError(path, f"cannot write in folder {folder}: {_why(exc)}") from None

    # -- writing ----------------------------------------------------------------------------

    def write(
        self, path: str | Path, write: Callable[[Path], Any], *, replace: bool = True
    ) -> Path:
        """Have ``write(tmp)`` write the whole file at ``tmp`` (libraries that take a path:
        pyarrow, matplotlib), then put it in place. Returns the path written."""
        target = self.check_file(path, replace=replace)
        if target.exists() and not target.is_file():
            try:
                write(target)  # a special file: in place
            except OSError as exc:
                raise OutputError(path, _why(exc)) from None
            return Path(path)
        tmp = self._temp_beside(path, target)
        try:
            write(tmp)
            self._put_in_place(path, tmp, target, replace)
        except OSError as exc:
            raise OutputError(path, _why(exc)) from None
        finally:
            tmp.unlink(missing_ok=True)
        return Path(path)

    @contextlib.contextmanager
    def open(
        self, path: str | Path, *, replace: bool = True, newline: str | None = None
    ) -> Iterator[TextIO]:
        """``with guard.open(path) as stream:`` a UTF-8 text stream whose file appears
        (complete) only when the block ends without an exception."""
        target = self.check_file(path, replace=replace)
        special = target.exists() and not target.is_file()
        tmp = target if special else self._temp_beside(path, target)
        try:
            try:
                stream = open(tmp, "w", encoding="utf-8", newline=newline)  # noqa: SIM115
            except OSError as exc:
                raise OutputError(path, _why(exc)) from None
            try:
                with stream:
                    yield stream
                    stream.flush()  # a full disk shows here, inside the error handling
                    if not special:
                        os.fsync(stream.fileno())
            except OSError as exc:
                raise OutputError(path, _why(exc)) from None
            if not special:
                try:
                    self._put_in_place(path, tmp, target, replace)
                except OSError as exc:
                    raise OutputError(path, _why(exc)) from None
        finally:
            if not special:
                tmp.unlink(missing_ok=True)

    def _temp_beside(self, path: str | Path, target: Path) -> Path:
        try:
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        except OSError as exc:
            raise OutputError(path, f"cannot write: {_why(exc)}") from None
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # what open() would have made, not mkstemp's 0600
        finally:
            os.close(fd)
        return Path(name)

    def _put_in_place(self, path: str | Path, tmp: Path, target: Path, replace: bool) -> None:
        # again: a capture may have been written at the path while the command ran
        self.check_file(path, replace=replace)
        os.replace(tmp, target)
