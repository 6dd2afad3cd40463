"""Every Edge TPU protocol constant usbtrace knows, in one place.

Facts come from the project's protocol reference (shared/protocol/EDGETPU_USB.md). Where a value has
only been read from the driver source and never seen on a real capture, the comment says so. Other
modules (the decoder, the testbed emulator, the Wireshark dissector generator) import from here and
never repeat a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

# --- identity -------------------------------------------------------------------------------------

VID_GOOGLE = 0x18D1
PID_EDGETPU_APP = 0x9302  # firmware running (seen on every real capture)
VID_GLOBAL_UNICHIP = 0x1A6E
PID_EDGETPU_DFU = 0x089A  # boot loader waiting for firmware (driver source only)

APP_IDS = (VID_GOOGLE, PID_EDGETPU_APP)
DFU_IDS = (VID_GLOBAL_UNICHIP, PID_EDGETPU_DFU)
EDGETPU_IDS = (APP_IDS, DFU_IDS)

# --- endpoints ------------------------------------------------------------------------------------

EP_BULK_OUT = 0x01  # single-EP mode: everything host->device, behind 8-byte headers
EP_INPUT_OUT = 0x02  # multi-EP only: input activations, no header (driver source only)
EP_PARAM_OUT = 0x03  # multi-EP only: parameters, no header (driver source only)
EP_OUTPUT_IN = 0x81  # output activations
EP_EVENT_IN = 0x82  # 16-byte events
EP_INTERRUPT_IN = 0x83  # 4-byte interrupt word

HEADER_LEN = 8
EVENT_LEN = 16
INTERRUPT_LEN = 4
MAX_BULK_OUT_CHUNK = 1_048_576  # driver splits payload into URBs of at most this size
MAX_ASYNC_BULK_OUT = 3  # bulk OUT URBs in flight, headers included
OUTPUT_READ_LEN_USB3 = 1024
OUTPUT_READ_LEN_USB2 = 256
USBMON_DEFAULT_EVENT_CAP = 61_440  # 1/5 of the default 300 KiB usbmon ring


class Tag(IntEnum):
    """Low nibble of a bulk-OUT header byte 4, and of an event's byte 12."""

    INSTRUCTIONS = 0
    INPUT = 1
    PARAMETERS = 2
    OUTPUT = 3
    INTERRUPT0 = 4  # scalar core interrupt 0: "request finished"
    INTERRUPT1 = 5
    INTERRUPT2 = 6
    INTERRUPT3 = 7


TAG_NAMES = {
    Tag.INSTRUCTIONS: "instructions",
    Tag.INPUT: "input",
    Tag.PARAMETERS: "parameters",
    Tag.OUTPUT: "output",
    Tag.INTERRUPT0: "interrupt0",
    Tag.INTERRUPT1: "interrupt1",
    Tag.INTERRUPT2: "interrupt2",
    Tag.INTERRUPT3: "interrupt3",
}
OUT_TAGS = (Tag.INSTRUCTIONS, Tag.INPUT, Tag.PARAMETERS)  # tags a bulk-OUT header may carry
HEADER_TAGS = tuple(range(8))  # any valid tag value; high nibble and bytes 5-7 must be zero
COMPLETION_TAG = Tag.INTERRUPT0

# Byte layout inside the 8-byte header and the 16-byte event (offsets from their first byte).
HEADER_LENGTH_OFFSET = 0  # u32 LE: length of the whole logical transfer
HEADER_TAG_OFFSET = 4  # tag in the low nibble; the high nibble and bytes 5-7 are zero
EVENT_ADDRESS_OFFSET = 0  # u64 LE device address of the DMA (0 for interrupts)
EVENT_LENGTH_OFFSET = 8  # u32 LE (0 for interrupts)
EVENT_TAG_OFFSET = 12  # tag in the low nibble
TAG_MASK = 0x0F

# multi-EP mode: the endpoint replaces the header's tag
MULTI_EP_TAG_BY_ENDPOINT = {
    EP_BULK_OUT: Tag.INSTRUCTIONS,
    EP_INPUT_OUT: Tag.INPUT,
    EP_PARAM_OUT: Tag.PARAMETERS,
}

# interrupt word on 0x83 (driver source only; never seen with data)
INTERRUPT_BITS = {
    0: "fatal error",
    1: "thermal shutdown",
    2: "PCIe error",
    3: "MBIST",
    4: "thermal warning",
}

# --- control transfers: CSR access ---------------------------------------------------------------

REQTYPE_VENDOR_IN = 0xC0  # device-to-host, vendor, device recipient
REQTYPE_VENDOR_OUT = 0x40
CSR_REQUEST_64 = 0  # bRequest for 64-bit register access
CSR_REQUEST_32 = 1  # bRequest for 32-bit register access


@dataclass(frozen=True)
class Register:
    address: int
    name: str
    width: int  # bits
    note: str


# The 39 registers touched by the real captures (names from libedgetpu's beagle_csr_offsets.h).
REGISTERS: tuple[Register, ...] = (
    Register(0x1907C, "gcbb_credit0", 32, "bulk credit reset, 0xF then 0 at close"),
    Register(0x1A000, "omc0_00", 32, "chip revision read at open; multi-EP credit writes"),
    Register(0x1A0D4, "omc0_d4", 32, "thermal warning enable"),
    Register(0x1A0D8, "omc0_d8", 32, "thermal shutdown enable"),
    Register(0x1A30C, "scu_ctrl_0", 32, "PHY mode; first register touched at open"),
    Register(0x1A314, "scu_ctrl_2", 32, "clock gating; 0x150000 = hardware gating"),
    Register(0x1A318, "scu_ctrl_3", 32, "sleep/clock state; 0x85025c max clocks, 0xc5000c sleep"),
    Register(0x1A33C, "scu_ctr_7", 32, "MBIST / boot-failure mask"),
    Register(0x1A500, "slv_abm_en", 32, "slave error detection enable"),
    Register(0x1A558, "slv_err_resp_isr_mask", 32, "slave error-response interrupt mask"),
    Register(0x1A600, "mst_abm_en", 32, "master error detection enable"),
    Register(0x1A658, "mst_err_resp_isr_mask", 32, "master error-response interrupt mask"),
    Register(0x1A704, "rambist_ctrl_1", 32, "MBIST interrupt mask"),
    Register(0x40020, "deepSleep", 64, "tile sleep/wake delays"),
    Register(0x400C0, "opRunControl", 64, "run control"),
    Register(0x40110, "wideToNarrowRunControl", 64, "run control"),
    Register(0x40150, "narrowToWideRunControl", 64, "run control"),
    Register(0x40190, "ringBusConsumer0RunControl", 64, "run control"),
    Register(0x401D0, "ringBusConsumer1RunControl", 64, "run control"),
    Register(0x40210, "ringBusProducerRunControl", 64, "run control"),
    Register(0x40250, "meshBus0RunControl", 64, "run control"),
    Register(0x40298, "meshBus1RunControl", 64, "run control"),
    Register(0x402E0, "meshBus2RunControl", 64, "run control"),
    Register(0x40328, "meshBus3RunControl", 64, "run control"),
    Register(0x44018, "scalarCoreRunControl", 64, "scalar core run control"),
    Register(0x44158, "avDataPopRunControl", 64, "run control"),
    Register(0x44198, "parameterPopRunControl", 64, "parameter path run control"),
    Register(0x441D8, "infeedRunControl", 64, "input path run control"),
    Register(0x44218, "outfeedRunControl", 64, "output path run control"),
    Register(0x48788, "tileconfig0", 64, "tile broadcast config"),
    Register(0x4A000, "idleRegister", 64, "idle control"),
    Register(0x4C058, "outfeed_chunk_length", 64, "link speed hint: 0x80 USB3, 0x20 USB2"),
    Register(0x4C060, "fatal_err_int_control", 64, "fatal error interrupt enable"),
    Register(0x4C070, "top_level_int_0_control", 64, "thermal shutdown interrupt enable"),
    Register(0x4C080, "top_level_int_1_control", 64, "PCIe error interrupt enable"),
    Register(0x4C090, "top_level_int_2_control", 64, "MBIST interrupt enable"),
    Register(0x4C0A0, "top_level_int_3_control", 64, "thermal warning interrupt enable"),
    Register(0x4C148, "descr_ep", 64, "event selection: 0xF0 interrupts only, 0xFF all"),
    Register(0x4C160, "multi_bo_ep", 64, "endpoint mode: 0 single-EP, 1 multi-EP"),
)
REGISTERS_BY_ADDRESS = {r.address: r for r in REGISTERS}
REGISTERS_BY_NAME = {r.name: r for r in REGISTERS}

CSR_OUTFEED_CHUNK_LENGTH = 0x4C058
CSR_MULTI_BO_EP = 0x4C160
CSR_DESCR_EP = 0x4C148
CSR_SCU_CTRL_3 = 0x1A318

OUTFEED_CHUNK_SUPERSPEED = 0x80
OUTFEED_CHUNK_HIGHSPEED = 0x20


def register_name(address: int) -> str:
    reg = REGISTERS_BY_ADDRESS.get(address)
    return reg.name if reg else f"csr_{address:#07x}"


# --- firmware download (DFU class requests; driver source only) ----------------------------------

REQTYPE_DFU_OUT = 0x21  # class, interface, host-to-device
REQTYPE_DFU_IN = 0xA1


class DfuRequest(IntEnum):
    DETACH = 0
    DNLOAD = 1
    UPLOAD = 2
    GETSTATUS = 3
    CLRSTATUS = 4
    GETSTATE = 5
    ABORT = 6


DFU_STATUS_LEN = 6  # GETSTATUS reply: bStatus, 24-bit poll timeout, bState, iString
DFU_STATUS_STATUS_OFFSET = 0
DFU_STATUS_STATE_OFFSET = 4

FIRMWARE_SINGLE_EP_BYTES = 10_783  # apex_latest_single_ep.bin
FIRMWARE_MULTI_EP_BYTES = 12_117  # apex_latest_multi_ep.bin

# --- link speed -----------------------------------------------------------------------------------

# usbmon has no speed field; these are the names usbtrace reports.
LINK_SPEEDS = ("super", "high", "full", "low")
LINK_SPEED_BY_BCD_USB_MAJOR = {3: "super", 2: "high", 1: "full"}
