"""Offline decoding of a video file: frames -> predictions -> the decoder -> text.

The same stream path and the same decoder as the page (``decoding.make_decoder``), on the
video's own frame clock, so a recording gives the text the page would have written.
"""

from __future__ import annotations

import os

from .config import DecoderParams
from .decoding import make_decoder
from .errors import FrameError
from .predictor import Predictor
from .spelling import SpellingParams


def spell_video(predictor: Predictor, path: str | os.PathLike, params: SpellingParams | None = None, *,
                decoding: DecoderParams | None = None, lexicon=None, vocab=()) -> tuple[str, int]:
    """Spell the letters signed in any OpenCV-readable video.

    Args:
        predictor: the loaded model.
        path: the video file.
        params: the letters decoder's settings (used where ``decoding`` names the letters decoder).
        decoding: which decoder and its settings (default: the words decoder).
        lexicon: the words decoder's word list (None: letters as signed, unless ``vocab``).
        vocab: user words (names, places).

    Returns:
        (text, number of frames read). The word being signed when the video ends is ended there.
    Raises:
        FrameError: the file cannot be opened as a video.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameError(f"{path}: OpenCV cannot open this file as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    decoder = make_decoder(decoding, lexicon, vocab, params)
    frames = 0
    t_ms = 0.0
    with predictor.stream() as stream:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            t_ms = frames * 1000.0 / fps  # frame clock, not wall clock: decoding runs faster than real time
            pred = stream.predict(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), int(t_ms))
            decoder.update(pred, t_ms, stream.position)
            frames += 1
    cap.release()
    if frames == 0:
        raise FrameError(f"{path}: no frames could be read")
    decoder.finish(t_ms)
    return decoder.text, frames
