"""One detected hand: the ``Hand`` value every stage passes on, and its flat cache record."""

from __future__ import annotations

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
