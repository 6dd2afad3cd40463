"""Compare two runs of the same model: bytes per phase, latency, overlap, rate, verdict.

How each line is judged (B against the baseline A):
* bytes per inference by phase and the cache fill: the same model on the same runtime moves the
  same bytes, so any difference is ``changed`` (a different model, compiler or runtime);
* median and p90 latency: more than ``threshold`` (relative) slower is a ``regression``, faster an
  ``improvement``;
* parameter stream rate: more than ``threshold`` slower is a ``regression``, faster an
  ``improvement``;
* overlap: a change of more than ``OVERLAP_TOLERANCE`` (absolute) is ``changed``;
* verdict and inference count: ``changed`` when they differ;
* integrity: problems in B that A did not have are a ``regression``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from usbtrace.analysis.metrics import percentile
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.report.table import Column, render_table

SAME = "same"
CHANGED = "changed"
REGRESSION = "regression"
IMPROVEMENT = "improvement"
DEFAULT_THRESHOLD = 0.05
OVERLAP_TOLERANCE = 0.05
PHASES = ("instructions", "input", "parameters", "output")


@dataclass
class DiffLine:
    name: str
    unit: str  # "B", "s", "B/s", "" (a fraction or a count), "text"
    a: Any
    b: Any
    status: str = SAME

    @property
    def ratio(self) -> float | None:
        if isinstance(self.a, int | float) and isinstance(self.b, int | float) and self.a:
            return self.b / self.a
        return None

    def to_json(self) -> dict[str, Any]:
        out = {"metric": self.name, "unit": self.unit, "a": self.a, "b": self.b}
        if isinstance(self.a, int | float) and isinstance(self.b, int | float):
            out["delta"] = self.b - self.a
            out["ratio"] = self.ratio
        out["status"] = self.status
        return out


@dataclass
class CaptureDiff:
    a: CaptureSummary
    b: CaptureSummary
    threshold: float
    lines: list[DiffLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[DiffLine]:
        return [x for x in self.lines if x.status == REGRESSION]

    def to_json(self) -> dict[str, Any]:
        return {
            "a": _side_json(self.a),
            "b": _side_json(self.b),
            "threshold": self.threshold,
            "warnings": list(self.warnings),
            "regressions": len(self.regressions),
            "metrics": [x.to_json() for x in self.lines],
        }


def _side_json(s: CaptureSummary) -> dict[str, Any]:
    """A side's file, device and model, with how the model is known (as ``summarize --json``
    gives them): a name guessed from the file name says so in ``model_source``."""
    return {
        "file": s.file,
        "device": s.device,
        "model": s.model,
        "model_source": s.model_source,
    }


def _median_bytes(s: CaptureSummary, phase: str) -> int | None:
    m = percentile([getattr(r, phase) for r in s.inferences], 50)
    return None if m is None else round(m)


def _timed(name: str, a: float | None, b: float | None, threshold: float, higher_is_better=False):
    line = DiffLine(name, "B/s" if higher_is_better else "s", a, b)
    if a is None or b is None:
        line.status = SAME if a == b else CHANGED
    elif a and (b - a) / a > threshold:
        line.status = IMPROVEMENT if higher_is_better else REGRESSION
    elif a and (a - b) / a > threshold:
        line.status = REGRESSION if higher_is_better else IMPROVEMENT
    return line


def _exact(name: str, unit: str, a: Any, b: Any) -> DiffLine:
    return DiffLine(name, unit, a, b, SAME if a == b else CHANGED)


def diff_captures(
    a: CaptureSummary, b: CaptureSummary, threshold: float = DEFAULT_THRESHOLD
) -> CaptureDiff:
    d = CaptureDiff(a, b, threshold)
    if a.model != b.model:
        d.warnings.append(
            f"the captures name different models: {a.identity.described} and {b.identity.described}"
        )
    if a.link_speed != b.link_speed:
        d.warnings.append(f"different link speeds: {a.link_speed} and {b.link_speed}")
    ja, jb = a.summary_json(), b.summary_json()
    d.lines.append(_exact("inferences", "", len(a.inferences), len(b.inferences)))
    d.lines.append(_exact("cache fill bytes", "B", a.cache_fill_bytes, b.cache_fill_bytes))
    for phase in PHASES:
        d.lines.append(
            _exact(f"{phase} bytes/inf", "B", _median_bytes(a, phase), _median_bytes(b, phase))
        )
    for key, name in (("latency_median_s", "latency median"), ("latency_p90_s", "latency p90")):
        d.lines.append(_timed(name, ja[key], jb[key], threshold))
    d.lines.append(
        _timed(
            "stream rate median",
            ja["stream_rate_median_Bps"],
            jb["stream_rate_median_Bps"],
            threshold,
            higher_is_better=True,
        )
    )
    oa, ob = ja["overlap_median"], jb["overlap_median"]
    overlap = DiffLine("overlap median", "", oa, ob)
    if (oa is None) != (ob is None) or (
        oa is not None and ob is not None and abs(ob - oa) > OVERLAP_TOLERANCE
    ):
        overlap.status = CHANGED
    d.lines.append(overlap)
    d.lines.append(_exact("verdict", "text", a.verdict, b.verdict))
    new_problems = [p for p in b.integrity.problems if p not in a.integrity.problems]
    d.lines.append(
        DiffLine(
            "integrity problems",
            "",
            len(a.integrity.problems),
            len(b.integrity.problems),
            REGRESSION if new_problems else SAME,
        )
    )
    return d


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "B":
        return f"{value:,}"
    if unit == "s":
        return f"{value * 1e3:.3f} ms"
    if unit == "B/s":
        return f"{value / 1e6:.1f} MB/s"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _change(line: DiffLine) -> str:
    if line.a == line.b or not isinstance(line.a, int | float):
        return ""
    if not isinstance(line.b, int | float):
        return ""
    if line.unit == "":  # fractions and counts: the difference says more than a percentage
        return f"{line.b - line.a:+.3f}" if isinstance(line.a, float) else f"{line.b - line.a:+d}"
    r = line.ratio
    return "" if r is None else f"{(r - 1) * 100:+.1f}%"


COLUMNS = (
    Column("metric"),
    Column("A", "right"),
    Column("B", "right"),
    Column("change", "right"),
    Column("status"),
)


def print_diff(d: CaptureDiff, stream: TextIO | None = None) -> None:
    rows = [[x.name, _fmt(x.a, x.unit), _fmt(x.b, x.unit), _change(x), x.status] for x in d.lines]
    a, b = d.a, d.b
    title = (
        f"A {a.file} ({a.device}, {a.identity.described})  vs  "
        f"B {b.file} ({b.device}, {b.identity.described})"
    )
    render_table(COLUMNS, rows, title=title, stream=stream)


def summary_line(d: CaptureDiff) -> str:
    regs = d.regressions
    if regs:
        return f"{len(regs)} regression(s): " + ", ".join(x.name for x in regs)
    changed = [x.name for x in d.lines if x.status == CHANGED]
    return "no regression" + (f"; changed: {', '.join(changed)}" if changed else "")


def pick(summaries: Sequence[CaptureSummary], path: str) -> CaptureSummary:
    """The one Edge TPU of a capture (``--device`` narrows several down before this)."""
    from usbtrace.errors import UsageError

    if not summaries:
        raise UsageError(f"{path}: no Edge TPU traffic found (try --device BUS.ADDR)")
    if len(summaries) > 1:
        names = ", ".join(s.device for s in summaries)
        raise UsageError(f"{path}: several Edge TPUs ({names}); choose one with --device")
    return summaries[0]
