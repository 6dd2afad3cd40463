"""``usbtrace sweep`` with the capture runner and CPU timer replaced by fakes (no Coral here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
from sweep_fixtures import plan, write_capture

from usbtrace.cli import sweep_cmd
from usbtrace.cli.main import main
from usbtrace.errors import UsageError
from usbtrace.pipeline import decode_capture, summarize_file
from usbtrace.report.size_table import size_rows


class FakeWorld:
    """Models that exist as empty files, a capture runner that writes synthetic captures."""

    def __init__(self, root: Path, fail: set[int] = frozenset(), unknown: set[int] = frozenset()):
        self.root = root
        self.fail = fail
        self.unknown = unknown
        self.captured: list[sweep_cmd.SweepStep] = []
        self.timed: list[tuple[Path, int]] = []

    def resolve(self, name: str) -> sweep_cmd.ModelFiles:
        size = int(name.rsplit("_", 1)[1])
        if size in self.unknown:
            raise UsageError(f"{name}: not in the model catalog")
        src = self.root / "models" / f"{name}.tflite"
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_bytes(b"TFL3")
        return sweep_cmd.ModelFiles(name, src.with_name(f"{name}_edgetpu.tflite"), src)

    def capture(self, step: sweep_cmd.SweepStep) -> Path:
        self.captured.append(step)
        if step.size in self.fail:
            raise UsageError("the Edge TPU vanished")
        p = plan(step.size, "usb3", inferences=step.count, cpu=False)
        return write_capture(step.out_dir, p, name=step.model.name)

    def cpu_time(self, model: Path, count: int) -> float:
        self.timed.append((model, count))
        return 0.001 * int(model.stem.rsplit("_", 1)[1])

    def deps(self) -> sweep_cmd.SweepDeps:
        return sweep_cmd.SweepDeps(self.resolve, self.capture, self.cpu_time)


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = FakeWorld(tmp_path)
    monkeypatch.setattr(sweep_cmd, "default_deps", w.deps)
    return w


def test_sweep_writes_one_capture_per_size_with_cpu_baseline(world, tmp_path, capsys):
    out = tmp_path / "captures"
    argv = ["sweep", "--family", "conv", "--sizes", "10,50,150", "--count", "2", "--label", "usb3"]
    assert main([*argv, "--out", str(out), "--cpu-baseline"]) == 0
    files = sorted((out / "usb3").glob("*.pcapng"))
    assert [f.name for f in files] == [
        "conv_10-usb3.pcapng",
        "conv_150-usb3.pcapng",
        "conv_50-usb3.pcapng",
    ]
    assert [s.size for s in world.captured] == [10, 50, 150]
    assert all(s.count == 2 and s.label == "usb3" for s in world.captured)
    assert [c for _, c in world.timed] == [2, 2, 2]
    for f in files:
        meta = decode_capture(f).metadata
        size = int(meta.model.rsplit("_", 1)[1])
        assert meta.extra["cpu_baseline_s"] == pytest.approx(0.001 * size)
        assert meta.model == f"conv_{size}" and meta.label == "usb3"  # runner's keys kept
    rows = size_rows([s for f in files for s in summarize_file(f)])
    assert all(r.speedup == pytest.approx(r.cpu_baseline_s / r.latency_s) for r in rows)
    assert "3/3 sizes captured" in capsys.readouterr().err


def test_a_failed_size_is_reported_and_the_sweep_goes_on(world, tmp_path, capsys):
    world.fail = {50}
    out = tmp_path / "captures"
    assert main(["sweep", "--family", "conv", "--sizes", "10,50,100", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "conv_50: capture failed: the Edge TPU vanished" in err
    assert len(list((out / "conv").glob("*.pcapng"))) == 2  # no label: the family's folder
    assert not world.timed


def test_unknown_model_fails_before_any_capture(world, tmp_path, capsys):
    world.unknown = {75}
    assert main(["sweep", "--family", "conv", "--sizes", "10,75", "--out", str(tmp_path)]) == 2
    assert "conv_75: not in the model catalog" in capsys.readouterr().err
    assert not world.captured


@pytest.mark.parametrize("sizes", ["10,x", "0,10", ""])
def test_bad_sizes(world, tmp_path, capsys, sizes):
    assert main(["sweep", "--family", "dense", "--sizes", sizes, "--out", str(tmp_path)]) == 2
    assert "--sizes" in capsys.readouterr().err


def test_parse_sizes_keeps_order_and_drops_repeats():
    assert sweep_cmd.parse_sizes("50, 10,50,25") == [50, 10, 25]


def test_cpu_timer_runs_an_uncompiled_model(shared_file):
    if not any(importlib.util.find_spec(m) for m in ("tflite_runtime", "ai_edge_litert")):
        pytest.skip("no TFLite interpreter (tflite-runtime or ai-edge-litert) installed")
    model = shared_file("models/model_conv_128x128x3x32x7x10.tflite")
    seconds = sweep_cmd._cpu_time_tflite(model, 2)
    assert isinstance(seconds, float) and seconds > 0


def test_cpu_timer_reports_a_bad_model(tmp_path):
    if not any(importlib.util.find_spec(m) for m in ("tflite_runtime", "ai_edge_litert")):
        pytest.skip("no TFLite interpreter (tflite-runtime or ai-edge-litert) installed")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model")
    with pytest.raises(UsageError, match=r"bad\.tflite"):
        sweep_cmd._cpu_time_tflite(bad, 1)


def test_runner_adapter_passes_the_step(tmp_path, monkeypatch):
    from usbtrace.capture import runner
    from usbtrace.cli import capture_cmd

    seen = {}

    def fake_backend(spec, model_path, bus):
        seen["backend"] = (spec, model_path, bus)
        return object()

    def fake_run(config):
        seen["config"] = config
        return SimpleNamespace(path=tmp_path / "x.pcapng", exit_status=0, status="complete")

    monkeypatch.setattr(capture_cmd, "make_backend", fake_backend)
    monkeypatch.setattr(runner, "run_capture", fake_run)
    model = sweep_cmd.ModelFiles("conv_10", tmp_path / "conv_10_edgetpu.tflite", None)
    step = sweep_cmd.SweepStep("conv", 10, model, "usb2", tmp_path / "usb2", 7, 2, "tflite", 3)
    assert sweep_cmd._capture_with_runner(step) == tmp_path / "x.pcapng"
    c = seen["config"]
    assert (c.model, c.model_path, c.count, c.warmup) == ("conv_10", model.compiled, 7, 2)
    assert (c.label, c.out_dir, c.bus, c.name) == ("usb2", tmp_path / "usb2", 3, "conv_10")
    assert seen["backend"] == ("tflite", model.compiled, 3)
