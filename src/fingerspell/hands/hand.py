"""One detected hand: the ``Hand`` value every stage passes on, and its flat cache record; and
``Region``, where an image (a crop around the hand) lies in the camera frame it was cut from."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Hand:
    """One detected hand.

    Attributes:
        landmarks: (21, 3) float32; x and y normalised to the image's width and height (0..1),
            z relative depth on the scale of x (MediaPipe's convention).
        world: (21, 3) float32 metric landmarks, origin at the hand's centre.
        handedness: "Left" or "Right" as MediaPipe reports it.
        score: handedness confidence.
        image_size: (width, height) of the image the landmarks refer to.
        attempt: which detection attempt found it ("plain", "tracked", or a retry such as "pad:0.3").
        unrefined: the hand as first found, before refinement (``DetectParams.refine``), or None.
            A second, independent estimate of the same hand: training learns from both.
    """

    landmarks: np.ndarray
    world: np.ndarray
    handedness: str
    score: float
    image_size: tuple[int, int]
    attempt: str = "plain"
    unrefined: "Hand | None" = None

    def pixel_points(self) -> np.ndarray:
        """(21, 3) points in pixel units, with aspect preserved (z scaled like x)."""
        w, h = self.image_size
        return self.landmarks * np.array([w, h, w], dtype=np.float32)

    def to_json(self) -> dict:
        return {
            "landmarks": np.round(self.landmarks, 4).tolist(),
            "handedness": self.handedness,
            "score": round(float(self.score), 4),
            "attempt": self.attempt,
        }

    def to_array(self) -> np.ndarray:
        """Flat float32 record for caches: landmarks, world, is_left, score, w, h; then the unrefined hand's."""
        own = np.concatenate([
            self.landmarks.ravel(), self.world.ravel(),
            np.array([self.handedness == "Left", self.score, *self.image_size], dtype=np.float32),
        ]).astype(np.float32)
        return own if self.unrefined is None else np.concatenate([own, self.unrefined.to_array()])

    @classmethod
    def from_array(cls, arr: np.ndarray, attempt: str = "cached") -> "Hand":
        arr = np.asarray(arr, dtype=np.float32)
        if arr.size not in (_RECORD, 2 * _RECORD):
            raise ValueError(f"a hand record has {_RECORD} or {2 * _RECORD} numbers, not {arr.size}")
        unrefined = cls.from_array(arr[_RECORD:], attempt) if arr.size == 2 * _RECORD else None
        return cls(arr[:63].reshape(21, 3), arr[63:126].reshape(21, 3),
                   "Left" if arr[126] > 0.5 else "Right", float(arr[127]),
                   (int(arr[128]), int(arr[129])), attempt, unrefined)


_RECORD = 130  # numbers in one hand's cache record


def _finite_number(value) -> bool:
    """A real number a float can hold: not a bool, a string, NaN, an infinity or an integer past 1.8e308."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float (JSON allows 400 digits)
        return False


@dataclass(frozen=True)
class Region:
    """Where an image lies in a larger frame: the client sent a crop (a hand at full camera
    resolution) rather than the whole frame. ``x``, ``y``, ``w``, ``h`` in the frame's pixels;
    the image is that rectangle, at any scale that keeps its shape.

    A rectangle up to ``SLACK`` px past the frame's right or bottom edge (a client's rounding) is
    moved back inside it, so every Region that exists lies wholly inside its frame, and so does
    its ``mirrored()`` twin. The numbers are kept as floats.

    Raises:
        ValueError: a number that is not finite (or too large for a float), a rectangle not
            inside the frame, or sizes out of range; the message says which.
    """

    x: float
    y: float
    w: float
    h: float
    frame_w: int
    frame_h: int

    MAX_SIDE = 16384  # a frame side no camera has
    SLACK = 0.5  # px a rectangle may pass the frame's far edges by: a client's rounding

    def __post_init__(self):
        names = ("x", "y", "w", "h", "frame_w", "frame_h")
        values = [getattr(self, k) for k in names]
        if not all(_finite_number(v) for v in values):
            raise ValueError("x, y, w, h, frame_w and frame_h must be finite numbers")
        x, y, w, h, frame_w, frame_h = map(float, values)
        if not (1 <= frame_w <= self.MAX_SIDE and 1 <= frame_h <= self.MAX_SIDE):
            raise ValueError(f"frame_w and frame_h must be between 1 and {self.MAX_SIDE} pixels")
        # The sides as they will be kept (at most the frame's): mirrored() must pass this test too.
        if min(w, frame_w) < 8 or min(h, frame_h) < 8:
            raise ValueError("w and h must be at least 8 pixels")
        if x < 0 or y < 0 or x + w > frame_w + self.SLACK or y + h > frame_h + self.SLACK:
            raise ValueError(f"the region ({x:g}, {y:g}, {w:g} x {h:g}) is not inside the "
                             f"{frame_w:g} x {frame_h:g} frame")
        # Within the slack: move the rectangle back inside (a side over the frame's by less than
        # the slack becomes the frame's), so that mirrored() and the landmarks never meet a
        # rectangle past the frame. The shape, which the image must have, moves by under a pixel.
        w, h = min(w, frame_w), min(h, frame_h)
        x, y = max(0.0, min(x, frame_w - w)), max(0.0, min(y, frame_h - h))
        for name, value in zip(names, (x, y, w, h, frame_w, frame_h)):
            object.__setattr__(self, name, value)  # frozen: __post_init__ is where a value is settled

    def check_image(self, width: int, height: int) -> None:
        """Raises ValueError unless a ``width`` x ``height`` image has the region's shape (2% and a pixel of slack)."""
        sx, sy = width / self.w, height / self.h
        if abs(sx - sy) > 0.02 * max(sx, sy) + 1.0 / min(self.w, self.h):  # a pixel off moves sx by 1 / w
            raise ValueError(f"the image is {width} x {height}, not the shape of the {self.w:g} x {self.h:g} region")

    def mirrored(self) -> "Region":
        """The same rectangle of the frame flipped left to right."""
        # Never fails: x + w <= frame_w here, so the twin's x is >= 0 (up to rounding, which max()
        # takes back to 0) and its right edge is at frame_w - x <= frame_w.
        return dataclasses.replace(self, x=max(0.0, self.frame_w - self.x - self.w))

    def to_frame(self, hand: Hand) -> Hand:
        """A hand found in the region's image, with its landmarks normalised to the whole frame."""
        scale = np.array([self.w / self.frame_w, self.h / self.frame_h, self.w / self.frame_w], np.float32)
        shift = np.array([self.x / self.frame_w, self.y / self.frame_h, 0.0], np.float32)
        return dataclasses.replace(hand, landmarks=hand.landmarks * scale + shift,
                                   image_size=(int(self.frame_w), int(self.frame_h)),
                                   unrefined=hand.unrefined and self.to_frame(hand.unrefined))

    def from_frame(self, hand: Hand) -> Hand:
        """A hand normalised to the whole frame, with its landmarks normalised to the region's image."""
        scale = np.array([self.frame_w / self.w, self.frame_h / self.h, self.frame_w / self.w], np.float32)
        shift = np.array([self.x / self.frame_w, self.y / self.frame_h, 0.0], np.float32)
        return dataclasses.replace(hand, landmarks=(hand.landmarks - shift) * scale,
                                   image_size=(max(1, round(self.w)), max(1, round(self.h))),
                                   unrefined=hand.unrefined and self.from_frame(hand.unrefined))
