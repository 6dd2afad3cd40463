"""Generate the Wireshark Lua dissector from usbtrace's protocol constants.

The dissector's logic lives in ``dissector.lua`` (no protocol numbers in it); this module prepends
every number it needs, taken from ``usbtrace.edgetpu.constants``, and the ProtoField declarations
from ``fields.py``. So a constant changed in Python changes what Wireshark shows, and nothing is
kept twice.
"""

from __future__ import annotations

from importlib import resources

from usbtrace import __version__
from usbtrace.edgetpu import constants as c
from usbtrace.formats import usbmon
from usbtrace.wireshark.fields import FIELDS, PROTO_NAME, DissectorField

TEMPLATE = "dissector.lua"
CONSTANTS_MARK = "--@@CONSTANTS@@"
FIELDS_MARK = "--@@FIELDS@@"
# First line of every generated file: how `usbtrace wireshark install` recognises its own plug-in.
SIGNATURE = "-- usbtrace Edge TPU dissector"

# Standard USB (chapter 9 of the USB 2.0 specification), not Edge TPU: recognising a device
# descriptor reply, which names the vendor and product.
GET_DESCRIPTOR_REQTYPE = 0x80
GET_DESCRIPTOR_REQUEST = 6
DEVICE_DESCRIPTOR_TYPE = 1
DEVICE_DESCRIPTOR_VID_OFFSET = 8
DEVICE_DESCRIPTOR_PID_OFFSET = 10

# usbmon header fields the dissector reads; offsets come from usbtrace.formats.usbmon's dtype
USBMON_FIELDS = (
    "urb_id",
    "type",
    "xfer",
    "epnum",
    "devnum",
    "busnum",
    "flag_setup",
    "ts_usec",
    "status",
    "urb_len",
    "data_len",
    "setup",
)


def lua_string(text: str) -> str:
    if not text.isascii() or any(ch in text for ch in "\r\n\0"):
        raise ValueError(f"not a one-line ASCII string: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _lua_map(entries: dict[int, str], *, hex_keys: bool = False) -> str:
    lines = []
    for key, value in sorted(entries.items()):
        k = f"0x{key:x}" if hex_keys else str(key)
        lines.append(f"  [{k}] = {value},")
    return "{\n" + "\n".join(lines) + "\n}"


def constants_lua() -> str:
    """Lua ``local`` declarations for every protocol number the dissector uses."""
    scalars = {
        "EP_BULK_OUT": c.EP_BULK_OUT,
        "EP_OUTPUT_IN": c.EP_OUTPUT_IN,
        "EP_EVENT_IN": c.EP_EVENT_IN,
        "EP_INTERRUPT_IN": c.EP_INTERRUPT_IN,
        "HEADER_LEN": c.HEADER_LEN,
        "EVENT_LEN": c.EVENT_LEN,
        "INTERRUPT_LEN": c.INTERRUPT_LEN,
        "HEADER_LENGTH_OFFSET": c.HEADER_LENGTH_OFFSET,
        "HEADER_TAG_OFFSET": c.HEADER_TAG_OFFSET,
        "EVENT_ADDRESS_OFFSET": c.EVENT_ADDRESS_OFFSET,
        "EVENT_LENGTH_OFFSET": c.EVENT_LENGTH_OFFSET,
        "EVENT_TAG_OFFSET": c.EVENT_TAG_OFFSET,
        "TAG_MASK": c.TAG_MASK,
        "TAG_OUTPUT": int(c.Tag.OUTPUT),
        "COMPLETION_TAG": int(c.COMPLETION_TAG),
        "REQTYPE_VENDOR_IN": c.REQTYPE_VENDOR_IN,
        "REQTYPE_VENDOR_OUT": c.REQTYPE_VENDOR_OUT,
        "CSR_MULTI_BO_EP": c.CSR_MULTI_BO_EP,
        "REQTYPE_DFU_OUT": c.REQTYPE_DFU_OUT,
        "REQTYPE_DFU_IN": c.REQTYPE_DFU_IN,
        "DFU_DNLOAD": int(c.DfuRequest.DNLOAD),
        "DFU_UPLOAD": int(c.DfuRequest.UPLOAD),
        "DFU_GETSTATUS": int(c.DfuRequest.GETSTATUS),
        "DFU_GETSTATE": int(c.DfuRequest.GETSTATE),
        "DFU_STATUS_LEN": c.DFU_STATUS_LEN,
        "DFU_STATUS_STATUS_OFFSET": c.DFU_STATUS_STATUS_OFFSET,
        "DFU_STATUS_STATE_OFFSET": c.DFU_STATUS_STATE_OFFSET,
    }
    fatal_bits = [bit for bit, meaning in c.INTERRUPT_BITS.items() if meaning == "fatal error"]
    scalars["INTERRUPT_FATAL_MASK"] = sum(1 << bit for bit in fatal_bits)
    dtype = usbmon.header_dtype(usbmon.LINKTYPE_USB_LINUX_MMAPPED, "<")
    fields = dtype.fields
    assert fields is not None  # a structured dtype always has fields
    for name in USBMON_FIELDS:
        scalars[f"USBMON_{name.upper()}_OFFSET"] = fields[name][1]
    scalars |= {
        "URB_SUBMIT": usbmon.URB_SUBMIT,
        "URB_COMPLETE": usbmon.URB_COMPLETE,
        "URB_ERROR": usbmon.URB_ERROR,
        "USBMON_HEADER_LEN": usbmon.HEADER_LEN_BY_LINKTYPE[usbmon.LINKTYPE_USB_LINUX],
        "USBMON_MMAPPED_HEADER_LEN": usbmon.HEADER_LEN_BY_LINKTYPE[
            usbmon.LINKTYPE_USB_LINUX_MMAPPED
        ],
        "XFER_ISO": usbmon.XFER_ISO,
        "XFER_INTERRUPT": usbmon.XFER_INTERRUPT,
        "XFER_CONTROL": usbmon.XFER_CONTROL,
        "XFER_BULK": usbmon.XFER_BULK,
        "GET_DESCRIPTOR_REQTYPE": GET_DESCRIPTOR_REQTYPE,
        "GET_DESCRIPTOR_REQUEST": GET_DESCRIPTOR_REQUEST,
        "DEVICE_DESCRIPTOR_TYPE": DEVICE_DESCRIPTOR_TYPE,
        "DEVICE_DESCRIPTOR_VID_OFFSET": DEVICE_DESCRIPTOR_VID_OFFSET,
        "DEVICE_DESCRIPTOR_PID_OFFSET": DEVICE_DESCRIPTOR_PID_OFFSET,
    }
    out = ["-- Constants, generated from usbtrace.edgetpu.constants and usbtrace.formats.usbmon"]
    out += [f"local {name} = 0x{value:x}" for name, value in scalars.items()]
    ids = ", ".join(f"{{0x{vid:04x}, 0x{pid:04x}}}" for vid, pid in c.EDGETPU_IDS)
    out.append(f"local EDGETPU_IDS = {{{ids}}}")
    out.append(
        "local TAG_NAMES = " + _lua_map({int(t): lua_string(n) for t, n in c.TAG_NAMES.items()})
    )
    out.append(
        "local CSR_WIDTH_BY_REQUEST = " + _lua_map({c.CSR_REQUEST_64: "64", c.CSR_REQUEST_32: "32"})
    )
    out.append("local OUT_TAGS = " + _lua_map({int(t): "true" for t in c.OUT_TAGS}))
    out.append(
        "local MULTI_EP_TAG = "
        + _lua_map({ep: str(int(t)) for ep, t in c.MULTI_EP_TAG_BY_ENDPOINT.items()}, hex_keys=True)
    )
    out.append(
        "local INTERRUPT_BITS = "
        + _lua_map({bit: lua_string(m) for bit, m in c.INTERRUPT_BITS.items()})
    )
    out.append(
        "local DFU_NAMES = " + _lua_map({int(r): lua_string(f"DFU_{r.name}") for r in c.DfuRequest})
    )
    regs = {
        r.address: (
            f"{{name = {lua_string(r.name)}, width = {r.width}, note = {lua_string(r.note)}}}"
        )
        for r in c.REGISTERS
    }
    out.append("local REGISTERS = " + _lua_map(regs, hex_keys=True))
    return "\n".join(out) + "\n"


def _protofield(f: DissectorField) -> str:
    abbrev, label, desc = lua_string(f.abbrev), lua_string(f.label), lua_string(f.description)
    if f.ftype == "string":
        return f"ProtoField.string({abbrev}, {label}, base.ASCII, {desc})"
    if f.ftype == "framenum":
        # Wireshark 4.0 reads the fifth argument as a mask, even for frame numbers
        return f"ProtoField.framenum({abbrev}, {label}, base.NONE, frametype.NONE, nil, {desc})"
    if f.ftype == "bool":
        display = f.base if f.base else "base.NONE"
        mask = f"0x{f.mask:x}" if f.mask is not None else "nil"
        return f"ProtoField.bool({abbrev}, {label}, {display}, nil, {mask}, {desc})"
    values = f.valuestring or "nil"
    mask = f"0x{f.mask:x}" if f.mask is not None else "nil"
    return f"ProtoField.{f.ftype}({abbrev}, {label}, base.{f.base}, {values}, {mask}, {desc})"


def fields_lua() -> str:
    out = ["-- Display-filter fields, generated from usbtrace.wireshark.fields", "local F = {}"]
    out += [f"F.{f.key} = {_protofield(f)}" for f in FIELDS]
    out.append("local field_list = {}")
    out.append("for _, field in pairs(F) do field_list[#field_list + 1] = field end")
    out.append(f"{PROTO_NAME}.fields = field_list")
    return "\n".join(out) + "\n"


def template_text() -> str:
    return resources.files("usbtrace.wireshark").joinpath(TEMPLATE).read_text(encoding="utf-8")


def generate_lua() -> str:
    """The complete plug-in source."""
    template = template_text()
    for mark in (CONSTANTS_MARK, FIELDS_MARK):
        if template.count(mark) != 1:
            raise RuntimeError(f"{TEMPLATE}: expected exactly one {mark} line")
    head = (
        f"{SIGNATURE} (usbtrace {__version__}).\n"
        "-- Generated by `usbtrace wireshark install`; edit usbtrace, not this file.\n"
    )
    body = template.replace(CONSTANTS_MARK, constants_lua()).replace(FIELDS_MARK, fields_lua())
    return head + body
