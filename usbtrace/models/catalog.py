"""The catalog of the study's benchmark models (``models/catalog.json``) and name resolution.

``resolve`` turns what a user types (``conv_300``, ``mobilenet_v1``, the study's file names such as
``model_conv_128x128x3x32x7x50_edgetpu.tflite``, or any path) into a ``CatalogEntry`` that knows
where the source and compiled files are and whether they exist. ``parse_model_name`` extracts
(family, size) from any of those names so that reports can order rows by family and size.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from usbtrace.errors import InputError, UsageError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CATALOG_FILE = PROJECT_ROOT / "models" / "catalog.json"
MODELS_DIR_ENV = "USBTRACE_MODELS_DIR"  # where built/compiled models live (default: models/)
COMPILED_SUFFIX = "_edgetpu"
COMPILER_STDOUT_SUFFIX = "_edgetpu.compiler.txt"


@dataclass(frozen=True)
class Family:
    family: str
    size_unit: str
    sizes: tuple[int, ...]
    description: str

    def name(self, size: int) -> str:
        return self.family if len(self.sizes) == 1 else f"{self.family}_{size}"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    family: str | None
    size: int | None
    description: str
    source: Path  # the uncompiled .tflite
    compiled: Path  # the *_edgetpu.tflite
    in_catalog: bool = True

    @property
    def source_exists(self) -> bool:
        return self.source.is_file()

    @property
    def compiled_exists(self) -> bool:
        return self.compiled.is_file()

    @property
    def compiler_stdout(self) -> Path:
        return self.compiled.with_name(self.compiled.name.replace(".tflite", ".compiler.txt"))

    def require_compiled(self) -> Path:
        """The compiled file, or a ``UsageError`` that says how to make it."""
        if self.compiled_exists:
            return self.compiled
        if not self.in_catalog:
            raise UsageError(f"{self.name}: no compiled model at {self.compiled}")
        raise UsageError(
            f"{self.name}: no compiled model at {self.compiled}; build with "
            f"`usbtrace models build {self.name}`, compile with "
            f"`usbtrace models compile {self.name}` (needs edgetpu_compiler)"
        )

    def require_source(self) -> Path:
        if self.source_exists:
            return self.source
        hint = f"; build with `usbtrace models build {self.name}`" if self.in_catalog else ""
        raise UsageError(f"{self.name}: no model at {self.source}{hint}")


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_DIR_ENV, PROJECT_ROOT / "models"))


def load_catalog(path: Path | None = None) -> list[Family]:
    path = path or CATALOG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Family(
                family=str(f["family"]),
                size_unit=str(f.get("size_unit", "")),
                sizes=tuple(int(s) for s in f["sizes"]),
                description=str(f.get("description", "")),
            )
            for f in data["families"]
        ]
    except OSError as exc:
        raise InputError(path, f"cannot read the model catalog: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"malformed model catalog: {exc}") from None


def catalog_entries(
    directory: Path | None = None, catalog: list[Family] | None = None
) -> list[CatalogEntry]:
    directory = directory or models_dir()
    entries = []
    for fam in catalog if catalog is not None else load_catalog():
        for size in fam.sizes:
            name = fam.name(size)
            entries.append(
                CatalogEntry(
                    name=name,
                    family=fam.family,
                    size=size,
                    description=fam.description,
                    source=directory / f"{name}.tflite",
                    compiled=directory / f"{name}{COMPILED_SUFFIX}.tflite",
                )
            )
    return entries


# The study's file names: model_conv_128x128x3x32x7x50, model_dense_2x2x3x100x300; both end in
# their layer count. MobileNet files carry their resolution: mobilenet_v1_1.0_224_quant.
_STRIP = re.compile(r"(_edgetpu)?(\.tflite)?$")
_SSD = re.compile(r"(?:^|_)ssd_mobilenet_v(\d)(?:_[\d.]+)*?(?:_(\d{2,4}))?(?:_|$)")
_MOBILENET = re.compile(r"(?:^|_)mobilenet_v(\d)(?:_(\d+\.\d+))?(?:_(\d{2,4}))?(?:_|$)")
_FAMILY_SIZE = re.compile(r"^(?:model_)?([a-z][a-z0-9]*?)_((?:\d+x)*)(\d+)$")
_LAYER_COUNT_FAMILIES = ("conv", "dense")  # their names end in the layer count
_DEFAULT_RESOLUTION = {"mobilenet_v1": 224, "mobilenet_v2": 224, "ssd_mobilenet_v1": 300}


def parse_model_name(name: str | Path) -> tuple[str, int] | None:
    """(family, size) for a catalog name, a study file name or a path; None if not recognised.

    ``conv_300`` -> ("conv", 300); ``model_conv_128x128x3x32x7x50_edgetpu.tflite`` -> ("conv", 50);
    ``model_dense_2x2x3x100x300`` -> ("dense", 300); ``mobilenet_v1_1.0_224_quant_edgetpu.tflite``
    -> ("mobilenet_v1", 224). The size is a layer count, or an input resolution for MobileNets.
    """
    stem = _STRIP.sub("", Path(str(name)).name).lower()
    ssd = _SSD.search(stem)
    if ssd:
        family = f"ssd_mobilenet_v{ssd.group(1)}"
        return family, int(ssd.group(2) or _DEFAULT_RESOLUTION.get(family, 300))
    mobilenet = _MOBILENET.search(stem)
    if mobilenet:
        family = f"mobilenet_v{mobilenet.group(1)}"
        return family, int(mobilenet.group(3) or _DEFAULT_RESOLUTION.get(family, 224))
    match = _FAMILY_SIZE.match(stem)
    if match is None:
        return None
    family, dims, last = match.group(1), match.group(2), int(match.group(3))
    if family in _LAYER_COUNT_FAMILIES or not dims:
        return family, last
    return family, int(dims.split("x")[0])  # e.g. model_padding_256x256x3: the input side


def model_sort_key(name: str | Path) -> tuple[int, str, int, str]:
    """Orders rows by family then size; unrecognised names last, alphabetically."""
    parsed = parse_model_name(name)
    if parsed is None:
        return (1, "", 0, str(name))
    return (0, parsed[0], parsed[1], str(name))


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith(".tflite")


def entry_for_path(path: Path) -> CatalogEntry:
    stem = _STRIP.sub("", path.name)
    compiled = path.name.endswith(f"{COMPILED_SUFFIX}.tflite")
    parsed = parse_model_name(path)
    return CatalogEntry(
        name=stem,
        family=parsed[0] if parsed else None,
        size=parsed[1] if parsed else None,
        description="",
        source=path.with_name(f"{stem}.tflite") if compiled else path,
        compiled=path if compiled else path.with_name(f"{stem}{COMPILED_SUFFIX}.tflite"),
        in_catalog=False,
    )


def resolve(name_or_path: str | Path, directory: Path | None = None) -> CatalogEntry:
    """A catalog entry for a catalog name or a model file path.

    Raises ``UsageError`` for a name that is neither in the catalog nor an existing file. Check
    ``source_exists``/``compiled_exists``, or call ``require_compiled()`` for an error that says
    how to build and compile the model.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file() or _looks_like_path(text):
        if not path.exists():
            raise InputError(path, "no such model file")
        return entry_for_path(path)
    entries = catalog_entries(directory)
    by_name = {e.name: e for e in entries}
    if text in by_name:
        return by_name[text]
    parsed = parse_model_name(text)
    for entry in entries:
        if parsed is not None and (entry.family, entry.size) == parsed:
            return entry
    known = ", ".join(e.name for e in entries)
    raise UsageError(f"unknown model {text!r}: give a .tflite path or a catalog name ({known})")


def model_for_capture(
    explicit: str | Path | None = None,
    model_path: str | Path | None = None,
    model_name: str | None = None,
) -> Path | None:
    """The compiled model to reconcile a capture with, or None when there is none to be had.

    ``explicit`` (``summarize --model``) must resolve to a compiled file, or this raises the
    error that says how to build and compile it. Otherwise the capture metadata's ``model_path``
    is used if that file exists, then its catalog ``model_name`` if that model is compiled.
    """
    if explicit is not None:
        if Path(explicit).is_file():
            return Path(explicit)  # any name: inspect_model tells whether it is compiled
        return resolve(explicit).require_compiled()
    # the other two come from the capture's metadata: untrusted, even after its schema
    if model_path is not None and _is_file(Path(model_path)):
        entry = entry_for_path(Path(model_path))
        if _is_file(entry.compiled):
            return entry.compiled
    named = catalog_entry(model_name) if model_name else None
    if named is not None and _is_file(named.compiled):
        return named.compiled
    return None


def catalog_entry(name: str, directory: Path | None = None) -> CatalogEntry | None:
    """The catalog's entry for a model name, never a file path; None if the catalog has none."""
    if _looks_like_path(name):
        return None
    entries = catalog_entries(directory)
    parsed = parse_model_name(name)
    for entry in entries:
        if entry.name == name or (parsed is not None and (entry.family, entry.size) == parsed):
            return entry
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system, a NUL in it
        return False


def option_model_name(model: str | Path) -> str:
    """The name ``--model`` gives: a catalog name, or a model file's stem (no ``_edgetpu``)."""
    path = Path(model)
    if path.is_file():
        return entry_for_path(path).name
    return resolve(model).name
