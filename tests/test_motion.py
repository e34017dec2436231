"""J and Z from motion: the window's vector, folding into the model's answer, the decoder's rules,
training into a bundle, and the bundled recogniser on held-out real recordings."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import DATA, TEMPLATE, make_tiny_bundle
from fingerspell import bundle, records
from fingerspell.config import DecoderParams
from fingerspell.decoding import Position, WordDecoder
from fingerspell.decoding.segment import Segmenter
from fingerspell.hands import Hand
from fingerspell.recognisers import Seen, motion
from fingerspell.training import motion as recipe, streams

TRESAJOBY = DATA / "landmarks_tresajoby"


def hand_at(points_px: np.ndarray, handedness: str = "Right") -> Hand:
    lm = (points_px / np.array([640.0, 480.0, 640.0])).astype(np.float32)
    return Hand(lm, lm, handedness, 1.0, (640, 480), "record")


def traced_window(fps: float, shift=(0.0, 0.0), scale: float = 1.0, handedness: str = "Right") -> list[Seen]:
    """A hand drawing a Z with its index finger over 0.6 s after 0.4 s still, at ``fps``."""
    corners = np.array([[0, 0], [120, 0], [0, 80], [120, 80]], float)
    out = []
    for t in np.arange(1000, -1, -1000 / fps)[::-1]:  # the newest frame at 1 s whatever the rate
        u = min(max((t - 400) / 600, 0.0), 1.0) * 3
        k = min(int(u), 2)
        xy = corners[k] + (corners[k + 1] - corners[k]) * (u - k)
        pts = TEMPLATE * 0.5 * scale + np.r_[300 + shift[0] + xy[0] * scale, 350 + shift[1] + xy[1] * scale, 0]
        if handedness == "Left":
            pts[:, 0] = 640 - pts[:, 0]
        out.append(Seen(int(t), hand_at(pts, handedness)))
    return out


def test_the_motion_vector_ignores_where_the_hand_is_and_how_big_it_looks():
    rt = motion.Runtime()
    a = rt.inputs(traced_window(30))
    b = rt.inputs(traced_window(30, shift=(-150, 60), scale=0.6))
    assert a.shape == (motion.size_of(motion.STEPS),)
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert np.abs(a).max() > 0.5  # and it does see the movement


def test_a_left_hand_reads_as_the_right_hand_it_mirrors():
    rt = motion.Runtime()
    np.testing.assert_allclose(rt.inputs(traced_window(30, handedness="Left")), rt.inputs(traced_window(30)),
                               atol=1e-3)


def test_the_motion_vector_is_nearly_the_same_at_10_30_and_60_frames_per_second():
    rt = motion.Runtime()
    v30 = rt.inputs(traced_window(30))
    for fps in (10, 60):
        assert np.abs(rt.inputs(traced_window(fps)) - v30).mean() < 0.05 * np.abs(v30).mean()


def test_no_hand_in_the_newest_frame_is_nothing_to_recognise():
    window = traced_window(30)
    assert motion.Runtime().inputs(window[:-1] + [Seen(window[-1].t_ms + 33, None)]) is None


def test_fusing_gives_the_motion_letter_its_share_and_scales_the_rest():
    probs = np.array([0.5, 0.3, 0.2], np.float32)  # A, I, Z
    fused = motion.fuse(probs, ["A", "I", "Z"], np.array([0.05, 0.8, 0.15]), list(motion.LABELS))
    np.testing.assert_allclose(fused, [0.5 * 0.2, 0.3 * 0.2, 0.2 * 0.2 + 0.8], atol=1e-6)
    # a letter read below FIRE_P folds in nothing
    np.testing.assert_allclose(motion.fuse(probs, ["A", "I", "Z"], np.array([0.0, 0.6, 0.4]), list(motion.LABELS)),
                               probs)
    # a model without J or Z is left as it was
    np.testing.assert_allclose(motion.fuse(probs, ["A", "I", "B"], np.array([0.0, 0.0, 1.0]), list(motion.LABELS)),
                               probs)


def test_a_movement_on_a_hand_the_model_reads_as_no_handshape_of_its_letter_is_nothing():
    window = traced_window(30)  # the index finger traces a Z: the fingertips moved
    mine = np.array([0.9, 0.05, 0.05], np.float32)  # J, Z, nothing
    labels = ["A", "E", "I", "N", "X"]

    def agree(probs, labels=labels):
        return motion.agree(window, mine, list(motion.LABELS), np.array(probs), labels)

    # the hand is read as N or E: not an I, J or Y, so no J (a Z read below SHOW_P is left: it changes nothing)
    np.testing.assert_allclose(agree([0.02, 0.3, 0.05, 0.6, 0.03]), [0.0, 0.05, 0.95], atol=1e-6)
    # read as I (J's handshape) by a tenth or more: the J stands
    np.testing.assert_allclose(agree([0.02, 0.3, 0.15, 0.5, 0.03]), mine, atol=1e-6)
    # a model without any of J's handshapes says nothing about it
    np.testing.assert_allclose(agree([0.5, 0.5], ["A", "B"]), mine)


def test_a_hand_held_still_is_neither_j_nor_z_whatever_its_shape():
    moving = traced_window(30)
    still = [Seen(s.t_ms, moving[-1].hand) for s in moving]
    assert motion.travel(moving, "Z") >= motion.MOVE_PALMS > motion.travel(still, "Z") == 0.0
    mine = np.array([0.05, 0.9, 0.05], np.float32)
    probs, labels = np.array([0.1, 0.9]), ["A", "X"]  # read as X: one of Z's handshapes
    np.testing.assert_allclose(motion.agree(moving, mine, list(motion.LABELS), probs, labels), mine)
    np.testing.assert_allclose(motion.agree(still, mine, list(motion.LABELS), probs, labels), [0.05, 0.0, 0.95],
                               atol=1e-6)


def test_targets_answer_a_j_just_after_it_ends_and_leave_its_surroundings_out():
    times = np.arange(0, 2000, 20)
    y = recipe.targets(times, [("J", 1000.0), ("hello", 1500.0)])
    j, nothing = motion.LABELS.index("J"), motion.LABELS.index("nothing")
    assert (y[(times >= 950) & (times <= 1150)] == j).all()
    assert (y[(times > 740) & (times < 940)] == -1).all() and (y[(times > 1150) & (times <= 1220)] == -1).all()
    assert y[0] == nothing and (y[times > 1220] == nothing).all()


def frames(decoder, seq):
    """Feed (top label, p, motion letter or None, ms) runs at 30 frames/s; the letters written."""
    t = 0
    for label, p, moved, ms in seq:
        for _ in range(int(ms / 33)):
            t += 33
            decoder.update(SimpleNamespace(top=[(label, p), ("nothing", 1 - p)], motion=moved), t)
    decoder.finish(t + 1000)
    return decoder.text.strip()


def test_a_j_read_from_motion_replaces_the_i_it_started_from():
    words = WordDecoder(DecoderParams(lexicon=False))
    assert frames(words, [("A", 0.95, None, 400), ("I", 0.9, None, 250), ("I", 0.6, None, 300),
                          ("J", 0.9, "J", 200), ("M", 0.9, None, 400)]) == "AJM"


def test_an_i_held_long_before_a_j_is_a_letter_of_its_own():
    words = WordDecoder(DecoderParams(lexicon=False))
    assert frames(words, [("H", 0.95, None, 400), ("I", 0.9, None, 900), ("I", 0.6, None, 300),
                          ("J", 0.9, "J", 200), ("A", 0.9, None, 400)]) == "HIJA"


def test_a_j_the_model_reads_from_still_frames_replaces_nothing():
    words = WordDecoder(DecoderParams(lexicon=False))
    assert frames(words, [("I", 0.9, None, 300), ("J", 0.9, None, 300), ("A", 0.9, None, 400)]) == "IJA"


def test_a_second_z_movement_while_z_is_held_is_a_second_z():
    words = WordDecoder(DecoderParams(lexicon=False))
    assert frames(words, [("I", 0.95, None, 400), ("Z", 0.9, "Z", 200), ("Z", 0.8, None, 300),
                          ("Z", 0.9, "Z", 200), ("A", 0.9, None, 400)]) == "IZZA"


def test_a_starting_shape_slid_as_the_z_moves_is_still_replaced_by_the_z():
    # the Z's movement first moves the pointing hand the still model reads as X: a slide of X
    words, t = WordDecoder(DecoderParams(lexicon=False)), 0
    for label, moved, x0, x1, ms in [("A", None, 0.3, 0.3, 400), ("X", None, 0.5, 0.5, 300),
                                     ("X", None, 0.5, 0.62, 150), ("Z", "Z", 0.62, 0.62, 200),
                                     ("A", None, 0.62, 0.62, 400)]:
        n = int(ms / 33)
        for k in range(n):
            t += 33
            x = x0 + (x1 - x0) * (k + 1) / n
            words.update(SimpleNamespace(top=[(label, 0.9), ("nothing", 0.1)], motion=moved), t, Position(x, 0.5, 0.2))
    words.finish(t + 1000)
    assert words.text.strip() == "AZA"


def test_a_segmenter_without_motion_cues_is_as_before():
    seg = Segmenter(DecoderParams())
    events = [e for t in range(0, 600, 33) for e in seg.push([("I", 0.9)], t, None)]
    events += [e for t in range(600, 900, 33) for e in seg.push([("J", 0.9)], t, None)]
    assert [(k, s.label, s.replaces) for k, s in events] == [("letter", "I", None), ("letter", "J", None)]


def write_arrays(root, rng):
    """A dynamic/ and static/ folder of arrays shaped like the real set: J, Z, one sign, four letters."""
    (root / "dynamic").mkdir(parents=True)
    (root / "static").mkdir()
    base = (TEMPLATE * 0.5 + [320, 360, 0]) / [640, 480, 640]
    for label, drift in (("J", (0.0, 0.004)), ("Z", (0.005, 0.0)), ("hello", (-0.004, -0.004))):
        t = np.arange(30)[None, :, None, None]
        arr = base[None, None] + np.r_[drift, 0][None, None, None] * np.maximum(t - 18, 0) * \
            (1 + 0.1 * rng.random((6, 1, 1, 1)))
        np.save(root / "dynamic" / f"{label}.npy", arr.reshape(6, 30, 63).astype(np.float32))
    for k, label in enumerate("ABIX"):
        pts = base + rng.normal(0, 0.01, (5, 21, 3)) + [0.002 * k, 0, 0]
        np.save(root / "static" / f"{label}.npy", pts.reshape(5, 63).astype(np.float32))
    return root


def test_recordings_are_gathered_one_per_recording_index(tmp_path, rng):
    recs = streams.recordings(records.read_arrays(write_arrays(tmp_path / "d", rng)))
    assert sorted({(r.label, r.index) for r in recs}) == sorted((k, i) for k in ("J", "Z", "hello") for i in range(6))
    assert all(len(r.t_ms) == 30 and r.points.shape == (30, 21, 3) for r in recs)
    held = recipe.Split(4, 6).recordings(recs, True)
    assert {r.index for r in held} == {4, 5} and len(held) == 6


@pytest.mark.slow
def test_train_motion_writes_the_base_bundle_with_a_motion_extra_that_serving_runs(tmp_path, rng, hand_model):
    from fingerspell.predictor import Predictor
    from fingerspell.training.motion_bundle import train_motion

    base = make_tiny_bundle(tmp_path / "base")
    data = write_arrays(tmp_path / "d", rng)
    figures = train_motion(data, tmp_path / "out", base, split=recipe.Split(4, 6), clips=24, epochs=1)
    meta = bundle.load_meta(tmp_path / "out")
    assert [e.kind for e in meta.extra] == ["motion"] and meta.extra[0].labels == list(motion.LABELS)
    assert set(meta.extra[0].metrics) == {"30", "15", "60"} and set(figures["held_out"]) == {"30", "15", "60"}
    assert "## Motion recogniser" in (tmp_path / "out" / bundle.CARD).read_text()
    assert json.loads((tmp_path / "out" / bundle.METRICS).read_text())["motion"]["split"]["held_out"] == [4, 5]
    predictor = Predictor.from_bundle(tmp_path / "out", hand_model=hand_model)
    try:
        assert len(predictor.beside) == 1
        with predictor.stream() as stream:
            for s in traced_window(30):
                stream.push(s.hand, s.t_ms)
            beside = predictor.beside[0]
            x = beside.runtime.inputs(list(stream.seen))
        with beside.classifiers.borrow() as classifier:
            probs = classifier(x)
        assert probs.shape == (3,) and abs(float(probs.sum()) - 1) < 1e-4
    finally:
        predictor.close()


def test_the_bundled_model_finds_held_out_j_and_z_and_not_word_signs():
    if not TRESAJOBY.is_dir():
        pytest.skip(f"the recorded landmarks are not at {TRESAJOBY} (set FINGERSPELL_DATA to ../shared/data)")
    from fingerspell.recognisers.litert import Classifier
    from fingerspell.training.motion_bundle import read

    meta = bundle.load_meta(None)
    entry = next(e for e in meta.extra if e.kind == "motion")
    clf = Classifier(bundle.DEFAULT_BUNDLE / entry.file)
    recs, statics = read(TRESAJOBY)
    split = recipe.Split()
    held = [r for r in split.recordings(recs, True) if r.index % 2 == 0]  # half of them: a quick check
    fig = recipe.scored(np.random.default_rng(5), split.statics(statics, True), held,
                        lambda x: np.stack([clf(row) for row in x]), 30)
    assert fig["J"]["recall"] >= 0.8 and fig["Z"]["recall"] >= 0.8
    assert fig["signs"]["rate"] <= 0.2 and fig["transitions"]["per_200"] <= 4


def test_skipping_the_classifier_where_nothing_it_reads_could_stand_changes_no_answer(monkeypatch):
    # may_fire skips the motion classifier on frames where agree() would overrule whatever it
    # read: every answer (letters, scores, motion, path) must be the one it would have been.
    if not TRESAJOBY.is_dir():
        pytest.skip(f"the recorded landmarks are not at {TRESAJOBY} (set FINGERSPELL_DATA to ../shared/data)")
    from fingerspell.predictor import Predictor
    from fingerspell.training.motion_bundle import read

    recs, _ = read(TRESAJOBY)
    held = [r for r in recipe.Split().recordings(recs, True) if r.index % 4 == 0]  # J, Z and word signs
    hands, t = [], 0
    for rec in held:
        for ms, pts in zip(rec.t_ms - rec.t_ms[0], rec.points):
            hands.append((hand_at(pts), int(t + ms)))
        t += int(rec.t_ms[-1] - rec.t_ms[0]) + 700
    predictor = Predictor.from_bundle(None)
    answered = []
    skipped = []
    real = motion.may_fire
    for may_fire in (lambda *a: skipped.append(not real(*a)) or real(*a), lambda *a: True):
        monkeypatch.setattr(motion, "may_fire", may_fire)
        with predictor.stream() as stream:
            answered.append([(p.letter, p.score, p.top, p.motion, p.path)
                             for p in (stream.push(h, ms) for h, ms in hands)])
    predictor.close()
    assert answered[0] == answered[1]
    assert {a[3] for a in answered[0]} >= {"J", "Z"}  # the recordings did fire J and Z
    assert sum(skipped) > len(skipped) / 2  # and most frames skipped the classifier
