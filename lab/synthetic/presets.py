"""Named synthetic sessions.

* ``conv_50`` / ``dense_300``: the (tag, length) sequences of the real captures of the same names,
  with timing close to theirs (inference ≈ 40.6 ms and ≈ 9.3 ms on USB 3).
* ``conv_300``: device-paced streaming (≈ 60 MB/s parameters, first one after ≈ 58 ms; ≈ 249 ms).
* ``overlap_full`` (overlap exactly 1), ``overlap_none`` (nothing streamed: 0) and
  ``overlap_half`` (exactly 1/2: the device computes after streaming for as long as it streamed).
* ``dense_300_usb2``: dense_300 on a high-speed link (256-byte output reads, 0x20 outfeed chunks).
* ``conv_50_usb2``, ``conv_300_usb2`` (``on_usb2``): the same sessions on a high-speed link.
* ``multi_ep``, ``firmware``, ``two_tpus``: the multi-endpoint mode, a DFU firmware download
  before the open, and two accelerators on one bus (all from the driver source, never captured).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from lab.synthetic.profile import DeviceProfile, SessionProfile, Timing
from usbtrace.edgetpu.constants import Tag

INSTR, IN, P = Tag.INSTRUCTIONS, Tag.INPUT, Tag.PARAMETERS

CONV_50_CACHING = ((INSTR, 7_856), (P, 2_471_488))
CONV_50_INFERENCE = ((INSTR, 93_360), (IN, 16))
CONV_300_CACHING = ((INSTR, 9_648), (P, 2_622_400))
CONV_300_INFERENCE = (
    (INSTR, 260_736),
    (IN, 16),
    (P, 3_923_712),
    (INSTR, 262_176),
    (P, 6_338_304),
    (INSTR, 90_256),
    (P, 2_163_072),
)
DENSE_300_CACHING = ((INSTR, 21_168), (P, 1_040_896))
DENSE_300_INFERENCE = (
    (INSTR, 262_128),
    (IN, 16),
    (P, 1_038_336),
    (INSTR, 261_952),
    (P, 1_783_808),
    (INSTR, 19_760),
    (P, 121_472),
)

# The host gap and caching tail let the first inference's header and input go out before the
# caching request's event, as on the real conv_50 capture.
USB3 = Timing(
    link_out_bytes_per_s=380_000_000,
    link_in_bytes_per_s=380_000_000,
    host_gap_us=12,
    caching_tail_us=30,
)
# USB 2 (High-Speed): the usable rate and per-transfer cost usbtrace's predictor calibrated on the
# study's USB 2 runs (usbtrace/analysis/predict.py, HIGH: 36.5 MB/s, 250 us per transfer), below
# the 53.2 MB/s protocol ceiling.
USB2 = Timing(
    link_out_bytes_per_s=36_500_000,
    link_in_bytes_per_s=36_500_000,
    urb_overhead_us=250,
    host_gap_us=25,
)
LINK_KNOBS = ("link_out_bytes_per_s", "link_in_bytes_per_s", "urb_overhead_us", "host_gap_us")


def on_usb2(profile: SessionProfile) -> SessionProfile:
    """The same session on a High-Speed link: the device's knobs stay, the link's change."""
    devices = tuple(
        replace(
            d,
            link_speed="high",
            timing=replace(d.timing, **{k: getattr(USB2, k) for k in LINK_KNOBS}),
        )
        for d in profile.devices
    )
    return replace(profile, name=f"{profile.name}_usb2", devices=devices)


def conv_50(**session: object) -> SessionProfile:
    dev = DeviceProfile(
        caching=CONV_50_CACHING,
        inference=CONV_50_INFERENCE,
        timing=replace(USB3, compute_us=40_250),
    )
    return SessionProfile(name="conv_50", model="conv_50", devices=(dev,), **session)


def dense_300(**session: object) -> SessionProfile:
    dev = DeviceProfile(caching=DENSE_300_CACHING, inference=DENSE_300_INFERENCE, timing=USB3)
    return SessionProfile(name="dense_300", model="dense_300", devices=(dev,), **session)


def dense_300_usb2(**session: object) -> SessionProfile:
    dev = DeviceProfile(
        link_speed="high",
        caching=DENSE_300_CACHING,
        inference=DENSE_300_INFERENCE,
        output_bytes=1000,
        timing=USB2,
    )
    return SessionProfile(name="dense_300_usb2", model="dense_300", devices=(dev,), **session)


def conv_300(**session: object) -> SessionProfile:
    dev = DeviceProfile(
        caching=CONV_300_CACHING,
        inference=CONV_300_INFERENCE,
        timing=replace(USB3, cached_compute_us=41_000, param_bytes_per_s=60_000_000, tail_us=850),
    )
    return SessionProfile(name="conv_300", model="conv_300", devices=(dev,), **session)


# --- presets with a known overlap -------------------------------------------------------------

# A small host gap next to a larger per-URB cost keeps the first parameter chunk submitted before
# the input is accepted, so parameter URBs are in flight for the whole execution window.
_OVERLAP_TIMING = Timing(
    link_out_bytes_per_s=400_000_000,
    link_in_bytes_per_s=400_000_000,
    urb_overhead_us=10,
    host_gap_us=2,
    param_bytes_per_s=100_000_000,
    tail_us=0,
    event_after_output_us=0,
)
_OVERLAP_INFERENCE = ((INSTR, 65_536), (IN, 1_024), (P, 4 * 1_048_576))


def overlap_full(**session: object) -> SessionProfile:
    """Compute-paced streaming that covers the whole execution window: overlap exactly 1.

    The caching request's megabyte of parameters moves at the link rate, so an analyzer that
    estimates the link's peak from the capture sees the link is faster than the streaming."""
    dev = DeviceProfile(
        caching=((INSTR, 8_192), (P, 1_048_576)),
        inference=_OVERLAP_INFERENCE,
        output_bytes=1_024,
        timing=replace(_OVERLAP_TIMING, read_timeout_us=None),
        interval_us=100_000,
    )
    return SessionProfile(name="overlap_full", model="synthetic_stream", devices=(dev,), **session)


def overlap_none(**session: object) -> SessionProfile:
    """No parameters streamed: overlap 0, device-bound."""
    dev = DeviceProfile(
        caching=((INSTR, 8_192), (P, 1_048_576)),
        inference=((INSTR, 32_768), (IN, 150_528)),
        output_bytes=1_008,
        timing=replace(USB3, compute_us=5_000),
        interval_us=100_000,
    )
    return SessionProfile(name="overlap_none", model="synthetic_cached", devices=(dev,), **session)


def overlap_half(**session: object) -> SessionProfile:
    """Link-speed streaming, then compute for exactly as long: overlap exactly 1/2."""
    from lab.synthetic.session import generate  # the tail depends on a first, shorter run

    timing = replace(_OVERLAP_TIMING, param_bytes_per_s=None, read_timeout_us=None)
    dev = DeviceProfile(
        inference=_OVERLAP_INFERENCE, output_bytes=8, timing=timing, interval_us=100_000
    )
    probe = generate(
        SessionProfile(devices=(replace(dev, inferences=1, enumeration=False),), metadata=False)
    )
    req = probe.truth.devices[0].requests[0]
    assert req.exec_start_us is not None
    stream_span = max(b for _, b in req.param_intervals) - req.exec_start_us
    dev = dev.with_timing(tail_us=stream_span)
    return SessionProfile(name="overlap_half", model="synthetic_stream", devices=(dev,), **session)


# --- modes from the driver source ---------------------------------------------------------------


def multi_ep(**session: object) -> SessionProfile:
    dev = DeviceProfile(
        multi_ep=True, caching=DENSE_300_CACHING, inference=DENSE_300_INFERENCE, timing=USB3
    )
    return SessionProfile(name="multi_ep", model="dense_300", devices=(dev,), **session)


def firmware(**session: object) -> SessionProfile:
    dev = DeviceProfile(
        firmware_download=True,
        caching=CONV_50_CACHING,
        inference=CONV_50_INFERENCE,
        timing=replace(USB3, compute_us=40_250),
        inferences=2,
    )
    return SessionProfile(name="firmware", model="conv_50", devices=(dev,), **session)


def two_tpus(**session: object) -> SessionProfile:
    first = DeviceProfile(
        caching=CONV_50_CACHING,
        inference=CONV_50_INFERENCE,
        timing=replace(USB3, compute_us=40_250),
        inferences=3,
    )
    second = DeviceProfile(
        address=5,
        caching=DENSE_300_CACHING,
        inference=DENSE_300_INFERENCE,
        timing=USB3,
        inferences=3,
        enumeration=False,
        start_offset_us=1_300_000,
    )
    return SessionProfile(name="two_tpus", model="conv_50", devices=(first, second), **session)


def conv_50_usb2(**session: object) -> SessionProfile:
    return on_usb2(conv_50(**session))


def conv_300_usb2(**session: object) -> SessionProfile:
    return on_usb2(conv_300(**session))


PRESETS: dict[str, Callable[..., SessionProfile]] = {
    "conv_50": conv_50,
    "dense_300": dense_300,
    "dense_300_usb2": dense_300_usb2,
    "conv_50_usb2": conv_50_usb2,
    "conv_300": conv_300,
    "conv_300_usb2": conv_300_usb2,
    "overlap_full": overlap_full,
    "overlap_none": overlap_none,
    "overlap_half": overlap_half,
    "multi_ep": multi_ep,
    "firmware": firmware,
    "two_tpus": two_tpus,
}


def preset(name: str, **session: object) -> SessionProfile:
    try:
        return PRESETS[name](**session)
    except KeyError:
        raise KeyError(f"no preset {name!r}; choose from {', '.join(PRESETS)}") from None
