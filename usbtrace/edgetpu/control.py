"""Control transfers of an Edge TPU: register (CSR) access and firmware download (DFU).

Standard requests are the USB layer's (``usbtrace.usb.devices``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from usbtrace.edgetpu.constants import (
    CSR_REQUEST_32,
    CSR_REQUEST_64,
    DFU_STATUS_LEN,
    REQTYPE_DFU_IN,
    REQTYPE_DFU_OUT,
    REQTYPE_VENDOR_IN,
    REQTYPE_VENDOR_OUT,
    DfuRequest,
    register_name,
)
from usbtrace.usb.descriptors import Setup


@dataclass(slots=True)
class CsrAccess:
    frame: int  # submit frame
    complete_frame: int
    t_ns: int
    address: int
    name: str
    width: int  # 32 or 64
    write: bool
    value: int | None  # None when the bytes were not captured or the access failed
    status: int

    @property
    def text(self) -> str:
        v = "?" if self.value is None else f"{self.value:#x}"
        return f"{self.name} {':=' if self.write else '->'} {v}"


@dataclass(slots=True)
class DfuStep:
    frame: int
    t_ns: int
    request: str
    block: int
    length: int  # bytes moved (DNLOAD: offered; UPLOAD/GETSTATUS: returned)
    status: int
    inbound: bool = False  # device-to-host (bmRequestType 0xA1: UPLOAD, GETSTATUS, ...)

    @property
    def text(self) -> str:
        # wValue is a block number for DNLOAD and UPLOAD only
        numbered = self.request in (DfuRequest.DNLOAD.name, DfuRequest.UPLOAD.name)
        block = f" block {self.block}" if numbered else ""
        return f"DFU {self.request}{block} ({self.length} B)"


def is_firmware_download(steps: list[DfuStep]) -> bool:
    """Whether a device's class requests on its interface are a DFU download, without its
    descriptor: a DNLOAD carrying data and a GETSTATUS answered with the 6-byte DFU status.

    Other classes use bmRequestType 0x21/0xA1 too, but not both of these: HID's requests 1-3
    are IN only (GET_REPORT, GET_IDLE, GET_PROTOCOL, whose answer is 1 byte) and its OUT ones
    are 9-11; CDC's are 0x20 and up.
    """
    down = any(s.request == DfuRequest.DNLOAD.name and s.length > 0 for s in steps)
    return down and any(
        s.request == DfuRequest.GETSTATUS.name and s.length == DFU_STATUS_LEN and s.status == 0
        for s in steps
    )


def _value(data: np.ndarray, cap: int, nbytes: int) -> int | None:
    if cap < nbytes:
        return None
    return int.from_bytes(bytes(data[:nbytes].tolist()), "little")


def decode_control(urb: np.void) -> CsrAccess | DfuStep | None:
    """One paired control URB (a row of ``usbtrace.usb.pairing.URB``)."""
    setup = Setup.parse(bytes(urb["setup"].tolist()))
    frame = int(urb["s_frame"]) or int(urb["c_frame"])
    t_ns = int(urb["s_ts"]) or int(urb["c_ts"])
    status = int(urb["status"])
    rt = setup.request_type
    if rt in (REQTYPE_VENDOR_IN, REQTYPE_VENDOR_OUT) and setup.request in (
        CSR_REQUEST_32,
        CSR_REQUEST_64,
    ):
        width = 32 if setup.request == CSR_REQUEST_32 else 64
        address = (setup.index << 16) | setup.value
        write = rt == REQTYPE_VENDOR_OUT
        nbytes = width // 8
        if write:
            value = _value(urb["s_head"], int(urb["s_cap"]), nbytes)
        else:
            ok = urb["c_frame"] and status == 0
            value = _value(urb["c_head"], int(urb["c_cap"]), nbytes) if ok else None
        return CsrAccess(
            frame,
            int(urb["c_frame"]),
            t_ns,
            address,
            register_name(address),
            width,
            write,
            value,
            status,
        )
    if rt in (REQTYPE_DFU_OUT, REQTYPE_DFU_IN):
        try:
            name = DfuRequest(setup.request).name
        except ValueError:
            name = f"request_{setup.request}"
        length = int(urb["s_len"]) if rt == REQTYPE_DFU_OUT else int(urb["c_len"])
        return DfuStep(frame, t_ns, name, setup.value, length, status, rt == REQTYPE_DFU_IN)
    return None
