"""One chain of values: frame -> hand -> window of hands -> letters -> text, entered at any point.

A stream fed frames and a stream fed the same hands by ``push`` agree letter for letter; every
recogniser kind has the declared surface; a model refits from plain arrays without images.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from _live import blank_frame, letterbox
from conftest import ROBOFLOW, TEMPLATE, make_tiny_bundle, need_data
from fingerspell import recognisers
from fingerspell.bundle import DEFAULT_BUNDLE
from fingerspell.config import DecoderParams, LandmarkParams, TrainParams
from fingerspell.decoding import english, make_decoder
from fingerspell.errors import FrameError
from fingerspell.hands import Hand
from fingerspell.predictor import HISTORY, Predictor
from fingerspell.recognisers.base import Samples, check_kind

FPS = 15


def _clip(word: str) -> list[np.ndarray]:
    """Frames of ``word`` signed with real photos: each letter held, a wall between, then the hand down."""
    need_data(ROBOFLOW)
    wall = blank_frame()
    frames = []
    for letter in word:
        photo = sorted((ROBOFLOW / letter).glob("*.jpg"))[1]
        frames += [letterbox(photo)] * 8 + [wall] * 3
    return frames + [wall] * 20


def _spell(stream_step, frames, lexicon):
    decoder = make_decoder(DecoderParams(), lexicon)
    preds = []
    for i, frame in enumerate(frames):
        t_ms = i * 1000 // FPS
        pred, position = stream_step(frame, t_ms)
        decoder.update(pred, t_ms, position)
        preds.append(pred)
    decoder.finish(len(frames) * 1000 // FPS)
    return preds, decoder.text


@pytest.mark.slow
def test_a_stream_fed_frames_and_one_fed_the_hands_it_found_give_the_same_letters_and_text(hand_model):
    frames = _clip("CAB")
    lexicon = english()
    with contextlib.closing(Predictor.from_bundle(DEFAULT_BUNDLE, hand_model=hand_model)) as predictor:
        with predictor.stream() as seeing, predictor.stream() as told:
            def see(frame, t_ms):
                return seeing.predict(frame, t_ms), seeing.position

            by_frames, text = _spell(see, frames, lexicon)
            hands = iter([p.hand for p in by_frames])

            def tell(frame, t_ms):
                return told.push(next(hands), t_ms), told.position

            by_hands, told_text = _spell(tell, frames, lexicon)
    assert sum(p.hand is not None for p in by_frames) >= 12, "the clip's hands should mostly be found"
    assert [p.top for p in by_hands] == [p.top for p in by_frames]
    assert [(p.letter, p.score) for p in by_hands] == [(p.letter, p.score) for p in by_frames]
    print(f"\nspelled {text!r} both ways")
    assert told_text == text and text.strip(), text
    assert [s.hand is None for s in told.seen] == [s.hand is None for s in seeing.seen]


def _hand(shift=0.0) -> Hand:
    lm = ((TEMPLATE + [320 + shift, 400, 0]) / [640, 480, 640]).astype(np.float32)
    return Hand(lm, np.zeros((21, 3), np.float32), "Right", 1.0, (640, 480))


def test_push_keeps_a_window_of_recent_hands_and_a_time_going_back_starts_a_new_clip(tiny_bundle, hand_model):
    with contextlib.closing(Predictor.from_bundle(tiny_bundle, hand_model=hand_model)) as predictor:
        stream = predictor.stream()
        for i in range(HISTORY + 5):
            pred = stream.push(_hand() if i % 2 else None, 10 * i)
            assert (pred.hand is None) == (i % 2 == 0)
            assert (pred.letter == "nothing") == (i % 2 == 0)
        assert len(stream.seen) == HISTORY and stream.seen[-1].t_ms == 10 * (HISTORY + 4)
        assert stream.push(_hand(), 50).hand is not None
        assert [s.t_ms for s in stream.seen] == [50]
        # a hand pushed gives what the same hand classified alone gives
        assert stream.push(_hand(10), 60).top == predictor.classify(_hand(10))


def test_a_model_that_reads_pixels_refuses_hands_without_them(tmp_path, hand_model):
    cnn = make_tiny_bundle(tmp_path / "cnn", kind="cnn")
    with contextlib.closing(Predictor.from_bundle(cnn, hand_model=hand_model)) as predictor:
        with pytest.raises(FrameError, match="send frames, not landmarks"):
            predictor.stream().push(_hand(), 0)
        # with the frame, it reads it
        frame = blank_frame()
        assert predictor.stream().predict(frame, 0).top


@pytest.mark.parametrize("kind", list(recognisers.KINDS))
def test_every_registered_kind_has_the_declared_surface(kind):
    module = recognisers.get(kind)
    check_kind(module)
    runtime = module.Runtime.from_record(module.preprocessing(TrainParams()))
    assert isinstance(runtime, recognisers.Runtime) and runtime.frames >= 1


def test_samples_refuse_arrays_that_do_not_line_up():
    with pytest.raises(ValueError, match=r"points must be \(N, 21, 3\)"):
        Samples(np.zeros((3, 20, 3)), np.zeros(3, bool), np.zeros(3, int))
    with pytest.raises(ValueError, match="y has 2 entries for 3 samples"):
        Samples(np.zeros((3, 21, 3)), np.zeros(3, bool), np.zeros(2, int))
    with pytest.raises(ValueError, match="finite"):
        Samples(np.full((1, 21, 3), np.nan), np.zeros(1, bool), np.zeros(1, int))


def _synthetic(n_per_class: int, classes: int, seed: int) -> Samples:
    """Hands of ``classes`` shapes (each its own finger offsets), ``n_per_class`` noisy copies each."""
    rng = np.random.default_rng(seed)
    shapes = np.random.default_rng(0).normal(0, 25, (classes, 21, 3))
    points = np.concatenate([TEMPLATE + shapes[c] + rng.normal(0, 3, (n_per_class, 21, 3)) + [320, 400, 0]
                             for c in range(classes)]).astype(np.float32)
    y = np.repeat(np.arange(classes), n_per_class)
    return Samples(points, np.zeros(len(y), bool), y)


@pytest.mark.slow
def test_the_landmarks_kind_refits_from_a_few_hundred_plain_samples():
    from fingerspell.recognisers import landmarks

    train, held_out = _synthetic(40, 6, seed=1), _synthetic(20, 6, seed=2)
    params = TrainParams(landmarks=LandmarkParams(members=1, epochs=20, augment_copies=1))
    model, history = landmarks.fit_arrays([train], held_out, 6, params)
    probs = model.predict(landmarks.features_of(held_out, params.landmarks), verbose=0)
    assert np.mean(probs.argmax(1) == held_out.y) >= 0.9
    assert len(history["loss"]) == 20 and "val_accuracy" in history
    with pytest.raises(Exception, match="no hands to train on"):
        landmarks.fit_arrays([_synthetic(0, 6, seed=3)], None, 6, params)
