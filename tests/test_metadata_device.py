"""The capture runner's metadata names the Edge TPU it ran its workload on (bus, device).
With two accelerators in one capture, the model, the host invokes and the model's figures are
that device's only: the other one ran something else, at the same time perhaps, and must not
be shown as running the metadata's model or be given its invokes."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lab.synthetic import preset, write_session
from usbtrace.cli.main import main
from usbtrace.formats.metadata import CaptureMetadata, InvokeTiming, append_metadata
from usbtrace.pipeline import summarize_file


def test_names_device():
    assert CaptureMetadata().names_device(2, 5)
    assert CaptureMetadata(bus=2).names_device(2, 5)
    assert not CaptureMetadata(bus=1).names_device(2, 5)
    assert CaptureMetadata(bus=2, device=5).names_device(2, 5)
    assert not CaptureMetadata(bus=2, device=4).names_device(2, 5)
    assert CaptureMetadata(device=5).names_device(3, 5)


@pytest.fixture(scope="module")
def side_by_side(tmp_path_factory):
    """Two Edge TPUs running at the same time; the metadata names 2.4 (conv_50)."""
    profile = preset("two_tpus")
    first, second = profile.devices
    profile = replace(profile, devices=(first, replace(second, start_offset_us=0)))
    path = tmp_path_factory.mktemp("two") / "two.pcapng"
    write_session(profile, path)
    return path


def _host_timed(requests) -> list[int]:
    return [r.index for r in requests if r.host_latency_ns is not None]


def test_only_the_named_device_runs_the_metadata_model(side_by_side):
    by_device = {s.device: s for s in summarize_file(side_by_side)}
    named, other = by_device["2.4"], by_device["2.5"]
    assert (named.model, named.model_source) == ("conv_50", "metadata")
    assert named.run_metadata is not None and named.run_metadata.model == "conv_50"
    assert other.model_source != "metadata" and other.model != "conv_50"
    assert other.run_metadata is None
    # the invokes overlap both devices' inferences in time; only 2.4 made them
    assert _host_timed(named.requests) == [1, 2, 3]
    assert _host_timed(other.requests) == []


def test_streamed_json_gives_the_other_device_no_invokes(side_by_side, capsys):
    assert main(["summarize", "--json", str(side_by_side)]) == 0
    captures = {c["device"]: c for c in json.loads(capsys.readouterr().out)["captures"]}
    assert captures["2.4"]["model"] == "conv_50"
    assert [r["index"] for r in captures["2.4"]["requests"] if "host_latency_s" in r] == [1, 2, 3]
    assert captures["2.5"]["model_source"] != "metadata"
    assert not any("host_latency_s" in r for r in captures["2.5"]["requests"])


def test_metadata_naming_the_boot_loader_describes_the_tpu_it_became(tmp_path):
    """The runner found the accelerator as a boot loader (address 3); libedgetpu loaded its
    firmware and it came back as an Edge TPU at address 4. The metadata is still its own."""
    path = tmp_path / "fw.pcapng"
    profile = replace(preset("firmware"), metadata=False)
    session = write_session(profile, path)
    dev = profile.devices[0]
    assert dev.dfu_address != dev.address
    invokes = [
        InvokeTiming(i.index, i.start_us * 1000, i.end_us * 1000) for i in session.truth.invokes
    ]
    append_metadata(
        str(path),
        CaptureMetadata(model="conv_50", bus=dev.bus, device=dev.dfu_address, invokes=invokes),
    )
    (summary,) = summarize_file(path)
    assert summary.device == f"{dev.bus}.{dev.address}"
    assert (summary.model, summary.model_source) == ("conv_50", "metadata")
    assert _host_timed(summary.requests) == [1, 2]
