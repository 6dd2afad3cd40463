"""``python3 -m lab.synthetic``: writes the capture and its truth, never overwrites."""

from __future__ import annotations

import json
from pathlib import Path

from synthetic_pcapng_walker import walk

from lab.synthetic.__main__ import main


def test_writes_capture_and_truth(tmp_path: Path, capsys) -> None:
    out, truth = tmp_path / "half.pcapng", tmp_path / "half.json"
    assert main(["overlap_half", str(out), "--truth", str(truth), "--inferences", "2"]) == 0
    data = json.loads(truth.read_text())
    (device,) = data["devices"]
    assert [r["overlap_exact"] for r in device["requests"]] == ["1/2", "1/2"]
    assert data["frames"] == len(walk(out).packets)
    assert "frames" in capsys.readouterr().out


def test_refuses_to_overwrite(tmp_path: Path, capsys) -> None:
    out = tmp_path / "taken.pcapng"
    out.write_bytes(b"keep")
    assert main(["conv_50", str(out)]) == 2
    assert out.read_bytes() == b"keep"
    assert "exists" in capsys.readouterr().err
