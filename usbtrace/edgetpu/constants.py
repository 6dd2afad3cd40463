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
OUTPUT_READS_QUEUED = 8  # 0x81 reads kept pending (TFLite delegate and the 2019 runtime)
USB_TIMEOUT_MS = 6000  # libusb timeout: pending reads complete with -2 after this and are re-posted
# the only event seen on real captures: tag 4 (request finished), no address, no length
EVENT_REQUEST_DONE = bytes(12) + bytes([4, 0, 0, 0])
# every instruction chunk seen starts so (inferred from 14 distinct chunks, protocol §3.4)
INSTRUCTION_CHUNK_SIGNATURE = b"\x80\x0f\x00"
# an output layer arrives rounded up to a multiple of this (the 1-byte study output is 8 B)
OUTPUT_PAD_MULTIPLE = 8


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

# scu_ctrl_3 bits 28-29: the GCB (Edge TPU core) clock the runtime set (driver source; the 2019
# captures write 0x85025c: 500 MHz). libedgetpu "max" = 500 MHz, "std" = 250 MHz.
SCU_CTRL_3_CLOCK_SHIFT = 28
SCU_CTRL_3_CLOCK_MASK = 0x3
GCB_CLOCK_MHZ = (500.0, 250.0, 125.0, 62.5)
SCU_CTRL_3_ASLEEP = 0xC5025C  # read twice at open
SCU_CTRL_3_MAX_CLOCKS = 0x85025C  # written at open
SCU_CTRL_3_AWAKE = 0x850004  # read back until seen
SCU_CTRL_3_SLEEP = 0xC5000C  # written at close
OMC0_00_2019 = 0x0219089A  # chip revision read at open on the real captures (e-fuse revision 2)
DESCR_EP_INTERRUPTS_ONLY = 0xF0
DESCR_EP_ALL = 0xFF  # driver source only: also DMA descriptor events
RUN_CONTROL_RUN = 1
RUN_CONTROL_HALT = 2


@dataclass(frozen=True)
class CsrStep:
    """One vendor control transfer of the open or close sequence; a read's value is the reply."""

    write: bool
    register: str
    value: int


def _steps(*items: tuple[str, str, int]) -> tuple[CsrStep, ...]:
    return tuple(CsrStep(op == "w", name, value) for op, name, value in items)


_RUN_CONTROLS_CORE = (
    "scalarCoreRunControl",
    "avDataPopRunControl",
    "parameterPopRunControl",
    "infeedRunControl",
    "outfeedRunControl",
)
_RUN_CONTROLS_TILE = (
    "opRunControl",
    "narrowToWideRunControl",
    "wideToNarrowRunControl",
    "meshBus0RunControl",
    "meshBus1RunControl",
    "meshBus2RunControl",
    "meshBus3RunControl",
    "ringBusConsumer0RunControl",
    "ringBusConsumer1RunControl",
    "ringBusProducerRunControl",
)
_TOP_LEVEL_INTS = tuple(f"top_level_int_{i}_control" for i in range(4))


def csr_open_sequence(
    *, outfeed_chunk_length: int = OUTFEED_CHUNK_SUPERSPEED, multi_bo_ep: int = 0
) -> tuple[CsrStep, ...]:
    """The 52 register accesses of a device open, in the order of the real captures."""
    return _steps(
        ("r", "scu_ctrl_0", 0x000F0059),
        ("w", "scu_ctrl_0", 0x000F0059),
        ("r", "scu_ctrl_2", 0x00110000),
        ("r", "scu_ctrl_3", SCU_CTRL_3_ASLEEP),
        ("r", "scu_ctrl_3", SCU_CTRL_3_ASLEEP),
        ("w", "scu_ctrl_3", SCU_CTRL_3_MAX_CLOCKS),
        ("r", "scu_ctrl_3", SCU_CTRL_3_AWAKE),
        ("r", "scalarCoreRunControl", 0),
        ("w", "idleRegister", 1),
        ("w", "tileconfig0", 0x7F),
        ("r", "tileconfig0", 0x7F),
        ("w", "deepSleep", 0x1E02),
        ("r", "scu_ctrl_2", 0x00110000),
        ("w", "scu_ctrl_2", 0x00150000),
        ("r", "omc0_00", OMC0_00_2019),
        ("w", "descr_ep", DESCR_EP_INTERRUPTS_ONLY),
        ("w", "multi_bo_ep", multi_bo_ep),
        ("w", "outfeed_chunk_length", outfeed_chunk_length),
        *(("w", name, RUN_CONTROL_RUN) for name in _RUN_CONTROLS_CORE),
        ("w", "tileconfig0", 0x7F),
        ("r", "tileconfig0", 0x7F),
        *(("w", name, RUN_CONTROL_RUN) for name in _RUN_CONTROLS_TILE),
        ("w", "fatal_err_int_control", 1),
        *(("w", name, 1) for name in _TOP_LEVEL_INTS),
        ("r", "omc0_d4", 0x00000001),
        ("w", "omc0_d4", 0x80000001),
        ("r", "rambist_ctrl_1", 0x0070007F),
        ("w", "rambist_ctrl_1", 0x0000007F),
        ("r", "scu_ctr_7", 0x000C003F),
        ("w", "scu_ctr_7", 0x0000003F),
        ("w", "slv_abm_en", 1),
        ("w", "mst_abm_en", 1),
        ("w", "slv_err_resp_isr_mask", 3),
        ("w", "mst_err_resp_isr_mask", 3),
        ("r", "omc0_d8", 0),
        ("w", "omc0_d8", 0x80000000),
    )


def csr_close_sequence() -> tuple[CsrStep, ...]:
    """The 39 register accesses of a device close (after the pending reads were cancelled)."""
    return _steps(
        *(("w", name, 0) for name in _TOP_LEVEL_INTS),
        ("r", "omc0_d4", 0x80000001),
        ("w", "omc0_d4", 0x00000001),
        ("r", "rambist_ctrl_1", 0x0000007F),
        ("w", "rambist_ctrl_1", 0x0070007F),
        ("r", "scu_ctr_7", 0x0000003F),
        ("w", "scu_ctr_7", 0x000C003F),
        ("w", "slv_abm_en", 0),
        ("w", "mst_abm_en", 0),
        ("w", "slv_err_resp_isr_mask", 0),
        ("w", "mst_err_resp_isr_mask", 0),
        ("r", "omc0_d8", 0x80000000),
        ("w", "omc0_d8", 0),
        ("w", "fatal_err_int_control", 0),
        *(("w", name, RUN_CONTROL_HALT) for name in _RUN_CONTROLS_CORE),
        ("w", "tileconfig0", 0x7F),
        ("r", "tileconfig0", 0x7F),
        *(("w", name, RUN_CONTROL_HALT) for name in _RUN_CONTROLS_TILE),
        ("r", "scu_ctrl_3", 0x0085000C),
        ("w", "scu_ctrl_3", SCU_CTRL_3_SLEEP),
        ("r", "scu_ctrl_3", SCU_CTRL_3_ASLEEP),
        ("w", "gcbb_credit0", 0xF),
        ("w", "gcbb_credit0", 0),
    )


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


DFU_STATUS_STATUS_OFFSET = 0
DFU_STATUS_STATE_OFFSET = 4

FIRMWARE_SINGLE_EP_BYTES = 10_783  # apex_latest_single_ep.bin
FIRMWARE_MULTI_EP_BYTES = 12_117  # apex_latest_multi_ep.bin
DFU_TRANSFER_SIZE = 256  # wTransferSize seen in a libusb call trace (never in a usbmon capture)
DFU_STATUS_LEN = 6  # GETSTATUS reply: status, 24-bit poll timeout, state, string index
DFU_STATE_IDLE = 2  # after the zero-length DNLOAD that ends a download
DFU_STATE_DNLOAD_IDLE = 5  # after each block
DFU_DETACH_TIMEOUT_MS = 100

# --- standard descriptors (real captures, SuperSpeed; high-speed values from the driver source) --

BCD_USB_SUPER = 0x0310
BCD_USB_HIGH = 0x0200
BCD_DEVICE_APP = 0x0100
MAX_PACKET0_SUPER = 9  # bMaxPacketSize0 as an exponent: 2**9 = 512 bytes
MAX_PACKET0_HIGH = 64
BULK_MAX_PACKET_SUPER = 1024
BULK_MAX_PACKET_HIGH = 512
INTERRUPT_MAX_PACKET = 64
INTERRUPT_INTERVAL = 1  # bInterval of 0x83
CONFIG_MAX_POWER = 112  # bMaxPower field as the device reports it
VENDOR_INTERFACE_CLASS = 0xFF  # class, subclass and protocol of the one interface
HUB_IDS_2019 = (0x0BDA, 0x0411)  # the Realtek hub between host and accelerator on the real captures

# --- link speed -----------------------------------------------------------------------------------

# usbmon records no speed: usbtrace reports one of these names (descriptor, CSR hint or sysfs)
LINK_SPEEDS = ("super", "high", "full", "low")

# --- compiled model files (libedgetpu executable.fbs; read from real *_edgetpu.tflite files) ----

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"  # TFLite custom op code that carries the package
PACKAGE_IDENTIFIER = b"DWN1"  # flatbuffer file identifier of the package
# keys of the custom op's FlexBuffer options map
CUSTOM_OPTION_VERSION = "1"
CUSTOM_OPTION_CHIP = "2"  # 2019 compilers only ("beagle")
CUSTOM_OPTION_PACKAGE = "4"  # the package, stored as a FlexBuffer string of raw bytes
CUSTOM_OPTION_EXECUTION_PREFERENCE = "5"
CHIP_NAME = "beagle"


class ExecutableType(IntEnum):
    """``Executable.type``: one executable in a package runs stand-alone whatever its type."""

    STANDALONE = 0
    PARAMETER_CACHING = 1
    EXECUTION_ONLY = 2


class DmaHintKind(IntEnum):
    """``DmaHint.any_hint`` union type: what the runtime moves next."""

    DESCRIPTOR = 1  # INPUT/PARAMETER -> a tagged bulk-OUT transfer, OUTPUT -> bulk IN 0x81
    INSTRUCTION = 2  # a tag-0 transfer of one instruction bitstream
    INTERRUPT = 3  # wait for the tag 4+k event
    FENCE = 4  # nothing on the wire


class DmaDescriptorKind(IntEnum):
    """``Meta.desc`` of a DMA descriptor hint."""

    OUTPUT = 0
    INPUT = 1
    PARAMETER = 2
    SCRATCH = 3


# --- usbtrace's own emulated device -------------------------------------------------------------

# Serial string of the VM testbed's emulated Edge TPU: the replay backend zero-fills cut payloads
# only for a device that says it is this emulator, never for a real chip.
EMULATOR_SERIAL = "usbtrace-emulator"
