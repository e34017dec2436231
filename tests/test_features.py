"""Landmark features: what they are invariant to, and what they must keep."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import TEMPLATE
from fingerspell import features
from fingerspell.features import N_COORDS, N_FEATURES, PALM, WRIST
from fingerspell.hands import Hand



def rotate_xy(points: np.ndarray, degrees: float, about=(0.0, 0.0)) -> np.ndarray:
    """In-plane rotation (x, y) about a point; z is kept."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    out = np.array(points, dtype=np.float64)
    x, y = out[..., 0] - about[0], out[..., 1] - about[1]
    out[..., 0] = c * x - s * y + about[0]
    out[..., 1] = s * x + c * y + about[1]
    return out


def mirror_x(points: np.ndarray, width: float = 640.0) -> np.ndarray:
    out = np.array(points, dtype=np.float64)
    out[..., 0] = width - out[..., 0]
    return out


def palm_size(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[list(PALM)] - points[WRIST], axis=-1).mean())


# Plausible hands: the template bent by up to 15 px per point, placed anywhere in a 640x480 frame.
noise = arrays(np.float64, (21, 3), elements=st.floats(-15, 15, allow_nan=False, allow_infinity=False))
offsets = st.tuples(st.floats(100, 540), st.floats(200, 460), st.floats(-20, 20))


@st.composite
def hands(draw):
    pts = TEMPLATE + draw(noise) + np.array(draw(offsets))
    assume(palm_size(pts) > 20)  # a hand, not a dot: the size normaliser divides by this
    return pts


no_deadline = settings(deadline=None)  # a loaded CI machine is slow now and then; the properties hold anyway


def close(a, b, atol=1e-4):
    return np.allclose(a, b, rtol=1e-4, atol=atol)


# -- shape ----------------------------------------------------------------------------------------


@no_deadline
@given(hands(), st.booleans())
def test_one_hand_gives_288_finite_float32_features(pts, is_left):
    x = features.from_points(pts, is_left)
    assert x.shape == (N_FEATURES,) == (288,)
    assert x.dtype == np.float32
    assert np.isfinite(x).all()


def test_a_batch_gives_one_row_per_hand_equal_to_single_calls(rng):
    pts = TEMPLATE + rng.normal(0, 5, (7, 21, 3))
    left = np.array([True, False, True, False, False, True, False])
    batch = features.from_points(pts, left)
    assert batch.shape == (7, 288)
    for i in range(7):
        np.testing.assert_allclose(batch[i], features.from_points(pts[i], left[i]), rtol=1e-6)


@no_deadline
@given(hands() | noise, st.booleans(), st.booleans(), st.sampled_from([1, 2]))
def test_the_one_hand_path_streams_use_gives_the_batch_paths_bits(pts, is_left, depth, version):
    # Models are trained on the batch path and served on this one: not one bit may differ.
    one = features.one_hand(pts.astype(np.float32), is_left, depth, version)
    np.testing.assert_array_equal(one, features.from_points(pts.astype(np.float32), is_left, depth, version))
    for collapsed in (np.zeros((21, 3)), np.full((21, 3), 123.0)):
        assert np.isfinite(features.one_hand(collapsed, is_left, depth, version)).all()


def test_feature_parts_are_coords_then_distances_then_angles():
    parts = features.PREPROCESSING["parts"]
    assert (parts["coords"], parts["distances"], parts["angles"]) == (63, 210, 15)
    x = features.from_points(TEMPLATE, False)
    # coords of the wrist are the origin; distances are >= 0; angles are cosines
    assert np.allclose(x[:3], 0)
    assert (x[63:273] >= 0).all()
    assert (np.abs(x[273:]) <= 1 + 1e-6).all()
    # the straight middle finger (9, 10, 11, 12) bends by ~180 degrees at each joint: cosine ~ -1
    assert x[273 + 7] < -0.99 and x[273 + 8] < -0.99


def test_a_collapsed_hand_gives_finite_features_not_nan():
    for pts in (np.zeros((21, 3)), np.full((21, 3), 123.0)):
        assert np.isfinite(features.from_points(pts, False)).all()


# -- invariances ----------------------------------------------------------------------------------


@no_deadline
@given(hands(), st.booleans(), st.tuples(*[st.floats(-5000, 5000)] * 3))
def test_features_do_not_depend_on_where_the_hand_is(pts, is_left, shift):
    assert close(features.from_points(pts + np.array(shift), is_left), features.from_points(pts, is_left))


@no_deadline
@given(hands(), st.booleans(), st.floats(0.05, 40))
def test_features_do_not_depend_on_how_big_the_hand_is(pts, is_left, scale):
    assert close(features.from_points(pts * scale, is_left), features.from_points(pts, is_left))


@no_deadline
@given(hands(), st.booleans(), st.floats(-180, 180), st.tuples(st.floats(0, 640), st.floats(0, 480)))
def test_distances_and_angles_do_not_depend_on_in_plane_rotation(pts, is_left, degrees, about):
    turned = features.from_points(rotate_xy(pts, degrees, about), is_left)
    assert close(turned[N_COORDS:], features.from_points(pts, is_left)[N_COORDS:])


def test_coords_keep_the_orientation_that_tells_h_from_u():
    # H is U turned on its side: only the coords part can tell them apart
    upright = features.from_points(TEMPLATE, False)
    sideways = features.from_points(rotate_xy(TEMPLATE, 90), False)
    assert np.abs(upright[:N_COORDS] - sideways[:N_COORDS]).max() > 0.5


@no_deadline
@given(hands(), st.floats(100, 2000))
def test_a_left_hand_has_the_features_of_its_mirrored_right_hand(pts, width):
    assert close(features.from_points(pts, True), features.from_points(mirror_x(pts, width), False))


def test_mirroring_changes_the_features_of_an_asymmetric_hand():
    # otherwise the test above would pass for features that ignore handedness altogether
    assert not close(features.from_points(TEMPLATE, False), features.from_points(TEMPLATE, True))


@no_deadline
@given(hands(), st.booleans())
def test_canonical_points_start_at_the_wrist_and_have_unit_palm_size(pts, is_left):
    c = features.canonical(pts, is_left)
    assert c.shape == (21, 3) and c.dtype == np.float32
    assert np.allclose(c[WRIST], 0)
    assert palm_size(c) == pytest.approx(1.0, rel=1e-5)


# -- from_hand ------------------------------------------------------------------------------------


@pytest.mark.parametrize("handedness", ["Left", "Right"])
def test_from_hand_equals_from_points_of_its_pixel_points(handedness, rng):
    w, h = 640, 480
    pts = TEMPLATE + np.array([320, 400, 0]) + rng.normal(0, 4, (21, 3))
    hand = Hand((pts / np.array([w, h, w])).astype(np.float32), np.zeros((21, 3), np.float32),
                handedness, 0.9, (w, h))
    np.testing.assert_allclose(features.from_hand(hand), features.from_points(pts, handedness == "Left"),
                               rtol=1e-4, atol=1e-5)


def test_from_hand_keeps_the_aspect_ratio_of_non_square_images():
    # the same hand in normalised coordinates of a wide and a square image has the same
    # pixel shape only when x and y are scaled by width and height separately
    pts = TEMPLATE + np.array([320, 300, 0])
    wide = Hand((pts / np.array([640, 480, 640])).astype(np.float32), np.zeros((21, 3), np.float32), "Right", 1, (640, 480))
    square = Hand((pts / np.array([640, 640, 640])).astype(np.float32), np.zeros((21, 3), np.float32), "Right", 1, (640, 640))
    np.testing.assert_allclose(features.from_hand(wide), features.from_hand(square), atol=1e-5)


# -- augment --------------------------------------------------------------------------------------


def test_augment_does_not_change_its_input(rng):
    pts = (TEMPLATE + rng.normal(0, 3, (5, 21, 3))).astype(np.float32)
    before = pts.copy()
    out = features.augment(pts, rng, rotate_degrees=15, scale_range=0.15, jitter=0.01)
    np.testing.assert_array_equal(pts, before)
    assert out.shape == pts.shape and out.dtype == np.float32
    assert not np.allclose(out, pts)


def test_augment_with_zero_parameters_is_the_identity(rng):
    pts = TEMPLATE + np.array([300, 400, 0]) + rng.normal(0, 3, (5, 21, 3))
    out = features.augment(pts, rng, rotate_degrees=0, scale_range=0, jitter=0)
    np.testing.assert_allclose(out, pts, rtol=1e-6, atol=1e-4)


def test_augment_is_reproducible_from_the_seed():
    pts = np.stack([TEMPLATE] * 3)
    a = features.augment(pts, np.random.default_rng(7), rotate_degrees=15, scale_range=0.15, jitter=0.01)
    b = features.augment(pts, np.random.default_rng(7), rotate_degrees=15, scale_range=0.15, jitter=0.01)
    np.testing.assert_array_equal(a, b)


@settings(max_examples=50, deadline=None)
@given(hands(), st.floats(0, 90), st.integers(0, 2**32 - 1))
def test_augment_rotation_alone_turns_about_the_wrist_and_keeps_the_shape(pts, degrees, seed):
    out = features.augment(pts[None], np.random.default_rng(seed), rotate_degrees=degrees, scale_range=0, jitter=0)[0]
    np.testing.assert_allclose(out[WRIST], pts[WRIST], atol=1e-3)
    got = features.from_points(out, False)
    want = features.from_points(pts, False)
    # float32 output of pixel-sized points: tolerance a little above float32 rounding
    assert np.allclose(got[N_COORDS:], want[N_COORDS:], atol=1e-3)


def test_augment_stays_within_its_rotation_range():
    pts = np.stack([TEMPLATE] * 200)
    out = features.augment(pts, np.random.default_rng(0), rotate_degrees=15, scale_range=0, jitter=0)
    # direction of the middle finger base (point 9) from the wrist: straight up in the template
    v = out[:, 9, :2] - out[:, WRIST, :2]
    degrees = np.rad2deg(np.arctan2(v[:, 0], -v[:, 1]))
    assert np.abs(degrees).max() <= 15 + 1e-3
    assert np.abs(degrees).max() > 10  # and does use it


@settings(max_examples=50, deadline=None)
@given(hands(), st.floats(1, 90), st.integers(0, 2**32 - 1))
def test_augment_tilt_turns_the_hand_out_of_the_image_plane_as_a_rigid_body(pts, degrees, seed):
    out = features.augment(pts[None], np.random.default_rng(seed), rotate_degrees=0, scale_range=0, jitter=0,
                           tilt_degrees=degrees)[0].astype(np.float64)
    np.testing.assert_allclose(out[WRIST], pts[WRIST], atol=1e-3)
    # a turn in 3D keeps every distance between two points (z included), and only z lets it
    # change what the camera sees: the hand is the same hand seen from elsewhere
    got, want = (np.linalg.norm(p[:, None] - p[None], axis=-1) for p in (out, pts))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-2)


def test_augment_tilt_changes_the_view_within_its_range():
    pts = np.stack([TEMPLATE] * 200).astype(np.float64)
    pts[..., 2] = 0.0  # a flat hand: a tilt can only shorten what the camera sees of it
    out = features.augment(pts, np.random.default_rng(0), rotate_degrees=0, scale_range=0, jitter=0,
                           tilt_degrees=40)
    seen = np.linalg.norm(out[:, 9, :2] - out[:, WRIST, :2], axis=-1) / np.linalg.norm(TEMPLATE[9, :2] - TEMPLATE[WRIST, :2])
    assert seen.min() >= np.cos(np.deg2rad(40)) - 1e-3  # no turn beyond 40 degrees
    assert seen.min() < 0.85 and np.std(seen) > 0.03  # and it does turn


@settings(max_examples=50, deadline=None)
@given(hands(), st.integers(0, 2**32 - 1))
def test_augment_finger_range_changes_finger_lengths_and_keeps_the_palm(pts, seed):
    out = features.augment(pts[None], np.random.default_rng(seed), rotate_degrees=0, scale_range=0, jitter=0,
                           finger_range=0.2)[0].astype(np.float64)
    palm = [WRIST, 1, 5, 9, 13, 17]
    np.testing.assert_allclose(out[palm], pts[palm], atol=1e-3)
    for chain in features.FINGERS:
        before, after = (np.diff(p[list(chain[1:])], axis=0) for p in (pts, out))
        ok = np.linalg.norm(before, axis=-1) > 5.0  # float32 output: a bone of a pixel or two has no measurable length ratio
        ratio = np.linalg.norm(after[ok], axis=-1) / np.linalg.norm(before[ok], axis=-1)
        # one factor for the whole finger, within the range, the bones' directions kept
        assert len(ratio) == 0 or np.ptp(ratio) < 1e-2
        assert np.all((ratio > 0.8 - 1e-3) & (ratio < 1.2 + 1e-3))
        cos = (after[ok] * before[ok]).sum(-1) / np.linalg.norm(after[ok], axis=-1) / np.linalg.norm(before[ok], axis=-1)
        assert np.all(cos > 1 - 1e-4)


# -- depth ----------------------------------------------------------------------------------------


@given(depth=arrays(np.float64, (21,), elements=st.floats(-200, 200)), is_left=st.booleans())
def test_without_depth_the_features_ignore_z_entirely(depth, is_left):
    flat = TEMPLATE.copy()
    deep = TEMPLATE.copy()
    deep[:, 2] = depth
    a, b = features.from_points(flat, is_left, depth=False), features.from_points(deep, is_left, depth=False)
    # every point's z moves, the palm's too: the hand's size is measured in the image plane, so
    # not one feature may change (v1 measured it in 3D and let z in through the scale)
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert np.all(b[2:features.N_COORDS:3] == 0)


def test_version_1_bundles_keep_their_3d_hand_size():
    deep = TEMPLATE.copy()
    deep[9, 2] += 60.0  # a palm point: in v1 it changes the hand's size, so every feature
    v1 = [features.from_points(p, False, depth=False, version=1) for p in (TEMPLATE, deep)]
    v2 = [features.from_points(p, False, depth=False) for p in (TEMPLATE, deep)]
    assert not close(*v1) and close(*v2)
    assert features.version_of({"features": "fingerspell.features.v1"}) == 1
    assert features.version_of(features.preprocessing(False)) == features.VERSION == 2


def test_depth_changes_the_features_only_when_used():
    deep = TEMPLATE.copy()
    deep[8, 2] += 40.0  # the index fingertip towards the camera
    assert not close(features.from_points(deep, False), features.from_points(TEMPLATE, False))
    # a fingertip is not one of the palm points that set the scale: nothing else changes
    assert close(features.from_points(deep, False, depth=False), features.from_points(TEMPLATE, False, depth=False))


def test_bundles_record_whether_depth_was_used():
    assert features.preprocessing(False)["depth"] is False
    assert features.preprocessing(True)["depth"] is True
    assert features.preprocessing(False)["features"] == features.PREPROCESSING["features"]
