"""``usbtrace/allocator.py``: the heap keeps freed batch buffers while a capture streams, and
gives them back before the end of a long capture joins its rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import numpy as np
from usbtrace.allocator import give_back, tune_allocator

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6

assert tune_allocator()
# a batch's worth of arrays below the raised mmap threshold: on the heap, touched, then freed;
# small arrays that stay (as a window's state does) pin the holes they leave
arrays, pins = [], []
for _ in range(120):
    arrays.append(np.ones(1 << 20, dtype=np.uint8))
    pins.append(np.ones(512, dtype=np.uint8))
del arrays
kept = rss_mb()
assert give_back()
print(kept, rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_batches_stay_in_the_heap_until_given_back():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout.split()
    kept, after = float(out[0]), float(out[1])
    # 120 MB freed but kept in the heap's holes, then returned
    assert kept - after > 60, (kept, after)
