"""What a synthetic Coral session does: devices, requests, link speed, capture settings.

A profile is plain data. ``timing.py`` turns it into times, ``session.py`` into usbmon records.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from usbtrace.edgetpu.constants import (
    OUTFEED_CHUNK_HIGHSPEED,
    OUTFEED_CHUNK_SUPERSPEED,
    OUTPUT_READ_LEN_USB2,
    OUTPUT_READ_LEN_USB3,
    USB_TIMEOUT_MS,
    USBMON_DEFAULT_EVENT_CAP,
    Tag,
)

# (tag, length) of one logical bulk-OUT transfer, in the order the driver sends them
TransferSpec = tuple[int, int]

DEFAULT_SNAPLEN = 64 + 64  # usbmon header + the first 64 bytes of data
DEFAULT_START_US = 1_750_000_000_000_000  # 2025-06-15 15:06:40 UTC: a fixed, recognisable epoch


@dataclass(frozen=True)
class Timing:
    """The knobs of the timing model (see ``timing.py``); integers so every time is a whole µs.

    Rates are bytes per second. The device accepts OUT data at the link rate, except streamed
    parameters of an inference request, which it accepts at ``min(link, param_bytes_per_s)``.
    """

    link_out_bytes_per_s: int = 400_000_000
    link_in_bytes_per_s: int = 400_000_000
    urb_overhead_us: int = 8  # fixed link cost of one OUT URB (headers take exactly this + 1)
    host_gap_us: int = 20  # host: from one bulk-OUT submit (or a freed slot) to the next
    cached_compute_us: int = 0  # execution start -> the first streamed parameter is accepted
    param_bytes_per_s: int | None = None  # device parameter consumption; None = as fast as the link
    compute_us: int = 0  # execution start (input accepted) -> first output chunk, at least
    tail_us: int = 20  # last OUT URB of a request accepted -> first output chunk, at least
    caching_tail_us: int = 25  # caching request: last OUT URB accepted -> its event
    event_after_output_us: int = 19
    repost_us: int = 40  # driver: a completed read -> the same read posted again
    control_us: int = 120  # one control transfer, submit -> completion
    control_gap_us: int = 50  # between control transfers
    invoke_setup_us: int = 60  # host invoke() called -> first bulk-OUT submit
    invoke_return_us: int = 80  # event -> host invoke() returns
    read_timeout_us: int | None = USB_TIMEOUT_MS * 1000  # None: pending reads never time out
    # each inference's compute_us grows by a pseudo-random 0..compute_jitter_us (seeded by the
    # request index: the same profile still gives the same bytes); 0 = every inference alike
    compute_jitter_us: int = 0


@dataclass(frozen=True)
class DeviceProfile:
    """One Edge TPU in the session."""

    bus: int = 2
    address: int = 4
    link_speed: str = "super"  # "super" | "high"
    multi_ep: bool = False  # multi-EP: no headers, the endpoint carries the tag
    caching: tuple[TransferSpec, ...] = ()  # empty: no parameter-caching request
    inference: tuple[TransferSpec, ...] = ((Tag.INSTRUCTIONS, 4096), (Tag.INPUT, 16))
    output_bytes: int = 8
    inferences: int = 5
    interval_us: int = 2_000_000  # host idle between one invoke() returning and the next call
    timing: Timing = field(default_factory=Timing)
    enumeration: bool = True  # hub port reset, descriptors, SET_CONFIGURATION before the open
    firmware_download: bool = False  # start as the DFU boot loader and download firmware first
    dfu_address: int = 3  # the boot loader's address; the application comes back at ``address``
    open_idle_us: int = 1_000_000  # SET_CONFIGURATION -> first register access (driver sleep)
    start_offset_us: int = 0  # this device's session starts this long after the capture starts

    @property
    def output_read_len(self) -> int:
        return OUTPUT_READ_LEN_USB3 if self.link_speed == "super" else OUTPUT_READ_LEN_USB2

    @property
    def outfeed_chunk_length(self) -> int:
        return OUTFEED_CHUNK_SUPERSPEED if self.link_speed == "super" else OUTFEED_CHUNK_HIGHSPEED

    def requests(self) -> list[tuple[str, tuple[TransferSpec, ...]]]:
        """(kind, transfers) of every request, in the order the driver queues them."""
        out: list[tuple[str, tuple[TransferSpec, ...]]] = []
        for i in range(self.inferences):
            if i == 0 and self.caching:
                out.append(("parameter-caching", self.caching))
            kind = "inference" if any(t == Tag.INPUT for t, _ in self.inference) else "other"
            out.append((kind, self.inference))
        return out

    def with_timing(self, **changes: int | None) -> DeviceProfile:
        return replace(self, timing=replace(self.timing, **changes))


@dataclass(frozen=True)
class SessionProfile:
    """A whole capture: one or more Edge TPUs, a hub on the same bus, capture settings."""

    name: str = "synthetic"
    devices: tuple[DeviceProfile, ...] = (DeviceProfile(),)
    hub_address: int = 2  # a hub on the same bus whose interrupt endpoint is also 0x81
    snaplen: int = DEFAULT_SNAPLEN
    usbmon_event_cap: int = USBMON_DEFAULT_EVENT_CAP  # usbmon's own per-event data limit
    dropped: int = 0  # reported in an Interface Statistics Block (no records are removed)
    metadata: bool = True  # append a usbtrace metadata block (model name, host invoke times)
    model: str | None = None  # model name for the metadata block
    start_us: int = DEFAULT_START_US
    tail_idle_us: int = 2_000_000  # last inference -> close

    def __post_init__(self) -> None:
        if self.snaplen < 64:
            raise ValueError(f"snaplen {self.snaplen} is shorter than the 64-byte usbmon header")
        keys = [(d.bus, d.address) for d in self.devices]
        keys += [(d.bus, d.dfu_address) for d in self.devices if d.firmware_download]
        reserved = (self.hub_address, 1)  # the hub and the root hub
        if len(set(keys)) != len(keys) or any(a in reserved for _, a in keys):
            raise ValueError(
                "devices, boot loaders, the hub and the root hub (1) need distinct bus addresses"
            )
        for dev in self.devices:
            if dev.link_speed not in ("super", "high"):
                raise ValueError(f"link speed {dev.link_speed!r}: use 'super' or 'high'")
            if dev.multi_ep and dev.link_speed != "super":
                raise ValueError("multi-EP mode needs SuperSpeed (the driver refuses it on USB 2)")
