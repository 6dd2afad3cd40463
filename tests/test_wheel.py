"""The wheel holds the product only: the analyzer, capture runner, model tools and Wireshark
plug-in, and none of the lab (simulator, fuzzer, testbed), which lives in the checkout."""

from __future__ import annotations

import configparser
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _can_build_wheels() -> str | None:
    import setuptools

    major, minor = (int(x) for x in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return f"setuptools {setuptools.__version__} needs the `wheel` package to build wheels"
    return None


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    if why := _can_build_wheels():
        pytest.skip(why)
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    # the files a source checkout gives the build (no caches, no lab, no tests)
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(
        ROOT / "usbtrace", src / "usbtrace", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(ROOT / "lab", src / "lab", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(out), str(src)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (whl,) = out.glob("usbtrace-*.whl")
    return zipfile.ZipFile(whl)


def test_the_wheel_holds_the_package_and_nothing_of_the_lab(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"usbtrace", next(t for t in tops if t.endswith(".dist-info"))}
    assert not [n for n in names if n.startswith("lab/") or "/lab/" in n]
    shipped = {n for n in names if n.endswith(".py")}
    source = {p.relative_to(ROOT).as_posix() for p in (ROOT / "usbtrace").rglob("*.py")}
    assert shipped == source  # every module of the analyzer, runner, models, plug-in
    assert "usbtrace/py.typed" in names
    assert [n for n in names if n.startswith("usbtrace/wireshark/") and n.endswith(".lua")]


def test_the_wheel_installs_the_usbtrace_command(wheel: zipfile.ZipFile) -> None:
    (entry,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    points = configparser.ConfigParser()
    points.read_string(wheel.read(entry).decode())
    assert points["console_scripts"]["usbtrace"] == "usbtrace.cli.main:main"


def test_no_shipped_module_imports_the_lab() -> None:
    """What the wheel leaves out must not be needed by what it ships."""
    offenders = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "usbtrace").rglob("*.py")
        for line in p.read_text().splitlines()
        if line.lstrip().startswith(("from lab", "import lab"))
    ]
    assert offenders == []
