"""Per-frame predictions -> committed text: the hold-and-release rules (the ``letters`` decoder).

A recogniser says, for every video frame, which sign it sees and how sure it is. Those answers
flicker, and a signer holds each letter for a moment, so text is committed by time, not by frame:

* **Hold.** A sign commits once it has been the top prediction, at ``min_confidence`` or above,
  for ``hold_ms``. The time between two frames belongs to the later frame, so a run of frames
  at t = 0, 20, ..., 400 ms is a 400 ms hold (the first frame of a stream counts for nothing).
* **Flicker.** An interruption of a hold - frames with no hand, ``nothing``, low confidence or
  another sign - that lasts less than ``flicker_ms`` does not reset it: the hold goes on when
  the sign returns. The interruption's own time does not count towards the hold. A different
  sign that persists past ``flicker_ms`` takes over with the time it has held so far.
* **Release.** After a commit the same sign cannot commit again until it has been released:
  ``release_ms`` without it (no hand, ``nothing``, low confidence or a different sign). Then it
  needs a new, full hold. So a letter held for a long time is written once, and a double letter
  is written by letting go for a moment between the two. A different sign needs only its hold.
* **Specials.** ``space`` commits one space (never two in a row, never at the start), ``del``
  deletes the last character (one per hold, the same release rule), ``nothing`` commits
  nothing. Any other label (a user's own class name) commits its text as it is.
* **Word break.** No hand (``None`` or ``nothing``) for ``pause_space_ms`` after a committed
  letter inserts one space, once. A hand seen for less than ``flicker_ms`` does not end the pause.
* **Time.** Frames whose time goes backwards, or is not finite, count as zero elapsed time, so a
  restarted clock never breaks the decoder.

Pure Python and no I/O, so the server, the CLI and the tests drive it frame by frame alike.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..labels import DELETE, NOTHING, SPACE
from .base import capped, is_sign, needs_space, with_sign

#: Event kinds: a label's text appended, the space sign, the del sign, a pause's word break.
LETTER = "letter"
SPACE_EVENT = "space"
DELETE_EVENT = "delete"
WORD_BREAK = "word_break"
SIGN = "sign"  # a custom sign: its text written as a word


@dataclass(frozen=True)
class SpellingParams:
    """How long signs must be held and released; all times in milliseconds."""

    min_confidence: float = 0.6  # below this a frame is a guess, not a sign: it counts as no sign
    hold_ms: float = 400.0  # fluent signing is ~3.5 letters/s (~290 ms each); a deliberate hold is longer
    release_ms: float = 150.0  # a double letter needs this long without the sign between the two
    pause_space_ms: float = 1500.0  # longer than the hand drop between letters, shorter than a wait between words
    flicker_ms: float = 100.0  # 2-3 frames at 30 fps: a misread or lost-hand blip shorter than this keeps the hold

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")
        for name in ("hold_ms", "release_ms", "pause_space_ms", "flicker_ms"):
            value = getattr(self, name)
            # `not value >= 0` also refuses NaN, which would make every comparison false.
            if not value >= 0:
                raise ValueError(f"{name} must be 0 or more milliseconds, got {value}")


@dataclass(frozen=True)
class Event:
    """One change to the text, committed on one frame.

    Attributes:
        kind: ``"letter"``, ``"space"``, ``"delete"`` or ``"word_break"``.
        text: the characters appended, or for ``"delete"`` the character removed.
        label: the sign that caused it; ``None`` for a pause's word break.
        t_ms: the time of the frame that committed it.
    """

    kind: str
    text: str
    label: str | None
    t_ms: float

    def to_json(self) -> dict:
        """The event for the page and the socket.

        Returns:
            A JSON-ready dict with the keys ``kind``, ``text``, ``label`` and ``t_ms``.
        """
        return {"kind": self.kind, "text": self.text, "label": self.label, "t_ms": self.t_ms}


class SpellingDecoder:
    """Turns a stream of per-frame predictions into committed text (rules in the module docstring).

    One decoder per video stream: it keeps the text and the state of the current hold.
    """

    def __init__(self, params: SpellingParams | None = None) -> None:
        """Start with empty text and no hold.

        Args:
            params: hold, release and pause times; the defaults suit a webcam at 15-30 frames/s.
        """
        self.params = params or SpellingParams()
        self._text = ""
        self._last_t: float | None = None
        # The hold being built: the sign, and the time it has been on top since its hold began.
        self._candidate: str | None = None
        self._held_ms = 0.0
        # Time the current interruption of the hold has lasted (bridged while < flicker_ms).
        self._off_ms = 0.0
        # A different sign seen during the interruption, and for how long without a break: it
        # takes over the hold, keeping that time, once the interruption outlasts flicker_ms.
        self._challenger: str | None = None
        self._challenger_ms = 0.0
        # The sign committed last, blocked until it has been released for release_ms.
        self._latched: str | None = None
        self._release_ms = 0.0
        # Word break: armed by a committed letter, fired by pause_space_ms without a hand.
        self._break_armed = False
        self._idle_ms = 0.0
        self._hand_ms = 0.0
        self._last_events: list[Event] = []

    @property
    def text(self) -> str:
        """The committed text."""
        return self._text

    def update(self, letter: str | None, confidence: float, t_ms: float) -> list[Event]:
        """Feed one frame's prediction.

        Args:
            letter: the top label, or ``None`` when no hand was found.
            confidence: the top label's probability, 0..1.
            t_ms: the frame's time in milliseconds (any origin; only differences matter).

        Returns:
            The events committed on this frame, oldest first; usually none.
        """
        p = self.params
        dt = self._elapsed(t_ms)
        no_hand = not letter or letter == NOTHING
        # The sign this frame votes for: None when there is none, or the model is unsure.
        sign = None if no_hand or not confidence >= p.min_confidence else letter
        events: list[Event] = []

        self._track_pause(no_hand, dt)
        self._track_hold(sign, dt)
        self._track_release(sign, dt)

        if self._candidate is not None and self._candidate != self._latched and self._held_ms >= p.hold_ms:
            event = self._commit(self._candidate, t_ms)
            if event is not None:
                events.append(event)

        if self._break_armed and self._idle_ms >= p.pause_space_ms:
            self._break_armed = False
            if self._append_space():
                events.append(Event(WORD_BREAK, " ", None, t_ms))

        self._last_events = events
        return events

    def state(self) -> dict:
        """What the page shows: the text, and how far the current hold has come.

        Returns:
            A JSON-ready dict: ``text`` (committed), ``pending`` (the sign being held towards a
            commit, or ``None``; a committed sign not yet released is not pending), ``progress``
            (0..1 of the hold time) and ``committed`` (the events of the last ``update``, as dicts).
        """
        pending = self._candidate if self._candidate != self._latched else None
        if pending is None:
            progress = 0.0
        elif self.params.hold_ms <= 0:
            progress = 1.0
        else:
            progress = min(1.0, self._held_ms / self.params.hold_ms)
        return {
            "text": self._text,
            "pending": pending,
            "progress": progress,
            "committed": [e.to_json() for e in self._last_events],
        }

    def backspace(self) -> str:
        """Delete the last character (the page's button).

        Returns:
            The character removed, or ``""`` when the text was empty.
        """
        removed = self._text[-1:]
        self._text = self._text[:-1]
        # The user is editing: a pause now must not put back the space they may have deleted.
        self._break_armed = False
        return removed

    def clear(self) -> None:
        """Empty the text. The current hold is kept, so a letter still held is not written again."""
        self.set_text("")

    def set_text(self, text: str) -> None:
        """Replace the text (the page's edits), capped at ``base.MAX_TEXT`` like committed text.

        Args:
            text: the new text, kept as given apart from the cap.
        """
        self._text = ""
        self._append(text)
        self._break_armed = False

    # -- internals ---------------------------------------------------------------------------

    def _elapsed(self, t_ms: float) -> float:
        """Milliseconds since the previous frame; 0 for the first frame, a clock that went
        backwards, or a time that is not a finite number (which is also not remembered)."""
        try:
            t = float(t_ms)
        except (TypeError, ValueError):
            return 0.0
        if not math.isfinite(t):
            return 0.0
        last, self._last_t = self._last_t, t
        if last is None or not t > last:
            return 0.0
        return t - last

    def _track_pause(self, no_hand: bool, dt: float) -> None:
        if no_hand:
            self._hand_ms = 0.0
            self._idle_ms += dt
        else:
            self._hand_ms += dt
            # A hand glimpsed for a frame or two (a false detection) does not end the pause.
            if self._hand_ms >= self.params.flicker_ms:
                self._idle_ms = 0.0

    def _track_hold(self, sign: str | None, dt: float) -> None:
        if sign is not None and sign == self._candidate:
            self._held_ms += dt
            self._off_ms = 0.0
            self._challenger, self._challenger_ms = None, 0.0
            return
        # An interruption. Follow the sign it shows, if any, so it can take over with its time.
        if sign is None:
            self._challenger, self._challenger_ms = None, 0.0
        elif sign == self._challenger:
            self._challenger_ms += dt
        else:
            self._challenger, self._challenger_ms = sign, dt
        if self._candidate is not None:
            self._off_ms += dt
            if self._off_ms < self.params.flicker_ms:
                return  # a flicker: keep the hold
        self._candidate, self._held_ms = self._challenger, self._challenger_ms
        self._challenger, self._challenger_ms = None, 0.0
        self._off_ms = 0.0

    def _track_release(self, sign: str | None, dt: float) -> None:
        if self._latched is None:
            return
        if sign == self._latched:
            self._release_ms = 0.0
            return
        self._release_ms += dt
        if self._release_ms >= self.params.release_ms:
            # Released: the sign may commit again, but only after a new, full hold - even if a
            # short release was bridged as a flicker and the sign is still the candidate.
            if self._candidate == self._latched:
                self._candidate, self._held_ms, self._off_ms = None, 0.0, 0.0
            self._latched, self._release_ms = None, 0.0

    def _commit(self, sign: str, t_ms: float) -> Event | None:
        """Apply a held sign; the sign is latched even where it changes nothing."""
        self._latched, self._release_ms = sign, 0.0
        if sign == SPACE:
            self._break_armed = False
            return Event(SPACE_EVENT, " ", sign, t_ms) if self._append_space() else None
        if sign == DELETE:
            self._break_armed = False
            removed = self.backspace()
            return Event(DELETE_EVENT, removed, sign, t_ms) if removed else None
        if is_sign(sign):  # a custom sign is a word of its own
            self._text = with_sign(self._text, sign)
            self._break_armed = False
            self._idle_ms = 0.0
            return Event(SIGN, sign, sign, t_ms)
        self._append(sign)
        self._break_armed = True
        self._idle_ms = 0.0
        return Event(LETTER, sign, sign, t_ms)

    def _append_space(self) -> bool:
        """Append one space unless the text is empty or already ends with one."""
        if not needs_space(self._text):
            return False
        self._append(" ")
        return True

    def _append(self, chars: str) -> None:
        self._text = capped(self._text + chars)


def spell(
    predictions: Iterable[tuple[float, str | None, float]], params: SpellingParams | None = None
) -> str:
    """Decode a whole recording offline (a video file's frames).

    Args:
        predictions: ``(t_ms, letter, confidence)`` per frame, in frame order; ``letter`` is
            ``None`` where no hand was found.
        params: as for ``SpellingDecoder``.

    Returns:
        The committed text. A pause at the end of the recording leaves its word break in place.
    """
    decoder = SpellingDecoder(params)
    for t_ms, letter, confidence in predictions:
        decoder.update(letter, confidence, t_ms)
    return decoder.text
