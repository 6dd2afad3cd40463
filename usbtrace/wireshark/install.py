"""Where Wireshark looks for personal Lua plug-ins, and putting the generated dissector there.

Wireshark (2.5 and later, on Linux) loads every ``*.lua`` in the personal plug-in folder,
``~/.local/lib/wireshark/plugins``. ``tshark -G folders`` names the folder a given installation
uses, so it is asked first. A file of the same name that usbtrace did not write is never replaced
silently: the caller has to say ``force``, and even then the old file is kept beside it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from usbtrace.errors import UsageError
from usbtrace.wireshark.generate import SIGNATURE, generate_lua

PathArg = str | os.PathLike[str] | None

PLUGIN_FILENAME = "usbtrace_edgetpu.lua"
FOLDERS_KEY = "Personal Lua Plugins:"
TSHARK_TIMEOUT_S = 20


def default_plugin_dir() -> Path:
    """The folder Wireshark documents for personal Lua plug-ins on Linux."""
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def tshark_plugin_dir(tshark: str = "tshark") -> Path | None:
    """The personal Lua plug-in folder as tshark reports it, or None without a usable tshark."""
    exe = shutil.which(tshark)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "-G", "folders"],
            capture_output=True,
            text=True,
            timeout=TSHARK_TIMEOUT_S,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if line.startswith(FOLDERS_KEY):
            folder = line[len(FOLDERS_KEY) :].strip()
            return Path(folder) if folder else None
    return None


def plugin_dir(override: PathArg = None) -> Path:
    if override is not None:
        return Path(override).expanduser()
    return tshark_plugin_dir() or default_plugin_dir()


def is_ours(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as f:
            return f.readline().startswith(SIGNATURE)
    except OSError:
        return False


@dataclass(frozen=True)
class InstallResult:
    path: Path
    action: str  # "installed", "updated", "unchanged" or "replaced"
    backup: Path | None = None


def _free_backup_name(path: Path) -> Path:
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak{n}")
        n += 1
    return candidate


def write_plugin(path: Path, *, force: bool = False) -> InstallResult:
    """Write the generated dissector to ``path`` atomically, guarding a foreign file there."""
    text = generate_lua()
    action = "installed"
    backup = None
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a plug-in file")
    if path.exists():
        if not is_ours(path):
            if not force:
                raise UsageError(
                    f"{path}: exists and was not written by usbtrace; "
                    "pass --force to replace it (the old file is kept as .bak)"
                )
            backup = _free_backup_name(path)
            shutil.copy2(path, backup)
            action = "replaced"
        elif path.read_text(encoding="utf-8", errors="replace") == text:
            return InstallResult(path, "unchanged")
        else:
            action = "updated"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".usbtrace-", suffix=".lua", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write the plug-in: {exc.strerror or exc}") from exc
    return InstallResult(path, action, backup)


def install(directory: PathArg = None, *, force: bool = False) -> InstallResult:
    return write_plugin(plugin_dir(directory) / PLUGIN_FILENAME, force=force)


def uninstall(directory: PathArg = None, *, force: bool = False) -> Path | None:
    """Remove the installed plug-in; None when there was none."""
    path = plugin_dir(directory) / PLUGIN_FILENAME
    if not path.exists():
        return None
    if not is_ours(path) and not force:
        raise UsageError(f"{path}: was not written by usbtrace; pass --force to remove it anyway")
    try:
        path.unlink()
    except OSError as exc:
        raise UsageError(f"{path}: cannot remove: {exc.strerror or exc}") from exc
    return path
