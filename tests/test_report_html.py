"""``usbtrace report``: the page's content, self-containment, and rendering in headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from sweep_fixtures import write_sweep

from usbtrace.cli.main import main

pytest.importorskip("matplotlib", reason="matplotlib (extra `plots`) is not installed")

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id", "")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        if "href" in a:
            self.links.append(a["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    points = write_sweep(root, sizes=(10, 100, 150))
    out = root / "report.html"
    assert main(["report", str(root), "-o", str(out)]) == 0
    page = _Page()
    page.feed(out.read_text(encoding="utf-8"))
    return out, points, page


def test_size_table_has_a_row_per_model_and_label(report):
    _, points, page = report
    rows = page.tables["size-table"]
    header, body = rows[0], rows[1:]
    assert header[:2] == ["model", "label"]
    assert sorted((r[0], r[1]) for r in body) == sorted((p.model, p.label) for p in points)
    streamed = header.index("wire MiB/inf")
    for r in body:
        p = next(p for p in points if (p.model, p.label) == (r[0], r[1]))
        assert float(r[streamed]) == pytest.approx(p.streamed / 2**20, abs=0.005)


def test_images_are_embedded_pngs(report):
    _, _, page = report
    # 6 conv plots (latency, streamed, overlap, rate, ops, speed-up) + a timeline per label
    assert len(page.images) == 6 + 2
    for img in page.images:
        uri = img["src"]
        assert uri.startswith("data:image/png;base64,")
        assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
        assert img["alt"]
    assert not page.links  # nothing to fetch: the page is one file


def test_streaming_onset_is_stated(report):
    out, _, _ = report
    assert "streaming begins by size 150 (100 still fits)" in out.read_text(encoding="utf-8")


def test_integrity_table_lists_every_capture(report):
    _, points, page = report
    rows = page.tables["integrity"][1:]
    assert len(rows) == len(points)
    assert all(r[-1] == "ok" for r in rows)


def test_refuses_to_overwrite(report, capsys):
    out, _, _ = report
    before = out.read_bytes()
    assert main(["report", str(out.parent), "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["report", str(out.parent), "-o", str(out.parent / "x.pcapng")]) == 2


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (Debian package `chromium`, see .ci/run)")
    return exe


def test_renders_in_headless_chromium(report, tmp_path):
    out, points, page = report
    exe = _chromium()
    base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*base, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=180
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = re.search(r'<body[^>]*data-images-loaded="(\d+)"', dom.stdout)
    assert loaded and int(loaded.group(1)) == len(page.images)  # every image decoded
    assert 'id="size-table"' in dom.stdout
    assert all(p.model in dom.stdout for p in points)
    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [*base, "--window-size=1200,900", f"--screenshot={shot}", out.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 20_000


def test_a_capture_on_standard_input_is_not_read_twice(tmp_path):
    """The page's timeline read its capture again: standard input was used up by then (and a
    FIFO made it wait a minute for a writer). It says why there is no timeline instead."""
    import os
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    conv = root / "captures" / "sample-synthetic-conv.pcapng"
    out = tmp_path / "r.html"
    p = subprocess.run(
        [sys.executable, "-m", "usbtrace", "report", "-o", str(out), "-"],
        input=conv.read_bytes(),
        capture_output=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(root)),
    )
    assert p.returncode == 0, p.stderr.decode()
    assert "no timeline for - (2.4): a pipe can be read only once" in out.read_text()
