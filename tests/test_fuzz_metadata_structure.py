"""The fuzz mutation class "metadata structure": every attack it makes keeps the CLI contract.

Each attack (deep nesting, huge integers, long strings, wrong types, duplicate keys, non-UTF-8,
NaN, control characters, out-of-range values) is put into a valid session's pcapng as a usbtrace
metadata block; ``summarize`` must report the session, name the dropped metadata in its
integrity verdict and print no traceback.
"""

from __future__ import annotations

import random
from pathlib import Path

from lab.fuzzing.mutate import _structure_attack, b_metadata_structure, base_records
from lab.fuzzing.oracle import check_summarize
from lab.usb.writer import Layout, encode


def test_every_attack_keeps_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "case.pcapng"
    seen: set[str] = set()
    seed = 0
    while len(seen) < 10 and seed < 200:
        seed += 1
        rng = random.Random(seed)
        kind, recs, _ = base_records(rng)
        if kind in ("empty",):
            continue
        enc = encode(recs, Layout(order=rng.choice("<>")))
        data = bytearray(enc.data)
        desc, _, flag = b_metadata_structure(rng, data, enc)
        assert flag and desc.startswith("metadata structure: ")
        seen.add(desc.split(": ")[1].split(" (")[0])
        path.write_bytes(bytes(data))
        o = check_summarize(path, expect_problem=True)
        assert not o.violations, (seed, desc, o.violations, o.stderr[-500:])
        assert "metadata: dropped" in o.stderr, (seed, desc, o.stderr)
    names = {_structure_attack(random.Random(i))[0] for i in range(400)}
    assert seen == names and len(names) == 10
