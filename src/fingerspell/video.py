"""Offline decoding of a video file or a landmark recording: hands -> predictions -> the decoder -> text.

The same stream path and the same decoder as the page (``decoding.make_decoder``), on the
recording's own clock, so a recording gives the text the page would have written. A video's
frames go through ``Stream.predict`` (find or follow the hand, then push it); a landmark
recording's hands go straight to ``Stream.push``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from .config import DecoderParams
from .decoding import make_decoder
from .errors import DatasetError, FrameError
from .predictor import Predictor, Prediction, Stream
from .records import Record
from .decoding import SpellingParams


def video_frames(path: str | os.PathLike) -> Iterator[tuple[int, np.ndarray]]:
    """(t_ms, RGB frame) for each frame of any OpenCV-readable video, on the video's frame clock.

    Raises:
        FrameError: the file cannot be opened as a video, or holds no frame.
    """
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameError(f"{path}: OpenCV cannot open this file as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            # frame clock, not wall clock: decoding runs faster than real time
            yield int(frames * 1000.0 / fps), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            frames += 1
    finally:
        cap.release()
    if frames == 0:
        raise FrameError(f"{path}: no frames could be read")


def video_hands(predictor: Predictor, path: str | os.PathLike) -> Iterator[tuple[int, Prediction]]:
    """(t_ms, prediction) for each frame of a video, through one stream."""
    with predictor.stream() as stream:
        for t_ms, rgb in video_frames(path):
            yield t_ms, stream.predict(rgb, t_ms)


def _decode(steps: Iterable[tuple[int, Prediction]], stream: Stream, decoder) -> tuple[str, int]:
    frames, t_ms = 0, 0
    for t_ms, pred in steps:
        decoder.update(pred, t_ms, stream.position)
        frames += 1
    decoder.finish(t_ms)
    return decoder.text, frames


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
    decoder = make_decoder(decoding, lexicon, vocab, params)
    with predictor.stream() as stream:
        steps = ((t_ms, stream.predict(rgb, t_ms)) for t_ms, rgb in video_frames(path))
        return _decode(steps, stream, decoder)


def spell_records(predictor: Predictor, recording: list[Record], where: str = "recording",
                  params: SpellingParams | None = None, *, decoding: DecoderParams | None = None, lexicon=None,
                  vocab=()) -> tuple[str, int]:
    """Spell the letters of a landmark recording (``records.read``): each record's hand pushed at its ``t_ms``.

    Arguments and result as for ``spell_video``.

    Raises:
        DatasetError: a record has no ``t_ms``, or the times go back (a recording is in time order).
        FrameError: the model reads pixels, which a recording does not have.
    """
    last = -1
    for i, rec in enumerate(recording):
        if rec.t_ms is None or rec.t_ms < last:
            what = "has no t_ms" if rec.t_ms is None else f"is at {rec.t_ms} ms, before the record above it ({last} ms)"
            raise DatasetError(f"{where}:{i + 2}: a recording's records are timed in order, and this one {what}")
        last = rec.t_ms
    if not recording:
        raise DatasetError(f"{where}: no records to spell")
    decoder = make_decoder(decoding, lexicon, vocab, params)
    with predictor.stream() as stream:
        return _decode(((rec.t_ms, stream.push(rec.hand, rec.t_ms)) for rec in recording), stream, decoder)
