"""RGB array -> Hand | None, and following a hand from frame to frame.

``HandFinder`` is the stage: it holds no per-image or per-stream state, so one serves every thread
and stream of a process; what a video carries from one frame to the next is a ``Following`` value
that ``follow`` takes and returns. ``HandDetector`` is the same with its own workers and its own
``Following``, for callers that want one object (the CLI's extraction, the benchmarks).

The networks come from ``workers``; the retries from ``retries``; the hand model file from
``model``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import retries as ladder
from ..config import DetectParams
from .hand import Hand, Region
from .model import ensure_hand_model
from .retries import RETRY_KINDS, parse_retry, retry_image, zoom_tiles
from .tracking import landmark_tracker
from .workers import Landmarker, Pool, Workers, mediapipe_tasks


@dataclass(frozen=True)
class Following:
    """What a video carries from one frame to the next.

    Attributes:
        hand: the previous frame's hand, followed into the next frame (None: look afresh).
        timestamp_ms: the previous frame's time; a frame at or before it starts a new clip.
        step: how far frames without a hand have gone through the stream's retries (and their tiles).
        last: the last hand seen in this clip, kept while it is lost: where to look first.
        last_ms: that hand's time.
    """

    hand: Hand | None = None
    timestamp_ms: int = -1
    step: int = 0
    last: Hand | None = None
    last_ms: int = -1

    def lost(self) -> "Following":
        """The same clip, nothing followed: the next frame looks for the hand afresh."""
        return dataclasses.replace(self, hand=None)


class HandFinder:
    """Finds one hand in an image, or follows it through a video.

    IMAGE mode (``find``) is MediaPipe's HandLandmarker: the palm detector, then the landmark
    network, then the retries of ``params.retries`` while no hand is found; a hand found small is
    then looked at again from regions around the one it was found in (``params.reframe``). VIDEO mode
    (``follow``) does what MediaPipe's VIDEO mode does, faster: while a hand is followed, a frame
    runs only the landmark network, on the region the previous frame's landmarks give; when the
    hand is lost, the frame runs the palm detector, then the landmark network near where the hand
    was last seen (within ``near_ms``), then ``video_retries`` rungs of ``stream_retries``, going
    on from where the previous frame without a hand stopped.
    "No hand" is a value (None), not an exception.

    Thread-safe as far as ``workers`` is (its pools lend each network to one caller at a time).
    """

    def __init__(self, workers: Workers, params: DetectParams = DetectParams()):
        ladder.check_params(params)
        self.workers = workers
        self.params = params

    def find(self, rgb: np.ndarray) -> Hand | None:
        """The most confident hand in an RGB uint8 array (H, W, 3), landmarks relative to it, or None."""
        small, size = self._fit(rgb)
        hand = ladder.palm(self.workers, small, size, "plain")
        for spec in self.params.retries:
            if hand is not None:
                break
            hand = ladder.retry(self.workers, small, size, spec)
        return self._finish(rgb, small, size, hand, refine=True)

    def follow(self, rgb: np.ndarray, following: Following, timestamp_ms: int | None = None
               ) -> tuple[Hand | None, Following]:
        """The hand in a video frame, and what the next frame follows.

        Args:
            rgb: the frame.
            following: what the previous frame returned (``Following()`` for the first).
            timestamp_ms: the frame's time; one at or before the previous frame's starts afresh
                (a new clip). None: the previous frame's plus one.
        """
        if timestamp_ms is not None and timestamp_ms <= following.timestamp_ms:
            following = Following()  # time went backwards: a new clip, nothing to follow
        ts = timestamp_ms if timestamp_ms is not None else following.timestamp_ms + 1
        p, w = self.params, self.workers
        small, size = self._fit(rgb)
        step = following.step
        hand = ladder.track(w, small, size, following.hand) if following.hand is not None else None
        found = hand is None
        if found:
            hand = ladder.palm(w, small, size, "plain")
            last = following.last
            if hand is None and last is not None and ts - following.last_ms <= p.near_ms:
                hand = ladder.near(w, small, size, last)  # normalised landmarks: the image's scale does not matter
            rungs = p.stream_retries
            for _ in range(min(p.video_retries, len(rungs)) if hand is None else 0):
                hand = ladder.retry(w, small, size, rungs[step % len(rungs)], step // len(rungs))
                step += 1
                if hand is not None:
                    break
        hand = self._finish(rgb, small, size, hand, refine=found)
        if hand is None:
            return None, Following(None, ts, step, following.last, following.last_ms)
        return hand, Following(hand, ts, 0, hand, ts)

    def _fit(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
        small = ladder.fit(rgb, self.params.max_side)
        return small, (small.shape[1], small.shape[0])

    def _finish(self, rgb: np.ndarray, small: np.ndarray, size: tuple[int, int], hand: Hand | None,
                refine: bool) -> Hand | None:
        """A found hand refined and, if small, reframed (``refine``), with landmarks relative to
        ``rgb`` rather than ``small``."""
        if hand is not None and refine:
            hand = (ladder.reframe(self.workers, small, size, hand, self.params)
                    or ladder.refine(self.workers, small, size, hand, self.params.refine))
        if hand is not None and size != (rgb.shape[1], rgb.shape[0]):
            full = (rgb.shape[1], rgb.shape[0])  # landmarks are normalised: only the size changes
            hand = dataclasses.replace(hand, image_size=full, unrefined=hand.unrefined and dataclasses.replace(
                hand.unrefined, image_size=full))
        return hand


class HandDetector:
    """A ``HandFinder`` with its own workers and, in VIDEO mode, its own ``Following``.

    Not thread-safe: give each thread, process or stream its own. ``detect`` returns the most
    confident hand or None.

    Args:
        model_path: the hand model (None: the cached one, fetched if need be).
        video: follow the hand from call to call (``detect`` then wants timestamps).
        params: detection settings.
        workers: the networks to borrow (shared with others, closed by whoever made them);
            None: a pool of one of each, made here and closed with the detector.
        track_threads: LiteRT threads of its own tracker.
    Raises:
        HandModelError: the hand model cannot be loaded.
        ValueError: ``params`` names a retry or a refinement count detection cannot run.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, video: bool = False,
                 params: DetectParams = DetectParams(), workers: Workers | None = None,
                 track_threads: int | None = None):
        ladder.check_params(params)
        self.params = params
        self.video = video
        self.model_path = Path(model_path) if model_path else ensure_hand_model()
        self._own = workers is None
        self.workers = workers or Workers(self.model_path, params, 1, track_threads=track_threads)
        if self._own:
            # what this mode needs first is made now: a broken hand model fails here, not mid-stream
            self.workers.warm(trackers=video, landmarkers=not video)
        self.finder = HandFinder(self.workers, params)
        self.following = Following()  # VIDEO mode: what the next frame follows

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> Hand | None:
        """Find the hand in an RGB uint8 array (H, W, 3).

        Args:
            rgb: the image.
            timestamp_ms: VIDEO mode: the frame's time (None: the previous frame's plus one).
        Returns:
            The hand, with landmarks relative to ``rgb``, or None.
        """
        if not self.video:
            return self.finder.find(rgb)
        hand, self.following = self.finder.follow(rgb, self.following, timestamp_ms)
        return hand

    def forget(self) -> None:
        """VIDEO mode: stop following the hand; the next frame looks for one afresh."""
        self.following = self.following.lost()

    def close(self) -> None:
        if self._own:
            self.workers.close()
        self.following = Following()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
