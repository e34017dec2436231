"""Frames -> letter segments, online: what the evidence and the hand do, not a fixed hold.

* **Evidence, not hold time.** Each frame adds its time (the time since the previous frame,
  at most ``MAX_FRAME_MS``) times its top probability to the segment of its top label. A
  segment is written as a letter once that evidence reaches ``min_letter_ms`` (~2 clear frames),
  so a letter held 0.25 s is written and appears while it is still held.
* **Flicker.** A different label starts a tentative segment; if the first label comes back
  before the tentative one is written, the tentative frames were a flicker (or a hand changing
  shape) and the letter goes on. A lost hand shorter than ``flicker_ms`` is bridged the same way.
* **Double letters.** With the same handshape, a slide or bounce of the hand (``slide`` hand
  sizes within ``slide_window_ms``, after the hand has been still) starts a second letter; so
  does letting the hand go for ``flicker_ms`` or more. A long hold without either stays one
  segment whose duration the lexicon prices as one, two or three letters.
* **Letters from motion.** J and Z end a movement that starts from another handshape (J from
  I, Z from a pointing hand), which may be written first: a J or Z that the motion recogniser
  reads (the frame's ``motion``) replaces the letter just before it when that is its starting
  shape and began within ``MOTION_MS`` (``Segment.replaces``). A J or Z the still frames wrote
  is confirmed, not written again, by its movement; a second movement while a J or Z read from
  motion is held starts a new letter, as a slide does.
* **Word end.** No hand for ``word_pause_ms`` after a letter ends the word; so does the space
  sign. ``del`` removes the last letter.

Each segment keeps its mean distribution over the frames it was seen in and its duration, so
an uncertain letter keeps its alternatives for the lexicon.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from ..config import DecoderParams
from ..labels import DELETE, SPACE
from .base import Position, elapsed

MAX_FRAME_MS = 100.0  # a stalled camera is not a long hold: one frame counts for at most this
FIRST_FRAME_MS = 33.0
STILL_PLAUSIBLE = 0.25
MOTION_FROM = {"J": "IY", "Z": "DGPX"}  # the shapes J and Z start from, as a still frame reads them
MOTION_MS = 900.0  # a starting shape that began this long before its J or Z was only the start of it
MOTION_GAP_MS = 300.0  # a J or Z read again after this long without is a new movement: a new letter
STILL_MS = 100.0  # the hand this long in one place arms the slide of a double letter  # a frame that gives the held letter this much continues it  # a segment's first frame counts as one frame of a 30 frames/s camera


@dataclass
class Segment:
    """One run of a handshape: a letter (once written) with its evidence."""

    label: str
    t_start: float
    t_end: float
    evidence: float = 0.0  # ms x probability of its label
    weight: float = 0.0  # ms of frames seen
    dist: dict = field(default_factory=dict)  # label -> ms x probability, over its frames
    slide: bool = False  # started by a slide of the same handshape (a double letter)
    written_at: float | None = None
    moved: bool = False  # read from motion (a J or Z) on at least one of its frames
    replaces: "Segment | None" = None  # the letter before, which was only this one's starting shape
    _best: tuple = field(default=(None, ()), repr=False, compare=False)  # (weight, labels) best() last gave

    @property
    def duration(self) -> float:
        return max(0.0, self.t_end - self.t_start) + FIRST_FRAME_MS

    def add(self, top: list[tuple[str, float]], t_ms: float, dt: float) -> None:
        w = dt if dt > 0 else FIRST_FRAME_MS
        self.t_end = t_ms
        self.weight += w
        for label, p in top:
            self.dist[label] = self.dist.get(label, 0.0) + w * p
        if self.label:
            self.evidence = self.dist.get(self.label, 0.0)

    def probs(self) -> dict[str, float]:
        """Mean probability of each label over the segment's frames."""
        if self.weight <= 0:
            return {self.label: 1.0}
        return {k: v / self.weight for k, v in self.dist.items()}

    def best(self, k: int) -> list[str]:
        """The ``k`` labels of highest mean probability, best first. Every frame asks it of every
        letter of the word, and only the newest letter changes: kept until a frame is added."""
        if self.weight <= 0:
            return [self.label]
        if self._best[0] != (self.weight, k):
            self._best = ((self.weight, k), heapq.nlargest(k, self.dist, key=self.dist.__getitem__))
        return list(self._best[1])

    @property
    def confidence(self) -> float:
        return self.dist.get(self.label, 0.0) / self.weight if self.weight > 0 else 1.0


def is_start(before: Segment, seg: Segment) -> bool:
    """Whether ``before`` was only the starting shape of the J or Z ``seg`` (written at
    ``seg.written_at``): one of its shapes (``MOTION_FROM``), begun within ``MOTION_MS``."""
    return before.label in MOTION_FROM.get(seg.label, "") and (seg.written_at or 0.0) - before.t_start <= MOTION_MS


class Segmenter:
    """Online segmentation of one stream. ``push`` returns what happened on each frame:
    ``("letter", segment)``, ``("space", segment)``, ``("delete", segment)`` or ``("word_end", None)``."""

    def __init__(self, params: DecoderParams) -> None:
        self.p = params
        self._last_t: float | None = None
        self.run: Segment | None = None  # the letter being held (already written)
        self.tentative: Segment | None = None  # a new label, not yet enough evidence
        self.idle_ms = 0.0  # time without a hand
        self.hand_ms = 0.0  # time with a hand since the last time without one
        self.word_open = False  # letters written since the last word end
        self._path: deque[tuple[float, Position]] = deque()  # the run's recent hand positions
        self._armed = False  # a slide may start a double letter: the hand has been still
        self._streak = 0.0  # time the held letter has been on top without a break
        self._moved_at: float | None = None  # the last frame read as a J or Z from motion
        # the letter a slide just ended: a J or Z moves the hand, and its movement may first be
        # taken for a slide of its starting shape; that shape is then still the letter before it
        self._slid: Segment | None = None

    @property
    def now(self) -> float:
        """The latest frame's time (0 before the first)."""
        return self._last_t if self._last_t is not None else 0.0

    @property
    def pending(self) -> tuple[str, float] | None:
        """The label most likely to be written next, and how far its evidence has come (0..1)."""
        seg = self.tentative
        if seg is None or not seg.dist:
            return None
        held = self.run.label if self.run is not None else None
        ranked = [(ev / self.threshold(k), k) for k, ev in seg.dist.items() if k != held]
        if not ranked:
            return None
        ratio, label = max(ranked)
        return label, min(1.0, ratio)

    def threshold(self, label: str) -> float:
        return self.p.special_ms if label in (SPACE, DELETE) else self.p.min_letter_ms

    def push(self, top: list[tuple[str, float]], t_ms: float, position: Position | None,
             motion: str | None = None) -> list[tuple]:
        """One frame: its top labels, time and hand position; ``motion``: the letter read from motion, if any."""
        dt, self._last_t = elapsed(self._last_t, t_ms)
        dt = min(dt, MAX_FRAME_MS)
        t = self._last_t if self._last_t is not None else 0.0
        if not top:
            return self._no_hand(dt)
        if motion is not None:
            again = self._moved_at is None or t - self._moved_at > MOTION_GAP_MS
            self._moved_at = t
            run = self.run
            if again and run is not None and run.label == motion and run.moved and self.tentative is None:
                # a second movement while its letter is held (JAZZ's second Z): a new letter, as a slide starts one
                self.run = None
                self.tentative = Segment("", t, t, slide=True)
            seg = self.tentative if self.run is None or self.run.label != motion else self.run
            if seg is not None:
                seg.moved = True  # a letter the still frames wrote, confirmed by its movement, is not written again
        self.hand_ms += dt
        if self.hand_ms >= self.p.flicker_ms:
            self.idle_ms = 0.0  # a hand glimpsed for a frame or two does not end a pause
        run = self.run
        if run is not None and (top[0][0] == run.label or dict(top).get(run.label, 0.0) >= STILL_PLAUSIBLE):
            # The letter goes on while the model still gives it a fair chance: a shape it reads as
            # M, N and E in turn is one letter with three alternatives, not three letters.
            run.add(top, t, dt)
            self._streak += max(dt, FIRST_FRAME_MS)
            if self.tentative is not None and self._streak >= self.p.flicker_ms:
                self.tentative = None  # the letter went on: what came between was a flicker
            return self._check_slide(run, t, position)
        self._streak = 0.0
        # Evidence for what comes next is pooled over the frames since the letter held: a hand
        # between two shapes, or a shape the model reads as M, N and E in turn, adds up.
        seg = self.tentative
        if seg is None:
            seg = self.tentative = Segment("", t, t)
        seg.add(top, t, dt)
        best = self._ready(seg)
        if best is not None:
            seg.label = best
            seg.evidence = seg.dist[best]
            return self._write(seg, t, position)
        return []

    def _ready(self, seg: Segment) -> str | None:
        """The label whose pooled evidence has reached its threshold, best first; never the letter
        still held (that needs a release or a slide)."""
        held = self.run.label if self.run is not None else None
        best, best_ratio = None, 1.0
        for label, ev in seg.dist.items():
            ratio = ev / self.threshold(label)
            if label != held and ratio >= best_ratio:
                best, best_ratio = label, ratio
        return best

    # -- internals ---------------------------------------------------------------------------

    def _no_hand(self, dt: float) -> list[tuple]:
        self.hand_ms = 0.0
        self.idle_ms += dt
        events: list[tuple] = []
        if self.idle_ms >= self.p.flicker_ms:
            # The hand has gone: the same letter again is a new letter (a double letter by release).
            self.run, self.tentative, self._slid = None, None, None
            self._path.clear()
        if self.word_open and self.idle_ms >= self.p.word_pause_ms:
            self.word_open = False
            events.append(("word_end", None))
        return events

    def _write(self, seg: Segment, t: float, position: Position | None) -> list[tuple]:
        run = self.run if self.run is not None else self._slid
        seg.written_at = t
        if (seg.moved or self._moved_at == t) and run is not None and is_start(run, seg):
            seg.replaces = run  # and any letter of its starting shape just before it (WordDecoder)
        self.tentative = None
        self._slid = None
        self.run = seg
        self.idle_ms = 0.0
        self._path.clear()
        self._armed = False
        if position is not None:
            self._path.append((t, position))
        if seg.label == SPACE:
            self.word_open = False
            return [("space", seg)]
        if seg.label == DELETE:
            return [("delete", seg)]
        self.word_open = True
        return [("letter", seg)]

    def _check_slide(self, run: Segment, t: float, position: Position | None) -> list[tuple]:
        if position is None or run.label in (SPACE, DELETE) or run.label in MOTION_FROM:
            return []  # J and Z move by nature: a second one is a second movement (push), not a slide
        path = self._path
        path.append((t, position))
        while len(path) > 1 and t - path[0][0] > self.p.slide_window_ms:
            path.popleft()
        if not self._armed:
            # Arm once the hand has been still for STILL_MS: a slide is movement after stillness.
            recent = [p for u, p in path if t - u <= STILL_MS]
            if t - path[0][0] >= STILL_MS and max(_distance(p, position) for p in recent) < self.p.slide * 0.5:
                self._armed = True
            return []
        moved = max(_distance(p, position) for _, p in path)
        if moved < self.p.slide:
            return []
        # The same handshape moved: the next letter starts here, a double letter once written.
        self.run, self._slid = None, run
        seg = self.tentative = Segment("", t, t, slide=True)
        seg.add([(run.label, run.probs().get(run.label, 1.0))], t, 0.0)
        self._path.clear()
        self._armed = False
        return []


def _distance(a: Position, b: Position) -> float:
    size = max(a.size, b.size, 1e-6)
    return math.hypot(a.x - b.x, a.y - b.y) / size
