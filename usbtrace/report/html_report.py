"""One self-contained HTML page: size table, size plots, timelines and per-capture integrity.

Everything is inline (CSS, PNG images as data: URIs), so the page can be mailed or archived as one
file and opened without a network. A few lines of inline script count the images that decoded
and write the count into ``<body data-images-loaded>``, so a headless browser test can tell that
the page rendered its images.
"""

from __future__ import annotations

import base64
import html
import io
import os
import stat
from collections.abc import Sequence
from datetime import datetime, timezone

from usbtrace import __version__
from usbtrace.analysis.summary import CaptureSummary
from usbtrace.errors import UsbtraceError
from usbtrace.report.plots import PlotSpec, plot_specs, render
from usbtrace.report.size_table import (
    COLUMNS,
    SizeRow,
    capture_label,
    family_notes,
    note_line,
    row_cells,
    size_rows,
)
from usbtrace.report.table import distinct_names
from usbtrace.report.timeline import Timeline, render_timeline

MAX_TIMELINES = 8

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.bad { color: #a00; } td.ok { color: #060; }
#plots, #timelines { display: flex; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0.5em; } figcaption { font-size: 0.8em; color: #555; }
figure.plot img { width: 560px; max-width: 100%; }
figure.timeline img { width: 900px; max-width: 100%; }
.meta { color: #555; font-size: 0.85em; }
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var n = 0;
  document.querySelectorAll('img').forEach(function (i) { if (i.naturalWidth > 0) n++; });
  document.body.setAttribute('data-images-loaded', String(n));
});
"""


def _png_data_uri(draw) -> str:
    buf = io.BytesIO()
    draw(buf)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(uri: str, caption: str, cls: str) -> str:
    c = html.escape(caption)
    return f'<figure class="{cls}"><img src="{uri}" alt="{c}"><figcaption>{c}</figcaption></figure>'


def _size_table(rows: Sequence[SizeRow]) -> str:
    head = "".join(f"<th>{html.escape(c.title)}</th>" for c in COLUMNS)
    body = []
    for r in rows:
        cells = []
        for col, text in zip(COLUMNS, row_cells(r)):
            cls = "num" if col.align == "right" else ""
            if col.title == "integrity":
                cls = "ok" if r.integrity_ok else "bad"
            cells.append(f'<td class="{cls}">{html.escape(text)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="size-table"><tr>{head}</tr>{"".join(body)}</table>'


def _findings(summaries: Sequence[CaptureSummary]) -> str:
    """Per capture, what costs the most time, costliest first (analysis/findings.py)."""
    items = []
    for s in summaries:
        if s.findings:
            li = "".join(f"<li>{html.escape(f.text)}</li>" for f in s.findings)
            items.append(f"<li>{html.escape(s.file)} ({html.escape(s.device)})<ol>{li}</ol></li>")
    return f'<ul id="findings">{"".join(items)}</ul>' if items else "<p>No finding.</p>"


def _integrity_table(summaries: Sequence[CaptureSummary]) -> str:
    head = "".join(
        f"<th>{t}</th>"
        for t in ("file", "device", "model", "label", "link", "inferences", "verdict", "integrity")
    )
    body = []
    for s in summaries:
        if s.integrity.ok:
            status = '<td class="ok">ok</td>'
        else:
            items = "".join(f"<li>{html.escape(p)}</li>" for p in s.integrity.problems)
            status = f'<td class="bad"><ul>{items}</ul></td>'
        cells = [s.file, s.device, s.model_label or "-", capture_label(s), s.link_speed or "?"]
        body.append(
            "<tr>"
            + "".join(f"<td>{html.escape(c)}</td>" for c in cells)
            + f'<td class="num">{len(s.inferences)}</td><td>{html.escape(s.verdict)}</td>'
            + status
            + "</tr>"
        )
    return f'<table id="integrity"><tr>{head}</tr>{"".join(body)}</table>'


def timeline_files(
    rows: Sequence[SizeRow], summaries: Sequence[CaptureSummary]
) -> list[tuple[str, str]]:
    """(file, device) of the largest model of each family and label (where streaming shows
    most), else of the first capture; at most ``MAX_TIMELINES``."""
    largest: dict[tuple[str, str], SizeRow] = {}
    for r in rows:
        if r.size is None:
            continue
        key = (r.family, r.label)
        if key not in largest or r.size > (largest[key].size or 0):
            largest[key] = r
    files = [(r.files[0], r.devices[0]) for r in largest.values()]
    if not files and summaries:
        files = [(summaries[0].file, summaries[0].device)]
    return files[:MAX_TIMELINES]


def _read_again(file: str) -> bool:
    """Whether the capture can be read a second time (a regular file), for its timeline."""
    try:
        return file != "-" and stat.S_ISREG(os.stat(file).st_mode)
    except OSError:
        return True  # gone or unreadable now: timeline_file says what is wrong


def _timelines(files: Sequence[tuple[str, str]]) -> tuple[list[Timeline], list[str]]:
    """The timelines that could be built, and a note for each that could not."""
    from usbtrace.pipeline import timeline_file  # the pipeline renders with this module's kin

    out, notes = [], []
    for file, device in files:
        if not _read_again(file):
            # standard input or a FIFO was used up by the summary: reading it again found it
            # empty, or waited a minute for a FIFO writer that never came
            notes.append(f"no timeline for {file} ({device}): a pipe can be read only once")
            continue
        try:
            out.append(timeline_file(file, None, device))
        except UsbtraceError as exc:
            notes.append(f"no timeline for {file} ({device}): {exc}")
    return out, notes


def build_report(
    summaries: Sequence[CaptureSummary],
    *,
    title: str = "usbtrace report",
    timelines: Sequence[Timeline] | None = None,
) -> str:
    rows = size_rows(summaries)
    specs: list[PlotSpec] = plot_specs(rows)
    notes: list[str] = []
    if timelines is None:
        timelines, notes = _timelines(timeline_files(rows, summaries))
    plots = "".join(
        _figure(_png_data_uri(lambda b, s=s: render(s, b, "png")), s.title, "plot") for s in specs
    )
    names = distinct_names([t.file for t in timelines])  # two conv_300.pcapng stay apart
    tls = "".join(
        _figure(
            _png_data_uri(lambda b, t=t: render_timeline(t, b, "png")),
            f"{name} ({t.device}) request #{t.request} ({t.kind})",
            "timeline",
        )
        for t, name in zip(timelines, names)
    )
    notes_html = "".join(f"<li>{html.escape(note_line(n))}</li>" for n in family_notes(rows))
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    bad = sum(1 for s in summaries if not s.integrity.ok)
    t = html.escape(title)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title><style>{_CSS}</style></head>
<body data-images-loaded="0">
<h1>{t}</h1>
<p class="meta">usbtrace {__version__}, {when}: {len(summaries)} capture(s), {len(rows)} row(s),
{bad} with integrity problems. Latency: first bulk-OUT submit of a request to its completion
event (median over inferences). MiB = 2<sup>20</sup> bytes; MB/s = 10<sup>6</sup> bytes/s.</p>
<h2>By model size</h2>
{_size_table(rows)}
<ul id="families">{notes_html}</ul>
<h2>Across sizes</h2>
<div id="plots">{plots or "<p>No capture names a model with a size (e.g. conv_50).</p>"}</div>
<h2>Timelines</h2>
<div id="timelines">{tls}</div>
{"".join(f'<p class="meta">{html.escape(n)}</p>' for n in notes)}
<h2>Findings</h2>
{_findings(summaries)}
<h2>Per-capture integrity</h2>
{_integrity_table(summaries)}
<script>{_SCRIPT}</script>
</body></html>
"""
