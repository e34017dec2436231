"""`fingerspell predict video.mp4`: frames -> predictions -> spelled text, offline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROBOFLOW, need_data
from fingerspell.bundle import DEFAULT_BUNDLE

FPS = 10


def _frames_of(path, size=(640, 480)) -> np.ndarray:
    img = Image.open(path).convert("RGB")
    img.thumbnail(size)
    canvas = Image.new("RGB", size, (40, 40, 40))
    canvas.paste(img, ((size[0] - img.width) // 2, (size[1] - img.height) // 2))
    return np.asarray(canvas)


def _write_video(path, frames) -> None:
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (640, 480))
    assert writer.isOpened(), "OpenCV could not open an mp4 writer"
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def _confident_photo(predictor, letter):
    """A real photo of ``letter`` that the model reads correctly: this tests decoding, not accuracy."""
    for path in sorted((ROBOFLOW / letter).glob("*.jpg")):
        pred = predictor.predict(_frames_of(path))
        if pred.letter == letter and pred.score > 0.8:
            return path
    pytest.skip(f"no photo of {letter} that the default model reads with confidence")


@pytest.mark.slow
def test_predict_on_a_video_prints_the_word_signed_in_it(tmp_path):
    need_data(ROBOFLOW)
    if not (DEFAULT_BUNDLE / "bundle.json").is_file():
        pytest.skip("the bundled default model is absent")
    from fingerspell.predictor import Predictor

    predictor = Predictor.from_bundle()
    blank = np.full((480, 640, 3), 40, np.uint8)
    frames = []
    for letter in "CAB":
        frames += [_frames_of(_confident_photo(predictor, letter))] * FPS  # held for 1 s
        frames += [blank] * 3  # hand gone for 0.3 s between letters
    video = tmp_path / "cab.mp4"
    _write_video(video, frames)
    out = subprocess.run([sys.executable, "-m", "fingerspell", "predict", "--json", str(video)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    (result,) = json.loads(out.stdout)
    assert result["frames"] == len(frames)
    assert result["text"].strip() == "CAB"


def test_predict_on_a_file_that_is_not_a_video_says_so(tmp_path, tiny_bundle):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    out = subprocess.run([sys.executable, "-m", "fingerspell", "predict", "--model", str(tiny_bundle), str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "cannot open this file as a video" in out.stderr
    assert "Traceback" not in out.stderr


class _ColourStream:
    """A stand-in for ``Predictor.stream()``: a frame's colour says which letter it shows."""

    def __init__(self, colours):
        self.colours = colours
        self.position = None

    def predict(self, rgb, timestamp_ms=None):
        from fingerspell.predictor import Prediction

        colour = tuple(int(round(v / 40.0)) for v in rgb[240, 320])
        letter = self.colours.get(colour, "nothing")
        top = [(letter, 0.9), ("Q", 0.07)] if letter != "nothing" else [("nothing", 1.0)]
        return Prediction(top[0][0], top[0][1], top, None, {})

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_video_is_spelled_by_the_same_decoder_as_the_page_and_its_last_word_is_ended(tmp_path):
    from types import SimpleNamespace

    from fingerspell.config import DecoderParams
    from fingerspell.decoding import WordDecoder
    from fingerspell.video import spell_video

    palette = {"C": (200, 40, 40), "A": (40, 200, 40), "T": (40, 40, 200)}
    colours = {tuple(int(round(v / 40.0)) for v in rgb): k for k, rgb in palette.items()}
    frames = [np.full((480, 640, 3), palette[c], np.uint8) for c in "CAT" for _ in range(6)]  # 0.6 s each
    video = tmp_path / "cat.mp4"
    _write_video(video, frames)
    stream = _ColourStream(colours)
    predictor = SimpleNamespace(stream=lambda: stream)

    text, n = spell_video(predictor, video, decoding=DecoderParams(), vocab=["CAT"])
    assert (text, n) == ("CAT ", len(frames))  # no pause at the end: the video's end ends the word
    page = WordDecoder(DecoderParams(), None, vocab=["CAT"])
    for i, rgb in enumerate(frames):
        page.update(stream.predict(rgb), i * 1000 / FPS, None)
    page.finish(len(frames) * 1000 / FPS)
    assert page.text == text
    old, _ = spell_video(predictor, video, decoding=DecoderParams(kind="letters"))
    assert old == "CAT"  # the old rules: no word break without a pause
