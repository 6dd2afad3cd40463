"""Completion statuses of other capture formats as the -errno usbmon shows.

Windows (USBD_STATUS) and macOS (IOReturn) report a transfer's outcome in their own codes. The
analysis reads usbmon's convention (0, or a negative errno), so each reader maps its codes with
a ``StatusMap``; a code with no Linux counterpart keeps its own value, as a negative int32, which
still counts as an error.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class StatusMap:
    """One format's status codes (uint32) and the -errno each stands for."""

    def __init__(self, to_errno: Mapping[int, int]) -> None:
        self._codes = np.array(sorted(to_errno), dtype=np.uint32)
        self._errno = np.array([to_errno[k] for k in self._codes.tolist()], dtype=np.int32)
        # the first code listed for an errno is the one the lab's writers emit for it
        self._back: dict[int, int] = {}
        for code, errno in to_errno.items():
            self._back.setdefault(errno, code)

    def to_errno(self, status: np.ndarray) -> np.ndarray:
        """Native statuses as usbmon statuses (int32), vectorised."""
        status = status.astype(np.uint32)
        i = np.minimum(np.searchsorted(self._codes, status), len(self._codes) - 1)
        return np.where(self._codes[i] == status, self._errno[i], status.view(np.int32))

    def from_errno(self, status: int) -> int:
        """A usbmon status as the native code a capture would show (for the lab's writers)."""
        return self._back.get(status, status & 0xFFFFFFFF)
