"""One VM boot for all VM tests of a session.

Each VM test names the scenarios it needs with ``@pytest.mark.vm_scenario(NAME, ...)``. The
session fixture ``guest`` collects the scenarios of the selected tests, boots the VM once, runs
them one after the other (each in its own subshell, see ``scenarios.py``) and hands the tests a
``GuestRun`` to look at the results. Without QEMU, root or the kernel package, every VM test skips
with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lab.testbed import vm
from tests.vm import scenarios, scenarios_modes

SHARED = Path(os.environ.get("USBTRACE_SHARED", vm.REPO.parent / "shared"))

GUEST_TIMEOUT_S = 280  # the whole VM part stays under 5 minutes...
# ...for the 8 scenarios it had; each scenario takes 25-50 s of emulation on a loaded machine
PER_SCENARIO_S = 50


# dummy_hcd has no bandwidth limit: unpaced, it moves bursts above what a real High-Speed link
# can carry (53.2 MB/s), which usbtrace rightly reports as impossible. Every scenario's emulator
# therefore stands in for a High-Speed link of at most this rate.
HIGH_SPEED_RATE = 40_000_000


@dataclass(frozen=True)
class ScenarioSpec:
    template: str
    profile: str = "conv_50"
    pace: float = 0
    link_rate: float = HIGH_SPEED_RATE
    count: int = 5
    compute_ms: float = 0  # the emulated device's compute time per request
    source: str | None = None  # "synthetic:NAME" or "real:NAME" (see source_capture)


# dense_300 streams 2.8 MiB of parameters per inference. dummy_hcd with the emulator moves 5 to
# 75 MB/s under emulation, varying from URB to URB, so the emulator stands in for a steady 4 MB/s
# link; paced at 1.5 MB/s, the emulated device's compute sets the pace of the streamed parameters.
LINK_RATE = 4_000_000
FROM_SOURCE = "@source"
PACED_RATE = 1_500_000
SCENARIOS: dict[str, ScenarioSpec] = {
    # conv_50 is small: without a compute time the device's wait is the emulator's own latency,
    # as short as the guest host's gaps between URBs, and the verdict would be a coin toss under
    # a loaded CI machine (one inference came out host-bound). 100 ms of compute is far above
    # either, so the played session is device-bound by construction.
    "play_conv_50": ScenarioSpec(scenarios.PLAY, "conv_50", compute_ms=100),
    "capture_conv_50": ScenarioSpec(scenarios.CAPTURE, "conv_50", source="synthetic:conv_50"),
    "capture_dense_300_usb_bound": ScenarioSpec(
        scenarios.CAPTURE,
        "dense_300",
        link_rate=LINK_RATE,
        source="synthetic:dense_300",
    ),
    "capture_dense_300_paced": ScenarioSpec(
        scenarios.CAPTURE,
        "dense_300",
        PACED_RATE,
        LINK_RATE,
        source="synthetic:dense_300",
    ),
    "capture_real_conv_50": ScenarioSpec(scenarios.CAPTURE, "conv_50", source="real:conv_50"),
    "capture_real_dense_300": ScenarioSpec(
        scenarios.CAPTURE,
        FROM_SOURCE,  # the emulator takes its request shapes from the capture it is sent
        link_rate=LINK_RATE,
        source="real:dense_300",
    ),
    # the user's own program (the pyusb replay of a real capture) at the emulated link's full
    # rate (HIGH_SPEED_RATE): the live view must cost the capture no packet
    "wrap_real_dense_300": ScenarioSpec(scenarios_modes.WRAP, FROM_SOURCE, source="real:dense_300"),
    "attach_real_dense_300": ScenarioSpec(
        scenarios_modes.ATTACH, FROM_SOURCE, source="real:dense_300"
    ),
    "fault_unplug": ScenarioSpec(scenarios.UNPLUG, "conv_50", source="synthetic:conv_50"),
    "fault_kill_dumpcap": ScenarioSpec(
        scenarios.KILL_DUMPCAP, "conv_50", source="synthetic:conv_50"
    ),
}


SYNTHETIC_SOURCES = {
    "conv_50": vm.REPO / "captures" / "sample-synthetic-conv.pcapng",
    "dense_300": vm.REPO / "captures" / "sample-synthetic-dense.pcapng",
}


def source_capture(source: str) -> Path | str:
    """The capture a scenario replays, or why there is none.

    ``synthetic:NAME`` is the project's own committed sample, ``real:NAME`` the real capture in
    ../shared (present only next to a checkout with the reference material).
    """
    origin, name = source.split(":")
    path = (
        SYNTHETIC_SOURCES[name]
        if origin == "synthetic"
        else (SHARED / "captures" / "real" / f"{name}.pcapng")
    )
    return path if path.exists() else f"source capture {path} not found"


@dataclass
class GuestRun:
    out: Path
    status: int
    console: str
    seconds: float
    skipped: dict[str, str] = field(default_factory=dict)

    def scenario(self, name: str) -> Path:
        """The scenario's output folder; skips or fails the calling test as it should."""
        if name in self.skipped:
            pytest.skip(self.skipped[name])
        folder = self.out / name
        rc_file = folder / "rc"
        if not rc_file.exists():
            tail = self.console[-3000:]
            pytest.fail(f"scenario {name} left no status (guest status {self.status})\n{tail}")
        rc = int(rc_file.read_text().strip() or "1")
        if rc != 0:
            log = (folder / "console.log").read_text(errors="replace")[-3000:]
            pytest.fail(f"scenario {name} exited {rc}:\n{log}")
        return folder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "vm_scenario(*names): guest scenarios the test reads")


def _wanted(session: pytest.Session) -> list[str]:
    names: list[str] = []
    for item in session.items:
        for mark in item.iter_markers("vm_scenario"):
            names += [n for n in mark.args if n not in names]
    return names


def _profile_file(source: Path, out: Path) -> Path:
    """The source capture's request shapes as a profile file, made on the host: decoding a
    capture under emulation in the guest would cost half a minute."""
    from lab.testbed.profile import load_profile

    path = out / f"profile-{source.stem}.json"
    path.write_text(json.dumps(load_profile(str(source)).to_json()))
    return path


def _guest_script(names: list[str], sources: dict[str, Path], out: Path) -> str:
    lines = [
        "set -u",
        '. "$REPO/scripts/vm/guest-lib.sh"',
        'tb_usb_up || { echo "USB stack did not come up"; exit 10; }',
        'echo "usb up at $(cut -d" " -f1 /proc/uptime)"',
    ]
    for name in names:
        spec = SCENARIOS[name]
        profile = spec.profile
        if spec.profile == FROM_SOURCE:
            profile = str(_profile_file(sources[name], out))
        body = spec.template.format(
            name=name,
            profile=profile,
            emulator_args=(
                f"--profile {profile} --pace {spec.pace:.0f} --link-rate {spec.link_rate:.0f}"
                f" --compute-ms {spec.compute_ms:g}"
            ),
            count=spec.count,
            src=sources.get(name, ""),
        )
        lines += [
            f'S="$OUT/{name}"; mkdir -p "$S"; export S',
            f'( {body} ) >"$S/console.log" 2>&1',
            'echo "$?" >"$S/rc"',
            f'echo "{name}: status $(cat "$S/rc") at $(cut -d" " -f1 /proc/uptime)"',
        ]
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def guest(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> GuestRun:
    prepared = vm.prepare()
    if not prepared.ok:
        pytest.skip(prepared.reason)
    # Outside the project tree: the guest writes only here (9p), and paths may not have spaces.
    out = Path(tmp_path_factory.mktemp("vm", numbered=True))
    if " " in str(out):
        pytest.skip(f"temporary folder {out} has a space; run.sh needs a path without")
    skipped: dict[str, str] = {}
    sources: dict[str, Path] = {}
    runnable = []
    for name in _wanted(request.session):
        spec = SCENARIOS[name]
        if spec.source is not None:
            src = source_capture(spec.source)
            if isinstance(src, str):
                skipped[name] = src
                continue
            sources[name] = src
        runnable.append(name)
    if not runnable:
        return GuestRun(out, 0, "", 0.0, skipped)
    script = out / "scenarios.sh"
    script.write_text(_guest_script(runnable, sources, out))
    start = time.monotonic()
    timeout = max(GUEST_TIMEOUT_S, PER_SCENARIO_S * len(runnable))
    result = vm.run_guest(out, script, timeout=timeout)
    seconds = time.monotonic() - start
    (out / "console.txt").write_text(result.console)
    print(f"\n[vm] {len(runnable)} scenarios in one boot: {seconds:.1f} s, status {result.status}")
    return GuestRun(out, result.status, result.console, seconds, skipped)


@pytest.fixture(scope="session")
def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.skip("tshark not installed (apt-get install tshark)")
    return path
