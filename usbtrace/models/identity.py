"""How a capture's model is known: a plain value type the summary carries.

Kept apart from ``identify.py`` (which parses compiled models to match a capture's bytes) so
that the analysis can hold and show a model's name without importing the model parser.
"""

from __future__ import annotations

from dataclasses import dataclass

FROM_OPTION = "option"
FROM_METADATA = "metadata"
FROM_BYTES = "bytes"
FROM_FILE_NAME = "file name (guess)"
MODEL_SOURCES = (FROM_OPTION, FROM_METADATA, FROM_BYTES, FROM_FILE_NAME)
GUESS_MARK = "?"


@dataclass(frozen=True)
class ModelIdentity:
    name: str | None
    source: str | None  # one of MODEL_SOURCES, None when there is no name at all

    @property
    def is_guess(self) -> bool:
        return self.source == FROM_FILE_NAME

    @property
    def known(self) -> str | None:
        """The name when it may be used as fact (ops, TOPS, size grouping); None for a guess."""
        return None if self.is_guess else self.name

    @property
    def label(self) -> str | None:
        """The name as tables show it: a guess carries a question mark (``dense_900?``)."""
        return f"{self.name}{GUESS_MARK}" if self.is_guess and self.name else self.name

    @property
    def described(self) -> str:
        """The label and how the name is known, for a report that sets two models side by side
        (``conv_50 [metadata]``, ``dense_900? [file name (guess)]``), or ``no model``."""
        return f"{self.label} [{self.source}]" if self.name else "no model"
