"""The only list of recogniser kinds. Adding a kind is its module plus one line here."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import FingerspellError

KINDS = {
    "landmarks": "fingerspell.recognisers.landmarks",  # hand landmarks -> features -> MLP (default)
    "cnn": "fingerspell.recognisers.cnn",  # the tutorial's 64x64 CNN on the hand crop (baseline)
}
DEFAULT = "landmarks"
# Kinds that run beside a bundle's own recogniser (bundle.json "extra"), never as a bundle's kind
BESIDE = {
    "motion": "fingerspell.recognisers.motion",  # J and Z from the fingertips' path over the last second
}


def get(kind: str, error: type[FingerspellError] = FingerspellError) -> ModuleType:
    """The module of recogniser ``kind``; importing it imports no TensorFlow.

    Raises:
        ``error``: ``kind`` is not a known kind.
    """
    try:
        return importlib.import_module(KINDS[kind])
    except (KeyError, TypeError):
        raise error(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}") from None


def beside(kind: str, error: type[FingerspellError] = FingerspellError) -> ModuleType:
    """The module of ``kind``, a recogniser that runs beside a bundle's own; imports no TensorFlow.

    Raises:
        ``error``: ``kind`` is not such a kind.
    """
    try:
        return importlib.import_module(BESIDE[kind])
    except (KeyError, TypeError):
        raise error(f"unknown recogniser kind {kind!r} beside the model; known: {', '.join(BESIDE)}") from None
