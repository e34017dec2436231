"""A fake predictor for the server's tests: the public surface the server uses, no MediaPipe.

Images are decoded for real (``decode_image``, with its limits and errors), so the server's
handling of bad frames is what it is with the real model; no hand is ever found, and the
answer is always ``nothing``. ``delay_s`` makes each recognition take that long, as a real one
does (the skipping of stale frames needs a server busier than its client).
"""

from __future__ import annotations

import time

from fingerspell.errors import FrameError
from fingerspell.images import DECODE_FORMATS, DEFAULT_MAX_PIXELS, decode_image
from fingerspell.labels import DEFAULT_LABELS, NOTHING
from fingerspell.predictor import Prediction


class FakeStream:
    """``Predictor.stream()``'s surface: predict, predict_bytes (with a ``region``), position, close."""

    def __init__(self, owner: "FakePredictor"):
        self.owner = owner
        self.position = None  # no hand, so nowhere
        self.closed = False

    def predict(self, rgb, timestamp_ms: int | None = None, region=None) -> Prediction:
        self._check(rgb, region)
        return self.owner.predict(rgb)

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False, region=None) -> Prediction:
        self._check(decode_image(data, max_pixels, formats), region)
        return self.owner.predict_bytes(data, max_pixels, formats, mirror)

    def push(self, hand, t_ms: int, pixels=None) -> Prediction:
        """A hand found elsewhere (on-device mode): read as "nothing", like every frame here."""
        self.owner.hands.append((hand, t_ms))
        return Prediction(NOTHING, 1.0, [(NOTHING, 1.0)], hand, {"classify": 0.0, "total": 0.0})

    @staticmethod
    def _check(rgb, region) -> None:
        """A crop must have its region's shape, as ``Stream`` checks it."""
        if region is not None:
            try:
                region.check_image(rgb.shape[1], rgb.shape[0])
            except ValueError as exc:
                raise FrameError(f"region: {exc}") from None

    def close(self) -> None:
        self.closed = True
        self.owner.open_streams -= 1


class FakePredictor:
    """``Predictor``'s surface as the server uses it: predict_bytes, stream, info, close."""

    kind = "landmarks"
    labels = list(DEFAULT_LABELS)
    hand_model_sha256 = "0" * 64

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.frames = 0  # images recognised, streams' included
        self.open_streams = 0
        self.hands: list = []  # (hand, t_ms) pushed by streams in on-device mode
        self.closed = False

    def predict(self, rgb) -> Prediction:
        t = time.perf_counter()
        time.sleep(self.delay_s)
        self.frames += 1
        ms = (time.perf_counter() - t) * 1e3
        return Prediction(NOTHING, 1.0, [(NOTHING, 1.0)], None, {"detect": ms, "classify": 0.0, "total": ms})

    def predict_bytes(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                      formats: tuple[str, ...] = DECODE_FORMATS, mirror: bool = False) -> Prediction:
        t = time.perf_counter()
        rgb = decode_image(data, max_pixels, formats)
        decode_ms = (time.perf_counter() - t) * 1e3
        pred = self.predict(rgb[:, ::-1] if mirror else rgb)
        pred.timings["decode"] = decode_ms
        pred.timings["total"] += decode_ms
        return pred

    def stream(self) -> FakeStream:
        self.open_streams += 1
        return FakeStream(self)

    def info(self) -> dict:
        return {"kind": self.kind, "labels": self.labels, "bundle": "fake", "hand_model_sha256": self.hand_model_sha256,
                "metrics": {}}

    def close(self) -> None:
        self.closed = True
