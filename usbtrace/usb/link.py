"""USB link speeds and the most payload a bulk endpoint can move at each: physical facts.

A rate above its link's ceiling cannot have happened; it comes from an interval whose ends were
not both measured (a lost submit, timestamps cut to the resolution) and is not reported.

Ceilings are bulk payload bytes per second, protocol overheads included:
* ``high`` (USB 2.0 High-Speed): 512-byte packets, at most 13 per 125 µs microframe =
  53.248 MB/s (USB 2.0 specification, table 5-10; ../shared/reference/published.md, "Link and
  runtime facts").
* ``super`` (USB 3.2 Gen 1, 5 Gbit/s): 8b/10b coding leaves 500 MB/s before packet overheads
  (USB 3.2 specification, 6.3; published.md, same section). usbtrace keeps 500 MB/s: a bound, not
  an estimate.
* ``full`` (USB 2.0 Full-Speed): 19 bulk packets of 64 bytes per 1 ms frame = 1.216 MB/s (USB 2.0
  specification, table 5-9).
* ``low``: no bulk endpoints at all (USB 2.0 specification, 5.8); its ceiling is that of full
  speed, which is above anything a low-speed device can send.
A link of unknown speed gets the highest ceiling.
"""

from __future__ import annotations

LINK_SPEEDS = ("super", "high", "full", "low")  # the names usbtrace reports

LINK_CEILING_BPS: dict[str, float] = {
    "super": 500e6,
    "high": 53.248e6,
    "full": 1.216e6,
    "low": 1.216e6,
}
UNKNOWN_LINK_CEILING_BPS = max(LINK_CEILING_BPS.values())


def link_ceiling_Bps(link_speed: str | None) -> float:
    """The most bulk payload per second the link can carry; unknown speed: the highest."""
    return LINK_CEILING_BPS.get(link_speed or "", UNKNOWN_LINK_CEILING_BPS)
