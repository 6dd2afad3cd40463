"""Which model a capture ran: the metadata, ``--model`` or its bytes say; a file name only guesses.

A capture's file name is whatever the user called it: conv_50 copied to ``dense_900.pcapng`` is
still conv_50. So a name read from the file name is a *guess*: shown as ``dense_900?`` and never
used for operations, TOPS or grouping by size. A name is known when the capture's metadata names
it, when the user names it (``--model``), or when the capture's bytes match exactly one compiled
model of the catalog: the parameter-caching request's instructions and parameters, and one
inference's instructions, input and streamed parameters, all as the compiled model predicts them.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from usbtrace.errors import UsbtraceError
from usbtrace.models.catalog import catalog_entries, models_dir, parse_model_name
from usbtrace.models.identity import (
    FROM_BYTES,
    FROM_FILE_NAME,
    FROM_METADATA,
    FROM_OPTION,
    ModelIdentity,
)
from usbtrace.models.inspect import ModelSummary, inspect_model

if TYPE_CHECKING:
    from usbtrace.analysis.summary import CaptureSummary


@dataclass(frozen=True)
class WireBytes:
    """What a capture moved, to compare with compiled models (None: the capture has none)."""

    caching: tuple[int, int] | None  # (instructions, parameters) of the first caching request
    inference: tuple[int, int, int] | None  # (instructions, input, parameters), the most common


def wire_bytes(
    caching: Sequence[tuple[int, int]], inferences: Sequence[tuple[int, int, int]]
) -> WireBytes:
    common = Counter(inferences).most_common(1)
    return WireBytes(caching[0] if caching else None, common[0][0] if common else None)


def _predicted(m: ModelSummary) -> WireBytes | None:
    """The wire bytes the compiled model predicts, or None when it cannot predict them."""
    if not m.compiled or not m.packages:
        return None
    caching = [p.caching for p in m.packages if p.caching is not None]
    cache = (
        (
            sum(sum(e.instruction_bitstream_bytes) for e in caching),
            sum(e.parameter_bytes for e in caching),
        )
        if caching
        else None
    )
    return WireBytes(cache, (m.instruction_bytes, m.input_bytes, m.streamed_bytes))


@functools.cache
def _catalog_predictions(folder: str, stamp: tuple[tuple[str, int, int], ...]) -> tuple:
    """(name, prediction) of every compiled catalog model in ``folder`` (cached per file state)."""
    out = []
    for name, _, _ in stamp:
        entry = next(e for e in catalog_entries(Path(folder)) if e.name == name)
        try:
            predicted = _predicted(inspect_model(entry.compiled))
        except (UsbtraceError, OSError, ValueError):
            continue
        if predicted is not None:
            out.append((name, predicted))
    return tuple(out)


def _compiled_catalog(folder: Path) -> tuple[tuple[str, int, int], ...]:
    stamp = []
    for entry in catalog_entries(folder):
        try:
            st = entry.compiled.stat()
        except OSError:
            continue
        stamp.append((entry.name, st.st_mtime_ns, st.st_size))
    return tuple(stamp)


def match_by_bytes(seen: WireBytes, folder: Path | None = None) -> str | None:
    """The one compiled catalog model whose predicted bytes are exactly those seen, else None."""
    if seen.inference is None:
        return None
    folder = folder or models_dir()
    try:
        stamp = _compiled_catalog(folder)
    except UsbtraceError:  # no readable catalog
        return None
    # a capture that began after the cache fill shows no caching request: inferences decide
    matches = [
        name
        for name, want in _catalog_predictions(str(folder), stamp)
        if want.inference == seen.inference
        and (seen.caching is None or want.caching == seen.caching)
    ]
    return matches[0] if len(matches) == 1 else None


def guess_from_file_name(path: str | Path) -> str | None:
    parsed = parse_model_name(Path(path).stem)
    return f"{parsed[0]}_{parsed[1]}" if parsed else None


def identify_model(
    *,
    option: str | None,
    metadata: str | None,
    seen: WireBytes,
    path: str | Path,
) -> ModelIdentity:
    """The capture's model and how it is known, in that order of trust."""
    if option:
        return ModelIdentity(option, FROM_OPTION)
    if metadata:
        return ModelIdentity(metadata, FROM_METADATA)
    matched = match_by_bytes(seen)
    if matched:
        return ModelIdentity(matched, FROM_BYTES)
    guess = guess_from_file_name(path)
    return ModelIdentity(guess, FROM_FILE_NAME if guess else None)


def identify_summary(summary: CaptureSummary, option: str | None = None) -> ModelIdentity:
    """The model of one summarized Edge TPU: ``--model``, the metadata, its bytes, or a guess
    from the file name (the model stage of the pipeline, after the summary)."""
    caching, inferences = summary.wire_signature()
    meta = summary.run_metadata
    return identify_model(
        option=option,
        metadata=meta.model if meta else None,
        seen=wire_bytes(caching, inferences),
        path=summary.file,
    )
