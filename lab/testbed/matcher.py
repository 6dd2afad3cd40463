"""Cut the stream of received transfers into requests, using the profile's request shapes.

The device has no other way to know where a request ends: on real hardware the instructions say
so. A request is complete as soon as its (tag, length) list equals a shape of the profile; when
the list stops being the start of any shape, it is completed at once as an unknown request with
the profile's usual output size, so that a host replaying something else is still answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lab.testbed.profile import EmulatorProfile, RequestShape
from usbtrace.edgetpu.constants import Tag

KIND_UNKNOWN = "unknown"


@dataclass(frozen=True)
class CompletedRequest:
    index: int  # 0-based, in completion order
    kind: str
    transfers: tuple[tuple[Tag, int], ...]
    output_bytes: int


@dataclass
class RequestMatcher:
    profile: EmulatorProfile
    _pending: list[tuple[int, int]] = field(default_factory=list)
    _count: int = 0

    def reset(self) -> None:
        """Forget a half-received request (the host went away)."""
        self._pending.clear()

    def streaming(self) -> bool:
        """Whether parameters arriving now are streamed ones: the request so far has input.

        Caching requests carry no input; their parameters go to on-chip memory.
        """
        return any(tag == Tag.INPUT for tag, _ in self._pending)

    def feed(self, tag: Tag, length: int) -> CompletedRequest | None:
        self._pending.append((int(tag), length))
        key = tuple(self._pending)
        exact: RequestShape | None = None
        prefix_of_some = False
        for shape in self.profile.requests:
            if shape.key == key:
                exact = shape
            elif shape.key[: len(key)] == key:
                prefix_of_some = True
        if exact is not None:
            return self._complete(exact.kind, exact.output_bytes)
        if prefix_of_some:
            return None
        return self._complete(KIND_UNKNOWN, self.profile.default_output_bytes)

    def _complete(self, kind: str, output_bytes: int) -> CompletedRequest:
        done = CompletedRequest(
            self._count, kind, tuple((Tag(t), n) for t, n in self._pending), output_bytes
        )
        self._count += 1
        self._pending.clear()
        return done
