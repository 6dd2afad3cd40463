"""usbmon records of a pcapng as tshark reads them: an independent check on the testbed's files."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

FIELDS = (
    "frame.time_epoch",
    "usb.bus_id",
    "usb.device_address",
    "usb.endpoint_address",
    "usb.urb_type",
    "usb.transfer_type",
    "usb.urb_status",
    "usb.urb_len",
    "usb.capdata",
    "usb.bmRequestType",
    "usb.idVendor",
)


@dataclass(frozen=True)
class Record:
    t: float
    bus: int
    device: int
    endpoint: int
    submit: bool
    transfer_type: int
    status: int
    urb_len: int
    data: bytes
    request_type: int | None
    vendor_id: int | None


def _int(text: str) -> int | None:
    text = text.split(",")[0].strip()
    return int(text, 0) if text else None


def read_records(tshark: str, path: Path) -> list[Record]:
    proc = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
        + [arg for f in FIELDS for arg in ("-e", f)],
        capture_output=True,
        text=True,
        check=True,
    )
    out = []
    for line in proc.stdout.splitlines():
        cols = (line.split("\t") + [""] * len(FIELDS))[: len(FIELDS)]
        out.append(
            Record(
                t=float(cols[0]),
                bus=_int(cols[1]) or 0,
                device=_int(cols[2]) or 0,
                endpoint=_int(cols[3]) or 0,
                submit=cols[4].strip("'") == "S",
                transfer_type=_int(cols[5]) or 0,
                status=_int(cols[6]) or 0,
                urb_len=_int(cols[7]) or 0,
                data=bytes.fromhex(cols[8].replace(":", "")) if cols[8] else b"",
                request_type=_int(cols[9]),
                vendor_id=_int(cols[10]),
            )
        )
    return out


def edgetpu_device(records: list[Record], vendor_id: int) -> tuple[int, int]:
    """(bus, address) of the device whose device descriptor names ``vendor_id``."""
    for r in records:
        if r.vendor_id == vendor_id and r.device != 0:
            return r.bus, r.device
    raise AssertionError(f"no device descriptor with idVendor {vendor_id:#06x} in the capture")
