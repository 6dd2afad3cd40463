"""Per-endpoint tallies: the counting fast path agrees with the exact sort on any batch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from usbtrace.formats.records import RECORD, endpoint_sums


def exact(records: np.ndarray) -> dict:
    out: dict = {}
    h = records["hdr"]
    for i in range(len(records)):
        key = tuple(int(h[f][i]) for f in ("busnum", "devnum", "epnum", "type"))
        c, u, d = out.get(key, (0, 0, 0))
        out[key] = (c + 1, u + int(h["urb_len"][i]), d + int(h["data_len"][i]))
    return out


row = st.tuples(
    st.sampled_from([1, 2, 1, 1, 300]),  # bus: mostly one
    st.integers(0, 255),  # device
    st.sampled_from([0x00, 0x01, 0x81, 0x82, 0x83, 0x0F, 0x8F, 0x70, 0xFF]),  # endpoint
    st.sampled_from([ord("S"), ord("C"), ord("E"), ord("S"), ord("C"), ord("x")]),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(row, max_size=60), st.booleans())
def test_endpoint_sums_match_a_plain_tally(rows, one_bus):
    recs = np.zeros(len(rows), dtype=RECORD)
    h = recs["hdr"]
    for i, (bus, dev, ep, typ, ulen, dlen) in enumerate(rows):
        h["busnum"][i] = 2 if one_bus else bus
        h["devnum"][i], h["epnum"][i], h["type"][i] = dev, ep, typ
        h["urb_len"][i], h["data_len"][i] = ulen, dlen
    got = endpoint_sums(recs)
    assert [k for k, *_ in got] == sorted(k for k, *_ in got)  # key order
    assert {k: tuple(v) for k, *v in got} == exact(recs)
