"""A folder of many small valid captures (and optionally broken ones): the fleet of the tests
and of the parallel benchmark."""

from __future__ import annotations

import random
from pathlib import Path

from lab.fuzzing.session import edgetpu_session
from lab.usb.writer import encode


def make_fleet(folder: Path, n: int, *, bad: int = 0) -> list[Path]:
    """``n`` captures named like catalog models (conv_10 ... conv_70), then ``bad`` broken ones."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = random.Random(i)
        s = edgetpu_session(rng, inferences=rng.randint(1, 3), streamed=rng.choice((0, 1_100_000)))
        p = folder / f"conv_{10 + i % 7 * 10}-host{i:04d}.pcapng"
        p.write_bytes(encode(s.records).data)
        paths.append(p)
    for i in range(bad):
        p = folder / f"broken-{i}.pcapng"
        # a section header whose length field is garbage: unreadable from byte 0
        p.write_bytes(b"\n\r\r\n" + random.Random(i).randbytes(40))
        paths.append(p)
    return paths
