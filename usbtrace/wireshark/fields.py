"""The display-filter fields of the generated dissector, declared once for Lua and for the CLI.

``usbtrace wireshark fields`` prints this table, and ``generate.py`` turns every entry into a Lua
``ProtoField``, so the list a user reads is the list Wireshark knows.
"""

from __future__ import annotations

from dataclasses import dataclass

from usbtrace.edgetpu.constants import INTERRUPT_BITS

PROTO_NAME = "edgetpu"


@dataclass(frozen=True)
class DissectorField:
    key: str  # name of the field in the Lua table ``F``
    abbrev: str  # display-filter name
    label: str
    ftype: str  # ProtoField constructor: uint8, uint16, uint32, uint64, string, bool, framenum
    description: str
    base: str | None = None  # "DEC" or "HEX" for integers
    valuestring: str | None = None  # name of a generated Lua table of value names
    mask: int | None = None


def _interrupt_bit_fields() -> tuple[DissectorField, ...]:
    out = []
    for bit, meaning in sorted(INTERRUPT_BITS.items()):
        slug = meaning.lower().replace(" ", "_")
        out.append(
            DissectorField(
                f"interrupt_{slug}",
                f"edgetpu.interrupt.{slug}",
                meaning[0].upper() + meaning[1:],
                "bool",
                f"Interrupt word bit {bit}: {meaning}",
                base="32",
                mask=1 << bit,
            )
        )
    return tuple(out)


FIELDS: tuple[DissectorField, ...] = (
    DissectorField(
        "kind",
        "edgetpu.kind",
        "Kind",
        "string",
        "What the URB carries: header, payload, accepted, event, interrupt, output, csr, dfu",
    ),
    DissectorField(
        "device", "edgetpu.device", "Device", "string", "Edge TPU as bus.address, as usbmon sees it"
    ),
    DissectorField(
        "tag",
        "edgetpu.tag",
        "Tag",
        "uint8",
        "Tag of the logical transfer, event or output (0 instructions, 1 input, 2 parameters, "
        "3 output, 4-7 interrupts)",
        base="DEC",
        valuestring="TAG_NAMES",
    ),
    DissectorField(
        "length",
        "edgetpu.length",
        "Length",
        "uint32",
        "Length of the whole logical transfer (from its header), or the DMA length of an event",
        base="DEC",
    ),
    DissectorField(
        "transfer",
        "edgetpu.transfer",
        "Transfer",
        "uint32",
        "Number of the logical bulk-OUT transfer on this device, from 1",
        base="DEC",
    ),
    DissectorField(
        "offset",
        "edgetpu.offset",
        "Offset",
        "uint32",
        "Offset of this URB's bytes within its logical transfer (or output)",
        base="DEC",
    ),
    DissectorField(
        "chunk_length",
        "edgetpu.chunk_length",
        "Chunk length",
        "uint32",
        "Bytes in this URB (usbmon urb_len, never the captured length)",
        base="DEC",
    ),
    DissectorField(
        "remaining",
        "edgetpu.remaining",
        "Remaining",
        "uint32",
        "Bytes of the logical transfer still to come after this URB",
        base="DEC",
    ),
    DissectorField(
        "header_in",
        "edgetpu.header_in",
        "Header in",
        "framenum",
        "Frame of the header that announced this payload",
    ),
    DissectorField(
        "payload_in",
        "edgetpu.payload_in",
        "Payload in",
        "framenum",
        "Frames carrying this header's payload (shown once the whole capture was read)",
    ),
    DissectorField(
        "request_in",
        "edgetpu.request_in",
        "Request in",
        "framenum",
        "Submit of the URB this completion belongs to",
    ),
    DissectorField(
        "response_in",
        "edgetpu.response_in",
        "Response in",
        "framenum",
        "Completion of this URB (shown once the whole capture was read)",
    ),
    DissectorField(
        "event_address",
        "edgetpu.event.address",
        "Event address",
        "uint64",
        "Device address of the DMA an event reports (0 for interrupt events)",
        base="HEX",
    ),
    DissectorField(
        "interrupt",
        "edgetpu.interrupt",
        "Interrupt word",
        "uint32",
        "The 4-byte word read from the interrupt endpoint",
        base="HEX",
    ),
    *_interrupt_bit_fields(),
    DissectorField(
        "output_chunk",
        "edgetpu.output.chunk",
        "Output chunk",
        "uint32",
        "Number of this chunk within the current output DMA, from 1",
        base="DEC",
    ),
    DissectorField(
        "output_last",
        "edgetpu.output.last",
        "Last chunk",
        "bool",
        "Shorter than the read posted for it: ends an output DMA",
    ),
    DissectorField(
        "csr_address",
        "edgetpu.csr.address",
        "Register address",
        "uint32",
        "Register address = wIndex << 16 | wValue",
        base="HEX",
    ),
    DissectorField("csr_name", "edgetpu.csr.name", "Register", "string", "Register (CSR) name"),
    DissectorField(
        "csr_width",
        "edgetpu.csr.width",
        "Width",
        "uint8",
        "Access width in bits (32 or 64)",
        base="DEC",
    ),
    DissectorField(
        "csr_write", "edgetpu.csr.write", "Write", "bool", "True for a write, false for a read"
    ),
    DissectorField(
        "csr_value",
        "edgetpu.csr.value",
        "Value",
        "uint64",
        "Value written, or read back (on the completion, and on the submit after a full read)",
        base="HEX",
    ),
    DissectorField(
        "dfu_request",
        "edgetpu.dfu.request",
        "DFU request",
        "uint8",
        "Firmware-download class request (boot-loader mode)",
        base="DEC",
        valuestring="DFU_NAMES",
    ),
    DissectorField(
        "dfu_block",
        "edgetpu.dfu.block",
        "DFU block",
        "uint16",
        "Block number of a DNLOAD/UPLOAD (wValue)",
        base="DEC",
    ),
    DissectorField(
        "dfu_length",
        "edgetpu.dfu.length",
        "DFU length",
        "uint16",
        "Bytes requested or sent (wLength)",
        base="DEC",
    ),
    DissectorField(
        "dfu_status",
        "edgetpu.dfu.status",
        "DFU status",
        "uint8",
        "bStatus of a GETSTATUS reply (0 = OK)",
        base="DEC",
    ),
    DissectorField(
        "dfu_state",
        "edgetpu.dfu.state",
        "DFU state",
        "uint8",
        "bState of a GETSTATUS or GETSTATE reply",
        base="DEC",
    ),
)

FIELDS_BY_ABBREV = {f.abbrev: f for f in FIELDS}
