"""A hand far from the camera: photos placed on webcam frames, far copies for training, the
retries that find small hands (zoom, scan), and the cache that lets a longer retry ladder reuse a
shorter one's hands."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from conftest import real_images
from fingerspell import extract as ex
from fingerspell.config import DetectParams
from fingerspell.extract.far import FRAME, SURROUND, degrade, far_copy, place_on_frame
from fingerspell.hands.model import sha256_file
from fingerspell.hands import HandDetector, Workers, parse_retry
from fingerspell.hands.finder import Landmarker, landmark_tracker, zoom_tiles
from fingerspell.images import hand_box, read_image

OLD_LADDER = DetectParams().retries[:-2]  # the ladder before zoom and scan


def test_a_photo_is_placed_with_its_hand_box_at_the_asked_size_wholly_inside_the_frame():
    rgb = np.zeros((400, 300, 3), np.uint8)
    rgb[100:200, 50:250] = 255  # the "hand": 200 x 100 px
    for side, where in [(144, (0.0, 0.0)), (80, (1.0, 1.0)), (300, (0.5, 0.5))]:
        frame = place_on_frame(rgb, (50, 100, 250, 200), side, where)
        assert frame.shape == (480, 640, 3)
        ys, xs = np.nonzero(frame[..., 0] > 200)
        assert abs((xs.max() - xs.min() + 1) - side) <= 2 and abs((ys.max() - ys.min() + 1) - side / 2) <= 2
        assert xs.min() >= 0 and xs.max() <= 639 and ys.min() >= 0 and ys.max() <= 479
    left = place_on_frame(rgb, (50, 100, 250, 200), 144, (0.0, 0.5))
    right = place_on_frame(rgb, (50, 100, 250, 200), 144, (1.0, 0.5))
    assert np.nonzero(left[..., 0] > 200)[1].min() <= 1 and np.nonzero(right[..., 0] > 200)[1].max() >= 638
    assert (left[0, 0] == SURROUND).all()  # grey where the photo does not reach


def test_webcam_conditions_change_the_frame_as_named_and_repeat_with_the_seed(rng):
    frame = rng.integers(60, 200, (120, 160, 3), dtype=np.uint8)
    assert np.array_equal(degrade(frame), frame)
    dim = degrade(frame, dim=0.5)
    assert abs(dim.mean() - frame.mean() / 2) < 1
    blurred = degrade(frame, blur=1.2)
    assert np.abs(np.diff(blurred.astype(int), axis=1)).mean() < 0.5 * np.abs(np.diff(frame.astype(int), axis=1)).mean()
    noisy = degrade(frame, noise=8, seed=3)
    assert 6 < (noisy.astype(float) - frame).std() < 10
    assert np.array_equal(noisy, degrade(frame, noise=8, seed=3))
    assert not np.array_equal(noisy, degrade(frame, noise=8, seed=4))
    jpeg = degrade(frame, jpeg=60)
    assert jpeg.shape == frame.shape and 0 < np.abs(jpeg.astype(int) - frame).mean() < 40


def test_far_copies_are_seeded_per_photo_and_copy_within_the_asked_sizes():
    a = [far_copy("0123456789abcdef", k, (80, 216)) for k in range(50)]
    assert a == [far_copy("0123456789abcdef", k, (80, 216)) for k in range(50)]
    assert a[0] != far_copy("fedcba9876543210", 0, (80, 216))
    assert all(80 <= c["side"] <= 216 and 60 <= c["jpeg"] <= 90 and 0.4 <= c["dim"] <= 1 for c in a)
    assert len({round(c["side"]) for c in a}) > 20  # sizes spread over the range, not one value


@pytest.mark.parametrize("frac", [0.5, 0.6, 0.3])
def test_zoom_tiles_cover_the_frame_with_half_tile_overlap_centre_first(frac):
    for square in (False, True):
        tiles = zoom_tiles(640, 480, frac, square)
        covered = np.zeros((480, 640), bool)
        for x0, y0, x1, y1 in tiles:
            assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
            covered[y0:y1, x0:x1] = True
        assert covered.all()
        tw, th = tiles[0][2] - tiles[0][0], tiles[0][3] - tiles[0][1]
        if square:
            assert tw == th == round(480 * frac)
        # any box up to half a tile across lies wholly inside some tile
        for bx, by in [(0, 0), (640 - tw // 2, 480 - th // 2), (311, 97)]:
            box = (bx, by, bx + tw // 2, by + th // 2)
            assert any(t[0] <= box[0] and t[1] <= box[1] and t[2] >= box[2] and t[3] >= box[3] for t in tiles)
        cx, cy = (tiles[0][0] + tiles[0][2]) / 2, (tiles[0][1] + tiles[0][3]) / 2
        assert abs(cx - 320) <= tw / 4 and abs(cy - 240) <= th / 4


@pytest.mark.parametrize("spec", ["zoom:1.0", "scan:0.1", "zoom:0"])
def test_a_zoom_or_scan_tile_of_a_bad_size_is_refused_in_one_line(spec):
    with pytest.raises(ValueError, match="tile's side must be at least 0.2 and under 1"):
        parse_retry(spec)


def far_frames(letters="ADEMQTW", side=90):
    """Real photos shrunk onto 640x480 frames with the hand ``side`` px across, off-centre."""
    out = []
    with HandDetector(params=DetectParams(retries=OLD_LADDER)) as det:
        for letter in letters:
            for path in real_images(letter, 3):
                rgb = read_image(path)
                hand = det.detect(rgb)
                if hand is not None:
                    out.append((path.name, place_on_frame(rgb, hand_box(hand), side, (0.85, 0.2))))
    return out


def test_zoom_and_scan_find_small_hands_the_old_ladder_misses_and_put_them_where_they_are(hand_model):
    frames = far_frames()
    with HandDetector(hand_model, params=DetectParams(retries=OLD_LADDER)) as old, \
            HandDetector(hand_model, params=DetectParams()) as new:
        missed = [(name, f) for name, f in frames if old.detect(f) is None]
        if not missed:
            pytest.skip(f"the old ladder found all {len(frames)} small hands; nothing to find")
        found = [(name, new.detect(f)) for name, f in missed]
    got = [(name, h) for name, h in found if h is not None]
    assert len(got) >= len(missed) * 2 // 3, f"zoom and scan found {len(got)} of {len(missed)} missed small hands"
    for name, hand in got:
        assert hand.attempt in ("zoom:0.5", "scan:0.5"), name
        # the hand sits at (0.85, 0.2) of the room the frame leaves: right and high
        cx, cy = hand.pixel_points()[:, :2].mean(axis=0)
        assert 420 < cx < 640 and 0 < cy < 240, f"{name}: hand found at ({cx:.0f}, {cy:.0f})"


def test_a_stream_frame_without_a_hand_looks_at_one_zoom_tile_and_the_next_frame_at_the_next(hand_model):
    runs = []

    class Counting(Landmarker):  # the palm detector, counting the images it is run on
        def detect(self, rgb):
            runs.append(rgb.shape[:2])
            return super().detect(rgb)

    params = DetectParams(stream_retries=("zoom:0.5",), video_retries=1)
    with Workers(hand_model, params, landmarker=Counting) as workers, \
            HandDetector(hand_model, video=True, params=params, workers=workers) as det:
        blank = np.zeros((480, 640, 3), np.uint8)
        for i in range(3):
            assert det.detect(blank, 40 * i) is None
    # each frame: the whole frame, then one tile (half its sides)
    assert runs == [(480, 640), (240, 320)] * 3
    with HandDetector(hand_model, video=True, params=params) as det:
        assert det.following.step == 0
        det.detect(np.zeros((480, 640, 3), np.uint8), 0)
        assert det.following.step == 1


def test_a_longer_ladder_reuses_the_hands_a_shorter_one_found_and_detects_only_the_rest(tmp_path, hand_model):
    paths = [str(p) for p in real_images("B", 2) + real_images("C", 2)]
    short = DetectParams(retries=("pad:0.3",), refine=0)
    long = dataclasses.replace(short, retries=("pad:0.3", "centre:1.0"))
    first = ex.extract(paths, short, cache=tmp_path, workers=1, progress=False)
    assert any(r.hand is not None for r in first)
    # a fake "none" for one image under the short ladder: the long ladder must detect that one again
    store = ex.LandmarkCache(tmp_path)
    sha = sha256_file(paths[0])
    store.put_many([(f"{sha}:{ex.settings_key(short, sha256_file(hand_model))}", b"none")])
    store.close()
    second = ex.extract(paths, long, cache=tmp_path, workers=1, progress=False)
    detected = [p for p, r in zip(paths, second) if not r.cached]
    assert detected == [paths[0]]
    for a, b in zip(first[1:], second[1:]):
        assert b.cached and (a.hand is None) == (b.hand is None)
        if a.hand is not None:
            np.testing.assert_array_equal(a.hand.landmarks, b.hand.landmarks)
    third = ex.extract(paths, long, cache=tmp_path, workers=1, progress=False)
    assert [p for p, r in zip(paths, third) if not r.cached] == []  # stored under the long ladder's key too


def test_far_copies_are_cached_by_copy_and_size_range(tmp_path, hand_model, caplog):
    paths = [str(p) for p in real_images("L", 2)]
    params = DetectParams(retries=OLD_LADDER)
    full = ex.extract(paths, params, cache=tmp_path, workers=1, progress=False)
    hands = [r.hand for r in full]
    far = ex.extract_far(paths, hands, params, copies=2, cache=tmp_path, workers=1, progress=False)
    assert len(far) == 2 and all(len(f) <= 2 for f in far) and sum(map(len, far)) >= 2
    for h in (h for f in far for h in f):
        assert h.image_size == FRAME
        side = np.ptp(h.pixel_points()[:, :2], axis=0).max()
        assert 60 < side < 260, f"a far hand {side:.0f} px across, asked 80-216"

    def far_summary(**kw) -> str:
        """extract_far's summary line: how many copies were cached and how many detected."""
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="fingerspell.extract"):
            ex.extract_far(paths, hands, params, cache=tmp_path, workers=1, progress=False, **kw)
        return next(r.getMessage() for r in caplog.records if r.getMessage().startswith("far copies:"))

    assert far_summary(copies=2) == "far copies: 4 of 4 cached, 0 to detect"
    # only the new copy of each photo: copies 0 and 1 are cached
    assert far_summary(copies=3) == "far copies: 4 of 6 cached, 2 to detect"
    # another size range is another copy
    assert far_summary(copies=1, sizes=(100, 120)) == "far copies: 0 of 2 cached, 2 to detect"
    assert ex.extract_far(paths, [None, None], params, cache=tmp_path, progress=False) == [[], []]


def test_training_learns_from_far_copies_of_training_photos_only(rng):
    from types import SimpleNamespace

    from conftest import fake_extract
    from fingerspell.config import LandmarkParams
    from fingerspell.recognisers.landmarks import training_views

    ext = fake_extract([f"/d/{c}/{i}.png" for c in "AB" for i in range(3)])
    y = np.array([0, 0, 0, 1, 1, 1])

    def far_hand(i):
        h = ext[i].hand
        return dataclasses.replace(h, landmarks=h.landmarks + np.float32(0.01 * (i + 1)),
                                   unrefined=dataclasses.replace(h, landmarks=h.landmarks - np.float32(0.01)))

    far = [[far_hand(i)] for i in range(6)]
    prep = SimpleNamespace(ext=ext, y=y, far=far)
    tr = np.array([0, 1, 3])  # 2, 4, 5 are validation photos
    views = training_views(prep, tr, LandmarkParams(unrefined=True))
    pts = np.concatenate([v.points for v in views])
    labels = np.concatenate([v.y for v in views])
    assert len(pts) == 3 + 3 * 2  # as found (no unrefined on these), far copies and their unrefined estimates
    for i in (2, 4, 5):  # no far copy of a validation photo reaches training
        assert not any(np.allclose(p, far[i][0].pixel_points()) for p in pts)
    for i in tr:
        assert any(np.allclose(p, far[i][0].pixel_points()) for p in pts)
    assert sorted(labels.tolist()) == [0] * 6 + [1] * 3
    without = training_views(SimpleNamespace(ext=ext, y=y, far=None), tr, LandmarkParams())
    assert sum(len(v) for v in without) == 3


def test_far_copies_go_to_at_most_the_asked_photos_per_class_and_folder_evenly_spaced():
    from fingerspell.dataset import Dataset, Sample
    from fingerspell.training.train import far_photos

    samples = [Sample(f"/k/{c}/{i}.jpg", c, "kaggle") for c in "AB" for i in range(10)]
    samples += [Sample(f"/r/A/{i}.jpg", "A", "roboflow") for i in range(3)]
    ds = Dataset(samples, ["A", "B"])
    chosen = far_photos(ds, 4)
    assert len(chosen) == 4 + 4 + 3
    assert sorted(i for i in chosen if i < 10) == [0, 2, 5, 7]
    assert len(far_photos(ds, None)) == len(samples)


# -- reframing a small hand -------------------------------------------------------------------------

NO_REFRAME = DetectParams(reframe=())


def placed(letters, side=144, per_letter=2):
    """(name, full-photo hand, the photo on a 640x480 frame with the hand ``side`` px across)."""
    out = []
    with HandDetector(params=NO_REFRAME) as det:
        for letter in letters:
            for path in real_images(letter, per_letter):
                rgb = read_image(path)
                hand = det.detect(rgb)
                if hand is not None:
                    out.append((path.name, hand, place_on_frame(rgb, hand_box(hand), side, (0.3, 0.6))))
    return out


def test_a_small_hand_is_the_most_present_pass_on_its_scaled_first_region_then_refined(hand_model):
    from fingerspell.hands.tracking import roi_from_landmarks

    (name, _, frame), = placed("B", per_letter=1)
    with HandDetector(hand_model, params=NO_REFRAME) as plain, HandDetector(hand_model) as reframing:
        before, after = plain.detect(frame), reframing.detect(frame)
    assert before is not None and after is not None, name
    tracker = landmark_tracker(hand_model, DetectParams(), threads=1)
    roi = roi_from_landmarks(before.unrefined.landmarks, 640, 480)
    assert roi.width * 640 < DetectParams().reframe_below * 480, f"{name}: the hand is not small in the frame"
    passes = [tracker.run(frame, dataclasses.replace(roi, width=roi.width * f, height=roi.height * f))
              for f in DetectParams().reframe]
    best = max((p for p in passes if p is not None), key=lambda p: p[4])
    expected = tracker.run(frame, roi_from_landmarks(best[0], 640, 480))  # then one refinement pass
    np.testing.assert_allclose(after.landmarks, expected[0], atol=1e-4)
    assert after.attempt == before.attempt and after.image_size == (640, 480)
    # the first estimate is kept as found, for training
    np.testing.assert_array_equal(after.unrefined.landmarks, before.unrefined.landmarks)


def test_a_hand_that_fills_the_photo_is_not_reframed(hand_model):
    photos = [read_image(p) for p in real_images("C", 2) + real_images("L", 2)]
    with HandDetector(hand_model, params=NO_REFRAME) as plain, HandDetector(hand_model) as reframing:
        for rgb in photos:
            before, after = plain.detect(rgb), reframing.detect(rgb)
            assert before is not None and after is not None
            np.testing.assert_array_equal(after.landmarks, before.landmarks)


def test_a_stream_reframes_the_frame_it_finds_a_hand_in_as_image_mode_does_and_then_follows_it(hand_model):
    (_, _, frame), = placed("B", per_letter=1)
    with HandDetector(hand_model, video=True) as video, HandDetector(hand_model) as image:
        found, expected = video.detect(frame, 0), image.detect(frame)
        assert found.attempt == expected.attempt == "plain"
        np.testing.assert_array_equal(found.landmarks, expected.landmarks)
        assert video.detect(frame, 40).attempt == "tracked"  # a followed frame: one network pass, as before


@pytest.mark.slow  # 30 real photos, each detected three times
def test_reframed_small_hands_have_landmarks_closer_to_the_full_photos(hand_model):
    from fingerspell.features import canonical

    def error(hand, full):
        # the hand's shape, wrist-centred and scale-free, as the classifier's features see it
        a = canonical(full.pixel_points(), full.handedness == "Left", planar_size=True)[:, :2]
        b = canonical(hand.pixel_points(), full.handedness == "Left", planar_size=True)[:, :2]
        return float(np.linalg.norm(a - b, axis=1).mean())

    frames = placed("ABDEJORSUX", per_letter=3)
    errors = {}
    for name, params in (("plain", NO_REFRAME), ("reframed", DetectParams())):
        with HandDetector(hand_model, params=params) as det:
            errors[name] = np.array([error(det.detect(frame), full) for _, full, frame in frames])
    plain, reframed = errors["plain"], errors["reframed"]
    # most hands keep their shape either way; the gain is the hands the first region framed badly
    assert np.mean(reframed) < 0.7 * np.mean(plain), f"mean shape error {np.mean(plain):.3f} -> {np.mean(reframed):.3f}"
    assert np.sum(reframed > 0.3) < np.sum(plain > 0.3), f"badly framed hands {np.sum(plain > 0.3)} -> {np.sum(reframed > 0.3)}"


@pytest.mark.parametrize("params, match", [
    (dict(reframe=(0.1, 1.0)), "reframe must be at most 8 scales, each between 0.25 and 4"),
    (dict(reframe=(1.0,) * 9), "reframe must be at most 8 scales"),
    (dict(reframe_below=-1.0), "reframe_below must be 0 or more"),
])
def test_reframe_settings_detection_cannot_run_are_refused_with_the_range(hand_model, params, match):
    with pytest.raises(ValueError, match=match):
        HandDetector(hand_model, params=DetectParams(**params))
