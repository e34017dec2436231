"""The baseline: the hold-and-release rules (``rules.SpellingDecoder``) behind the interface.

It looks only at each frame's top letter and its confidence; kept as an option and as the
benchmark's baseline.
"""

from __future__ import annotations

from .base import Decoder, Position, frame_top, needs_space
from .rules import SpellingDecoder, SpellingParams


class LetterDecoder(Decoder):
    """``SpellingDecoder`` as a ``Decoder``: text is written letter by letter, never revised."""

    def __init__(self, params: SpellingParams | None = None) -> None:
        self.rules = SpellingDecoder(params)

    def update(self, pred, t_ms: float, position: Position | None = None) -> list[dict]:
        top = frame_top(pred)
        letter, confidence = top[0] if top else (None, 0.0)
        return [e.to_json() for e in self.rules.update(letter, confidence, t_ms)]

    def finish(self, t_ms: float) -> list[dict]:
        return []

    @property
    def text(self) -> str:
        return self.rules.text

    def visible(self) -> str:
        return self.rules.text

    def state(self) -> dict:
        return {**self.rules.state(), "word": None, "choice": None}

    def backspace(self) -> str:
        return self.rules.backspace()

    def space(self) -> None:
        # The page's Space button: one space, never two, never at the start.
        if needs_space(self.rules.text):
            self.rules.set_text(self.rules.text + " ")

    def set_text(self, text: str) -> None:
        self.rules.set_text(text)
