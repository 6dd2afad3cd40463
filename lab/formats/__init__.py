"""Writers of every capture format usbtrace reads, for the same USB records.

A session (the synthetic generator's records, or a real usbmon capture read back with
``source.read_usbmon``) can be written as usbmon pcapng (the synthetic generator's own writer),
USBPcap pcap or pcapng (``usbpcap``), macOS pcap or pcapng (``darwin``) and usbmon text
(``usbmon_text``), so tests can show that every format gives the same requests and bytes.
``python3 -m lab.formats`` converts a file.
"""

from lab.formats.darwin import write_darwin
from lab.formats.source import UsbmonSource, read_usbmon
from lab.formats.usbmon_text import write_usbmon_text
from lab.formats.usbpcap import write_usbpcap

FORMATS = ("usbpcap-pcap", "usbpcap-pcapng", "usbmon-text", "darwin-pcap", "darwin-pcapng")

__all__ = [
    "FORMATS",
    "UsbmonSource",
    "read_usbmon",
    "write_darwin",
    "write_usbmon_text",
    "write_usbpcap",
]
