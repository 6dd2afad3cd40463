"""``usbtrace capture`` on the command line: help, argument checks, preflight failures."""

from __future__ import annotations

import pytest
from capture_fakes import SessionWriter, edgetpu_entry, fake_host

from usbtrace.cli.main import main


def _run(capsys, *argv):
    code = main(["capture", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_help_explains(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["capture", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--snaplen", "replay:CAPTURE", "wireshark", "130", "usbmon"):
        assert word in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "x", "--count", "0"], "--count"),
        (["--model", "x", "--warmup", "-1"], "--warmup"),
        (["--model", "x", "--interval", "-2"], "--interval"),
        (["--model", "x", "--snaplen", "20"], "usbmon header"),
        (["--model", "x", "--label", "a b/c"], "--label"),
        (["--model", "x", "--backend", "onnx"], "--backend"),
        (["--backend", "tflite"], "--model"),
        (["--backend", "replay:"], "capture to replay"),
    ],
)
def test_bad_arguments_are_one_line(capsys, tmp_path, monkeypatch, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "x_edgetpu.tflite").write_bytes(b"TFL3edgetpu-custom-op")
    code, err = _run(capsys, *args)
    assert code == 2
    assert err.startswith("usbtrace: ") and "\n" not in err and needle in err


def test_missing_model_says_how_to_build(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = _run(capsys, "--model", "conv_300")
    assert code == 2 and "conv_300" in err and "edgetpu_compiler" in err


def test_no_device_on_fake_host(capsys, tmp_path, monkeypatch):
    fake_host(tmp_path, usbmon=(2,))
    monkeypatch.setenv("USBTRACE_SYSFS_ROOT", str(tmp_path / "sys"))
    monkeypatch.setenv("USBTRACE_DEV_ROOT", str(tmp_path / "dev"))
    model = tmp_path / "m_edgetpu.tflite"
    model.write_bytes(b"TFL3edgetpu-custom-op")
    code, err = _run(capsys, "--model", str(model), "--out", str(tmp_path / "out"))
    assert code == 2 and "no Edge TPU" in err


def test_replay_reaches_dumpcap_on_fake_host(capsys, tmp_path, monkeypatch):
    """Preflight passes on a fake tree; dumpcap then fails on the fake usbmon: exit 2, no file."""
    pytest.importorskip("usb.core", reason="pyusb (a dev dependency) is needed")
    fake_host(tmp_path, [edgetpu_entry(bus=2, serial="usbtrace-emulator")], usbmon=(2,))
    monkeypatch.setenv("USBTRACE_SYSFS_ROOT", str(tmp_path / "sys"))
    monkeypatch.setenv("USBTRACE_DEV_ROOT", str(tmp_path / "dev"))
    recorded = tmp_path / "rec.pcapng"
    recorded.write_bytes(SessionWriter().session(1))
    out = tmp_path / "out"
    code, err = _run(capsys, "--backend", f"replay:{recorded}", "--out", str(out), "--count", "1")
    assert code == 2
    assert "usbmon2" in err  # the one-line dumpcap complaint names the interface
    assert list(out.iterdir()) == []
