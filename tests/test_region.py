"""Hand crops: a frame that is part of a larger camera frame (``Region``), in the stream and on ``WS /ws``.

The page sends, while it follows a hand, the part of the camera frame around it at full
resolution, after a ``{"type": "region", ...}`` message that says where that part lies. The hand
comes back, and is followed, in the whole frame's terms.
"""

from __future__ import annotations

import io
import json
import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from _fakes import FakePredictor
from conftest import real_images
from fingerspell.config import ServeParams
from fingerspell.errors import FrameError
from fingerspell.hands import Hand, Region
from fingerspell.predictor import Predictor
from fingerspell.server import create_app

FRAME_W, FRAME_H = 1280, 720
PHOTO_AT, PHOTO_SIDE = (700, 180), 320  # where the hand photo lies in the camera frame
CROP = (640, 120, 440, 440)  # x, y, w, h: a square around it, as the page cuts one
WALL = (200, 196, 188)


def camera_frame(offset=(0, 0)) -> np.ndarray:
    """A 1280x720 camera frame with a real hand photo a quarter of its width across, moved by ``offset``."""
    photo = Image.open(real_images("B", 1)[0]).convert("RGB").resize((PHOTO_SIDE, PHOTO_SIDE), Image.BILINEAR)
    frame = Image.new("RGB", (FRAME_W, FRAME_H), WALL)
    frame.paste(photo, (PHOTO_AT[0] + offset[0], PHOTO_AT[1] + offset[1]))
    return np.asarray(frame)


def crop_of(frame: np.ndarray, x: int, y: int, w: int, h: int, side: int | None = None) -> np.ndarray:
    crop = Image.fromarray(frame[y:y + h, x:x + w])
    return np.asarray(crop.resize((side, side), Image.BILINEAR) if side else crop)


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def region_message(x, y, w, h, frame_w=FRAME_W, frame_h=FRAME_H, **extra) -> str:
    return json.dumps({"type": "region", "x": x, "y": y, "w": w, "h": h, "frame_w": frame_w, "frame_h": frame_h,
                       **extra})


def a_hand(points) -> Hand:
    lm = np.zeros((21, 3), np.float32)
    lm[:, :2] = points
    lm[:, 2] = 0.1
    return Hand(lm, np.zeros((21, 3), np.float32), "Right", 0.9, (200, 100))


# --------------------------------------------------------------------------- Region


def test_a_region_maps_landmarks_into_the_frame_and_back():
    region = Region(600, 100, 200, 100, 1000, 500)
    hand = a_hand([[0.5, 0.5]] * 21)
    framed = region.to_frame(hand)
    # the crop's centre (700, 150) of a 1000x500 frame; z on the frame's width scale
    assert np.allclose(framed.landmarks[0], [0.7, 0.3, 0.1 * 200 / 1000])
    assert framed.image_size == (1000, 500)
    back = region.from_frame(framed)
    assert np.allclose(back.landmarks, hand.landmarks, atol=1e-6) and back.image_size == (200, 100)


def test_a_mirrored_region_is_the_same_rectangle_flipped():
    assert Region(100, 20, 300, 200, 1280, 720).mirrored() == Region(880, 20, 300, 200, 1280, 720)


@pytest.mark.parametrize("args,message", [
    ((float("nan"), 0, 100, 100, 640, 480), "finite numbers"),
    ((0, float("inf"), 100, 100, 640, 480), "finite numbers"),
    (("10", 0, 100, 100, 640, 480), "finite numbers"),
    ((True, 0, 100, 100, 640, 480), "finite numbers"),
    ((600, 0, 100, 100, 640, 480), "not inside the 640 x 480 frame"),
    ((-5, 0, 100, 100, 640, 480), "not inside"),
    ((0, 0, 4, 100, 640, 480), "at least 8 pixels"),
    ((0, 0, 100, 100, 0, 480), "between 1 and 16384"),
    ((0, 0, 100, 100, 100_000, 480), "between 1 and 16384"),
    ((10 ** 400, 0, 100, 100, 640, 480), "finite numbers"),
    ((0, 0, 100, 100, 640, -10 ** 400), "finite numbers"),
    ((0.3, 0, 640.4, 100, 640, 480), "not inside"),
], ids=["nan", "inf", "string", "bool", "outside", "negative", "tiny", "no-frame", "huge-frame", "huge-int",
        "huge-negative-int", "past-both-edges"])
def test_a_region_that_makes_no_sense_is_refused(args, message):
    with pytest.raises(ValueError, match=message):
        Region(*args)


@pytest.mark.parametrize("x,w", [(872.4, 408), (1271.9, 8.1), (0, 1280.4)],
                         ids=["past-by-0.4", "float-rounding", "wider-than-the-frame-by-0.4"])
def test_a_region_past_the_frame_by_a_rounding_is_moved_inside_and_can_be_mirrored(x, w):
    region = Region(x, 0, w, 100, 1280, 720)
    assert region.x >= 0 and region.x + region.w <= 1280
    mirrored = region.mirrored()
    assert mirrored.x >= 0 and mirrored.x + mirrored.w <= 1280 and mirrored.w == region.w
    assert mirrored.mirrored() == region


# Rectangles near the frame's far edge, where the half-pixel slack and float rounding meet.
near_edge = (st.sampled_from([8, 640, 1280, 1920, 16384]) | st.floats(7, 16384)).flatmap(lambda frame_w: st.tuples(
    st.just(frame_w), st.sampled_from([8, 8.1, 408, frame_w]) | st.floats(7.5, max(7.5, frame_w + 1)),
    st.sampled_from([0, 0.4, 0.5, 0.6, -0.1]) | st.floats(-1, 0.6)))


@settings(max_examples=500, deadline=None, database=None)
@given(near_edge)
def test_every_region_that_exists_lies_inside_its_frame_and_so_does_its_mirror(case):
    frame_w, w, past = case
    try:
        region = Region(frame_w - w + past, 0, w, 8, frame_w, 8)
    except ValueError:
        return  # refused, with a message: fine
    for r in (region, region.mirrored(), region.mirrored().mirrored()):
        assert 0 <= r.x and r.x + r.w <= r.frame_w * (1 + 1e-12) and r.w >= 8


def test_an_image_must_have_the_regions_shape():
    region = Region(0, 0, 400, 300, 1280, 720)
    region.check_image(400, 300)
    region.check_image(200, 150)  # scaled down: fine
    region.check_image(201, 150)  # a client's rounding: fine
    with pytest.raises(ValueError, match="not the shape of the 400 x 300 region"):
        region.check_image(300, 300)


# --------------------------------------------------------------------------- the stream


@pytest.fixture(scope="module")
def predictor(tiny_bundle, hand_model):
    p = Predictor.from_bundle(tiny_bundle, hand_model=hand_model)
    yield p
    p.close()


def test_a_crop_gives_the_hand_in_the_whole_frames_terms(predictor):
    frame = camera_frame()
    with predictor.stream() as stream:
        whole = stream.predict(frame).hand
    with predictor.stream() as stream:
        cropped = stream.predict(crop_of(frame, *CROP, side=300), region=Region(*CROP, FRAME_W, FRAME_H)).hand
        assert stream.position is not None
        # the stream's hand-position history is in frame terms too (units of the frame's width)
        centre = cropped.landmarks[:, 0].mean()
        assert abs(stream.position.x - centre) < 1e-6
    assert whole is not None and cropped is not None
    assert cropped.image_size == (FRAME_W, FRAME_H)
    assert np.abs(whole.landmarks[:, :2] - cropped.landmarks[:, :2]).max() < 0.02


def test_the_stream_keeps_following_the_hand_as_the_crop_moves(predictor):
    # The crop follows the hand as the page cuts it, from the last answer; the followed hand is
    # carried into each new crop's coordinates, so no frame after the first needs the palm detector.
    attempts, hands = [], []
    with predictor.stream() as stream:
        last = None
        for i in range(8):
            frame = camera_frame(offset=(12 * i, 5 * i))
            if last is None:
                x, y, w, h = CROP
            else:
                pts = last.landmarks[:, :2] * (FRAME_W, FRAME_H)
                cx, cy = (pts.min(0) + pts.max(0)) / 2
                side = 440
                x, y, w, h = int(cx - side / 2), int(cy - side / 2), side, side
            pred = stream.predict(crop_of(frame, x, y, w, h, side=320), timestamp_ms=i * 66,
                                  region=Region(x, y, w, h, FRAME_W, FRAME_H))
            last = pred.hand
            assert last is not None, f"frame {i}: the hand was lost"
            attempts.append(last.attempt)
            hands.append(last.landmarks[:, :2].mean(axis=0) * (FRAME_W, FRAME_H))
    assert attempts[1:] == ["tracked"] * 7, attempts
    moved = np.diff(np.array(hands), axis=0)
    assert np.allclose(moved, [12, 5], atol=4), moved  # the hand moved 12 px right, 5 down each frame


def test_the_hand_last_seen_is_carried_into_a_moved_crop_and_forgotten_when_the_view_is_mirrored(predictor):
    # Where to look for a hand just lost (``Following.last``) moves with the crop, as the followed hand does.
    frame, blank = camera_frame(), np.full((FRAME_H, FRAME_W, 3), WALL, np.uint8)
    a, b = Region(*CROP, FRAME_W, FRAME_H), Region(560, 80, 520, 520, FRAME_W, FRAME_H)
    with predictor.stream() as stream:
        seen = stream.predict(crop_of(frame, *CROP, side=320), timestamp_ms=0, region=a).hand
        assert seen is not None
        assert stream.predict(crop_of(blank, *CROP, side=320), timestamp_ms=66, region=a).hand is None
        stream.predict(crop_of(blank, 560, 80, 520, 520, side=320), timestamp_ms=132, region=b)
        last = stream.following.last
        assert last is not None and stream.following.hand is None
        np.testing.assert_allclose(b.to_frame(last).landmarks, seen.landmarks, atol=1e-4)
        stream.predict_bytes(jpeg(crop_of(blank, 560, 80, 520, 520, side=320)), mirror=True, region=b)
        assert stream.following.last is None


def test_a_crop_of_the_wrong_shape_is_a_frame_error(predictor):
    with predictor.stream() as stream, pytest.raises(FrameError, match="region: the image is 300 x 200"):
        stream.predict(np.zeros((200, 300, 3), np.uint8), region=Region(0, 0, 100, 100, 640, 480))


# --------------------------------------------------------------------------- WS /ws


PARAMS = ServeParams(max_message_bytes=2_000_000, max_pixels=1_000_000, allowed_hosts=("testserver",))


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor=predictor, params=PARAMS)) as c:
        yield c


@pytest.fixture(scope="module")
def fake_client():
    """A server that never finds a hand: for what needs none."""
    with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)) as c:
        yield c


def test_a_region_message_makes_the_next_frame_a_crop_of_the_camera_frame(client):
    frame = camera_frame()
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(jpeg(frame))
        whole = ws.receive_json()
        ws.send_text(region_message(*CROP))  # not answered by itself
        ws.send_bytes(jpeg(crop_of(frame, *CROP, side=320)))
        cropped = ws.receive_json()
        ws.send_bytes(jpeg(frame))  # no region message: a whole frame again
        again = ws.receive_json()
    assert [a["type"] for a in (whole, cropped, again)] == ["prediction"] * 3
    assert [a["frame"] for a in (whole, cropped, again)] == [1, 2, 3]
    a, b, c = (np.array(x["hand"]["landmarks"])[:, :2] for x in (whole, cropped, again))
    assert np.abs(a - b).max() < 0.02 and np.abs(a - c).max() < 0.02


def test_a_region_with_mirroring_gives_the_hand_back_in_the_frame_sent(client):
    frame = camera_frame()
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(jpeg(frame))
        plain = np.array(ws.receive_json()["hand"]["landmarks"])
        ws.send_text(json.dumps({"type": "config", "mirror": True}))
        assert ws.receive_json()["mirror"] is True
        ws.send_text(region_message(*CROP))
        ws.send_bytes(jpeg(crop_of(frame, *CROP)))
        answer = ws.receive_json()
    assert answer["mirror"] is True and answer["hand"] is not None
    assert np.abs(plain[:, :2] - np.array(answer["hand"]["landmarks"])[:, :2]).max() < 0.08


@pytest.mark.parametrize("message,expected", [
    (region_message(float("nan"), 0, 100, 100), "finite numbers"),
    (region_message("1e999", 0, 100, 100).replace('"1e999"', "1e999"), "finite numbers"),
    (region_message(1200, 0, 200, 200), "not inside the 1280 x 720 frame"),
    (region_message(0, 0, 2, 2), "at least 8 pixels"),
    (region_message(0, 0, 100, 100, frame_w=10 ** 9), "between 1 and 16384"),
    (region_message("left", 0, 100, 100), "finite numbers"),
    (json.dumps({"type": "region", "x": 0, "y": 0}), "missing w, h, frame_w, frame_h"),
    (region_message(0, 0, 400, 100), "not the shape of the 400 x 100 region"),
    (region_message(10 ** 400, 0, 100, 100), "finite numbers"),  # JSON's integers have no bound
    (region_message(0, 0, 100, 100, frame_h=-10 ** 400), "finite numbers"),
], ids=["nan", "infinite", "outside", "tiny", "huge-frame", "string", "missing", "wrong-shape", "huge-int",
        "huge-negative-int"])
def test_a_bad_region_gets_an_error_for_its_frame_and_the_socket_keeps_working(fake_client, message, expected):
    with fake_client.websocket_connect("/ws") as ws:
        ws.send_text(message)
        ws.send_bytes(jpeg(np.full((100, 100, 3), 128, np.uint8)))
        error = ws.receive_json()
        assert error["type"] == "error" and error["frame"] == 1
        assert error["error"].startswith("region: ") and expected in error["error"], error
        ws.send_bytes(jpeg(np.full((100, 100, 3), 128, np.uint8)))  # the region applied to one frame only
        assert ws.receive_json()["type"] == "prediction"
        ws.send_text(json.dumps({"type": "clear"}))  # and commands still work
        assert ws.receive_json()["type"] == "state"


@pytest.mark.parametrize("x,w", [(872.4, 408), (1271.9, 8.1)], ids=["past-by-0.4", "float-rounding"])
def test_a_region_at_the_frames_edge_with_mirroring_is_recognised_without_a_traceback(client, caplog, x, w):
    # Within the half-pixel slack past the right edge: flipped, the rectangle once began left of
    # the frame, and the stream died with a traceback (close 1011) instead of answering.
    side = round(w * 10) if w < 100 else round(w)  # the image at a scale that keeps the region's shape
    crop = np.full((side, side, 3), 128, np.uint8)
    with caplog.at_level(logging.INFO), client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "config", "mirror": True}))
        assert ws.receive_json()["mirror"] is True
        ws.send_text(region_message(x, 0, w, w))
        ws.send_bytes(jpeg(crop))
        answer = ws.receive_json()
        assert answer["type"] == "prediction" and answer["frame"] == 1, answer
        ws.send_text(json.dumps({"type": "clear"}))  # the socket still works
        assert ws.receive_json()["type"] == "state"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


def test_a_skipped_frame_takes_its_region_with_it(client):
    # A frame that a newer one replaced is answered "skipped"; the region sent for it must not
    # apply to the newer, whole frame.
    frame = camera_frame()
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(jpeg(frame))
        reference = np.array(ws.receive_json()["hand"]["landmarks"])
        for _ in range(3):
            ws.send_text(region_message(*CROP))
            ws.send_bytes(jpeg(crop_of(frame, *CROP, side=320)))
        ws.send_bytes(jpeg(frame))
        answers = {a["frame"]: a for a in (ws.receive_json() for _ in range(4))}
    assert sorted(answers) == [2, 3, 4, 5]
    assert {a["type"] for a in answers.values()} <= {"prediction", "skipped"}
    assert answers[5]["type"] == "prediction" and answers[5]["hand"] is not None
    for answer in answers.values():
        if answer["type"] == "prediction":
            assert np.abs(np.array(answer["hand"]["landmarks"]) - reference)[:, :2].max() < 0.02
