#!/usr/bin/env python3
"""Rebuild ``tests/corpus/``: one small capture per bug the fuzzer found, plus expected outcomes.

Each file is a synthetic session (``lab.fuzzing``) with exactly the damage that once broke
usbtrace; ``expected.json`` says what ``usbtrace summarize --json`` must now report for it.
Deterministic: running it again rewrites the same bytes.

    python3 scripts/make_fuzz_corpus.py
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lab.fuzzing.mutate import make_case  # noqa: E402
from lab.fuzzing.session import edgetpu_session  # noqa: E402
from lab.usb.record import UsbRecord  # noqa: E402
from lab.usb.writer import Layout, encode, idb  # noqa: E402
from usbtrace.edgetpu.constants import (  # noqa: E402
    CSR_MULTI_BO_EP,
    CSR_REQUEST_64,
    EP_BULK_OUT,
    REQTYPE_VENDOR_OUT,
    Tag,
)
from usbtrace.formats import pcapng_writer as bt  # noqa: E402
from usbtrace.formats.metadata import METADATA_MAGIC, METADATA_PEN  # noqa: E402
from usbtrace.formats.usbmon import (  # noqa: E402
    STATUS_IN_PROGRESS,
    URB_COMPLETE,
    URB_SUBMIT,
    XFER_BULK,
    XFER_CONTROL,
)

CORPUS = ROOT / "tests" / "corpus"


def session(seed: int, **kw):
    return edgetpu_session(random.Random(seed), cached=4096, instructions=2048, **kw)


def after_first_inference(enc, s) -> int:
    """Index of the first block after the one completing the first inference."""
    return enc.block_starts.index(enc.record_starts[s.first_inference_done]) + 1


def build() -> dict[str, dict]:
    expected: dict[str, dict] = {}

    def put(name: str, data: bytes, **outcome) -> None:
        (CORPUS / name).write_bytes(data)
        expected[name] = outcome

    # 1. damage inside the first 32 MiB chunk threw away every record before it
    s = session(1, inferences=2)
    enc = encode(s.records)
    data = bytearray(enc.data)
    at = enc.block_starts[after_first_inference(enc, s) + 2]
    struct.pack_into("<I", data, at + 4, struct.unpack_from("<I", data, at + 4)[0] + 4)
    put(
        "length-lie-after-first-inference.pcapng", bytes(data),
        summarize_exit=0, min_inferences=1, integrity_ok=False,
        problem="disagrees with its trailing copy",
        why="an error in the first chunk used to discard the records read before it",
    )  # fmt: skip

    # 2. a captured length longer than its block, in the middle of a run of packet blocks
    data = bytearray(enc.data)
    at = enc.record_starts[s.first_inference_done + 3]
    struct.pack_into("<I", data, at + 20, 0x7FFFFFF0)
    put(
        "caplen-lie-mid-run.pcapng", bytes(data),
        summarize_exit=0, min_inferences=1, integrity_ok=False,
        problem="captured length is longer than its block",
        why="the whole contiguous run of packet blocks around the bad one was dropped",
    )  # fmt: skip

    # 3. classic pcap: an implausible record length after the first inference
    enc_p = encode(s.records, Layout(format="pcap"))
    data = bytearray(enc_p.data)
    at = enc_p.record_starts[s.first_inference_done + 3]
    struct.pack_into("<I", data, at + 8, 0xFFFFFF00)
    put(
        "pcap-record-length-lie.pcap", bytes(data),
        summarize_exit=0, min_inferences=1, integrity_ok=False, problem="implausibly large",
        why="pcap: records of the chunk before an implausible length were discarded",
    )  # fmt: skip

    # 4. a garbage timestamp resolution (10^-63 s) overflowed numpy's int64 arithmetic
    s4 = session(4, inferences=1)
    enc = encode(s4.records)
    data = bytearray(enc.data)
    pos = data.find(struct.pack("<HH", bt.OPT_IF_TSRESOL, 1))
    data[pos + 4] = 63
    put(
        "tsresol-garbage.pcapng", bytes(data), summarize_exit=0, min_inferences=1,
        why="OverflowError: Python int too large to convert to C long (capture._ts_to_ns)",
    )  # fmt: skip

    # 5. an if_tsoffset of 2^63-1 seconds overflowed when added to the timestamps
    enc = encode(s4.records)
    start, end = enc.block_starts[1], enc.block_starts[2]
    data = bytearray(enc.data)
    data[start:end] = idb(Layout(), [(14, struct.pack("<q", 2**63 - 1))])
    put(
        "tsoffset-huge.pcapng", bytes(data), summarize_exit=0, min_inferences=1,
        why="OverflowError in capture._ts_to_ns; the offset is now ignored with a warning",
    )  # fmt: skip

    # 6. usbtrace metadata whose known keys have the wrong types
    meta = {"usbtrace_metadata": 1, "model": 1.5, "device": "4", "invokes": [None, {"index": "x"}]}
    body = struct.pack("<I", METADATA_PEN) + METADATA_MAGIC + json.dumps(meta).encode()
    with_meta = encode(s4.records).data + bt.encode_block(bt.BT_CUSTOM_COPY, body)
    put(
        "metadata-wrong-types.pcapng", with_meta,
        summarize_exit=0, min_inferences=1, model=None,
        why="TypeError/AttributeError in CaptureMetadata.from_json and the summary sort",
    )  # fmt: skip

    # 7. multi-EP mode switched on after the caching request: only later URBs are multi-EP
    s7 = session(7, inferences=1)
    recs = list(s7.records)
    first_event = next(
        i for i, r in enumerate(recs) if r.epnum == 0x82 and r.urb_type == URB_COMPLETE
    )
    r = recs[first_event]
    setup = struct.pack(
        "<BBHHH", REQTYPE_VENDOR_OUT, CSR_REQUEST_64, CSR_MULTI_BO_EP & 0xFFFF,
        CSR_MULTI_BO_EP >> 16, 8,
    )  # fmt: skip
    w = UsbRecord(
        r.ts_ns + 1, 0xFFFF_FF80_2000_0000, URB_SUBMIT, XFER_CONTROL, 0x00, r.devnum, r.busnum,
        STATUS_IN_PROGRESS, 8, 8, struct.pack("<Q", 1), setup,
    )  # fmt: skip
    recs[first_event + 1 : first_event + 1] = [
        w,
        replace(w, ts_ns=w.ts_ns + 1, urb_type=URB_COMPLETE, status=0, data_len=0, data=b""),
    ]
    put(
        "multi-ep-switch-mid-capture.pcapng", encode(recs).data,
        summarize_exit=0, first_request_kind="parameter-caching",
        why="the switch applied to the whole 32 MiB batch, so results depended on chunking",
    )  # fmt: skip

    # 8. headerless bulk-OUT URBs from a device without descriptor: given up on, consistently
    s8 = session(8, inferences=1, enumerate_device=False)
    lead = []
    t = s8.records[0].ts_ns - 150 * 20_000
    for k in range(70):
        sub = UsbRecord(
            t + 20_000 * k, 0xFFFF_FF80_3000_0000, URB_SUBMIT, XFER_BULK, EP_BULK_OUT, 4, 2,
            STATUS_IN_PROGRESS, 1 << 20, 1 << 20, bytes(16),
        )  # fmt: skip
        lead += [sub, replace(sub, ts_ns=sub.ts_ns + 10_000, urb_type=URB_COMPLETE, status=0)]
    put(
        "headerless-stream-no-descriptor.pcapng", encode(lead + s8.records).data,
        summarize_exit=2, stderr="no Edge TPU traffic found",
        why="giving up was checked per batch: small reads gave up, one big read did not",
    )  # fmt: skip
    # 9. (100,000-case campaign) two error statuses on different endpoints were listed in the
    # order their batches happened to pair them in
    put(
        "error-statuses-order.pcapng", make_case(1095255).data,
        summarize_exit=0, integrity_ok=False, problem="endpoint 0x82 completed with status -32",
        why="the integrity problems' order depended on the read chunking",
    )  # fmt: skip
    assert Tag.INSTRUCTIONS == 0
    return expected


def main() -> int:
    # --help must not rewrite the corpus: it takes no options, but says what it does
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args()
    CORPUS.mkdir(parents=True, exist_ok=True)
    expected = build()
    (CORPUS / "expected.json").write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    total = sum((CORPUS / n).stat().st_size for n in expected)
    print(f"tests/corpus: {len(expected)} files, {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
