"""Cross-check the reader against Wireshark's own dissection of the same file.

Both sides are reduced to one tally: the frame count, first and last timestamps, and per
(bus, device, endpoint, URB type) the number of records and the sums of ``urb_len`` and usbmon
``data_len``. tshark's field output is streamed line by line, so big files stay bounded in
memory; pyshark (far slower) is offered as a second engine because it is what many users have.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from usbtrace.errors import UsageError
from usbtrace.formats.capture import Capture
from usbtrace.formats.records import endpoint_sums
from usbtrace.formats.usbmon_text import FORMAT_NAME as USBMON_TEXT

Key = tuple[int, int, int, str]  # bus, device, endpoint address, urb type letter
FIELDS = (
    "frame.time_epoch",
    "usb.bus_id",
    "usb.device_address",
    "usb.endpoint_address",
    "usb.urb_type",
    "usb.urb_len",
    "usb.data_len",
    "usb.irp_info.direction",  # USBPcap: 0 on the way down (submit), 1 back (completion)
    # macOS (link type 266) has fields of its own
    "usb.darwin.location_id",
    "usb.darwin.device_address",
    "usb.darwin.endpoint_address",
    "usb.darwin.request_type",
    "usb.darwin.io_len",
)


@dataclass
class Tally:
    frames: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    per_endpoint: dict[Key, list[int]] = field(default_factory=dict)  # count, urb_len, data_len

    def add(self, key: Key, count: int, urb_len: int, data_len: int) -> None:
        s = self.per_endpoint.setdefault(key, [0, 0, 0])
        s[0] += count
        s[1] += urb_len
        s[2] += data_len

    def see_time(self, t_ns: int) -> None:
        self.first_ns = t_ns if self.first_ns is None else min(self.first_ns, t_ns)
        self.last_ns = t_ns if self.last_ns is None else max(self.last_ns, t_ns)


def ours(path: str | Path) -> Tally:
    tally = Tally()
    cap = Capture(path)
    if cap.info.format == USBMON_TEXT:
        cap.close()
        raise UsageError(f"{path}: Wireshark does not read usbmon text; nothing to compare with")
    for batch in cap.batches():
        r = batch.records
        if not len(r):
            continue
        tally.see_time(int(r["ts_ns"].min()))
        tally.see_time(int(r["ts_ns"].max()))
        for (bus, dev, ep, typ), count, urb_len, data_len in endpoint_sums(r):
            tally.add((bus, dev, ep, chr(typ)), count, urb_len, data_len)
    tally.frames = cap.info.packets - cap.info.non_usb_packets
    if cap.info.packet_sums:
        # USBPcap, macOS: compare packets as tshark shows them (USBPcap: several make one record)
        tally.per_endpoint = {k: list(v) for k, v in cap.info.packet_sums.items()}
    return tally


def _epoch_ns(text: str) -> int:
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])


def _tally_rows(rows: Iterable[tuple[str, ...]]) -> Tally:
    tally = Tally()
    for row in rows:
        t, bus, dev, ep, typ, ulen, dlen, irp_dir, location, d_dev, d_ep, d_req, d_len = row
        if not bus and location:  # macOS: bus in the location's top byte, ioLength as data
            bus, dev, ep = str(int(location, 0) >> 24), d_dev, d_ep
            typ, ulen, dlen = ("C" if d_req.strip() == "1" else "S"), "", d_len
        if not bus:
            continue  # not a USB frame
        tally.frames += 1
        tally.see_time(_epoch_ns(t))
        typ = typ.strip("'") or ("C" if irp_dir.strip() in ("1", "0x01") else "S")
        key = (int(bus), int(dev), int(ep, 0), typ)
        tally.add(key, 1, int(ulen or 0), int(dlen or 0))
    return tally


def tshark_tally(path: str | Path) -> Tally:
    exe = shutil.which("tshark")
    if exe is None:
        raise UsageError(
            "tshark is not installed (Debian/Ubuntu: sudo apt-get install tshark); "
            "verify needs Wireshark's dissector to compare against"
        )
    # The reference must be Wireshark's own dissection: no personal plug-in (an installed copy of
    # usbtrace's, an older one that broke usb.* fields, anyone's) and no personal preferences.
    # tshark finds both under HOME / XDG_CONFIG_HOME, so it runs with an empty one; and usbtrace's
    # own protocol is disabled by name in case a copy sits in a global plug-in folder.
    cmd = [exe, "-n", "-r", str(path), "--disable-protocol", "edgetpu"]
    cmd += ["-T", "fields", "-E", "separator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    with tempfile.TemporaryDirectory(prefix="usbtrace-verify-") as home:
        env = dict(os.environ, HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"))
        env.pop("WIRESHARK_CONFIG_DIR", None)
        # stderr goes to a file, not a pipe: while stdout is read, a pipe nobody reads fills
        # up (64 KiB) and tshark, blocked writing a warning per frame, never finishes stdout
        with (
            open(os.path.join(home, "stderr"), "w+b") as errfile,
            subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=errfile, text=True, env=env
            ) as proc,
        ):
            assert proc.stdout is not None
            tally = _tally_rows(tuple(line.rstrip("\n").split(",")) for line in proc.stdout)
            proc.wait()
            err = _tail(errfile)
    if proc.returncode not in (0, 2) and not tally.frames:
        raise UsageError(f"tshark failed on {path}: {err.strip().splitlines()[-1:]}")
    return tally


def _tail(stream: BinaryIO, limit: int = 4096) -> str:
    """The last ``limit`` bytes written to ``stream``: where tshark says why it failed."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - limit))
    return stream.read().decode("utf-8", "replace")


def pyshark_tally(path: str | Path) -> Tally:
    try:
        import pyshark
    except ImportError:
        raise UsageError("pyshark is not installed (pip install pyshark)") from None

    def rows() -> Iterable[tuple[str, ...]]:
        cap = pyshark.FileCapture(str(path), keep_packets=False, disable_protocol="edgetpu")
        try:
            for pkt in cap:
                usb = getattr(pkt, "usb", None)
                if usb is None:
                    continue
                typ = str(getattr(usb, "urb_type", ""))
                yield (
                    str(pkt.frame_info.time_epoch),
                    str(usb.bus_id),
                    str(usb.device_address),
                    str(usb.endpoint_address),
                    typ,
                    str(usb.urb_len),
                    str(usb.data_len),
                    str(getattr(usb, "irp_info_direction", "")),
                    *(
                        str(getattr(usb, f"darwin_{name}", ""))
                        for name in (
                            "location_id",
                            "device_address",
                            "endpoint_address",
                            "request_type",
                            "io_len",
                        )
                    ),
                )
        finally:
            cap.close()

    return _tally_rows(rows())


def compare(a: Tally, b: Tally, names: tuple[str, str] = ("usbtrace", "tshark")) -> list[str]:
    """Differences, most important first; empty when the two agree."""
    out: list[str] = []
    if a.frames != b.frames:
        out.append(f"frame count: {names[0]} {a.frames}, {names[1]} {b.frames}")
    if (a.first_ns, a.last_ns) != (b.first_ns, b.last_ns):
        out.append(
            f"first/last timestamp: {names[0]} {a.first_ns}/{a.last_ns} ns, "
            f"{names[1]} {b.first_ns}/{b.last_ns} ns"
        )
    for key in sorted(set(a.per_endpoint) | set(b.per_endpoint)):
        x = a.per_endpoint.get(key, [0, 0, 0])
        y = b.per_endpoint.get(key, [0, 0, 0])
        if x != y:
            bus, dev, ep, typ = key
            out.append(
                f"{bus}.{dev} ep {ep:#04x} {typ}: {names[0]} {x[0]} URBs, urb_len {x[1]}, "
                f"data_len {x[2]}; {names[1]} {y[0]} URBs, urb_len {y[1]}, data_len {y[2]}"
            )
    return out
