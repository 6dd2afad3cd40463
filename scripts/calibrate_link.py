#!/usr/bin/env python3
"""Fit the High-Speed link model (``usbtrace/analysis/predict.py``: ``HIGH``) on the two visible
reference runs, and print the fit and what the fitted model predicts.

The study timed the same host and models on USB 3 (the captures in ``../shared/captures/real``)
and on USB 2 (shared/reference/published.md): conv_50 40.7 -> 43.6 ms, dense_300 9.4 -> 95.3 ms,
medians of host-timed invoke(). A capture's latency is the device's (first header -> event), so
the host's share is taken as the study's USB 3 median minus the capture's median, and added to
the prediction before comparing with the USB 2 figure. Only these two runs are used.

    python3 scripts/calibrate_link.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from usbtrace.analysis import predict as P
from usbtrace.analysis.summary import summarize_trace
from usbtrace.pipeline import decode_capture

REFERENCE = {"conv_50": (40.7, 43.6), "dense_300": (9.4, 95.3)}  # ms: USB 3, USB 2


def main() -> None:
    here = Path(__file__).resolve().parents[1]
    # the docstring's first paragraph: its first line alone stopped mid-sentence
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument(
        "--shared",
        default=os.environ.get("USBTRACE_SHARED", here.parent / "shared"),
        help="the reference material (default: ../shared, or $USBTRACE_SHARED)",
    )
    args = ap.parse_args()
    runs = []
    for name, (usb3, usb2) in REFERENCE.items():
        path = Path(args.shared) / "captures" / "real" / f"{name}.pcapng"
        decoded = decode_capture(path)
        trace = decoded.devices[0]
        summary = summarize_trace(decoded, trace)
        measured = float(np.median(summary.latencies_s())) * 1e3
        runs.append((name, trace, summary.requests, usb3 - measured, usb2))

    def errors(model: P.LinkModel) -> list[float]:
        old = P.LINKS["high"]
        P.LINKS["high"] = model
        try:
            out = []
            for _, trace, metrics, host_ms, usb2 in runs:
                pred = P.predict_trace(trace, metrics, P.Scenario("high", 500.0))
                ms = float(np.median(pred.predicted_ns)) / 1e6 + host_ms
                out.append(ms / usb2 - 1)
            return out
        finally:
            P.LINKS["high"] = old

    best = None
    for rate in np.arange(30e6, 50.01e6, 0.5e6):
        for cost in range(0, 401_000, 10_000):
            e = errors(replace(P.HIGH, out_Bps=rate, in_Bps=rate, transfer_ns=cost))
            score = sum(x * x for x in e)
            if best is None or score < best[0]:
                best = (score, rate, cost, e)
    assert best is not None
    _, rate, cost, e = best
    print(f"fit: out/in {rate / 1e6:.1f} MB/s, {cost / 1e3:.0f} us per transfer")
    for (name, *_rest, usb2), err in zip(runs, e, strict=True):
        print(f"  {name}: USB 2 predicted {usb2 * (1 + err):.1f} ms vs {usb2} ms ({err:+.1%})")
    e = errors(P.HIGH)
    print(f"model in the code: {P.HIGH.out_Bps / 1e6:.1f} MB/s, {P.HIGH.transfer_ns / 1e3:.0f} us")
    for (name, *_rest, usb2), err in zip(runs, e, strict=True):
        print(f"  {name}: USB 2 predicted {usb2 * (1 + err):.1f} ms vs {usb2} ms ({err:+.1%})")


if __name__ == "__main__":
    main()
