"""Preflight checks against temporary fake sysfs and /dev trees: one line, with the fix."""

from __future__ import annotations

import pytest
from capture_fakes import edgetpu_entry, fake_host

from usbtrace.capture import preflight as pf
from usbtrace.capture.sysfs import HostPaths, find_edgetpus, speed_name
from usbtrace.edgetpu.constants import PID_EDGETPU_DFU, VID_GLOBAL_UNICHIP
from usbtrace.models.builders import build_model
from usbtrace.models.package_writer import study_like_executables, write_compiled_model


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_non_linux_refused():
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_platform("Darwin")
    assert "Linux" in _one_line(exc)
    pf.check_platform("Linux")


def test_usbmon_missing_says_modprobe(tmp_path):
    paths = fake_host(tmp_path)
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_usbmon(paths, 2)
    assert "sudo modprobe usbmon" in _one_line(exc)


def test_usbmon_for_other_bus_lists_what_exists(tmp_path):
    paths = fake_host(tmp_path, usbmon=(0, 1))
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_usbmon(paths, 2)
    assert "usbmon0, usbmon1" in _one_line(exc)
    assert pf.check_usbmon(paths, 1) == paths.dev / "usbmon1"


def test_dumpcap_missing_names_the_package(tmp_path, monkeypatch):
    paths = fake_host(tmp_path, usbmon=(2,))
    monkeypatch.setattr(pf, "dumpcap_path", lambda: None)
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_dumpcap(paths.usbmon_device(2))
    assert "apt-get install tshark" in _one_line(exc)


def test_unreadable_usbmon_explains_wireshark_group(tmp_path):
    paths = fake_host(tmp_path, usbmon=(2,))
    dev = paths.usbmon_device(2)
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_dumpcap(dev, executable="/bin/true", euid=1000, readable=lambda p: False)
    line = _one_line(exc)
    assert str(dev) in line
    assert "dpkg-reconfigure wireshark-common" in line and "usermod -aG wireshark" in line
    # root reads any usbmon device; a readable one is fine for anybody
    assert pf.check_dumpcap(dev, executable="/bin/true", euid=0, readable=lambda p: False)
    assert pf.check_dumpcap(dev, executable="/bin/true", euid=1000, readable=lambda p: True)


def test_no_edgetpu_found(tmp_path):
    paths = fake_host(tmp_path, [{**edgetpu_entry(), "idVendor": "1d6b", "idProduct": "0003"}])
    with pytest.raises(pf.PreflightError) as exc:
        pf.find_device(paths, None, use_pyusb=False)
    assert "18d1:9302 or 1a6e:089a" in _one_line(exc)


def test_edgetpu_found_with_bus_speed_and_serial(tmp_path):
    paths = fake_host(tmp_path, [edgetpu_entry(bus=2, address=4, speed="5000", serial="abc")])
    dev = pf.find_device(paths, None, use_pyusb=False)
    assert (dev.bus, dev.address, dev.speed, dev.serial) == (2, 4, "super", "abc")
    with pytest.raises(pf.PreflightError, match="on bus 3"):
        pf.find_device(paths, 3, use_pyusb=False)


def test_dfu_mode_device_counts(tmp_path):
    entry = edgetpu_entry(bus=1, speed="480")
    entry.update(idVendor=f"{VID_GLOBAL_UNICHIP:04x}", idProduct=f"{PID_EDGETPU_DFU:04x}")
    paths = fake_host(tmp_path, [entry])
    (dev,) = find_edgetpus(paths)
    assert "boot loader" in dev.describe() and dev.speed == "high"


def test_two_edgetpus_need_bus(tmp_path):
    a = edgetpu_entry(bus=1, address=3)
    b = {**edgetpu_entry(bus=2, address=5), "name": "2-2"}
    paths = fake_host(tmp_path, [a, b])
    with pytest.raises(pf.PreflightError) as exc:
        pf.find_device(paths, None, use_pyusb=False)
    assert "--bus" in _one_line(exc)
    assert pf.find_device(paths, 2, use_pyusb=False).address == 5


def test_sysfs_root_from_environment(tmp_path, monkeypatch):
    fake_host(tmp_path, [edgetpu_entry(bus=4)], usbmon=(4,))
    monkeypatch.setenv("USBTRACE_SYSFS_ROOT", str(tmp_path / "sys"))
    monkeypatch.setenv("USBTRACE_DEV_ROOT", str(tmp_path / "dev"))
    paths = HostPaths.from_env()
    assert pf.find_device(paths, None, use_pyusb=False).bus == 4
    assert pf.check_usbmon(paths, 4).name == "usbmon4"


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("1.5", "low"),
        ("12", "full"),
        ("480", "high"),
        ("5000", "super"),
        ("10000", "super"),
        ("bogus", None),
    ],
)
def test_speed_names(raw, name):
    assert speed_name(raw) == name


def test_uncompiled_model_refused(tmp_path):
    model = tmp_path / "plain.tflite"
    model.write_bytes(build_model("conv", 10))  # a real TFLite file, never compiled
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_model(model, pf.default_inspector())
    line = _one_line(exc)
    assert "edgetpu_compiler" in line and "CPU" in line
    compiled = write_compiled_model(
        tmp_path / "m_edgetpu.tflite", [study_like_executables(1000, 0, [800], 100)]
    )
    summary = pf.check_model(compiled, pf.default_inspector())
    assert summary.compiled and summary.cached_bytes == 1000


def test_real_compiled_and_uncompiled_models(shared_file):
    compiled = shared_file("models/model_conv_128x128x3x32x7x10_edgetpu.tflite")
    plain = shared_file("models/model_conv_128x128x3x32x7x10.tflite")
    inspector = pf.default_inspector()
    assert pf.check_model(compiled, inspector).compiled
    with pytest.raises(pf.PreflightError):
        pf.check_model(plain, inspector)


def test_disk_space_needed(tmp_path):
    free = pf.check_disk(tmp_path / "not" / "yet", 1)
    assert free > 0
    with pytest.raises(pf.PreflightError) as exc:
        pf.check_disk(tmp_path, free * 4 + 2**40)
    assert "--out" in _one_line(exc)
