"""The rows a capture's finished requests leave behind: kept in mapped chunks, joined once."""

from __future__ import annotations

import numpy as np
import pytest

from usbtrace.analysis import rowstore
from usbtrace.analysis.metrics import REQUEST
from usbtrace.analysis.rowstore import RowStore, TransferSequences, select


@pytest.mark.parametrize("sizes", [[0], [1], [7, 0, 3, 11, 1], [25], [4, 4, 4, 4, 4, 4, 1]])
def test_rowstore_joins_windows_in_order_across_chunks(monkeypatch, sizes):
    # chunks of 4 rows, so windows straddle chunk boundaries
    monkeypatch.setattr(rowstore, "CHUNK_BYTES", 4 * REQUEST.itemsize)
    store = RowStore(REQUEST)
    pieces = []
    at = 0
    for n in sizes:
        rows = np.zeros(n, dtype=REQUEST)
        rows["index"] = np.arange(at, at + n)
        rows["t_start_ns"] = np.arange(at, at + n) * 1000 + 7
        at += n
        pieces.append(rows)
        store.append(rows)
    assert store.count == at
    joined = store.take()
    assert joined.dtype == REQUEST
    assert joined.tobytes() == np.concatenate(pieces).tobytes()
    joined["verdict"] = 1  # the joined rows are writable (host timing is added to them)
    assert store.count == 0 and len(store.take()) == 0


def test_select_copies_only_the_named_columns_of_the_chosen_rows():
    rows = np.zeros(5, dtype=REQUEST)
    rows["parameters"] = [10, 20, 30, 40, 50]
    rows["t_end_ns"] = [1, 2, 3, 4, 5]
    out = select(rows, rows["parameters"] > 25, ("parameters", "t_end_ns"))
    assert out.dtype.names == ("parameters", "t_end_ns")
    assert out.dtype.itemsize < REQUEST.itemsize
    assert out["parameters"].tolist() == [30, 40, 50]
    assert out["t_end_ns"].tolist() == [3, 4, 5]


def test_transfer_sequences_give_each_request_its_transfers_in_order():
    rng = np.random.default_rng(7)
    expected: dict[int, list[tuple[int, int]]] = {}
    seqs = TransferSequences()
    offset = 0
    for k in (3, 0, 5, 1, 4):
        n = int(rng.integers(0, 12))
        request = rng.integers(0, max(k, 1), n) if k else np.zeros(0, dtype=np.int64)
        # a few sequences repeat (as a model's do), one length is above 2**24
        tag = rng.integers(0, 3, len(request)).astype(np.uint8)
        length = rng.choice([8, 16, 2_943_616, 40_000_000], len(request)).astype(np.uint32)
        for r, t, n_ in zip(request.tolist(), tag.tolist(), length.tolist()):
            expected.setdefault(r + offset, []).append((t, n_))
        seqs.add(request, tag, length, k)
        offset += k
    seqs.close()
    assert len(seqs.ids) == offset
    assert seqs.sequences() == expected
    assert len(seqs.distinct) <= offset
