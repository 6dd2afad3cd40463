"""``python3 -m lab.testbed``: run the emulated Edge TPU, or play a session against it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from usbtrace.errors import UsbtraceError

DESCRIPTION = """\
The testbed's emulated Coral Edge TPU (GadgetFS, high speed) and a small pyusb host for it.
Runs inside the testbed VM (scripts/vm/run.sh), after `modprobe dummy_hcd gadgetfs` and
`mount -t gadgetfs gadgetfs /dev/gadget`."""

PROFILE_HELP = (
    "request profile: a built-in name (conv_50, dense_300), a profile .json, a model summary "
    ".json, or a recorded .pcapng (default: %(default)s)"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m lab.testbed",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    emu = sub.add_parser(
        "emulate",
        help="serve as the Edge TPU until SIGTERM/SIGINT (which unplugs it)",
        description="Bind the emulated Edge TPU (18d1:9302, serial usbtrace-emulator) to the "
        "GadgetFS mount and answer register accesses, bulk-OUT transfers, outputs and events. "
        "Stopping it (SIGTERM/SIGINT) unplugs the device.",
    )
    emu.add_argument(
        "--gadget",
        type=Path,
        default=Path("/dev/gadget"),
        help="GadgetFS mount point (default: %(default)s)",
    )
    emu.add_argument("--profile", default="conv_50", help=PROFILE_HELP)
    emu.add_argument(
        "--pace",
        type=float,
        default=0.0,
        metavar="BYTES_PER_S",
        help="consume streamed parameters (those of requests with input) at most this fast, "
        "like a device whose compute sets the pace; cached parameters always go at link speed; "
        "0 = as fast as the link delivers (link-bound) (default: %(default)s)",
    )
    emu.add_argument(
        "--link-rate",
        type=float,
        default=0.0,
        metavar="BYTES_PER_S",
        help="consume every bulk-OUT transfer at most this fast: a link with a steady rate, "
        "below dummy_hcd's own (which varies a lot under emulation); 0 = no cap "
        "(default: %(default)s)",
    )
    emu.add_argument(
        "--compute-ms",
        type=float,
        default=0.0,
        help="extra time per request before its output and event (default: 0)",
    )
    emu.add_argument("--ready-file", type=Path, help="written once the host configured the device")
    emu.add_argument("--stats", type=Path, help="write what was served as JSON here at exit")

    play = sub.add_parser(
        "play",
        help="play a session against the (emulated) device with pyusb",
        description="Open the device's registers, then run the profile's caching request(s) and "
        "COUNT inferences: headers + payloads on 0x01, output on 0x81, event on 0x82. Prints one "
        "JSON object per request.",
    )
    play.add_argument("--profile", default="conv_50", help=PROFILE_HELP)
    play.add_argument("--count", type=int, default=5, help="inferences (default: %(default)s)")
    play.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between requests (default: %(default)s)",
    )
    play.add_argument("--bus", type=int, help="only a device on this USB bus")
    play.add_argument(
        "--output-chunk",
        type=int,
        default=1024,
        choices=(256, 1024),
        help="bulk-IN read size for outputs; also written to outfeed_chunk_length "
        "(default: %(default)s)",
    )

    prof = sub.add_parser(
        "profile",
        help="print a profile as JSON",
        description="Print the request shapes a profile resolves to, as JSON.",
    )
    prof.add_argument("profile", help=PROFILE_HELP.replace(" (default: %(default)s)", ""))
    return parser


def run_emulate(args: argparse.Namespace) -> int:
    from lab.testbed.emulator import EdgeTpuEmulator, install_stop_handlers
    from lab.testbed.profile import load_profile

    emulator = EdgeTpuEmulator(
        args.gadget,
        load_profile(args.profile),
        pace=args.pace,
        link_rate=args.link_rate,
        compute_s=args.compute_ms / 1000,
        ready_file=args.ready_file,
    )

    def write_stats() -> None:
        if args.stats is not None:
            args.stats.write_text(emulator.stats_json())

    install_stop_handlers()
    status = 0
    try:
        emulator.run()
    except FileNotFoundError as exc:
        raise UsbtraceError(str(exc)) from None
    except SystemExit as exc:
        status = int(exc.code or 0)
    write_stats()
    # Leave without interpreter shutdown: the endpoint threads are blocked in GadgetFS and the
    # kernel ends them before it closes the files (see EdgeTpuEmulator.run).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0 if status in (128 + signal.SIGTERM, 128 + signal.SIGINT) else status)


def run_play(args: argparse.Namespace) -> int:
    from lab.testbed.host_session import HostSession, event_tag
    from lab.testbed.profile import load_profile

    host = HostSession(bus=args.bus, output_chunk=args.output_chunk)
    for r in host.play(load_profile(args.profile), args.count, args.interval):
        print(
            json.dumps(
                {
                    "kind": r.kind,
                    "output_bytes": r.output_bytes,
                    "event_tag": event_tag(r.event),
                    "event": r.event.hex(),
                    "ms": round((r.t_end - r.t_start) * 1000, 3),
                }
            ),
            flush=True,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "emulate":
            return run_emulate(args)
        if args.command == "play":
            return run_play(args)
        from lab.testbed.profile import load_profile

        print(json.dumps(load_profile(args.profile).to_json(), indent=1))
        return 0
    except UsbtraceError as exc:
        print(f"usbtrace-testbed: {exc}", file=sys.stderr)
        return exc.exit_status


if __name__ == "__main__":
    raise SystemExit(main())
