"""The emulated device's CSR file: what the vendor control reads and writes on EP0 see.

Registers of the protocol table answer with their last written value (or a reset value); any
other address is accepted and remembered too, but counted as unknown so that a test can tell a
host that strays off the table.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from usbtrace.edgetpu.constants import (
    CSR_OUTFEED_CHUNK_LENGTH,
    CSR_REQUEST_32,
    CSR_REQUEST_64,
    CSR_SCU_CTRL_3,
    OUTPUT_READ_LEN_USB3,
    REGISTERS_BY_ADDRESS,
    REGISTERS_BY_NAME,
)

# Values a freshly reset device reads back before the host writes anything. Taken from what the
# open sequence of a real capture reads; registers not named here read 0.
RESET_VALUES = {
    "scu_ctrl_0": 0x000F0059,
    "scu_ctrl_3": 0x00C5025C,  # asleep
    "omc0_00": 0x0219089A,  # chip revision
}
# scu_ctrl_3 bits 8-9 are the power state the host polls for after waking the chip; the emulated
# chip is awake as soon as it is told to be, so those bits read 0 after any write.
SCU_CTRL_3_POWER_STATE_MASK = 0x300
# outfeed_chunk_length counts 8-byte units
OUTFEED_CHUNK_UNIT = 8


@dataclass(frozen=True)
class RegisterAccess:
    address: int
    width: int  # 32 or 64
    write: bool
    value: int


@dataclass
class RegisterFile:
    values: dict[int, int] = field(default_factory=dict)
    log: list[RegisterAccess] = field(default_factory=list)
    unknown: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name, value in RESET_VALUES.items():
            self.values.setdefault(REGISTERS_BY_NAME[name].address, value)

    @staticmethod
    def width_of_request(b_request: int) -> int | None:
        return {CSR_REQUEST_32: 32, CSR_REQUEST_64: 64}.get(b_request)

    def read(self, address: int, width: int) -> int:
        with self._lock:
            self._note(address)
            value = self.values.get(address, 0) & ((1 << width) - 1)
            self.log.append(RegisterAccess(address, width, False, value))
            return value

    def write(self, address: int, width: int, value: int) -> None:
        with self._lock:
            self._note(address)
            if address == CSR_SCU_CTRL_3:
                value &= ~SCU_CTRL_3_POWER_STATE_MASK
            self.values[address] = value
            self.log.append(RegisterAccess(address, width, True, value))

    def output_chunk_bytes(self) -> int:
        """Largest bulk-IN chunk for output activations, as the host configured it.

        Before the host writes ``outfeed_chunk_length`` the emulator uses the SuperSpeed size
        (1 KiB), which is also what the replayed real captures read with.
        """
        units = self.values.get(CSR_OUTFEED_CHUNK_LENGTH, 0)
        return units * OUTFEED_CHUNK_UNIT if units else OUTPUT_READ_LEN_USB3

    def _note(self, address: int) -> None:
        if address not in REGISTERS_BY_ADDRESS:
            self.unknown.add(address)


def csr_address(w_value: int, w_index: int) -> int:
    """The register address a vendor request names: low half in wValue, high half in wIndex."""
    return (w_index << 16) | w_value
