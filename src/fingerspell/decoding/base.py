"""The decoder interface: per-frame predictions in, text and the word being signed out.

A decoder takes each frame's whole ``Prediction`` (its top-k probabilities, not just the top
letter), the frame's time and where the hand is, and owns the text: the page renders
``state()`` and sends edits as commands (``backspace``, ``space``, ``clear``, ``set_text``,
``pick``), so there is one owner of the text and one set of rules.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

from ..labels import NOTHING, SPECIAL
from .lexicon import check_user_words


MAX_TEXT = 10000  # the page and the socket carry the whole text; the oldest characters go first


def capped(text: str) -> str:
    """``text`` within ``MAX_TEXT``: the oldest characters dropped, and any space that would then lead it."""
    return text[-MAX_TEXT:].lstrip(" ") if len(text) > MAX_TEXT else text


def is_sign(label: str) -> bool:
    """Whether ``label`` is a custom sign (a name sign, a word: a taught label of more than one
    character, not ``del``, ``space`` or ``nothing``): it commits its own text as a word."""
    return len(label) > 1 and label not in SPECIAL


def with_sign(text: str, sign: str) -> str:
    """``text`` with ``sign`` written as a word of its own: a space before it where needed, one after."""
    return capped(text + (" " if needs_space(text) else "") + sign + " ")


def needs_space(text: str) -> bool:
    """Whether a space may follow ``text``: never two in a row, never at the start (every decoder's rule)."""
    return bool(text) and not text.endswith(" ")


@dataclass(frozen=True)
class Position:
    """Where the hand is in a frame: its centre and size as fractions of the frame's width."""

    x: float
    y: float
    size: float


class Decoder(abc.ABC):
    """Per-stream text state. Pure Python and no I/O: the server, the CLI and the tests alike."""

    @abc.abstractmethod
    def update(self, pred, t_ms: float, position: Position | None = None) -> list[dict]:
        """Feed one frame.

        Args:
            pred: the frame's ``Prediction`` (anything with ``top``: (label, probability) pairs,
                best first; ``[("nothing", 1.0)]`` or an empty list when no hand was found).
            t_ms: the frame's time in milliseconds (any origin; only differences matter).
            position: the hand's position, from the stream's history; None when unknown.

        Returns:
            The changes made on this frame, as JSON-ready dicts (usually none).
        """

    @abc.abstractmethod
    def finish(self, t_ms: float) -> list[dict]:
        """End of the recording: end the word being signed as a pause would."""

    @property
    @abc.abstractmethod
    def text(self) -> str:
        """The text written so far, without the word still being signed."""

    @abc.abstractmethod
    def visible(self) -> str:
        """What the page shows: the text followed by the letters of the word being signed."""

    @abc.abstractmethod
    def state(self) -> dict:
        """What the page renders; a JSON-ready dict with at least ``text``, ``pending``,
        ``progress``, ``word`` (the word being signed or None), ``choice`` (the last chosen word
        with its options, or None) and ``committed`` (the last update's changes)."""

    @abc.abstractmethod
    def backspace(self) -> str:
        """Delete the last letter of the word being signed, or else the text's last character."""

    @abc.abstractmethod
    def space(self) -> None:
        """End the word being signed now (as the space sign does), or add one space."""

    def clear(self) -> None:
        """Empty the text and drop the word being signed."""
        self.set_text("")

    @abc.abstractmethod
    def set_text(self, text: str) -> None:
        """Replace the text (a page restoring its text after a reconnect)."""

    def pick(self, option: str) -> bool:
        """Replace the last chosen word by one of its options (the letters as signed, or another
        candidate). Returns False, changing nothing, where there is no such option."""
        return False

    def add_words(self, words) -> int:
        """Add user words (names, places) to this stream's lexicon; returns how many were new."""
        return 0

    def check_words(self, words) -> str | None:
        """Why ``add_words(words)`` would be refused (a word too long, too many words), or None."""
        return check_user_words(words)


def frame_top(pred) -> list[tuple[str, float]]:
    """The frame's (label, probability) pairs with a hand, best first; [] when there is no hand.

    A frame whose top label is ``nothing`` is no hand: the recogniser's own "no sign" class
    (the landmark model answers it where the detector found none). Probabilities that are not
    finite numbers count as 0.
    """
    top = list(getattr(pred, "top", None) or [])
    if not top or top[0][0] == NOTHING:
        return []
    out = []
    for label, p in top:
        try:
            p = float(p)
        except (TypeError, ValueError):
            p = 0.0
        out.append((str(label), p if math.isfinite(p) and p > 0 else 0.0))
    return out


def elapsed(last: float | None, t_ms) -> tuple[float, float | None]:
    """(milliseconds since ``last``, the time to remember). A clock that goes backwards or a time
    that is not a finite number counts as no time, so a restarted clock never breaks a decoder."""
    try:
        t = float(t_ms)
    except (TypeError, ValueError):
        return 0.0, last
    if not math.isfinite(t):
        return 0.0, last
    if last is None or not t > last:
        return 0.0, t
    return t - last, t
