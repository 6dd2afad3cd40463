"""``usbtrace/allocator.py``: the heap keeps freed batch buffers while a capture streams, and
gives them back before the end of a long capture joins its rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

CHILD = """
import os
import sys
import numpy as np
from usbtrace.allocator import give_back, tune_allocator

def rss_mb():
    with open("/proc/self/statm") as f:  # in pages, 4 KiB or not (16 KiB on some arm64)
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

if not tune_allocator():
    print("no-mallopt")  # musl or another libc: nothing to measure
    sys.exit()
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
    if out == ["no-mallopt"]:
        pytest.skip("this libc has no mallopt (not glibc)")
    kept, after = float(out[0]), float(out[1])
    # 120 MB freed but kept in the heap's holes, then returned
    assert kept - after > 60, (kept, after)


def test_libc_is_looked_up_once(monkeypatch):
    """``give_back`` runs after every summarized file: looking libc up again each time ran
    ``ldconfig -p`` in a child process per file (ctypes.util.find_library)."""
    import ctypes.util

    import usbtrace.allocator as allocator

    calls = []
    find = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: calls.append(name) or find(name))
    getattr(allocator._libc, "cache_clear", lambda: None)()
    for _ in range(3):
        allocator.give_back()
    assert len(calls) <= 1
