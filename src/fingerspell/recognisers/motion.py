"""J and Z from motion: the stream's last second of hands -> the path the fingertips traced.

A recogniser carried beside the bundle's own (``BundleMeta.extra``, kind ``motion``); its
labels are ``J``, ``Z`` and ``nothing``. The runtime half is numpy only: the window of recent
frames (``Seen``) becomes one vector, which the bundle's ``motion.tflite`` (a small MLP) reads.

The vector, for the ``span_ms`` before the newest frame resampled by time to ``steps`` points
(any frame rate: frames without a hand are bridged; before the first hand the earliest one is
held, as a hand that has just come in):

* ``path``: the wrist and the thumb, index and little fingertips, relative to the newest
  wrist, divided by the hand's palm size (the median over the window), left hands mirrored;
  so where the hand is and how far from the camera do not matter, only how it moved;
* ``tips``: the index and little fingertips relative to the wrist of their own frame (the
  finger's turn about the wrist: J's little finger);
* ``shape``: the whole hand, wrist-centred and palm-scaled, at the start, middle and end.

It answers for the newest frame: "did a J or a Z just end here?". Trained to fire only for
the few hundred milliseconds after the movement ends (``training/motion.py``), and to say
``nothing`` for the moves between letters, slides, holds, a hand coming or going, and word signs.
Its answer stands only where the fingertip moved and the still model reads the newest hand
as one of the letter's handshapes (``agree``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import PALM, WRIST

KIND = "motion"
LABELS = ("J", "Z", "nothing")
PATH_POINTS = (WRIST, 4, 8, 20)  # wrist, thumb, index and little fingertips
TIP_POINTS = (8, 20)
SHAPE_AT = (0.0, 0.5, 1.0)  # where in the window the whole hand is taken
FIRE_P = 0.7  # a letter read at this probability or more is folded into the answer, and noted (a decoder's cue)
# The handshapes a J or Z is made with, as a still model reads them (the letter's own still frame,
# and the shapes it starts from: decoding.segment.MOTION_FROM). A movement read while the still
# model gives these less than SHAPE_P together is not that letter: photos of other people's
# hands spelled one after another made the motion recogniser fire on N, E, S and U.
SHAPES = {"J": "IJY", "Z": "DGPXZ"}
SHAPE_P = 0.1  # kept 94-98% of the last 200 ms of frames of training-split J and Z recordings
TIPS = {"J": 20, "Z": 8}  # the fingertip that traces each letter: the little finger's, the index finger's
# A J or Z moves its fingertip this many palm sizes or more within the window (the whole movement:
# 1.4 or more in 158 of 160 training-split recordings; this low for one seen only in part, as the
# hand comes into view); a hand held still is neither, whatever its shape looks like (another
# person's X held still read as Z). Photos held with a few pixels of jitter: about 0.05
MOVE_PALMS = 0.25
SHOW_P = 0.2  # from this probability the page draws the fingertip's path
SPAN_MS = 1000.0  # J and Z take 0.3-0.8 s: the window holds the movement and what came just before
STEPS = 20  # 50 ms apart: a 60 frames/s camera's frames averaged, a 10 frames/s one's interpolated


def size_of(steps: int) -> int:
    """The vector's length for ``steps`` resampled points."""
    return steps * len(PATH_POINTS) * 2 + steps * len(TIP_POINTS) * 2 + len(SHAPE_AT) * 21 * 2


def preprocessing(span_ms: float = SPAN_MS, steps: int = STEPS) -> dict:
    """What ``bundle.json`` records about the inputs, read back by ``Runtime.from_record``."""
    return {"kind": KIND, "features": "fingerspell.motion.v1", "span_ms": float(span_ms), "steps": int(steps),
            "points": "image landmarks in pixel units (x*w, y*h), x and y only",
            "mirror": "left hands mirrored to right (x -> -x)",
            "centre": "the newest wrist (path); each frame's wrist (tips, shape)",
            "scale": "median palm size over the window (mean wrist-to-finger-base distance)"}


def vectors(t_ms: np.ndarray, points: np.ndarray, span_ms: float = SPAN_MS, steps: int = STEPS) -> np.ndarray:
    """The input vector of one window: frame times (N,) and pixel points (N, 21, 2 or 3), right
    hands (left ones mirrored already), oldest first, every frame with a hand. (size_of(steps),)"""
    t = np.asarray(t_ms, dtype=np.float64)
    pts = np.asarray(points, dtype=np.float64)[:, :, :2]
    grid = t[-1] - span_ms + span_ms * np.arange(1, steps + 1) / steps
    # Resample every coordinate by time at once, as np.interp would each: linear between the two
    # frames around a point, the end values held outside the frames seen (one pass, not 42 calls
    # of np.interp: 104 -> 64 us, the same bits on 5,042 windows of training streams)
    flat = pts.reshape(len(t), -1)
    if len(t) == 1:
        res = np.repeat(flat, steps, axis=0).reshape(steps, 21, 2)
    else:
        j = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, len(t) - 2)
        w = np.clip((grid - t[j]) / np.maximum(t[j + 1] - t[j], 1e-9), 0.0, 1.0)[:, None]
        res = (flat[j] * (1.0 - w) + flat[j + 1] * w).reshape(steps, 21, 2)
    palm = np.linalg.norm(pts[:, PALM] - pts[:, WRIST : WRIST + 1], axis=-1).mean(axis=1)
    scale = max(float(np.median(palm)), 1e-6)
    path = (res[:, PATH_POINTS] - res[-1, WRIST]) / scale
    local = (res - res[:, WRIST : WRIST + 1]) / scale
    tips = local[:, TIP_POINTS]
    shape = local[[min(steps - 1, int(round(a * (steps - 1)))) for a in SHAPE_AT]]
    return np.concatenate([path.ravel(), tips.ravel(), shape.ravel()]).astype(np.float32)


@dataclass(frozen=True)
class Runtime:
    """A window of a stream's frames -> the motion classifier's input."""

    span_ms: float = SPAN_MS
    steps: int = STEPS
    reads_pixels = False
    frames = 0  # reads by time, not by frames: every frame of the last ``span_ms``

    @classmethod
    def from_record(cls, record: dict) -> "Runtime":
        """The runtime a preprocessing record asks for.

        Raises:
            KeyError: a field is missing. ValueError: a field is not understood.
        """
        if record["features"] != "fingerspell.motion.v1":
            raise ValueError(f"features {record['features']!r} are not ones this fingerspell computes")
        span, steps = float(record["span_ms"]), int(record["steps"])
        if not (100 <= span <= 5000 and 2 <= steps <= 200):
            raise ValueError(f"span_ms {span} or steps {steps} out of range")
        return cls(span, steps)

    def inputs(self, window, pixels=None) -> np.ndarray | None:
        """The vector for the newest frame; None where it has no hand (nothing to recognise)."""
        if not window or window[-1].hand is None:
            return None
        newest = window[-1].t_ms
        seen = [s for s in window if s.hand is not None and newest - s.t_ms <= self.span_ms + 100]
        t = np.array([s.t_ms for s in seen], dtype=np.float64)
        size = np.array([s.hand.image_size for s in seen], dtype=np.float32)[:, None, :]
        pts = np.stack([s.hand.landmarks[:, :2] for s in seen]) * size  # Hand.pixel_points, x and y, at once
        left = window[-1].hand.handedness == "Left"
        if left:  # mirrored to a right hand, as the newest hand is
            pts = pts * np.array([-1.0, 1.0])
        return vectors(t, pts, self.span_ms, self.steps)

    def input_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why a model with input ``shape`` cannot be served with these inputs, or None."""
        n = size_of(self.steps)
        return None if shape == (n,) else f"expects input {shape}, not the {n} motion features"


def travel(window, letter: str, span_ms: float = SPAN_MS) -> float:
    """How far the fingertip that traces ``letter`` went over the last ``span_ms``: the diagonal
    of its path's extent in the frame, in palm sizes (the median over those frames); 0 for fewer
    than two hands."""
    if not window:
        return 0.0
    newest = window[-1].t_ms
    seen = [s.hand for s in window if s.hand is not None and newest - s.t_ms <= span_ms]
    if len(seen) < 2:
        return 0.0
    size = np.array([h.image_size for h in seen], dtype=np.float32)[:, None, :]
    pts = np.stack([h.landmarks[:, :2] for h in seen]) * size
    palm = np.median(np.linalg.norm(pts[:, PALM] - pts[:, WRIST : WRIST + 1], axis=-1).mean(axis=1))
    return float(np.linalg.norm(np.ptp(pts[:, TIPS[letter]], axis=0)) / max(float(palm), 1e-6))


def stands(window, letter: str, probs: np.ndarray, labels: list[str]) -> bool:
    """Whether a ``letter`` read from motion may stand on this frame: its fingertip moved
    ``MOVE_PALMS`` or more over the window (``travel``), and the still model's ``probs`` over
    ``labels`` give its handshapes (``SHAPES``) ``SHAPE_P`` or more together (a still model
    without any of a letter's shapes says nothing about it)."""
    at = [j for j, label in enumerate(labels) if label in SHAPES[letter]]
    if at and float(np.sum(np.asarray(probs)[at])) < SHAPE_P:
        return False
    return travel(window, letter) >= MOVE_PALMS


def may_fire(window, probs: np.ndarray, labels: list[str]) -> bool:
    """Whether any motion letter could stand on this frame, whatever the classifier reads (what
    ``agree`` overrules does not). Most frames are such a frame: the classifier need not run, and
    the answer is the one it would have been."""
    return any(stands(window, letter, probs, labels) for letter in SHAPES)


def agree(window, mine: np.ndarray, my_labels: list[str], probs: np.ndarray, labels: list[str]) -> np.ndarray:
    """``mine`` with each motion letter read at ``SHOW_P`` or more moved to nothing where it may
    not stand (``stands``)."""
    out = np.asarray(mine, dtype=np.float32).copy()
    nothing = my_labels.index(LABELS[-1])
    for i, k in enumerate(my_labels):
        if k not in SHAPES or out[i] < SHOW_P:  # below SHOW_P it changes nothing: the usual frame costs no more
            continue
        if not stands(window, k, probs, labels):
            out[nothing] += out[i]
            out[i] = 0.0
    return out


def fuse(probs: np.ndarray, labels: list[str], mine: np.ndarray, my_labels: list[str]) -> np.ndarray:
    """The model's ``probs`` over ``labels`` with the motion letters' probabilities ``mine`` folded
    in: a share m of the whole goes to a motion letter read at ``FIRE_P`` or more, the model's
    scaled by 1 - m. A motion letter the model lacks is left out (its share stays with the model)."""
    out = np.asarray(probs, dtype=np.float32).copy()
    index = {k: i for i, k in enumerate(labels)}
    # Below FIRE_P nothing is folded in: the moves between letters then cost the model nothing
    shares = [(index[k], float(p)) for k, p in zip(my_labels, mine)
              if k in index and k in LABELS[:-1] and p >= FIRE_P]
    m = sum(p for _, p in shares)
    if m <= 0:
        return out
    out *= 1.0 - m
    for i, p in shares:
        out[i] += p
    return out


def traced(window, letter: str) -> list[tuple[float, float]] | None:
    """The path of the fingertip that traces ``letter`` (J: the little finger's, Z: the index
    finger's) over the last ``SPAN_MS``, as fractions of the frame; None where there is none."""
    tip = TIPS.get(letter)
    if tip is None or not window or window[-1].hand is None:
        return None
    newest = window[-1].t_ms
    return [(float(s.hand.landmarks[tip][0]), float(s.hand.landmarks[tip][1])) for s in window
            if s.hand is not None and newest - s.t_ms <= SPAN_MS]


def notes(window, mine: np.ndarray, my_labels: list[str]) -> dict:
    """What the page and the decoder are told: ``motion``, the letter read at ``FIRE_P`` or more,
    and ``path``, its fingertip's path, from ``SHOW_P``."""
    letters = [(float(p), k) for k, p in zip(my_labels, mine) if k in LABELS[:-1]]
    if not letters:
        return {}
    p, letter = max(letters)
    out = {}
    if p >= FIRE_P:
        out["motion"] = letter
    if p >= SHOW_P:
        out["path"] = traced(window, letter)
    return out
