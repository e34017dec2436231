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


@dataclass(frozen=True)
class Region:
    """Where an image lies in a larger frame: the client sent a crop (a hand at full camera
    resolution) rather than the whole frame. ``x``, ``y``, ``w``, ``h`` in the frame's pixels;
    the image is that rectangle, at any scale that keeps its shape.

    Raises:
        ValueError: a number that is not finite, a rectangle not inside the frame, or sizes out
            of range; the message says which.
    """

    x: float
    y: float
    w: float
    h: float
    frame_w: int
    frame_h: int

    MAX_SIDE = 16384  # a frame side no camera has

    def __post_init__(self):
        values = (self.x, self.y, self.w, self.h, self.frame_w, self.frame_h)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
            raise ValueError("x, y, w, h, frame_w and frame_h must be finite numbers")
        if not (1 <= self.frame_w <= self.MAX_SIDE and 1 <= self.frame_h <= self.MAX_SIDE):
            raise ValueError(f"frame_w and frame_h must be between 1 and {self.MAX_SIDE} pixels")
        if self.w < 8 or self.h < 8:
            raise ValueError("w and h must be at least 8 pixels")
        slack = 0.5  # a client's rounding
        if self.x < 0 or self.y < 0 or self.x + self.w > self.frame_w + slack or self.y + self.h > self.frame_h + slack:
            raise ValueError(f"the region ({self.x:g}, {self.y:g}, {self.w:g} x {self.h:g}) is not inside the "
                             f"{self.frame_w:g} x {self.frame_h:g} frame")

    def check_image(self, width: int, height: int) -> None:
        """Raises ValueError unless a ``width`` x ``height`` image has the region's shape (2% and a pixel of slack)."""
        sx, sy = width / self.w, height / self.h
        if abs(sx - sy) > 0.02 * max(sx, sy) + 1.0 / min(self.w, self.h):  # a pixel off moves sx by 1 / w
            raise ValueError(f"the image is {width} x {height}, not the shape of the {self.w:g} x {self.h:g} region")

    def mirrored(self) -> "Region":
        """The same rectangle of the frame flipped left to right."""
        return dataclasses.replace(self, x=self.frame_w - self.x - self.w)

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
