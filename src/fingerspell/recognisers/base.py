"""What every recogniser kind provides, declared once.

A kind is one module (``registry.KINDS`` lists them) with:

* a **runtime half** (numpy only, never TensorFlow): ``preprocessing(params) -> dict`` (what
  ``bundle.json`` records about the inputs) and a ``Runtime`` class that satisfies ``Runtime``
  below: it reads a *window* of a stream's recent frames (``Seen`` values, newest last; a
  static kind reads only the newest) and makes the classifier's input;
* a **training half** that imports Keras only when called: ``fit(prep, sides, params)`` for the
  image pipeline, and, for kinds that learn from landmarks alone, ``fit_arrays(views, val,
  n_labels, params)`` that fits from plain arrays (``Samples``), so a few hundred samples of one
  person refit a model without images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from ..hands import Hand


class Seen(NamedTuple):
    """One frame of a stream's history: when, the hand (None: no hand), and where it was."""

    t_ms: int
    hand: Hand | None
    position: object | None = None  # decoding.base.Position, or None without a hand


# The newest frame's pixels for a kind that reads them: a callable giving the RGB image and the
# newest hand in that image's coordinates. None where there are no pixels (a hand found in the
# browser, a recording).
Pixels = Callable[[], tuple[np.ndarray, Hand | None]]


@runtime_checkable
class Runtime(Protocol):
    """The serving half of a kind: a window of frames -> the classifier's input."""

    reads_pixels: bool  # whether it needs the newest frame's image
    frames: int  # how many of the newest frames it reads (1: a static kind)

    @classmethod
    def from_record(cls, record: dict) -> "Runtime":
        """The runtime a bundle's ``preprocessing`` record describes."""

    def inputs(self, window: Sequence[Seen], pixels: Pixels | None) -> np.ndarray | None:
        """The classifier's input for the newest frame of ``window``; None: nothing to recognise
        (the answer is "nothing").

        Raises:
            FrameError: the kind needs pixels and ``pixels`` is None.
        """

    def input_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why a model with input ``shape`` cannot be served with these inputs, or None."""


@dataclass(frozen=True)
class Samples:
    """Training hands as plain arrays: what ``fit_arrays`` learns from.

    Attributes:
        points: (N, 21, 3) float32, ``Hand.pixel_points()`` (x, y, z in pixels of the image).
        is_left: (N,) bool, MediaPipe's handedness is "Left".
        y: (N,) int, each sample's label index.
        groups: (N,) str, samples that stay on one side of a split (one photo, one recording).
    """

    points: np.ndarray
    is_left: np.ndarray
    y: np.ndarray
    groups: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.points)
        if np.shape(self.points) != (n, 21, 3):
            raise ValueError(f"points must be (N, 21, 3), not {np.shape(self.points)}")
        for name in ("is_left", "y") + (("groups",) if self.groups is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} samples")
        if n and not np.isfinite(self.points).all():
            raise ValueError("points must be finite")

    def __len__(self) -> int:
        return len(self.points)

    @classmethod
    def of_hands(cls, hands: Sequence[Hand], y, groups=None) -> "Samples":
        """The samples of ``hands`` (found hands, none None) with labels ``y``."""
        points = np.stack([h.pixel_points() for h in hands]).astype(np.float32) if len(hands) else \
            np.zeros((0, 21, 3), np.float32)
        return cls(points, np.array([h.handedness == "Left" for h in hands], bool), np.asarray(y, int),
                   None if groups is None else np.asarray(groups, str))


def newest_hand(window: Sequence[Seen]) -> Hand | None:
    """The hand of the newest frame (None: no hand, or no frame yet)."""
    return window[-1].hand if window else None


def check_kind(module) -> None:
    """Raises TypeError unless ``module`` provides a recogniser kind's declared surface."""
    missing = [name for name in ("KIND", "USES_FAR_COPIES", "preprocessing", "Runtime", "build", "fit")
               if not hasattr(module, name)]
    if missing:
        raise TypeError(f"{module.__name__} is not a recogniser kind: it lacks {', '.join(missing)}")
    from ..config import TrainParams

    runtime = module.Runtime.from_record(module.preprocessing(TrainParams()))
    if not isinstance(runtime, Runtime):
        raise TypeError(f"{module.__name__}.Runtime does not satisfy recognisers.base.Runtime")
