"""MediaPipe HandLandmarker wrapper: RGB array -> Hand | None, and following a hand from frame to frame.

The hand model it runs (``hand_landmarker.task``) is obtained, checked and cached by ``hand_model``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import math
import os
import queue
import sys
import threading
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import DetectParams
from .errors import HandModelError
from .hand_model import ensure_hand_model

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- detection


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

_mp = None


def _mediapipe():
    """Import MediaPipe Tasks without letting it import TensorFlow.

    MediaPipe imports TensorFlow opportunistically (for API docs and gfile) when it is
    installed, which costs ~3 s and hundreds of MB in a process that never uses it. Where
    TensorFlow is not already loaded we hide it for the duration of the import, so the server
    and ``predict`` stay TensorFlow-free even in a venv that has it.
    """
    global _mp
    if _mp is None:
        os.environ.setdefault("GLOG_minloglevel", "2")
        hide = "tensorflow" not in sys.modules
        if hide:
            sys.modules["tensorflow"] = None  # type: ignore[assignment]  # import raises ModuleNotFoundError
        # vision/drawing_utils.py imports matplotlib.pyplot (~0.6 s, ~30 MB) for a plotting helper
        # we never call: give it an empty stand-in for the import, then take the stand-in away.
        stubs = {}
        if "matplotlib" not in sys.modules:
            for name in ("matplotlib", "matplotlib.pyplot"):
                stubs[name] = sys.modules[name] = types.ModuleType(name)
        try:
            import mediapipe as mp
            from mediapipe.tasks.python import BaseOptions, vision
        finally:
            if hide and sys.modules.get("tensorflow", 0) is None:
                del sys.modules["tensorflow"]
            for name, stub in stubs.items():
                if sys.modules.get(name) is stub:
                    del sys.modules[name]
        _mp = (mp, BaseOptions, vision)
    return _mp


def _fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _pad(rgb: np.ndarray, frac: float, mode: str = "constant") -> tuple[np.ndarray, int, int]:
    h, w = rgb.shape[:2]
    py, px = int(round(h * frac)), int(round(w * frac))
    padded = np.pad(rgb, ((py, py), (px, px), (0, 0)), mode=mode)
    return padded, px, py


def zoom_tiles(width: int, height: int, frac: float, square: bool = False) -> list[tuple[int, int, int, int]]:
    """The tiles (x0, y0, x1, y1) a ``zoom:frac`` (or, ``square``, a ``scan:frac``) retry looks at, the centre first.

    Each is ``frac`` of the image's width and height (``square``: squares ``frac`` of the short
    side); neighbours overlap by half a tile, so a hand up to half a tile across lies wholly
    inside one of them.
    """
    if square:
        tw = th = max(1, round(min(width, height) * frac))
    else:
        tw, th = max(1, round(width * frac)), max(1, round(height * frac))

    def starts(size, tile):
        steps = max(1, math.ceil((size - tile) / (tile / 2)))
        return sorted({round(k * (size - tile) / steps) for k in range(steps + 1)})

    tiles = [(x, y, x + tw, y + th) for y in starts(height, th) for x in starts(width, tw)]
    cx, cy = width / 2, height / 2
    return sorted(tiles, key=lambda t: ((t[0] + t[2]) / 2 - cx) ** 2 + ((t[1] + t[3]) / 2 - cy) ** 2)


def _equalize(rgb: np.ndarray) -> np.ndarray:
    import cv2

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


#: pad/edge/equalize re-run the palm detector on a changed image; centre skips it; zoom runs it on
#: parts of the image; scan runs the landmark network alone on squares across it (see HandDetector).
RETRY_KINDS = ("pad", "edge", "equalize", "centre", "zoom", "scan")


def parse_retry(spec: str) -> tuple[str, float]:
    """``"pad:0.3"`` -> ("pad", 0.3); raises ValueError for anything else."""
    how, _, frac = spec.partition(":")
    if how not in RETRY_KINDS:
        raise ValueError(f"unknown detection retry {spec!r}; use pad:F, edge:F, equalize:F, centre:F, zoom:F or scan:F")
    value = float(frac or {"centre": 1.0, "zoom": 0.5, "scan": 0.5}.get(how, 0.3))
    if how in ("zoom", "scan") and not 0.2 <= value < 1:
        raise ValueError(f"detection retry {spec!r}: a tile's side must be at least 0.2 and under 1 times the image's")
    if how == "centre" and not 0 < value <= 3:
        raise ValueError(f"detection retry {spec!r}: the square's side must be above 0 and at most 3 times the image's")
    if not 0 <= value <= 3:
        raise ValueError(f"detection retry {spec!r}: the border must be between 0 and 3 times the side")
    return how, value


def retry_image(rgb: np.ndarray, spec: str) -> tuple[np.ndarray, int, int]:
    """The image a palm-detector retry (pad, edge, equalize) runs on, and the border (px, py) added on each side."""
    how, frac = parse_retry(spec)
    if how in ("centre", "zoom", "scan"):
        raise ValueError(f"detection retry {spec!r} runs no palm detector on the whole image, so it has no retry image")
    if how == "edge":
        return _pad(rgb, frac, "edge")
    padded, px, py = _pad(rgb, frac)
    return (_equalize(padded) if how == "equalize" else padded), px, py


_OPEN: set = set()


@atexit.register
def _close_open_detectors() -> None:
    for det in list(_OPEN):
        try:
            det.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Pool:
    """Workers (detectors, trackers) shared by the streams of one process, made when first needed.

    At most ``size`` exist; a stream that needs one while all are busy waits for one. The work
    is CPU-bound, so more than one per core buys nothing, and memory stays flat however many
    streams are open: a stream's own state is only the hand it is following.
    """

    def __init__(self, make, size: int):
        self._make, self.size = make, max(1, int(size))
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._made: list = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self):
        """A free worker for the duration of the block."""
        try:
            worker = self._free.get_nowait()
        except queue.Empty:
            with self._lock:
                worker = self._make() if len(self._made) < self.size else None
                if worker is not None:
                    self._made.append(worker)
            if worker is None:
                worker = self._free.get()
        try:
            yield worker
        finally:
            self._free.put(worker)

    def close(self) -> None:
        with self._lock:
            for worker in self._made:
                worker.close()
            self._made.clear()


def landmark_tracker(model_path: str | os.PathLike, params: DetectParams, threads: int | None = None):
    """The hand model's landmark network, ready to follow a hand (``tracking.LandmarkTracker``)."""
    from .tracking import LandmarkTracker

    try:
        return LandmarkTracker(model_path, threads or min(2, os.cpu_count() or 1), params.min_tracking_confidence)
    except (OSError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile) as exc:
        raise HandModelError(f"the hand model {model_path} has no usable landmark network ({exc}); "
                             f"run `fingerspell setup` to fetch it again") from None


class HandDetector:
    """Finds one hand in images (IMAGE mode) or follows it through a video (VIDEO mode).

    Not thread-safe: give each thread, process or stream its own. ``detect`` returns the most
    confident hand or None; "no hand" is a value, not an exception.

    IMAGE mode is MediaPipe's HandLandmarker: the palm detector, then the landmark network.
    VIDEO mode does what MediaPipe's VIDEO mode does, faster: while a hand is followed, a frame
    runs only the landmark network, on the region the previous frame's landmarks give
    (``tracking.LandmarkTracker`` on LiteRT). When the hand is lost, the frame runs IMAGE-mode
    detection (and at most ``video_retries`` retries). Detectors and trackers come from
    ``detectors`` and ``trackers`` (``Pool``s shared by all streams) where given, else from
    pools of one that it makes and closes itself.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, video: bool = False,
                 params: DetectParams = DetectParams(), detectors: Pool | None = None,
                 trackers: Pool | None = None, track_threads: int | None = None):
        for spec in params.retries:
            parse_retry(spec)
        if not 0 <= params.refine <= 5:
            raise ValueError(f"refine must be between 0 and 5 passes, not {params.refine}")
        self.params = params
        self.video = video
        self.model_path = Path(model_path) if model_path else ensure_hand_model()
        self._image = None  # MediaPipe IMAGE-mode landmarker (IMAGE mode without a pool)
        self._last: Hand | None = None  # VIDEO mode: the previous frame's hand
        self._last_ts = -1
        self._tile = 0  # VIDEO mode: the zoom tile the next frame without a hand looks at
        # Without shared pools, a detector makes pools of one of its own (their workers are made
        # when first borrowed) and closes them.
        self._detectors, self._trackers, self._owned = detectors, trackers, []
        # Held until closed: MediaPipe's close() can wait forever when the garbage collector runs
        # it (its dispatcher thread may be collected first), so a detector nobody closed is kept
        # alive and closed at exit, while MediaPipe is still whole.
        _OPEN.add(self)
        try:
            if trackers is None:
                self._trackers = self._own(Pool(lambda: landmark_tracker(self.model_path, params, track_threads), 1))
                if video:
                    with self._trackers.borrow():  # made now: a broken hand model fails here, not mid-stream
                        pass
            if video and detectors is None:
                self._detectors = self._own(Pool(lambda: HandDetector(self.model_path, params=params), 1))
            if not video and detectors is None:
                self._image = self._create()
        except HandModelError:
            self.close()
            raise

    def _own(self, pool: Pool) -> Pool:
        self._owned.append(pool)
        return pool

    def _create(self):
        mp, BaseOptions, vision = _mediapipe()
        p = self.params
        kwargs = dict(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=1,
            min_hand_detection_confidence=p.min_detection_confidence,
            min_hand_presence_confidence=p.min_presence_confidence,
        )
        try:
            return vision.HandLandmarker.create_from_options(vision.HandLandmarkerOptions(**kwargs))
        except (RuntimeError, ValueError) as exc:
            raise HandModelError(f"MediaPipe could not load the hand model {self.model_path}: {exc}") from exc

    def _run(self, rgb: np.ndarray):
        """MediaPipe IMAGE-mode detection: a pooled detector when there is a pool, else its own."""
        if self._detectors is not None:
            with self._detectors.borrow() as det:
                return det._run(rgb)
        mp, _, _ = _mediapipe()
        if self._image is None:
            self._image = self._create()
        return self._image.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))

    @staticmethod
    def _hand(result, size, attempt, shift=None) -> Hand | None:
        if not result.hand_landmarks:
            return None
        lm = np.array([[p.x, p.y, p.z] for p in result.hand_landmarks[0]], dtype=np.float32)
        world = np.array([[p.x, p.y, p.z] for p in result.hand_world_landmarks[0]], dtype=np.float32)
        cat = result.handedness[0][0]
        if shift is not None:  # landmarks of a padded image -> those of the original
            (pw, ph), (px, py), (w, h) = shift
            lm[:, 0] = (lm[:, 0] * pw - px) / w
            lm[:, 1] = (lm[:, 1] * ph - py) / h
            lm[:, 2] = lm[:, 2] * pw / w
        return Hand(lm, world, cat.category_name, float(cat.score), size, attempt)

    def detect(self, rgb: np.ndarray, timestamp_ms: int | None = None) -> Hand | None:
        """Find the hand in an RGB uint8 array (H, W, 3).

        Args:
            rgb: the image.
            timestamp_ms: required in VIDEO mode; must increase from call to call.
        Returns:
            The hand, with landmarks relative to ``rgb``, or None.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 array (H, W, 3), got {rgb.dtype} {rgb.shape}")
        p = self.params
        small = _fit(rgb, p.max_side)
        size = (small.shape[1], small.shape[0])
        hand = None
        if self.video:
            if timestamp_ms is not None and timestamp_ms <= self._last_ts:
                self._last = None  # time went backwards: a new clip, nothing to follow
            self._last_ts = timestamp_ms if timestamp_ms is not None else self._last_ts + 1
            if self._last is not None:
                hand = self._track(small, size)
        if hand is None:
            hand = self._hand(self._run(small), size, "plain")
            retries = p.retries[: p.video_retries] if self.video else p.retries
            for spec in retries:
                if hand is not None:
                    break
                how, frac = parse_retry(spec)
                if how == "centre":
                    hand = self._centre(small, size, frac, spec)
                    continue
                if how == "zoom":
                    hand = self._zoom(small, size, frac, spec)
                    continue
                if how == "scan":
                    hand = self._scan(small, size, frac, spec)
                    continue
                image, px, py = retry_image(small, spec)
                shift = ((image.shape[1], image.shape[0]), (px, py), size)
                hand = self._hand(self._run(image), size, spec, shift)
            if hand is not None:
                hand = self._refine(small, size, hand, p.refine)
        if self.video:
            self._last = hand
        if hand is not None and size != (rgb.shape[1], rgb.shape[0]):
            full = (rgb.shape[1], rgb.shape[0])  # landmarks are normalised: only the size changes
            hand = dataclasses.replace(hand, image_size=full, unrefined=hand.unrefined and dataclasses.replace(
                hand.unrefined, image_size=full))
        return hand

    def _network(self, small: np.ndarray, size: tuple[int, int], roi, attempt: str) -> Hand | None:
        """The landmark network alone on ``roi`` (None when its presence score is too low)."""
        with self._trackers.borrow() as tracker:
            found = tracker.run(small, roi)
        if found is None:
            return None
        landmarks, world, handedness, score, _ = found
        return Hand(landmarks, world, handedness, score, size, attempt)

    def _track(self, small: np.ndarray, size: tuple[int, int]) -> Hand | None:
        from .tracking import roi_from_landmarks

        return self._network(small, size, roi_from_landmarks(self._last.landmarks, *size), "tracked")

    def _refine(self, small: np.ndarray, size: tuple[int, int], hand: Hand, passes: int) -> Hand:
        """Run the landmark network again on the region the hand's own landmarks give.

        The palm detector's region is coarse; the region from the landmarks is the one tracking
        uses, and one more pass there gives steadier landmarks (``bench/bench_detection.py``).
        A pass that loses the hand keeps the landmarks found so far.
        """
        from .tracking import roi_from_landmarks

        first = hand
        for _ in range(passes):
            found = self._network(small, size, roi_from_landmarks(hand.landmarks, *size), hand.attempt)
            if found is None:
                break
            hand = dataclasses.replace(found, unrefined=first)
        return hand

    def _centre(self, small: np.ndarray, size: tuple[int, int], frac: float, spec: str) -> Hand | None:
        """The landmark network alone on the centred square ``frac`` times the image's long side.

        For hands the palm detector does not find at all (a hand filling a photo, odd light):
        no palm region to start from, so the network looks at the middle of the picture, and
        its own presence score says whether a hand is there.
        """
        from .tracking import Roi

        w, h = size
        side = max(w, h) * frac
        return self._network(small, size, Roi(0.5, 0.5, side / w, side / h, 0.0), spec)

    def _zoom(self, small: np.ndarray, size: tuple[int, int], frac: float, spec: str) -> Hand | None:
        """The palm detector on zoomed tiles of the image, the centre first, until one holds a hand.

        The palm detector sees the whole image at 192x192, so a hand a fifth of a 640x480 frame
        across is ~40 px to it and often missed; in a tile half the frame's size it is twice that.
        In VIDEO mode a frame looks at one tile, the next frame at the next: a frame without a
        hand stays cheap, and a few frames cover the whole picture.
        """
        w, h = size
        tiles = zoom_tiles(w, h, frac)
        if self.video:
            tiles = [tiles[self._tile % len(tiles)]]
            self._tile += 1
        for x0, y0, x1, y1 in tiles:
            crop = small[y0:y1, x0:x1]
            hand = self._hand(self._run(crop), size, spec, ((x1 - x0, y1 - y0), (-x0, -y0), size))
            if hand is not None:
                return hand
        return None

    def _scan(self, small: np.ndarray, size: tuple[int, int], frac: float, spec: str) -> Hand | None:
        """The landmark network alone on squares ``frac`` of the short side across the image; the
        hand with the highest presence score, if any square's is above the threshold.

        For small hands the palm detector does not find even when zoomed (odd angles, dim light:
        the hands ``centre`` finds in a photo they fill): ~7 ms a square, 15 squares for 0.5.
        """
        from .tracking import Roi

        w, h = size
        best, best_presence = None, -1.0
        with self._trackers.borrow() as tracker:
            for x0, y0, x1, y1 in zoom_tiles(w, h, frac, square=True):
                roi = Roi((x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h, 0.0)
                found = tracker.run(small, roi)
                if found is not None and found[4] > best_presence:
                    best, best_presence = found, found[4]
        if best is None:
            return None
        landmarks, world, handedness, score, _ = best
        return Hand(landmarks, world, handedness, score, size, spec)

    def forget(self) -> None:
        """VIDEO mode: stop following the hand; the next frame looks for one afresh."""
        self._last = None

    def follow(self, hand: Hand | None) -> None:
        """VIDEO mode: follow ``hand`` (landmarks normalised to the next image) from the next frame on.

        For a stream whose images change their place in the frame (crops around the hand): the
        hand found in the last crop, carried into the next one's coordinates. None: forget.
        """
        self._last = hand

    def close(self) -> None:
        if self._image is not None:
            self._image.close()
        for pool in self._owned:
            pool.close()
        self._owned.clear()
        self._image = self._last = None
        _OPEN.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

