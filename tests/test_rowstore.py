"""The rows a capture's finished requests leave behind: kept in mapped chunks, joined once."""

from __future__ import annotations

import numpy as np
import pytest

from usbtrace.analysis import rowstore
from usbtrace.analysis.metrics import REQUEST
from usbtrace.analysis.rowstore import RowStore, select


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
