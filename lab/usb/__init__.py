"""The lab's one USB record model and its one writer.

Every generator (the synthetic simulator, the fuzzer, the testbed profiles, the test builders)
describes a session as a list of ``UsbRecord``; ``writer`` turns such a list into the bytes of a
pcapng or pcap file, in every layout the product's reader accepts. ``descriptors`` builds the
standard USB descriptors the emulated and simulated devices answer with. The other capture
formats usbtrace reads have their writers here too (``usbpcap``, ``darwin``, ``usbmon_text``,
from the same records); ``source`` reads a usbmon capture back into records and ``convert``
(``python3 -m lab.usb.convert``) writes it in another format.
"""

from lab.usb.record import UsbRecord, usbmon_headers
from lab.usb.writer import Encoded, Layout, encode, write_capture

__all__ = ["Encoded", "Layout", "UsbRecord", "encode", "usbmon_headers", "write_capture"]
