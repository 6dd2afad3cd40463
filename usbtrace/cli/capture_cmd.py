"""``usbtrace capture``: record the USB traffic of an Edge TPU model run, the user's own program
(``-- CMD``) or whatever uses the Edge TPU now (``--attach``/``--duration``), then summarize it."""

from __future__ import annotations

import argparse
import importlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from usbtrace.capture.backends.base import Backend
from usbtrace.cli.flags import Deprecated
from usbtrace.cli.outputs import OutputGuard
from usbtrace.errors import UsageError

if TYPE_CHECKING:
    from usbtrace.capture.runner import LiveWatch

DESCRIPTION = """\
Capture the USB traffic of a model running on a Coral USB Accelerator into one pcapng file,
then print its summary.

Checks the host first (Linux, usbmon loaded, dumpcap allowed to read it, an Edge TPU present,
the model compiled for the Edge TPU, the runtime loadable, free disk) and says how to fix the
first problem. Then starts dumpcap on the accelerator's whole bus (the device re-enumerates
after its firmware is loaded), opens the model (firmware download, parameter caching on the
first invoke), runs W warm-up and N measured inferences with a constant input, stops dumpcap
and appends usbtrace's metadata (model, its sha256 and byte counts, runtime versions, host,
link speed, per-invoke host timestamps) to the same file, which Wireshark still opens.

Writes DIR/NAME[-LABEL]-YYYYmmddTHHMMSS.pcapng and never overwrites a file. Ctrl-C stops
cleanly and keeps the file with what ran (exit 130); a failure during the run keeps the file
too (exit 1); a failed check exits 2.

Your own program: `usbtrace capture [options] -- CMD [ARGS...]` runs CMD once dumpcap records;
its output passes through, the capture stops when it exits, and usbtrace exits with its status.
The command line, exit status and run time go into the metadata. There are no host invoke
timestamps then (the program runs its own inferences). --attach records whatever already uses
the Edge TPU until Ctrl-C, --duration SECONDS for that long, without running anything.

On a terminal a live view (stderr) shows requests, inferences per second, latency, streamed
bytes per inference, the verdict and integrity warnings as dumpcap writes; --no-live turns it
off (it is off when stderr is not a terminal).

Backends: tflite (ai-edge-litert, else tflite-runtime, with libedgetpu's delegate), pycoral
(Google's, from the Coral apt repository; PyPI's pycoral is unrelated), replay:CAPTURE
(re-issues a recorded session's transfers with pyusb; refuses a real Edge TPU when the
recording's payloads were cut by its snaplen). auto picks tflite, else pycoral.

Needs root, or membership of the wireshark group with read access to /dev/usbmonN."""

EPILOG = """\
examples:
  usbtrace capture --model conv_300
  usbtrace capture --model my_edgetpu.tflite --count 20 --warmup 2 --label usb2
  usbtrace capture --backend replay:captures/sample-synthetic-dense.pcapng \\
      --count 5 --bus 1 --out-dir /run/out
  usbtrace capture --label cam -- python3 my_camera_loop.py --frames 100
  usbtrace capture --duration 30         # attach: whatever runs now, for 30 s"""

INTERFACE_ENV = "USBTRACE_CAPTURE_INTERFACE"
_LABEL = re.compile(r"^[A-Za-z0-9._+-]+$")
USBMON_HEADER_BYTES = 64


def register(subparsers: argparse._SubParsersAction) -> None:
    from usbtrace.capture.runner import DEFAULT_SNAPLEN

    p = subparsers.add_parser(
        "capture",
        help="capture a model run on a Coral USB Accelerator and summarize it",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "--model",
        metavar="NAME|PATH",
        help="catalog name (models/NAME_edgetpu.tflite) or path of an Edge TPU-compiled model;"
        " optional with --backend replay:CAPTURE",
    )
    p.add_argument("--count", type=int, metavar="N", help="measured inferences (5)")
    p.add_argument("--warmup", type=int, metavar="W", help="warm-up inferences (1)")
    p.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="idle time between inferences, so each stands apart in the capture (0.5)",
    )
    p.add_argument(
        "--out-dir",
        dest="out",
        type=Path,
        default=Path("captures"),
        metavar="DIR",
        help="where the capture goes (captures/)",
    )
    p.add_argument("--out", type=Path, action=Deprecated, use="--out-dir")
    p.add_argument(
        "--bus", type=int, metavar="N", help="USB bus to capture (default: the Edge TPU's bus)"
    )
    p.add_argument(
        "--snaplen",
        type=int,
        default=DEFAULT_SNAPLEN,
        metavar="BYTES",
        help=f"bytes kept per packet ({DEFAULT_SNAPLEN}: usbmon header + first 64 data bytes,"
        " enough for every protocol header; 0 keeps everything)",
    )
    p.add_argument(
        "--backend",
        default="auto",
        metavar="auto|tflite|pycoral|replay:CAPTURE",
        help="what drives the Edge TPU (auto)",
    )
    p.add_argument("--label", metavar="TEXT", help="added to the file name and the metadata")
    p.add_argument(
        "--attach",
        action="store_true",
        help="run nothing: record whatever uses the Edge TPU now, until Ctrl-C",
    )
    p.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        help="attach (run nothing) and record for this long; Ctrl-C stops earlier",
    )
    p.add_argument(
        "--no-live", action="store_true", help="no live view on the terminal while capturing"
    )
    p.add_argument(
        "command",
        nargs="*",
        metavar="-- CMD [ARGS...]",
        help="your own program to run under the capture (after --)",
    )
    p.set_defaults(func=run)


# what the model-running options default to; with a command or attach they must not be given
MODEL_RUN_DEFAULTS = {"count": 5, "warmup": 1, "interval": 0.5}


def _validate(args: argparse.Namespace) -> None:
    mode = "-- CMD" if args.command else "--attach/--duration" if _attaching(args) else None
    if args.command and _attaching(args):
        raise UsageError("--attach/--duration record without running anything: not with -- CMD")
    if mode is not None:
        given = [f"--{k}" for k in MODEL_RUN_DEFAULTS if getattr(args, k) is not None]
        if args.backend != "auto":
            given.append("--backend")
        if given:
            raise UsageError(
                f"{', '.join(given)} run the model through usbtrace's own backend: not with {mode}"
            )
    if mode is None and not args.model and not args.backend.startswith("replay:"):
        raise UsageError(
            "what should run? --model NAME|PATH (a model through usbtrace's backend),"
            " -- CMD [ARGS...] (your own program) or --attach/--duration SECONDS (whatever runs)"
        )
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be more than 0 seconds, not {args.duration}")
    for key, value in MODEL_RUN_DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.count < 1:
        raise UsageError(f"--count must be at least 1, not {args.count}")
    if args.warmup < 0:
        raise UsageError(f"--warmup cannot be negative ({args.warmup})")
    if args.interval < 0:
        raise UsageError(f"--interval cannot be negative ({args.interval})")
    if args.snaplen != 0 and args.snaplen < USBMON_HEADER_BYTES:
        raise UsageError(
            f"--snaplen {args.snaplen} would cut the {USBMON_HEADER_BYTES}-byte usbmon header:"
            " use 0 (everything) or at least 64"
        )
    if args.label is not None and not _LABEL.match(args.label):
        raise UsageError(f"--label {args.label!r}: use letters, digits and . _ + - only")
    backend = args.backend
    if backend not in ("auto", "tflite", "pycoral") and not backend.startswith("replay:"):
        raise UsageError(f"--backend {backend!r}: choose auto, tflite, pycoral or replay:CAPTURE")
    if args.bus is not None and args.bus < 1:
        raise UsageError(f"--bus {args.bus}: bus numbers start at 1")


def resolve_model(spec: str) -> tuple[str, Path]:
    """(name for the file, compiled model path), through the model catalog when it is there."""
    path = Path(spec).expanduser()
    if path.is_file():
        return _name_of(path), path  # an uncompiled file is refused by preflight, saying why
    if path.suffix == ".tflite" or "/" in spec:
        raise UsageError(f"{path}: no such model file")
    try:
        catalog = importlib.import_module("usbtrace.models.catalog")
    except ImportError:
        catalog = None
    if catalog is not None:
        entry = catalog.resolve(spec)
        compiled = entry.require_compiled()  # its error says how to build and compile
        return entry.name, Path(compiled)
    compiled = Path("models") / f"{spec}_edgetpu.tflite"
    if not compiled.is_file():
        raise UsageError(
            f"model {spec!r} not found ({compiled} is missing): build models/{spec}.tflite and"
            f" compile it: edgetpu_compiler -o models models/{spec}.tflite"
        )
    return spec, compiled


def _name_of(path: Path) -> str:
    return path.name.removesuffix(".tflite").removesuffix("_edgetpu")


def make_backend(spec: str, model_path: Path | None, bus: int | None) -> Backend:
    from usbtrace.capture.backends.pycoral import PycoralBackend
    from usbtrace.capture.backends.replay import ReplayBackend
    from usbtrace.capture.backends.tflite import TfliteBackend, find_interpreter_module

    if spec.startswith("replay:"):
        capture = spec.removeprefix("replay:")
        if not capture:
            raise UsageError("--backend replay:CAPTURE needs the capture to replay")
        return ReplayBackend(Path(capture), bus=bus)
    if spec not in ("auto", "tflite", "pycoral"):
        raise UsageError(f"--backend {spec!r}: choose auto, tflite, pycoral or replay:CAPTURE")
    if model_path is None:
        raise UsageError(f"--backend {spec} needs --model NAME|PATH")
    if spec == "pycoral":
        return PycoralBackend(model_path)
    if spec == "auto" and find_interpreter_module() is None:
        try:
            importlib.import_module("pycoral.utils.edgetpu")
            return PycoralBackend(model_path)
        except ImportError:
            pass
    return TfliteBackend(model_path)


def _attaching(args: argparse.Namespace) -> bool:
    return bool(args.attach or args.duration is not None)


_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def command_name(argv: list[str]) -> str:
    """A file-name stem for a wrapped command: the script or module an interpreter runs, else
    the program itself (``python3 -m pkg.app`` -> ``app``, ``./bench.sh`` -> ``bench``)."""
    words = [Path(w).name for w in argv]
    name = words[0]
    if re.match(r"^(python[0-9.]*|pypy[0-9.]*|bash|sh|node|ruby|perl)$", name):
        rest = argv[1:]
        for i, word in enumerate(rest):
            if word == "-c":
                break  # inline code: the interpreter's name is all there is
            if word == "-m" and i + 1 < len(rest):
                name = rest[i + 1].rsplit(".", 1)[-1]
                break
            if not word.startswith("-"):
                name = Path(word).name
                break
    stem = _UNSAFE.sub("_", name.rsplit(".", 1)[0] if "." in name[1:] else name).strip("._")
    return stem or "command"


def _live_view(args: argparse.Namespace) -> LiveWatch | None:
    import sys

    if args.no_live or not sys.stderr.isatty():
        return None
    from usbtrace.report.live_view import LiveView

    return LiveView()


def run(args: argparse.Namespace) -> int:
    from usbtrace.capture.runner import CaptureConfig, RunnerHooks, run_capture

    _validate(args)
    name, model_path = resolve_model(args.model) if args.model else (None, None)
    if args.command or _attaching(args):
        # the program runs its own model; --model only says which, for summarize's checks
        backend = None
        stem = command_name(args.command) if args.command else "attach"
        name = name or stem
    else:
        backend = make_backend(args.backend, model_path, args.bus)
    if name is None:
        replayed = args.backend.removeprefix("replay:")
        name = "replay-" + Path(replayed).name.removesuffix(".pcapng")
    hooks = RunnerHooks(live=_live_view(args))
    # tests and the docs' examples without USB: capture another dumpcap interface (e.g. lo)
    interface = os.environ.get(INTERFACE_ENV) or None
    config = CaptureConfig(
        model=name if args.model else None,
        model_path=model_path,
        backend=backend,
        command=list(args.command) if args.command else None,
        attach=_attaching(args),
        duration=args.duration,
        count=args.count,
        warmup=args.warmup,
        interval=args.interval,
        out_dir=OutputGuard().folder(args.out),  # a folder that cannot be written: said now
        bus=args.bus,
        snaplen=args.snaplen,
        label=args.label,
        name=name,
        interface=interface,
        skip_device_check=interface is not None,
    )
    return run_capture(config, hooks).exit_status
