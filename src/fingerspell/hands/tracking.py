"""Follow a hand from frame to frame with MediaPipe's landmark network alone, on LiteRT.

MediaPipe's VIDEO mode does the same (the palm detector runs only when the hand is lost), but
its Python API runs the network on one thread and adds graph overhead: ~17 ms a tracked frame
here, against ~6 ms for the same network on two LiteRT threads (``bench/bench_server.py``).
This module reproduces the tracking step of MediaPipe's ``HandLandmarksDetectorGraph``: the
region of interest from the previous frame's landmarks (``HandLandmarksToRectCalculator`` then
``RectTransformationCalculator`` with scale 2, shift -0.1, square), a rotated crop to the
network's 224x224 input, the presence threshold, and the projection of the landmarks back onto
the frame. Finding a hand that is not yet tracked stays with MediaPipe's palm detector.

numpy, OpenCV and LiteRT only: no MediaPipe graph per stream.
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import DetectParams
from ..errors import HandModelError

LANDMARK_MEMBER = "hand_landmarks_detector.tflite"  # inside the .task bundle
_NORMALIZE_Z = 0.4  # MediaPipe's kLandmarksNormalizeZ for the hand network
_SCALE, _SHIFT_Y = 2.0, -0.1  # the ROI transform of MediaPipe's hand landmarker
# The ROI is fitted to the palm and finger bases (no fingertips), and turned so that the wrist
# points down to the mean of the index, middle and ring finger bases: the points and indices
# MediaPipe's HandLandmarksToRectCalculator uses.
_ROI_POINTS = [0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18]
_WRIST, _ROT_A, _ROT_MID, _ROT_B = 0, 5, 9, 13


@dataclass(frozen=True)
class Roi:
    """A rotated square region, normalised to the frame like MediaPipe's NormalizedRect."""

    x: float  # centre
    y: float
    width: float  # of the frame's width
    height: float  # of the frame's height
    rotation: float  # radians


def _normalize_radians(a: float) -> float:
    return a - 2 * math.pi * math.floor((a + math.pi) / (2 * math.pi))


def roi_from_landmarks(landmarks: np.ndarray, width: int, height: int) -> Roi:
    """The region the next frame's network run looks at, from this frame's (21, 3) landmarks."""
    full = np.asarray(landmarks, dtype=np.float64)[:, :2]
    x0, y0 = full[_WRIST, 0] * width, full[_WRIST, 1] * height
    x1 = ((full[_ROT_A, 0] + full[_ROT_B, 0]) / 2 + full[_ROT_MID, 0]) / 2 * width
    y1 = ((full[_ROT_A, 1] + full[_ROT_B, 1]) / 2 + full[_ROT_MID, 1]) / 2 * height
    lm = full[_ROI_POINTS]
    rotation = _normalize_radians(math.pi / 2 - math.atan2(-(y1 - y0), x1 - x0))
    centre = (lm.max(axis=0) + lm.min(axis=0)) / 2
    pts = (lm - centre) * (width, height)
    c, s = math.cos(-rotation), math.sin(-rotation)
    px = pts[:, 0] * c - pts[:, 1] * s
    py = pts[:, 0] * s + pts[:, 1] * c
    pcx, pcy = (px.max() + px.min()) / 2, (py.max() + py.min()) / 2
    cx = pcx * math.cos(rotation) - pcy * math.sin(rotation) + width * centre[0]
    cy = pcx * math.sin(rotation) + pcy * math.cos(rotation) + height * centre[1]
    w, h = (px.max() - px.min()) / width, (py.max() - py.min()) / height
    # RectTransformationCalculator: shift along the hand's axis, square on the long side, scale.
    cx -= height * h * _SHIFT_Y * math.sin(rotation)
    cy += height * h * _SHIFT_Y * math.cos(rotation)
    side = max(w * width, h * height)
    return Roi(cx / width, cy / height, side / width * _SCALE, side / height * _SCALE, rotation)


def _crop_matrix(roi: Roi, width: int, height: int, size: int) -> np.ndarray:
    """2x3 affine map from frame pixels to the network's input pixels for ``roi``."""
    side = roi.width * width  # square in pixels
    c, s = math.cos(roi.rotation), math.sin(roi.rotation)
    # input pixel (u, v) -> frame: centre + R(rotation) @ ((u, v) / size - 0.5) * side
    a = np.array([[c, -s], [s, c]]) * (side / size)
    t = np.array([roi.x * width, roi.y * height]) - a @ np.array([size / 2, size / 2])
    return np.hstack([a, t[:, None]])


class LandmarkTracker:
    """The hand landmark network of a MediaPipe ``.task`` bundle, run on a region of interest.

    Not thread-safe: one per stream.
    """

    def __init__(self, task_path: str | Path, num_threads: int = 2, min_presence: float = 0.3):
        from ai_edge_litert.interpreter import Interpreter

        with zipfile.ZipFile(task_path) as z:
            blob = z.read(LANDMARK_MEMBER)
        self._interp = Interpreter(model_content=blob, num_threads=max(1, int(num_threads)))
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        self._in = inp["index"]
        self.size = int(inp["shape"][1])
        outs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        # Identity: 21x3 landmarks in input pixels; _1: presence; _2: handedness (right); _3: world
        self._lm, self._presence, self._right, self._world = (
            outs["Identity"], outs["Identity_1"], outs["Identity_2"], outs["Identity_3"])
        self.min_presence = min_presence
        # The first run sets up the kernels and costs several times a normal one: pay it now.
        self._interp.set_tensor(self._in, np.zeros((1, self.size, self.size, 3), np.float32))
        self._interp.invoke()

    def run(self, rgb: np.ndarray, roi: Roi):
        """Landmarks of the hand in ``roi`` of ``rgb``, or None when the network sees no hand.

        Returns:
            (landmarks (21, 3) normalised to the frame, world (21, 3), "Left"/"Right",
            handedness score, presence score) or None.
        """
        import cv2

        rgb = np.ascontiguousarray(rgb)  # a mirrored view has negative strides
        h, w = rgb.shape[:2]
        fwd = _crop_matrix(roi, w, h, self.size)
        crop = cv2.warpAffine(rgb, fwd, (self.size, self.size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
        self._interp.set_tensor(self._in, (crop.astype(np.float32) * (1 / 255.0))[None])
        self._interp.invoke()
        presence = float(self._interp.get_tensor(self._presence).ravel()[0])
        if presence < self.min_presence:
            return None
        raw = self._interp.get_tensor(self._lm).reshape(21, 3).astype(np.float64) / self.size
        right = float(self._interp.get_tensor(self._right).ravel()[0])
        world = self._interp.get_tensor(self._world).reshape(21, 3).astype(np.float64)
        c, s = math.cos(roi.rotation), math.sin(roi.rotation)
        x, y = raw[:, 0] - 0.5, raw[:, 1] - 0.5
        lm = np.empty((21, 3))
        lm[:, 0] = (c * x - s * y) * roi.width + roi.x
        lm[:, 1] = (s * x + c * y) * roi.height + roi.y
        lm[:, 2] = raw[:, 2] / _NORMALIZE_Z * roi.width
        wx, wy = world[:, 0].copy(), world[:, 1].copy()
        world[:, 0] = c * wx - s * wy
        world[:, 1] = s * wx + c * wy
        handed, score = ("Right", right) if right > 0.5 else ("Left", 1 - right)
        return lm.astype(np.float32), world.astype(np.float32), handed, score, presence

    def close(self) -> None:
        self._interp = None


def landmark_tracker(model_path: str | os.PathLike, params: DetectParams, threads: int | None = None) -> LandmarkTracker:
    """The hand model's landmark network, ready to follow a hand.

    Raises:
        HandModelError: the hand model has no usable landmark network.
    """
    try:
        return LandmarkTracker(model_path, threads or min(2, os.cpu_count() or 1), params.min_tracking_confidence)
    except (OSError, KeyError, ValueError, RuntimeError, zipfile.BadZipFile) as exc:
        raise HandModelError(f"the hand model {model_path} has no usable landmark network ({exc}); "
                             f"run `fingerspell setup` to fetch it again") from None
