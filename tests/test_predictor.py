"""Predictor: bundle + hand model -> Prediction, for single images and for video streams."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from conftest import make_tiny_bundle, real_images
from fingerspell import features
from fingerspell.config import DetectParams, to_dict
from fingerspell.errors import FrameError
from fingerspell.hands import Hand
from fingerspell.images import read_image
from fingerspell.labels import DEFAULT_LABELS, NOTHING
from fingerspell.predictor import HISTORY, HISTORY_MS, Prediction, Predictor, position_of
from fingerspell.recognisers.litert import Classifier

BLANK = np.full((480, 640, 3), 255, np.uint8)


@pytest.fixture(scope="module")
def predictor(tiny_bundle, hand_model):
    p = Predictor.from_bundle(tiny_bundle, hand_model=hand_model)
    yield p
    p.close()


@pytest.fixture(scope="module")
def cnn_predictor(tmp_path_factory, hand_model):
    p = Predictor.from_bundle(make_tiny_bundle(tmp_path_factory.mktemp("cnn") / "cnn", kind="cnn"), hand_model=hand_model)
    yield p
    p.close()


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


def synthetic_hand(handedness: str = "Right") -> Hand:
    rng = np.random.default_rng(3)
    lm = (rng.random((21, 3)) * [0.3, 0.4, 0.05] + [0.35, 0.3, 0]).astype(np.float32)
    return Hand(lm, lm, handedness, 0.97, (640, 480))


class FakeFinder:
    """The seam: a hand finder that 'finds' a given hand, so no real photo is needed."""

    def __init__(self, hand):
        self.hand = hand

    def find(self, rgb):
        return self.hand

    def follow(self, rgb, following, timestamp_ms=None):
        return self.hand, following


def assert_well_formed(pred: Prediction, labels) -> None:
    assert 1 <= len(pred.top) <= 3
    scores = [s for _, s in pred.top]
    assert scores == sorted(scores, reverse=True)
    assert all(label in labels for label, _ in pred.top)
    assert all(0 <= s <= 1 for s in scores)
    assert (pred.letter, pred.score) == pred.top[0]


# -- IMAGE mode -----------------------------------------------------------------------------------


def test_a_blank_image_is_nothing_with_no_hand(predictor):
    pred = predictor.predict(BLANK)
    assert pred.letter == NOTHING and pred.score == 1.0
    assert pred.hand is None
    assert pred.top == [(NOTHING, 1.0)]
    assert set(pred.timings) == {"detect", "classify", "total"}


def test_a_found_hand_is_classified_from_its_features(predictor, monkeypatch):
    hand = synthetic_hand()
    monkeypatch.setattr(predictor, "finder", FakeFinder(hand))
    pred = predictor.predict(BLANK)
    assert pred.hand is hand
    assert len(pred.top) == 3
    assert_well_formed(pred, DEFAULT_LABELS)
    # the same numbers as running the bundle's classifier on the hand's features directly
    probs = Classifier(predictor.path / "model.tflite")(features.from_hand(hand))
    assert probs.sum() == pytest.approx(1.0, abs=1e-4)
    best = int(np.argmax(probs))
    assert pred.letter == DEFAULT_LABELS[best] and pred.score == pytest.approx(float(probs[best]), abs=1e-6)


def test_a_left_hand_is_classified_as_its_mirror_image(predictor, monkeypatch):
    right = synthetic_hand("Right")
    lm = right.landmarks.copy()
    lm[:, 0] = 1 - lm[:, 0]
    left = Hand(lm, lm, "Left", 0.9, right.image_size)
    monkeypatch.setattr(predictor, "finder", FakeFinder(right))
    a = predictor.predict(BLANK)
    monkeypatch.setattr(predictor, "finder", FakeFinder(left))
    b = predictor.predict(BLANK)
    assert [k for k, _ in a.top] == [k for k, _ in b.top]
    assert a.score == pytest.approx(b.score, abs=1e-5)


def test_real_hands_get_three_sorted_guesses_and_json(predictor):
    photos = real_images("B", 2) + real_images("L", 2)
    preds = [predictor.predict(read_image(p)) for p in photos]
    found = [p for p in preds if p.hand is not None]
    assert len(found) >= 3
    for pred in found:
        assert len(pred.top) == 3
        assert_well_formed(pred, DEFAULT_LABELS)
        doc = json.loads(json.dumps(pred.to_json()))
        assert doc["letter"] == pred.letter and len(doc["top"]) == 3
        assert len(doc["hand"]["landmarks"]) == 21 and doc["hand"]["handedness"] in ("Left", "Right")


def test_predict_bytes_decodes_png_and_times_the_decode(predictor):
    pred = predictor.predict_bytes(png_bytes(BLANK))
    assert pred.letter == NOTHING
    assert pred.timings["decode"] >= 0 and pred.timings["total"] >= pred.timings["decode"]


@pytest.mark.parametrize("data, message", [
    (b"", r"the image is empty \(0 bytes\)"),
    (b"GIF89a but not really" * 3, r"not an image PIL can read \(send JPEG or PNG\)"),
    (b"\x00\x01garbage" * 50, r"not an image PIL can read \(send JPEG or PNG\)"),
])
def test_predict_bytes_refuses_what_is_not_an_image(predictor, data, message):
    with pytest.raises(FrameError, match=message):
        predictor.predict_bytes(data)


def test_predict_bytes_refuses_a_truncated_jpeg(predictor):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(buf, "JPEG")
    with pytest.raises(FrameError, match="truncated"):
        predictor.predict_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_predict_bytes_refuses_too_many_pixels_before_decoding(predictor):
    with pytest.raises(FrameError, match=r"the image is 640x480 pixels, over the limit of 10,000 pixels"):
        predictor.predict_bytes(png_bytes(BLANK), max_pixels=10_000)


def test_predict_is_safe_from_several_threads(predictor):
    # Real hands, so every call runs the detector and the classifier; blank frames would return
    # the constant "nothing" without classifying anything.
    photos = [read_image(p) for letter in "ABLVY" for p in real_images(letter, 2)]
    alone = [predictor.predict(rgb) for rgb in photos]
    assert sum(p.hand is not None for p in alone) >= 8
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(predictor.predict, photos * 2))
    for want, got in zip(alone * 2, together):
        assert got.letter == want.letter
        assert got.score == pytest.approx(want.score, abs=1e-5)


# -- VIDEO mode -----------------------------------------------------------------------------------


def test_a_stream_predicts_frame_after_frame(predictor):
    photo = read_image(real_images("L", 1)[0])
    with predictor.stream() as stream:
        preds = [stream.predict(frame, 40 * i) for i, frame in enumerate([BLANK, photo, photo, photo, BLANK])]
        preds.append(stream.predict(photo))  # without a timestamp: the stream's own clock
    assert preds[0].letter == NOTHING and preds[0].hand is None
    assert preds[-2].letter == NOTHING and preds[-2].hand is None
    for pred in preds[1:4] + preds[-1:]:
        assert pred.hand is not None
        assert len(pred.top) == 3 and pred.letter in DEFAULT_LABELS
        assert set(pred.timings) == {"detect", "classify", "total"}


def test_two_streams_track_independently(predictor):
    photo = read_image(real_images("A", 1)[0])
    with predictor.stream() as a, predictor.stream() as b:
        assert a.predict(photo, 1000).hand is not None
        # b starts its own clock: an earlier timestamp than a's last is fine
        assert b.predict(photo, 0).hand is not None
        assert a.predict(BLANK, 1040).hand is None
        assert b.predict(photo, 40).hand is not None


def test_a_stream_looks_afresh_when_mirroring_is_switched(predictor):
    buf = io.BytesIO()
    Image.open(real_images("L", 1)[0]).convert("RGB").save(buf, "JPEG")
    photo = buf.getvalue()
    with predictor.stream() as stream:
        attempts = [stream.predict_bytes(photo, mirror=m).hand.attempt for m in (False, False, True, True, False)]
    # the hand followed in a frame is on the other side of its mirror image: switching finds it again
    assert attempts == ["plain", "tracked", "plain", "tracked", "plain"]


def test_a_stream_keeps_the_last_frames_hands_and_positions_with_their_times(predictor, monkeypatch):
    hand = synthetic_hand()
    monkeypatch.setattr(predictor, "finder", FakeFinder(hand))
    with predictor.stream() as stream:
        assert stream.position is None and stream.history == []
        for i in range(HISTORY + 5):
            stream.predict(BLANK, 10 * i)
        assert len(stream.seen) == len(stream.history) == HISTORY  # the oldest frames dropped
        assert [s.t_ms for s in stream.seen] == [10 * i for i in range(5, HISTORY + 5)]
        for i in range(HISTORY + 5, HISTORY + 45):  # at 10 frames/s the last HISTORY_MS are kept
            stream.predict(BLANK, 10 * (HISTORY + 4) + 100 * (i - HISTORY - 4))
        assert stream.seen[-1].t_ms - stream.seen[0].t_ms == HISTORY_MS
    assert all(s.hand is hand for s in stream.seen)
    assert stream.history[-1] == (10 * (HISTORY + 4) + 4000, position_of(hand)) and stream.position == position_of(hand)


# -- the cnn kind ---------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(480, 640, 3), (100, 60, 3), (16, 16, 3)])
def test_a_cnn_bundle_classifies_any_image_even_without_a_hand(cnn_predictor, shape):
    rgb = np.random.default_rng(sum(shape)).integers(0, 255, shape, dtype=np.uint8)
    pred = cnn_predictor.predict(rgb)
    assert cnn_predictor.kind == "cnn"
    assert len(pred.top) == 3
    assert_well_formed(pred, DEFAULT_LABELS)


def test_a_cnn_bundle_classifies_real_photos(cnn_predictor):
    pred = cnn_predictor.predict(read_image(real_images("C", 1)[0]))
    assert len(pred.top) == 3 and pred.letter in DEFAULT_LABELS


# -- what predicting imports ----------------------------------------------------------------------


def test_predicting_imports_no_tensorflow_keras_matplotlib_or_training_code(tiny_bundle, hand_model):
    code = f"""
import json, sys
import numpy as np
from fingerspell.predictor import Predictor
p = Predictor.from_bundle({str(tiny_bundle)!r}, hand_model={str(hand_model)!r})
pred = p.predict(np.full((480, 640, 3), 255, np.uint8))
with p.stream() as s:
    s.predict(np.zeros((480, 640, 3), np.uint8), 0)
p.close()
heavy = ("tensorflow", "keras", "matplotlib", "sklearn", "fingerspell.training.train", "fingerspell.dataset",
         "fingerspell.models", "fingerspell.training.plots")
print(json.dumps({{"letter": pred.letter,
                  "loaded": sorted(m for m in sys.modules if m.split(".")[0] in heavy or m in heavy)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["letter"] == NOTHING
    assert result["loaded"] == []


@pytest.mark.parametrize("depth", [True, False])
def test_the_bundle_says_whether_the_features_use_depth(tmp_path, hand_model, depth):
    folder = make_tiny_bundle(tmp_path / "b")
    meta = json.loads((folder / "bundle.json").read_text())
    meta["preprocessing"]["depth"] = depth
    (folder / "bundle.json").write_text(json.dumps(meta))
    hand = synthetic_hand()
    with contextlib.closing(Predictor.from_bundle(folder, hand_model=hand_model)) as p:
        got = dict(p.classify(hand, None))
        want = Classifier(folder / "model.tflite")(features.from_hand(hand, depth))
    best = int(np.argmax(want))
    assert got[DEFAULT_LABELS[best]] == pytest.approx(float(want[best]), abs=1e-6)
    # and z matters to this (random) model, so the flag is really what decided
    other = Classifier(folder / "model.tflite")(features.from_hand(hand, not depth))
    assert not np.allclose(want, other)


def test_bundles_from_before_the_depth_option_use_depth(tmp_path, hand_model):
    folder = make_tiny_bundle(tmp_path / "old")
    meta = json.loads((folder / "bundle.json").read_text())
    del meta["preprocessing"]["depth"]
    (folder / "bundle.json").write_text(json.dumps(meta))
    with contextlib.closing(Predictor.from_bundle(folder, hand_model=hand_model)) as p:
        assert p.runtime.depth is True


def test_bundles_from_before_refinement_detect_without_it(tmp_path, hand_model):
    folder = make_tiny_bundle(tmp_path / "old")
    meta = json.loads((folder / "bundle.json").read_text())
    detect = to_dict(DetectParams())
    del detect["refine"]
    detect["retries"] = ["pad:0.3", "pad:1.0"]
    meta["config"] = {"detect": detect}
    (folder / "bundle.json").write_text(json.dumps(meta))
    with contextlib.closing(Predictor.from_bundle(folder, hand_model=hand_model)) as p:
        assert p.detect_params.refine == 0
        assert p.detect_params.retries == ("pad:0.3", "pad:1.0")
    meta["config"] = {}  # a bundle that records no detection settings gets today's
    (folder / "bundle.json").write_text(json.dumps(meta))
    with contextlib.closing(Predictor.from_bundle(folder, hand_model=hand_model)) as p:
        assert p.detect_params == DetectParams()
