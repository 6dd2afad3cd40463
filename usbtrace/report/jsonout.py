"""Writing big JSON documents fast: orjson when it is installed, the standard library otherwise.

A summary of a million-frame capture is tens of thousands of request objects; orjson encodes
them about seven times faster than ``json.dumps`` (measured: 15 ms against 111 ms). Both give
the same document (orjson without the optional spaces).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO, get_args, get_type_hints

from usbtrace.analysis.metrics import RequestJsonColumns, request_json_keys

if TYPE_CHECKING:
    from usbtrace.analysis.metrics import RequestTable
    from usbtrace.analysis.summary import CaptureSummary

try:
    import orjson
except ImportError:  # pragma: no cover - exercised where orjson is absent
    orjson = None  # type: ignore[assignment]


def write_json(doc: Any, stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if orjson is not None:
        data = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            stream.flush()
            buffer.write(data + b"\n")
            buffer.flush()
            return
        stream.write(data.decode() + "\n")
        return
    stream.write(json.dumps(doc) + "\n")


def write_encoded(data: bytes, stream: TextIO | None = None) -> None:
    """Already-encoded JSON text (e.g. lines from ``encode_numbers`` columns), flushed."""
    stream = stream or sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(data.decode())
        stream.flush()
        return
    stream.flush()  # anything written as text goes first
    buffer.write(data)
    buffer.flush()


def encode_numbers(values: Sequence[int | float | bool | None]) -> list[bytes]:
    """Each value's JSON text, for a column of numbers (or None, booleans).

    Rows written a column at a time skip a dict and an encoder call per row: the column is
    encoded in one call and split at its commas, which no number holds.
    """
    if not values:
        return []
    return _dumps(list(values))[1:-1].split(b",")


def encode_strings(values: Sequence[str | None]) -> list[bytes]:
    """Each value's JSON text, for a column of strings (or None): encoded once per distinct
    value (a string may hold a comma, so the column is not split as numbers are)."""
    known = {v: _dumps(v) for v in set(values)}
    return [known[v] for v in values]


def _dumps(doc: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(doc)
    return json.dumps(doc, separators=(",", ":")).encode()


Encoder = Callable[[Sequence[Any]], list[bytes]]


def request_encoding(columns: type) -> tuple[bytes, tuple[tuple[str, Encoder], ...]]:
    """The template of a request's object and each of its columns' encoder, in the template's
    order, from the fields of ``columns`` (``RequestJsonColumns``; its keys and their nesting
    from ``metrics.request_json_keys``, as ``RequestTable.to_json_rows`` builds its objects).
    The template's last ``%b`` is for the keys only some requests have."""
    keys = request_json_keys(columns)
    hints = get_type_hints(columns)

    def value(key: str, members: tuple[str, ...]) -> bytes:
        # keys are field names: no ``%`` in them to confuse the template
        if not members:
            return _dumps(key) + b":%b"
        return _dumps(key) + b":{" + b",".join(value(m, ()) for m in members) + b"}"

    def encoder(name: str) -> Encoder:
        # a string may hold a comma: a column of strings is never split as numbers are
        (item,) = get_args(hints[name])  # list[item]
        return encode_strings if str in (item, *get_args(item)) else encode_numbers

    template = b"{" + b",".join(value(k, m) for k, m in keys) + b"%b}"
    # the columns in the template's order: a nested object's members in its place
    order = [c for key, members in keys for c in members or (key,)]
    return template, tuple((c, encoder(c)) for c in order)


# built once: a summary encodes tens of thousands of requests, 4096 to a block
_REQUEST, _REQUEST_COLUMNS = request_encoding(RequestJsonColumns)


def _request_blocks(requests: RequestTable) -> Iterator[tuple[bytes, int]]:
    """The requests' JSON objects (``RequestTable.to_json_rows``), comma-separated, a block of
    up to 4096 at a time (and how many the block holds): encoded a column at a time, the
    same bytes as encoding each object, without building them."""
    for lo in range(0, len(requests), 4096):
        c = requests.json_columns(lo, lo + 4096)
        extra = [b"" if x is None else b"," + _dumps(x)[1:-1] for x in c.extra]
        cols = [encode(getattr(c, name)) for name, encode in _REQUEST_COLUMNS]
        cols.append(extra)
        line = _REQUEST
        yield b",".join([line % r for r in zip(*cols)]), len(extra)


# a capture's keys written before its requests: known when its first request is
FIRST_KEYS = ("file", "device")


class CapturesJson:
    """``{"captures": [...]}`` (README, "summarize --json"), written as it becomes known.

    ``requests`` (a ``pipeline.LeadSink``) writes the lead capture's requests as they finish,
    flushed for whoever reads the output: its ``file`` and ``device`` first, then its
    requests, and at the end (``finish``) its other keys and summary, then the other captures.
    Nothing is ever built whole: requests are encoded a block at a time from the compact rows.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lead: tuple[str, str] | None = None  # (file, device) once its requests are out
        self.written = 0  # its requests written so far (their indices run from 0)

    def _write(self, data: bytes) -> None:
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:
            self.stream.write(data.decode())
            return
        buffer.write(data)

    def _flush(self) -> None:
        getattr(self.stream, "buffer", self.stream).flush()

    def requests(self, file: str, device: str, rows: RequestTable) -> None:
        if not len(rows):
            return
        if self.lead is None:
            self.stream.flush()  # anything written as text goes first
            self.lead = (file, device)
            head = _dumps({"file": file, "device": device})
            self._write(b'{"captures":[' + head[:-1] + b',"requests":[')
        self._requests(rows)
        self._flush()

    def _requests(self, rows: RequestTable) -> None:
        for block, n in _request_blocks(rows):
            self._write((b"," if self.written else b"") + block)
            self.written += n

    def finish(self, summaries: Sequence[CaptureSummary]) -> None:
        """The rest of the document; ``summaries`` in their order, the lead first."""
        if self.lead is None:
            self.stream.flush()
            self._write(b'{"captures":[')
            rest = list(summaries)
        elif not summaries or (summaries[0].file, summaries[0].device) != self.lead:
            # the file failed after its first requests were out (a read error with no byte
            # offset): its object is closed with what was written, the failure on stderr
            self._write(b"]}")
            rest = list(summaries)
        else:
            first, rest = summaries[0], list(summaries[1:])
            self._requests(first.requests[self.written :])
            head = {k: v for k, v in first.head_json().items() if k not in FIRST_KEYS}
            self._write(b"]," + _dumps(head)[1:-1] + b',"summary":')
            self._write(_dumps(first.summary_json()) + b"}")
        for n, s in enumerate(rest):
            sep = b"," if n or self.lead is not None else b""
            self._write(sep + _dumps(s.head_json())[:-1] + b',"requests":[')
            for k, (block, _) in enumerate(_request_blocks(s.requests)):
                self._write((b"," if k else b"") + block)
            self._write(b'],"summary":' + _dumps(s.summary_json()) + b"}")
        self._write(b"]}\n")
        self._flush()


def write_captures_json(summaries: Sequence[CaptureSummary], stream: TextIO | None = None) -> None:
    """``{"captures": [...]}`` (README, "summarize --json"), each capture's requests encoded a
    block at a time from its compact table: the document is never built whole (a long
    capture's is hundreds of MB of objects)."""
    CapturesJson(stream).finish(summaries)
