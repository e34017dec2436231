"""Predictor.from_bundle(path).predict(rgb) -> Prediction. Shared by the CLI and the server.

Never imports TensorFlow, Keras, matplotlib or the training code: the classifier runs from the
bundle's LiteRT export.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import bundle as bundle_io
from . import recognisers
from .config import DetectParams, from_dict
from .decoding.base import Position
from .errors import BundleError, FrameError
from .hands import Hand, HandDetector, Pool, Region, landmark_tracker
from .hand_model import ensure_hand_model, sha256_file
from .images import DECODE_FORMATS, DEFAULT_MAX_PIXELS, decode_image
from .labels import NOTHING

TOP_K = 3
HISTORY = 30  # frames of hand positions a stream keeps: ~1 s, enough for a slide, and for J and Z next


def position_of(hand: Hand | None) -> Position | None:
    """The hand's centre and size (its landmarks' extent) in units of the image's width."""
    if hand is None:
        return None
    w, h = hand.image_size
    pts = np.asarray(hand.landmarks, dtype=np.float64)[:, :2]
    x, y = pts[:, 0], pts[:, 1] * (h / w if w else 1.0)
    size = max(float(x.max() - x.min()), float(y.max() - y.min()), 1e-3)
    return Position(float(x.mean()), float(y.mean()), size)


@dataclass(frozen=True)
class Prediction:
    """What the recogniser saw in one image.

    Attributes:
        letter: the top label; ``"nothing"`` when no hand was found.
        score: its probability (1.0 for "no hand").
        top: the top-3 (label, probability) pairs, best first.
        hand: the detected hand, or None.
        timings: milliseconds per stage (decode, detect, classify, total).
    """

    letter: str
    score: float
    top: list[tuple[str, float]]
    hand: Hand | None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "letter": self.letter,
            "confidence": round(float(self.score), 4),
            "top": [{"label": k, "score": round(float(v), 4)} for k, v in self.top],
            "hand": self.hand.to_json() if self.hand is not None else None,
            "timings_ms": {k: round(v, 2) for k, v in self.timings.items()},
        }


class Classifier:
    """The bundle's LiteRT model. Not thread-safe; Predictor hands out one per stream."""

    def __init__(self, tflite_path: Path):
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=str(tflite_path), num_threads=1)
            self._interp.allocate_tensors()
        except (RuntimeError, ValueError) as exc:
            raise BundleError(f"{tflite_path} is not a loadable LiteRT model ({exc}); retrain or restore the bundle") from None
        inp = self._interp.get_input_details()[0]
        self._in, self._out = inp["index"], self._interp.get_output_details()[0]["index"]
        self.input_shape = tuple(int(d) for d in inp["shape"][1:])
        self.num_outputs = int(self._interp.get_output_details()[0]["shape"][-1])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one input (without the batch axis)."""
        self._interp.set_tensor(self._in, np.asarray(x, dtype=np.float32)[None])
        self._interp.invoke()
        return self._interp.get_tensor(self._out)[0].copy()


class _Engine:
    """Detector + classifier + the bundle's preprocessing: one per thread or stream."""

    def __init__(self, predictor: "Predictor", video: bool):
        self.p = predictor
        # The classifier first: a bad export then raises before there is a MediaPipe graph to close.
        self.classifier = Classifier(predictor.path / bundle_io.TFLITE)
        self.detector = HandDetector(predictor.hand_model, video=video, params=predictor.detect_params,
                                     detectors=predictor._detectors if video else None,
                                     trackers=predictor._trackers)

    def run(self, rgb: np.ndarray, timestamp_ms: int | None, timings: dict) -> Prediction:
        t0 = time.perf_counter()
        hand = self.detector.detect(rgb, timestamp_ms)
        t1 = time.perf_counter()
        timings["detect"] = (t1 - t0) * 1e3
        top = self.p.classify(hand, lambda: rgb, self.classifier)
        timings["classify"] = (time.perf_counter() - t1) * 1e3
        return Prediction(top[0][0], top[0][1], top, hand, timings)

    def close(self):
        self.detector.close()


def _decoded(predict, data: bytes, max_pixels: int, formats: tuple[str, ...], mirror: bool, **kwargs) -> Prediction:
    """``predict`` on decoded bytes, with the decode time in the timings."""
    t = time.perf_counter()
    rgb = decode_image(data, max_pixels, formats)
    if mirror:
        rgb = rgb[:, ::-1]
    decode_ms = (time.perf_counter() - t) * 1e3
    pred = predict(rgb, **kwargs)
    pred.timings["decode"] = decode_ms
    pred.timings["total"] += decode_ms
    return pred


class Stream:
    """Per-connection state for video: the hand it follows (VIDEO-mode tracking on pooled networks),
    its classifier, and a short history of where the hand was (``history``: (t_ms, Position or
    None) per frame, newest last), which the decoder reads for slides and bounces."""

    def __init__(self, predictor: "Predictor"):
        self._engine = _Engine(predictor, video=True)
        self._t0 = time.monotonic()
        self._mirror = False
        self._region: Region | None = None  # where the last image lay in the frame (None: it was the frame)
        self._hand: Hand | None = None  # the last hand, in frame terms
        self.history: deque[tuple[int, Position | None]] = deque(maxlen=HISTORY)

    @property
    def position(self) -> Position | None:
        """Where the hand was in the latest frame (None: no hand, or no frame yet)."""
        return self.history[-1][1] if self.history else None

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False,
                      region: Region | None = None) -> Prediction:
        """Decode JPEG/PNG bytes, optionally mirror them, and recognise (``region``: see ``predict``).
        Raises FrameError for bad images."""
        if mirror != self._mirror:  # the followed hand is on the other side of a mirrored frame
            self._engine.detector.forget()
            self._hand = None
            self._mirror = mirror
        if mirror and region is not None:
            region = region.mirrored()
        return _decoded(self.predict, data, max_pixels, formats, mirror, region=region)

    def predict(self, rgb: np.ndarray, timestamp_ms: int | None = None, region: Region | None = None) -> Prediction:
        """Recognise the next frame of the stream.

        Args:
            rgb: the frame, or with ``region`` a part of it (a crop around the hand).
            timestamp_ms: the frame's time (default: since the stream opened).
            region: where ``rgb`` lies in the whole frame. The hand is then given back, and kept
                in ``history``, in the whole frame's terms; the hand followed from the last image
                is carried into this one's coordinates, so tracking survives a moving crop.
        Raises:
            FrameError: ``rgb`` does not have ``region``'s shape.
        """
        if region is not None:
            try:
                region.check_image(rgb.shape[1], rgb.shape[0])
            except ValueError as exc:
                raise FrameError(f"region: {exc}") from None
        if region != self._region:
            followed = self._hand if region is None or self._hand is None else region.from_frame(self._hand)
            self._engine.detector.follow(followed)
            self._region = region
        if timestamp_ms is None:
            timestamp_ms = int((time.monotonic() - self._t0) * 1000)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        pred = self._engine.run(rgb, timestamp_ms, timings)
        if region is not None and pred.hand is not None:
            pred = dataclasses.replace(pred, hand=region.to_frame(pred.hand))
        timings["total"] = (time.perf_counter() - t) * 1e3
        self._hand = pred.hand
        self.history.append((timestamp_ms, position_of(pred.hand)))
        return pred

    def close(self):
        self._engine.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Predictor:
    """A loaded bundle, ready to recognise images (IMAGE mode) or to open video streams."""

    def __init__(self, path: Path, meta: dict, hand_model: Path, detect_params: DetectParams):
        self.path = path
        self.meta = meta
        self.kind: str = meta["kind"]
        self.labels: list[str] = list(meta["labels"])
        self.hand_model = hand_model
        self.hand_model_sha256 = sha256_file(hand_model)
        self.detect_params = detect_params
        # The recogniser's runtime half: the bundle's inputs made as they were in training.
        self.runtime = recognisers.get(self.kind, BundleError).Runtime.from_record(meta.get("preprocessing", {}))
        self._lock = threading.Lock()
        # Streams share these, at most one of each per core, rather than one each: a stream's own
        # state is the hand it follows. The first tracker is made now, so a bad model fails here.
        workers = min(4, os.cpu_count() or 1)
        self._detectors = Pool(lambda: HandDetector(hand_model, params=detect_params), workers)
        self._trackers = Pool(lambda: landmark_tracker(hand_model, detect_params), workers)
        with self._trackers.borrow():
            pass
        self._engine = _Engine(self, video=False)
        try:
            if self._engine.classifier.num_outputs != len(self.labels):
                raise BundleError(
                    f"{path / bundle_io.TFLITE} has {self._engine.classifier.num_outputs} outputs but "
                    f"bundle.json lists {len(self.labels)} labels"
                )
            problem = self.runtime.input_problem(self._engine.classifier.input_shape)
            if problem:
                raise BundleError(f"{path / bundle_io.TFLITE} {problem}")
        except BundleError:
            # Close now: left to the garbage collector, MediaPipe's close can wait forever on a
            # dispatcher thread that the same collection has already stopped.
            self.close()
            raise

    @classmethod
    def from_bundle(cls, path=None, *, hand_model=None, cache_dir=None) -> "Predictor":
        """Load a bundle (None: the bundled default model) and the hand model.

        Raises:
            BundleError: the bundle is missing, corrupt or of another format version.
            HandModelError: the hand model cannot be obtained or loaded.
        """
        folder = bundle_io.resolve(path)
        meta = bundle_io.load_meta(folder)
        detect = dict(meta.get("config", {}).get("detect") or {})
        if detect:
            detect.setdefault("refine", 0)  # bundles from before refinement were made without it
        try:
            params = from_dict(DetectParams, detect)
        except Exception as exc:  # noqa: BLE001 - a bundle from a newer version
            raise BundleError(f"{folder / bundle_io.META}: detect settings not understood ({exc})") from None
        model = Path(hand_model) if hand_model else ensure_hand_model(cache_dir)
        return cls(folder, meta, model, params)

    def predict(self, rgb: np.ndarray) -> Prediction:
        """Recognise the letter in one RGB uint8 image (H, W, 3). Thread-safe."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        with self._lock:
            pred = self._engine.run(rgb, None, timings)
        timings["total"] = (time.perf_counter() - t) * 1e3
        return pred

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False) -> Prediction:
        """Decode JPEG/PNG bytes (or another of ``formats``) and recognise. Raises FrameError for bad images."""
        return _decoded(self.predict, data, max_pixels, formats, mirror)

    def classify(self, hand: Hand | None, image, classifier: Classifier | None = None) -> list[tuple[str, float]]:
        """The top-3 (label, probability) for a detected hand (None: no hand), best first.

        Args:
            hand: what the detector found in the image.
            image: a callable returning the RGB image; called only by a recogniser that reads pixels.
            classifier: the LiteRT classifier to use (default: the Predictor's own, under its
                lock, so this is thread-safe like ``predict``).
        """
        x = self.runtime.inputs(hand, image)
        if x is None:
            return [(NOTHING, 1.0)]
        if classifier is None:
            with self._lock:
                probs = self._engine.classifier(x)
        else:
            probs = classifier(x)
        order = np.argsort(probs)[::-1][:TOP_K]
        return [(self.labels[i], float(probs[i])) for i in order]

    def stream(self) -> Stream:
        """A new per-connection video stream (its own hand tracker)."""
        return Stream(self)

    def info(self) -> dict:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "bundle": str(self.path),
            "hand_model_sha256": self.hand_model_sha256,
            "metrics": self.meta.get("metrics", {}),
        }

    def close(self):
        self._engine.close()
        self._detectors.close()
        self._trackers.close()
