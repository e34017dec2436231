"""Streams of hands synthesised from real ones: what the motion recogniser learns from and is measured on.

A ``Clip`` is built from keyframes of real landmarks (pixel units of a 640x480 frame) and
sampled at any frame rate: static letters held (with tremor and drift), the moves between
them (interpolated at fingerspelling speed, eased, at an uneven pace, or cut short: a jump to a
hand of another size a little way off), recorded motion (J, Z,
word signs) played at its own clock, double letters as a slide or a bounce, and a hand coming
in or going out. Each letter, and each recorded motion's end, is noted with its time.

Recordings and static hands come from landmark records (``records.read`` or
``records.read_arrays``): ``recordings`` gathers those with ``t_ms`` into one array per
recording (``extra["recording"]``, or else the group and label), ``static_hands`` the others.
Numpy only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..features import PALM, WRIST
from ..hands import Hand
from ..records import Record

FRAME = (640, 480)
PALM_PX = (55.0, 110.0)  # a hand 40 to 80 cm from a 640x480 webcam


@dataclass(frozen=True)
class Recording:
    """One recorded sequence: its label, group, index in the group, times (N,) and pixel points (N, 21, 3)."""

    label: str
    group: str
    index: int
    t_ms: np.ndarray
    points: np.ndarray


def _pixels(hand: Hand) -> np.ndarray:
    pts = hand.pixel_points().astype(np.float64)
    if hand.handedness == "Left":
        pts[:, 0] = hand.image_size[0] - pts[:, 0]  # a right hand in the mirror: the synthesis is of right hands
    return pts


def recordings(records: list[Record]) -> list[Recording]:
    """The recorded sequences among ``records`` (those with ``t_ms``), frames without a hand dropped."""
    runs: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        if r.t_ms is not None and r.label is not None:
            runs[(r.group or "", r.label, r.extra.get("recording", 0))].append(r)
    out = []
    for (group, label, index), rs in runs.items():
        rs = [r for r in rs if r.hand is not None]
        if len(rs) >= 2:
            out.append(Recording(label, group, int(index), np.array([r.t_ms for r in rs], float),
                                 np.stack([_pixels(r.hand) for r in rs])))
    return out


def static_hands(records: list[Record]) -> dict[str, np.ndarray]:
    """Label -> (N, 21, 3) pixel points of the unordered samples (no ``t_ms``) among ``records``."""
    by: dict[str, list[np.ndarray]] = defaultdict(list)
    for r in records:
        if r.t_ms is None and r.hand is not None and r.label is not None:
            by[r.label].append(_pixels(r.hand))
    return {k: np.stack(v) for k, v in by.items()}


def palm(points: np.ndarray) -> float:
    """Median palm size (mean wrist-to-finger-base distance in x, y) of (N, 21, 3) or (21, 3) points."""
    pts = np.asarray(points).reshape(-1, 21, 3)
    return float(np.median(np.linalg.norm(pts[:, PALM, :2] - pts[:, WRIST : WRIST + 1, :2], axis=-1).mean(axis=1)))


@dataclass
class Clip:
    """Keyframes (time, pixel points or None) and what was signed when."""

    rng: np.random.Generator
    anchor: np.ndarray = None  # where the wrist rests
    palm_px: float = None
    keys: list = field(default_factory=list)  # (t_ms, (21, 3) or None)
    letters: list = field(default_factory=list)  # (label, t_start, t_end)
    motions: list = field(default_factory=list)  # (label, t_end) of each recorded motion

    def __post_init__(self):
        if self.anchor is None:
            self.anchor = np.array([self.rng.uniform(220, 420), self.rng.uniform(300, 420), 0.0])
        if self.palm_px is None:
            self.palm_px = float(self.rng.uniform(*PALM_PX))

    @property
    def now(self) -> float:
        return self.keys[-1][0] if self.keys else 0.0

    @property
    def pose(self) -> np.ndarray | None:
        return self.keys[-1][1] if self.keys else None

    def place(self, points: np.ndarray, wobble: float = 0.15) -> np.ndarray:
        """``points`` ((21, 3) or (N, 21, 3)) scaled to this clip's palm size about the first wrist,
        which goes to the anchor (plus up to ``wobble`` palms)."""
        pts = np.asarray(points, float)
        first = pts.reshape(-1, 21, 3)[0, WRIST]
        to = self.anchor + np.r_[self.rng.normal(0, wobble * self.palm_px, 2), 0.0]
        return (pts - first) * (self.palm_px / max(palm(pts), 1e-6)) + to

    def _key(self, dt: float, pts) -> None:
        self.keys.append((self.now + dt, None if pts is None else np.asarray(pts, float)))

    def gap(self, ms: float) -> "Clip":
        """No hand for ``ms``."""
        self._key(0.0 if not self.keys else 1.0, None)
        self._key(ms, None)
        return self

    def move(self, target: np.ndarray, ms: float) -> "Clip":
        """From the current pose to ``target`` in ``ms``: eased, at an uneven pace, on a slight arc."""
        start = self.pose
        if start is None:
            self._key(0.0 if not self.keys else 1.0, target)
            return self
        gamma = self.rng.uniform(0.6, 1.6)
        bow = np.r_[self.rng.normal(0, 0.15 * self.palm_px, 2), 0.0]
        n = max(2, int(ms / 10))
        for k in range(1, n + 1):
            s = (k / n) ** gamma
            u = s * s * (3 - 2 * s)
            self._key(ms / n, start + (target - start) * u + bow * np.sin(np.pi * u))
        return self

    def cut(self, target: np.ndarray, ms: float) -> "Clip":
        """From the current pose to ``target`` in a frame or two (``ms``), straight and unbent: a
        quick change of letter as a camera sees it, or the hand tracker jumping to another estimate."""
        if self.pose is None:
            self._key(0.0 if not self.keys else 1.0, target)
        else:
            self._key(max(ms, 1.0), target)
        return self

    def hold(self, ms: float) -> "Clip":
        """The current pose held for ``ms``, drifting slowly."""
        drift = np.r_[self.rng.normal(0, 0.05 * self.palm_px, 2), 0.0]
        self._key(ms, self.pose + drift)
        return self

    def letter(self, label: str, points: np.ndarray, ms: float, move_ms: float) -> "Clip":
        """Move into a static letter in ``move_ms`` and hold it: ``ms`` in all."""
        start = self.now
        self.move(self.place(points), move_ms).hold(max(ms - move_ms, 30.0))
        self.letters.append((label, start, self.now))
        return self

    def recorded(self, rec: Recording, move_ms: float, trim_ms: float = 0.0, pace: float = 1.0) -> "Clip":
        """Move into a recording's first frame (after ``trim_ms`` of it) and play it at ``pace``."""
        keep = rec.t_ms >= rec.t_ms[0] + trim_ms
        t, pts = rec.t_ms[keep], self.place(rec.points[keep])
        start = self.now
        self.move(pts[0], move_ms)
        for dt, p in zip(np.diff(t) / pace, pts[1:]):
            self._key(dt, p)
        self.letters.append((rec.label, start, self.now))
        self.motions.append((rec.label, self.now))
        return self

    def slide(self, ms: float = 150.0) -> "Clip":
        """A double letter: the same handshape slid sideways, or bounced down and up."""
        pose = self.pose
        if self.rng.random() < 0.5:
            shift = np.r_[self.rng.choice([-1, 1]) * self.rng.uniform(0.7, 1.4) * self.palm_px, 0.0, 0.0]
            return self.move(pose + shift, ms)
        down = np.r_[0.0, self.rng.uniform(0.3, 0.7) * self.palm_px, 0.0]
        return self.move(pose + down, ms / 2).move(pose, ms / 2)

    def enter(self, ms: float, target: np.ndarray) -> "Clip":
        """The hand comes in from below or a side and settles into ``target`` (placed points)."""
        away = np.r_[self.rng.uniform(-2, 2) * self.palm_px, self.rng.uniform(1.5, 3.5) * self.palm_px, 0.0]
        self._key(1.0, target + away)
        return self.move(target, ms)

    def leave(self, ms: float) -> "Clip":
        """The hand goes down and out; then no hand."""
        away = np.r_[self.rng.uniform(-2, 2) * self.palm_px, self.rng.uniform(1.5, 3.5) * self.palm_px, 0.0]
        return self.move(self.pose + away, ms).gap(1.0)

    def sample(self, fps: float, jitter_px: float = 1.0) -> tuple[np.ndarray, list]:
        """Frame times (ms, whole) and per frame (21, 3) pixel points or None, at ``fps`` with
        uneven frame intervals and landmark jitter."""
        kt = np.array([k[0] for k in self.keys])
        times, frames, t = [], [], 0.0
        while t <= kt[-1]:
            i = int(np.searchsorted(kt, t, side="right")) - 1
            a, b = self.keys[max(i, 0)], self.keys[min(i + 1, len(kt) - 1)]
            if a[1] is None or b[1] is None:
                frames.append(None)
            else:
                u = 0.0 if b[0] <= a[0] else (t - a[0]) / (b[0] - a[0])
                p = a[1] + (b[1] - a[1]) * u
                frames.append(p + self.rng.normal(0, jitter_px, p.shape) + np.r_[self.rng.normal(0, jitter_px, 2), 0])
            times.append(int(round(t)))
            t += 1000.0 / fps * self.rng.uniform(0.85, 1.15)
        return np.array(times), frames


def to_records(times: np.ndarray, frames: list, label: str | None = None) -> list[Record]:
    """A sampled clip as landmark records of right hands on a 640x480 frame (``fingerspell predict`` reads them)."""
    w, h = FRAME
    out = []
    for t, p in zip(times, frames):
        hand = None
        if p is not None:
            lm = (np.asarray(p) / np.array([w, h, w])).astype(np.float32)
            hand = Hand(lm, np.zeros((21, 3), np.float32), "Right", 1.0, FRAME, "record")
        out.append(Record(hand, int(t), label))
    return out
