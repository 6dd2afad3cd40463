"""The VM testbed's emulated Edge TPU: a GadgetFS device speaking the protocol's device side.

Runs inside the testbed VM (``scripts/vm/``), where ``dummy_hcd`` joins a software host controller
to a software device controller, so that real pyusb/libusb traffic and real usbmon captures can be
made on a machine without USB. ``python3 -m lab.testbed --help`` lists the entry points.
"""

from __future__ import annotations

# The serial number string the emulator reports (defined with the protocol constants, since the
# capture runner's replay backend looks for it: only an emulated device may be sent zero-filled
# stand-ins for payloads a capture truncated).
from usbtrace.edgetpu.constants import EMULATOR_SERIAL

__all__ = ["EMULATOR_MANUFACTURER", "EMULATOR_PRODUCT", "EMULATOR_SERIAL"]
EMULATOR_MANUFACTURER = "usbtrace"
EMULATOR_PRODUCT = "Edge TPU emulator"
