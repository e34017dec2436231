"""Offline decoding of a video file: frames -> predictions -> spelled text."""

from __future__ import annotations

import os

from .errors import FrameError
from .predictor import Predictor
from .spelling import SpellingDecoder, SpellingParams


def spell_video(predictor: Predictor, path: str | os.PathLike, params: SpellingParams | None = None) -> tuple[str, int]:
    """Spell the letters signed in any OpenCV-readable video.

    Returns:
        (text, number of frames read).
    Raises:
        FrameError: the file cannot be opened as a video.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameError(f"{path}: OpenCV cannot open this file as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    decoder = SpellingDecoder(params or SpellingParams())
    frames = 0
    with predictor.stream() as stream:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t_ms = frames * 1000.0 / fps  # frame clock, not wall clock: decoding runs faster than real time
            pred = stream.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(t_ms))
            decoder.update(pred.letter if pred.hand is not None else None, pred.score, t_ms)
            frames += 1
    cap.release()
    if frames == 0:
        raise FrameError(f"{path}: no frames could be read")
    return decoder.text, frames
