"""The networks hand finding runs on, and the pools that share them between threads and streams.

A ``Landmarker`` is MediaPipe's IMAGE-mode hand landmarker (palm detector, then landmark
network); a tracker is the landmark network alone on LiteRT (``tracking.LandmarkTracker``).
Neither is thread-safe, so ``Workers`` lends them out, at most ``size`` of each.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import sys
import threading
import types
from pathlib import Path

import numpy as np

from ..config import DetectParams
from ..errors import HandModelError
from .tracking import landmark_tracker

_mp = None


def mediapipe_tasks():
    """Import MediaPipe Tasks without letting it import TensorFlow: (mediapipe, BaseOptions, vision).

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


# Held until closed: MediaPipe's close() can wait forever when the garbage collector runs it (its
# dispatcher thread may be collected first), so a landmarker nobody closed is kept alive and
# closed at exit, while MediaPipe is still whole.
_OPEN: set = set()


@atexit.register
def _close_open_landmarkers() -> None:
    for worker in list(_OPEN):
        try:
            worker.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class Landmarker:
    """MediaPipe's HandLandmarker in IMAGE mode: the palm detector, then the landmark network. Not thread-safe."""

    def __init__(self, model_path: str | os.PathLike, params: DetectParams = DetectParams()):
        mp, BaseOptions, vision = mediapipe_tasks()
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE,
            num_hands=1,
            min_hand_detection_confidence=params.min_detection_confidence,
            min_hand_presence_confidence=params.min_presence_confidence,
        )
        try:
            self._graph = vision.HandLandmarker.create_from_options(options)
        except (RuntimeError, ValueError) as exc:
            raise HandModelError(f"MediaPipe could not load the hand model {model_path}: {exc}") from exc
        _OPEN.add(self)

    def detect(self, rgb: np.ndarray):
        """The most confident hand in ``rgb``, or None.

        Returns:
            (landmarks (21, 3) normalised to ``rgb``, world (21, 3), "Left"/"Right", handedness
            score) or None.
        """
        mp, _, _ = mediapipe_tasks()
        result = self._graph.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        if not result.hand_landmarks:
            return None
        lm = np.array([[p.x, p.y, p.z] for p in result.hand_landmarks[0]], dtype=np.float32)
        world = np.array([[p.x, p.y, p.z] for p in result.hand_world_landmarks[0]], dtype=np.float32)
        cat = result.handedness[0][0]
        return lm, world, cat.category_name, float(cat.score)

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        _OPEN.discard(self)


class Pool:
    """Workers shared by the threads and streams of one process, made when first needed.

    At most ``size`` exist; a caller that needs one while all are busy waits for one. The work
    is CPU-bound, so more than one per core buys nothing, and memory stays flat however many
    streams are open.
    """

    def __init__(self, make, size: int):
        self._make, self.size = make, max(1, int(size))
        self._free: queue.LifoQueue = queue.LifoQueue()
        self._made: list = []
        self._lock = threading.Lock()

    @property
    def made(self) -> int:
        """How many workers exist (never more than ``size``)."""
        return len(self._made)

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


class Workers:
    """The landmarkers and trackers one hand model's detection borrows: a pool of at most ``size`` of each.

    Args:
        model_path: the hand model (``hand_landmarker.task``).
        params: detection thresholds.
        size: at most this many of each kind.
        track_threads: LiteRT threads per tracker (default: up to 2).
        landmarker: what makes a landmarker, given (model_path, params): the seam for a counting
            or fake one in tests.
    """

    def __init__(self, model_path: str | os.PathLike, params: DetectParams = DetectParams(), size: int = 1, *,
                 track_threads: int | None = None, landmarker=Landmarker):
        self.model_path = Path(model_path)
        self.landmarkers = Pool(lambda: landmarker(self.model_path, params), size)
        self.trackers = Pool(lambda: landmark_tracker(self.model_path, params, track_threads), size)

    def warm(self, trackers: bool = True, landmarkers: bool = True) -> None:
        """Make one of each now, so that a broken hand model fails here rather than mid-stream.

        Raises:
            HandModelError: the hand model cannot be loaded (the workers are then closed).
        """
        try:
            for pool, wanted in ((self.trackers, trackers), (self.landmarkers, landmarkers)):
                if wanted:
                    with pool.borrow():
                        pass
        except HandModelError:
            self.close()
            raise

    def close(self) -> None:
        self.landmarkers.close()
        self.trackers.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
