"""``usbtrace wireshark``: the Edge TPU dissector plug-in for Wireshark and tshark."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from usbtrace.cli.outputs import OutputGuard
from usbtrace.wireshark.fields import FIELDS, PROTO_NAME
from usbtrace.wireshark.generate import generate_lua
from usbtrace.wireshark.install import PLUGIN_FILENAME, install, plugin_dir, uninstall, write_plugin

DESCRIPTION = """\
Teach Wireshark and tshark the Edge TPU protocol. The plug-in is a Lua dissector generated from
usbtrace's own protocol tables: bulk-OUT headers (tag, logical length) with their payload URBs
linked to them, completion events, interrupts, output chunks, register (CSR) reads and writes by
name, and firmware-download (DFU) requests, all as display-filter fields (edgetpu.*).

  usbtrace wireshark install       write it to your personal plug-in folder
  usbtrace wireshark path          print where that is
  usbtrace wireshark fields        list the display-filter fields
  usbtrace wireshark lua -o F.lua  write the plug-in elsewhere, e.g. for
      tshark -X lua_script:F.lua -r CAPTURE -Y edgetpu
  usbtrace wireshark uninstall     remove it again"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "wireshark",
        help="install the Edge TPU dissector plug-in for Wireshark/tshark",
        description=DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    dir_help = "plug-in folder to use instead of Wireshark's personal Lua plug-in folder"

    p = actions.add_parser(
        "install",
        help="write the plug-in into the personal Wireshark plug-in folder",
        description="Write the generated dissector as "
        f"{PLUGIN_FILENAME} into Wireshark's personal Lua plug-in folder (as `tshark -G folders` "
        "reports it, else ~/.local/lib/wireshark/plugins). Restart Wireshark to load it.",
    )
    p.add_argument("--dir", help=dir_help)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace a file of the same name that usbtrace did not write (kept as .bak)",
    )

    p = actions.add_parser(
        "uninstall",
        help="remove the plug-in",
        description=f"Remove {PLUGIN_FILENAME} from the plug-in folder.",
    )
    p.add_argument("--dir", help=dir_help)
    p.add_argument(
        "--force", action="store_true", help="remove it even if usbtrace did not write it"
    )

    p = actions.add_parser(
        "path",
        help="print where the plug-in goes",
        description="Print the path install writes to (whether or not it exists).",
    )
    p.add_argument("--dir", help=dir_help)

    actions.add_parser(
        "fields",
        help="list the display-filter fields",
        description="List the plug-in's display-filter fields: name, type, meaning.",
    )

    p = actions.add_parser(
        "lua",
        help="print the generated plug-in, or write it to a file",
        description="Print the generated Lua dissector on stdout, or write it with -o (for "
        "tshark -X lua_script:FILE). An existing file that usbtrace did not write is not replaced.",
    )
    p.add_argument("-o", "--output", help="file to write instead of stdout")
    p.add_argument("--force", action="store_true", help="replace a file usbtrace did not write")
    parser.set_defaults(func=run)


def _print_fields() -> None:
    rows = [(PROTO_NAME, "protocol", "Every frame the dissector decoded")]
    rows += [(f.abbrev, f.ftype, f.description) for f in FIELDS]
    width = max(len(r[0]) for r in rows)
    type_width = max(len(r[1]) for r in rows)
    term = shutil.get_terminal_size((100, 24)).columns
    desc_width = max(30, term - width - type_width - 4)
    for abbrev, ftype, desc in rows:
        if sys.stdout.isatty() and len(desc) > desc_width:
            desc = desc[: desc_width - 1] + "…"
        print(f"{abbrev:<{width}}  {ftype:<{type_width}}  {desc}")


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        target = plugin_dir(args.dir) / PLUGIN_FILENAME
        if target.exists():  # install makes the folders it needs
            OutputGuard().check_file(target)  # never a capture
        result = install(args.dir, force=args.force)
        messages = {
            "installed": f"installed {result.path}",
            "updated": f"updated {result.path}",
            "unchanged": f"{result.path} is already up to date",
            "replaced": f"replaced {result.path} (the previous file is kept as {result.backup})",
        }
        print(messages[result.action])
        if result.action != "unchanged":
            print("restart Wireshark (or reload Lua plug-ins) to use it; try the filter: edgetpu")
    elif args.action == "uninstall":
        removed = uninstall(args.dir, force=args.force)
        print(f"removed {removed}" if removed else "not installed: nothing to remove")
    elif args.action == "path":
        print(plugin_dir(args.dir) / PLUGIN_FILENAME)
    elif args.action == "fields":
        _print_fields()
    elif args.action == "lua":
        if args.output and args.output != "-":
            guard = OutputGuard()
            target = guard.check_file(args.output)  # never a capture, a folder, a block device
            if target.exists() and not target.is_file():
                # a FIFO or a device (/dev/stdout): written in place; write_plugin would read
                # it first to see who wrote it, which never ends on /dev/zero or /dev/full
                with guard.open(target) as stream:
                    stream.write(generate_lua())
                return 0
            result = write_plugin(Path(args.output), force=args.force)
            if result.backup:
                print(f"replaced {result.path} (the previous file is kept as {result.backup})")
        else:
            sys.stdout.write(generate_lua())
    return 0
