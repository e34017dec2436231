"""Predictor.from_bundle(path).predict(rgb) -> Prediction. Shared by the CLI and the server.

Never imports TensorFlow, Keras, matplotlib or the training code: the classifier runs from the
bundle's LiteRT export.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from . import bundle as bundle_io
from . import recognisers
from .config import DetectParams
from .decoding.base import Position
from .errors import BundleError, FrameError
from .hands import Following, Hand, HandFinder, Pool, Region, Workers, ensure_hand_model, sha256_file
from .images import DECODE_FORMATS, DEFAULT_MAX_PIXELS, decode_image
from .labels import NOTHING
from .recognisers import Pixels, Seen
from .recognisers.beside import Beside, load as load_beside
from .recognisers.litert import Classifier, check_export
from .teach import Personal, load_personal

TOP_K = 3
HISTORY_MS = 1500  # how far back a stream keeps its frames: a slide, and a J or Z with what came before it
HISTORY = 120  # and at most this many frames (1.5 s of a 60 frames/s camera, with room for uneven frames)


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
    path: list | None = None  # while a J or Z is read from motion: the fingertip's path, [x, y] fractions of the frame
    motion: str | None = None  # the letter the motion recogniser reads at FIRE_P or more (a decoder's cue), or None

    def to_json(self, hand: bool = True) -> dict:
        """The prediction as JSON; ``hand=False`` leaves the hand out (its sender has it). A J or
        Z's fingertip path goes with it either way (the page draws it)."""
        out = {"letter": self.letter, "confidence": round(float(self.score), 4),
               "top": [{"label": k, "score": round(float(v), 4)} for k, v in self.top]}
        if hand:
            out["hand"] = self.hand.to_json() if self.hand is not None else None
        out["timings_ms"] = {k: round(v, 2) for k, v in self.timings.items()}
        if self.path:
            out["path"] = [[round(float(x), 4), round(float(y), 4)] for x, y in self.path]
        return out


def decode_frame(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, formats: tuple[str, ...] = DECODE_FORMATS,
                 mirror: bool = False) -> np.ndarray:
    """The decode stage: JPEG/PNG/... bytes -> an RGB array, mirrored where asked. Raises FrameError for bad images."""
    rgb = decode_image(data, max_pixels, formats)
    return rgb[:, ::-1] if mirror else rgb


def _timed(stage, *args):
    """(what ``stage(*args)`` returns, the milliseconds it took)."""
    t = time.perf_counter()
    value = stage(*args)
    return value, (time.perf_counter() - t) * 1e3


def _assemble(hand: Hand | None, top: list[tuple[str, float]], started: float, notes: dict | None = None,
              **stage_ms: float | None) -> Prediction:
    """The Prediction: the hand, its top labels, each stage's milliseconds (None: the stage did not
    run) and the total since ``started``."""
    timings = {k: v for k, v in stage_ms.items() if v is not None}
    timings["total"] = (time.perf_counter() - started) * 1e3
    notes = notes or {}
    return Prediction(top[0][0], top[0][1], top, hand, timings, notes.get("path"), notes.get("motion"))


class Stream:
    """Per-connection state: the hand it follows (``Following``), and a short history of what it
    saw (``seen``: one ``Seen`` per frame, newest last, the last ``HISTORY_MS`` and ``HISTORY``
    frames at most), which the recognisers read as their window (the motion recogniser by time,
    at any frame rate) and a decoder reads for slides and bounces.

    Two ways in, one way through: ``push(hand, t_ms)`` takes a hand found elsewhere (in the
    browser, in a recording); ``predict(frame)`` finds or follows the hand in a frame, then
    pushes it. Its frames are recognised by its Predictor's shared workers. Not thread-safe: one
    per connection.
    """

    def __init__(self, predictor: "Predictor"):
        self.predictor = predictor
        self.following = Following()
        self.seen: deque[Seen] = deque(maxlen=HISTORY)
        self._t0 = time.monotonic()
        self._mirror = False
        self._region: Region | None = None  # where the last image lay in the frame (None: it was the frame)
        # The personal model this stream reads with (a profile's, set by the server), None for the bare
        # model; a personal bundle's own to start with.
        self.personal: Personal | None = predictor.personal

    @property
    def history(self) -> list[tuple[int, Position | None]]:
        """(t_ms, Position or None) per recent frame, newest last."""
        return [(s.t_ms, s.position) for s in self.seen]

    @property
    def position(self) -> Position | None:
        """Where the hand was in the latest frame (None: no hand, or no frame yet)."""
        return self.seen[-1].position if self.seen else None

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False,
                      region: Region | None = None) -> Prediction:
        """Decode JPEG/PNG bytes, optionally mirror them, and recognise (``region``: see ``predict``).
        Raises FrameError for bad images."""
        if mirror != self._mirror:  # the hand followed, or last seen, is on the other side of a mirrored frame
            self.following = Following()
            self._mirror = mirror
        if mirror and region is not None:
            region = region.mirrored()
        started = time.perf_counter()
        rgb, decode_ms = _timed(decode_frame, data, max_pixels, formats, mirror)
        return self._frame(rgb, None, started, decode_ms, region)

    def predict(self, rgb: np.ndarray, timestamp_ms: int | None = None, region: Region | None = None) -> Prediction:
        """Recognise the next frame of the stream.

        Args:
            rgb: the frame (RGB uint8, (H, W, 3)), or with ``region`` a part of it (a crop around the hand).
            timestamp_ms: the frame's time (None: the stream's own clock).
            region: where ``rgb`` lies in the whole frame. The hand is then given back, and kept
                in ``seen``, in the whole frame's terms; the hand followed from the last image
                is carried into this one's coordinates, so tracking survives a moving crop.
        Raises:
            FrameError: ``rgb`` does not have ``region``'s shape.
        """
        return self._frame(rgb, timestamp_ms, time.perf_counter(), None, region)

    def _frame(self, rgb: np.ndarray, timestamp_ms: int | None, started: float,
               decode_ms: float | None = None, region: Region | None = None) -> Prediction:
        if region is not None:
            try:
                region.check_image(rgb.shape[1], rgb.shape[0])
            except ValueError as exc:
                raise FrameError(f"region: {exc}") from None
        if region != self._region:
            # The hand followed and the one last seen are in the last image's coordinates: carry
            # them, through the whole frame's, into this image's.
            def carry(hand: Hand | None) -> Hand | None:
                if hand is None:
                    return None
                framed = hand if self._region is None else self._region.to_frame(hand)
                return framed if region is None else region.from_frame(framed)

            self.following = dataclasses.replace(self.following, hand=carry(self.following.hand),
                                                 last=carry(self.following.last))
            self._region = region
        if timestamp_ms is None:
            timestamp_ms = int((time.monotonic() - self._t0) * 1000)

        (found, self.following), detect_ms = _timed(self.predictor.finder.follow, rgb, self.following, timestamp_ms)
        hand = region.to_frame(found) if region is not None and found is not None else found
        return self._push(hand, timestamp_ms, lambda: (rgb, found), started, decode=decode_ms, detect=detect_ms)

    def push(self, hand: Hand | None, t_ms: int, pixels: Pixels | None = None) -> Prediction:
        """Record what was seen at ``t_ms`` and recognise the window of recent frames.

        Args:
            hand: the hand seen (landmarks as fractions of the frame), or None for a frame
                without one: found here, in the browser, or read from a recording.
            t_ms: the frame's time in milliseconds. A time before the last one starts a new
                clip: the history is forgotten (as the hand finder does).
            pixels: the frame's image and the hand in its coordinates, for a recogniser that reads
                pixels (the cnn kind); None where there are none.
        Raises:
            FrameError: the model reads pixels and there are none.
        """
        return self._push(hand, int(t_ms), pixels, time.perf_counter())

    def _push(self, hand: Hand | None, t_ms: int, pixels: Pixels | None, started: float,
              **stage_ms: float | None) -> Prediction:
        if self.seen and t_ms < self.seen[-1].t_ms:
            self.seen.clear()
        self.seen.append(Seen(t_ms, hand, position_of(hand)))
        while t_ms - self.seen[0].t_ms > HISTORY_MS:
            self.seen.popleft()
        notes: dict = {}
        top, classify_ms = _timed(self.predictor.recognise, self.seen, pixels, self.personal, notes)
        return _assemble(hand, top, started, notes, **stage_ms, classify=classify_ms)

    def close(self):
        """Forget the followed hand. The networks belong to the Predictor, which closes them."""
        self.following = Following()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Predictor:
    """A loaded bundle, ready to recognise images (IMAGE mode) or to open video streams."""

    def __init__(self, path: Path, meta: bundle_io.BundleMeta, hand_model: Path, detect_params: DetectParams):
        self.path = path
        self.meta = meta
        self.kind: str = meta.kind
        self.labels: list[str] = list(meta.labels)  # the model's outputs; a personal model's labels follow them
        self.hand_model = hand_model
        self.hand_model_sha256 = sha256_file(hand_model)
        self.detect_params = detect_params
        # The recogniser's runtime half: the bundle's inputs made as they were in training.
        self.runtime = recognisers.get(self.kind, BundleError).Runtime.from_record(meta.preprocessing)
        # One pool of workers for predict() and every stream, at most one of each kind per core
        # (the work is CPU-bound): a stream's own state is only the hand it follows and its history.
        size = min(4, os.cpu_count() or 1)
        # The classifier first: a bad export then raises before there is a MediaPipe graph to close.
        self.classifiers = Pool(lambda: Classifier(path / bundle_io.TFLITE), size)
        with self.classifiers.borrow() as classifier:
            self._check(classifier)
            self.inputs = classifier.input_shape[0] if len(classifier.input_shape) == 1 else None
        self.model_sha256 = sha256_file(path / bundle_io.TFLITE)  # a personal head must be taught over this export
        # A personal bundle's head over the model (teach/); None for a bundle of its own
        self.personal: Personal | None = self.load_personal(path)
        # Recognisers carried beside the model (bundle.json "extra") that this fingerspell runs: J and Z from motion
        self.beside: list[Beside] = load_beside(path, meta.extra, size)
        self.workers = Workers(hand_model, detect_params, size)
        # The first of each is made now, so a bad hand model fails here.
        self.workers.warm()
        self.finder = HandFinder(self.workers, detect_params)

    def _check(self, classifier: Classifier) -> None:
        check_export(classifier, len(self.labels), self.runtime, self.path / bundle_io.TFLITE)

    def load_personal(self, folder: Path) -> Personal | None:
        """The personal head of the bundle at ``folder`` if it was taught over this model, else
        None where it has none. Raises BundleError for one taught over another model."""
        return load_personal(folder, self.labels, self.inputs, self.model_sha256)

    @classmethod
    def from_bundle(cls, path=None, *, hand_model=None, cache_dir=None) -> "Predictor":
        """Load a bundle (None: the bundled default model) and the hand model.

        Raises:
            BundleError: the bundle is missing, corrupt or of another format version.
            HandModelError: the hand model cannot be obtained or loaded.
        """
        folder = bundle_io.resolve(path)
        meta = bundle_io.load_meta(folder)  # today's schema, validated: detection settings included
        model = Path(hand_model) if hand_model else ensure_hand_model(cache_dir)
        return cls(folder, meta, model, meta.detect)

    def predict(self, rgb: np.ndarray) -> Prediction:
        """Recognise the letter in one RGB uint8 image (H, W, 3). Thread-safe."""
        return self._image(rgb, time.perf_counter())

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False) -> Prediction:
        """Decode JPEG/PNG bytes (or another of ``formats``) and recognise. Raises FrameError for bad images."""
        started = time.perf_counter()
        rgb, decode_ms = _timed(decode_frame, data, max_pixels, formats, mirror)
        return self._image(rgb, started, decode_ms)

    def _image(self, rgb: np.ndarray, started: float, decode_ms: float | None = None) -> Prediction:
        hand, detect_ms = _timed(self.finder.find, rgb)
        top, classify_ms = _timed(self.classify, hand, lambda: rgb)
        return _assemble(hand, top, started, decode=decode_ms, detect=detect_ms, classify=classify_ms)

    @property
    def all_labels(self) -> list[str]:
        """What this predictor answers: the model's labels, and its personal model's new ones."""
        return self.personal.labels if self.personal is not None else self.labels

    def classify(self, hand: Hand | None, image=None) -> list[tuple[str, float]]:
        """The top-3 (label, probability) for one still image's hand (None: no hand), best first. Thread-safe.

        Args:
            hand: what the detector found in the image.
            image: a callable returning the RGB image; called only by a recogniser that reads pixels.
        """
        return self.recognise([Seen(0, hand)], None if image is None else lambda: (image(), hand), self.personal)

    def recognise(self, window: Sequence[Seen], pixels: Pixels | None = None,
                  personal: Personal | None = None, notes: dict | None = None) -> list[tuple[str, float]]:
        """The top-3 (label, probability) for the newest frame of ``window``, best first. Thread-safe.

        Args:
            window: a stream's recent frames, newest last (the recogniser reads as many as it needs).
            pixels: the newest frame's image and hand, for a recogniser that reads pixels.
            personal: a personal head over this model (a stream's), or None for the model alone.
            notes: where given, what the recognisers beside the model saw is noted in it ("motion":
                the letter read from motion, "path": its fingertip's path).
        """
        x = self.runtime.inputs(window, pixels)
        if x is None:
            return [(NOTHING, 1.0)]
        with self.classifiers.borrow() as classifier:
            probs = classifier(x)
        labels = self.labels
        if personal is not None:
            probs, labels = personal.adjust(x, probs), personal.labels
        for beside in self.beside:
            probs = beside.fuse(window, probs, labels, notes)
        order = np.argsort(probs)[::-1][:TOP_K]
        return [(labels[i], float(probs[i])) for i in order]

    def stream(self) -> Stream:
        """A new per-connection video stream (its own hand tracker)."""
        return Stream(self)

    def info(self) -> dict:
        return {
            "kind": self.kind,
            "labels": self.labels,
            "bundle": str(self.path),
            "hand_model_sha256": self.hand_model_sha256,
            "metrics": self.meta.metrics,
        }

    def close(self):
        self.classifiers.close()
        for beside in self.beside:
            beside.classifiers.close()
        self.workers.close()

