"""``usbtrace predict FILES...``: what the captured inferences would take if one thing changed."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from usbtrace.analysis.predict import CLOCKS, LINKS, Prediction, Scenario
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.analysis.timing import VERDICT_NA, verdict_name
from usbtrace.cli.inputs import expand_inputs
from usbtrace.edgetpu.trace import NS
from usbtrace.errors import InputError, UsageError, printable
from usbtrace.pipeline import predict_file
from usbtrace.report.jsonout import write_json
from usbtrace.report.table import Column, render_table

DESCRIPTION = """\
Predict what the captured inferences would take on another link (--link), at another Edge TPU
clock (--clock) or with every streamed parameter cached on chip (--cache-all). Each request is
replayed from its URBs: data arrives no earlier than the new link brings it, the device takes
each piece no earlier than it did in the capture (shifted by the waits it accumulated), a
slower clock stretches the device's own work. Without an option the captured link and clock are
replayed, which gives back the measured latency. Latencies are the device's (first bulk-OUT
header to the completion event), not the host's invoke(). Exit status: 0 all files predicted,
1 some failed, 2 usage error or no valid input."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="predict latency on another link, clock, or with all parameters cached",
        description=DESCRIPTION,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="captures or folders of captures")
    p.add_argument("--device", metavar="BUS.ADDR", help="predict this device only")
    p.add_argument("--link", choices=sorted(LINKS), help="link speed (default: the captured one)")
    p.add_argument("--clock", choices=sorted(CLOCKS), help="Edge TPU clock (default: captured)")
    p.add_argument(
        "--cache-all", action="store_true", help="every streamed parameter cached on chip"
    )
    p.add_argument("--json", action="store_true", help="print the JSON document (see README)")
    p.set_defaults(func=run)


def scenario_for(
    link_speed: str | None, clock_mhz: float | None, args: argparse.Namespace
) -> Scenario:
    link = args.link or (link_speed if link_speed in LINKS else "super")
    clock = CLOCKS[args.clock] if args.clock else (clock_mhz or CLOCKS["max"])
    return Scenario(link, clock, bool(args.cache_all))


def clock_name(mhz: float) -> str | float:
    return next((name for name, v in CLOCKS.items() if v == mhz), mhz)


def majority(verdicts: list[str]) -> str:
    votes = Counter(verdicts)
    return votes.most_common(1)[0][0] if votes else VERDICT_NA


def _ms(ns: np.ndarray, q: float) -> float | None:
    return float(np.percentile(ns, q)) / NS if len(ns) else None


def prediction_json(summary: CaptureSummary, pred: Prediction) -> dict:
    sc = pred.scenario
    lat = summary.latencies_s()
    predicted = [verdict_name(int(b)) for b in pred.predicted_bounds]
    out: dict[str, object] = {
        "file": summary.file,
        "device": summary.device,
        "model": summary.model,
        "model_source": summary.model_source,
        "measured": {
            "link_speed": summary.link_speed,
            "latency_median_s": float(np.median(lat)) if lat else None,
            "verdict": summary.verdict,
            "runtime_clock_mhz": pred.measured_clock_mhz,
        },
        "scenario": {"link": sc.link, "clock": clock_name(sc.clock_mhz), "cache_all": sc.cache_all},
        "predicted": {
            "latency_median_s": _ms(pred.predicted_ns, 50),
            "latency_p90_s": _ms(pred.predicted_ns, 90),
            "verdict": majority(predicted),
            "requests": [
                {"index": i, "latency_s": int(ns) / NS, "verdict": v}
                for i, ns, v in zip(pred.indices, pred.predicted_ns.tolist(), predicted)
            ],
        },
    }
    if pred.notes:
        out["notes"] = list(pred.notes)
    return out


def predict_path(
    path: Path, device: str | None, args: argparse.Namespace
) -> list[tuple[CaptureSummary, Prediction]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a cut file is reported in its integrity
        return predict_file(path, device, lambda speed, clock: scenario_for(speed, clock, args))


def _fmt_ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1e3:.2f} ms"


SHOWN_PER_ROW = 8  # predicted inferences listed per row; a long capture's would fill screens


def per_inference_ms(pred: Prediction) -> str:
    """The first predicted latencies, in ms, and how many more there are."""
    ns = pred.predicted_ns[:SHOWN_PER_ROW].tolist()
    text = " ".join(f"{x / 1e6:.1f}" for x in ns)
    more = len(pred.predicted_ns) - len(ns)
    return f"{text} (+{more} more)" if more > 0 else text


def print_table(found: list[tuple[CaptureSummary, Prediction]]) -> None:
    """One row per device and scenario, from the typed summary and prediction."""
    # on a narrow terminal the prediction stays and the file name goes first (the model says
    # which capture it is); without priorities the right-most columns, the answer, went first
    columns = [
        Column("file", priority=55),
        Column("model", priority=90),
        Column("link", priority=85),
        Column("clock", priority=65),
        Column("cache all", priority=60),
        Column("measured", "right", priority=95),
        Column("predicted", "right", priority=100),
        Column("p90", "right", priority=50),
        Column("change", "right", priority=97),
        Column("verdict", priority=80),
        Column("per inference (ms)", priority=40),
    ]
    rows = []
    for summary, pred in found:
        lat = summary.latencies_s()
        measured = float(np.median(lat)) if lat else None
        predicted = _ms(pred.predicted_ns, 50)
        change = f"{predicted / measured - 1:+.1%}" if measured and predicted is not None else "-"
        bounds = [verdict_name(int(b)) for b in pred.predicted_bounds]
        sc = pred.scenario
        rows.append(
            [
                Path(summary.file).name,
                summary.model_label or "-",
                f"{summary.link_speed or '?'} -> {sc.link}",
                str(clock_name(sc.clock_mhz)),
                "yes" if sc.cache_all else "no",
                _fmt_ms(measured),
                _fmt_ms(predicted),
                _fmt_ms(_ms(pred.predicted_ns, 90)),
                change,
                f"{summary.verdict} -> {majority(bounds)}",
                per_inference_ms(pred),
            ]
        )
    render_table(columns, rows, title="usbtrace predict (device latency, median)")


def run(args: argparse.Namespace) -> int:
    files, missing = expand_inputs(args.files)
    if not files:
        raise UsageError("; ".join(missing) or "no input files")
    failures = list(missing)
    found: list[tuple[CaptureSummary, Prediction]] = []
    for f in files:
        try:
            got = predict_path(f, args.device, args)
        except InputError as exc:
            failures.append(str(exc))
            continue
        if not got:
            failures.append(f"{f}: no Edge TPU traffic found (try --device BUS.ADDR)")
        found += got
    for msg in failures:
        print(f"usbtrace: {printable(msg)}", file=sys.stderr)
    if args.json:
        write_json({"predictions": [prediction_json(s, p) for s, p in found]})
    elif found:
        print_table(found)
        for summary, pred in found:
            for note in pred.notes:
                line = f"{summary.file} ({summary.device}): {note}"
                print(f"usbtrace: {printable(line)}", file=sys.stderr)
    if not found:
        return 2
    return 1 if failures else 0
