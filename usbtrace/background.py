"""Run an iterator in a background thread, a few items ahead of its consumer."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


def prefetch(items: Iterator[T], depth: int = 2, idle_s: float | None = None) -> Iterator[T | None]:
    """Produce the next items in a background thread while this one is used.

    Reading (I/O, block walking, gathering records), pairing and framing are all mostly numpy
    work that releases the GIL, so on a machine with two cores the halves overlap. Errors raised
    by the producer are re-raised here, in order. With ``idle_s``, None comes each time that
    long passes without an item (a live source gone quiet: the consumer may still have work
    to do with what it has).
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for b in items:
                if stop.is_set():
                    return
                q.put(b)
            q.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put(exc)

    t = threading.Thread(target=work, name="usbtrace-reader", daemon=True)
    t.start()
    try:
        while True:
            try:
                item = q.get(timeout=idle_s)
            except queue.Empty:
                yield None
                continue
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # unblock a producer waiting on a full queue; one blocked reading a quiet pipe (the
        # consumer stopped early: `| head`) is left behind, a daemon thread, rather than
        # waited for until the pipe says something
        deadline = time.monotonic() + GIVE_UP_S
        while t.is_alive() and time.monotonic() < deadline:
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


GIVE_UP_S = 1.0  # how long a consumer that stops early waits for the producer to notice
