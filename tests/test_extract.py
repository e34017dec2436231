"""The landmark cache's keys and records: caches on users' disks must stay readable."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import asdict

import numpy as np
from PIL import Image

from fingerspell import extract as ex
from fingerspell.config import DetectParams
from fingerspell.extract.far import FAR_VERSION, far_suffix
from fingerspell.hands import Hand
from fingerspell.hands.model import sha256_file


def known_hand(**change) -> Hand:
    """A fixed left hand in a 640x480 image, its landmarks within (0.3 .. 0.57) of the frame."""
    lm = (np.arange(63, dtype=np.float32).reshape(21, 3) % 17) / np.float32(60) + np.float32(0.3)
    world = np.linspace(-0.05, 0.05, 63, dtype=np.float32).reshape(21, 3)
    return dataclasses.replace(Hand(lm, world, "Left", 0.875, (640, 480), "pad:0.3"), **change)


def test_a_known_hand_is_encoded_byte_for_byte_as_the_caches_on_disk_hold_it():
    hand = known_hand()
    blob = ex.encode_hand(hand)
    # "<attempt>|" then the 130 float32 numbers of Hand.to_array
    assert blob == b"pad:0.3|" + hand.to_array().tobytes() and len(blob) == len(b"pad:0.3|") + 130 * 4
    assert hashlib.sha256(blob).hexdigest() == "6878cb61979191a27a7533ee126856905f9afccef7c70aa03edfaaab1d6197de"
    refined = known_hand(unrefined=known_hand(landmarks=hand.landmarks * np.float32(0.5), handedness="Right",
                                              score=0.5, attempt="plain"))
    blob = ex.encode_hand(refined)
    assert len(blob) == len(b"pad:0.3|") + 260 * 4
    assert hashlib.sha256(blob).hexdigest() == "173038936b2c8a87fec760b04e116d083837fe6748fd030d220c73e919d9b6e8"
    back = ex.decode_hand(blob)
    np.testing.assert_array_equal(back.landmarks, refined.landmarks)
    np.testing.assert_array_equal(back.unrefined.landmarks, refined.unrefined.landmarks)
    assert (back.attempt, back.handedness, back.score, back.image_size) == ("pad:0.3", "Left", 0.875, (640, 480))
    assert ex.encode_hand(None) == b"none" and ex.decode_hand(b"none") is None


def test_the_settings_key_hashes_the_photo_settings_and_the_hand_model_to_16_hex_digits():
    params, model = DetectParams(), "ab" * 32
    detect = {k: v for k, v in asdict(params).items() if k not in ("stream_retries", "near_ms")}
    blob = json.dumps({"detect": detect, "model": model}, sort_keys=True).encode()
    assert ex.settings_key(params, model) == hashlib.sha256(blob).hexdigest()[:16]
    # a stream's own settings are not in it; a photo's detection settings and the model are
    assert ex.settings_key(dataclasses.replace(params, stream_retries=(), near_ms=1), model) == ex.settings_key(params, model)
    assert ex.settings_key(dataclasses.replace(params, retries=params.retries[:1]), model) != ex.settings_key(params, model)
    assert ex.settings_key(params, "cd" * 32) != ex.settings_key(params, model)
    assert FAR_VERSION == 1 and far_suffix(2, (80, 216)) == ":far1:80-216:2"


def test_a_photo_and_its_far_copy_are_read_from_the_cache_under_their_keys_without_detecting(
        tmp_path, hand_model, monkeypatch, caplog):
    monkeypatch.setenv("FINGERSPELL_HAND_MODEL", str(hand_model))
    photo = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (90, 60, 30)).save(photo)
    sha, params = sha256_file(photo), DetectParams()
    skey = ex.settings_key(params, sha256_file(hand_model))
    near, far_hand = known_hand(), known_hand(attempt="zoom:0.5")
    # the keys as caches on disk hold them, written out here rather than by the code under test
    store = ex.LandmarkCache(tmp_path / "cache")
    store.put_many([(f"{sha}:{skey}", ex.encode_hand(near)),
                    (f"{sha}:{skey}:far1:80-216:0", ex.encode_hand(far_hand)),
                    (f"{sha}:{skey}:far1:80-216:1", b"none")])
    store.close()
    with caplog.at_level(logging.INFO, logger="fingerspell.extract"):
        got, = ex.extract([str(photo)], params, cache=tmp_path / "cache", workers=1, progress=False)
        far, = ex.extract_far([str(photo)], [got.hand], params, copies=2, cache=tmp_path / "cache", progress=False)
    assert got.cached and got.hand.attempt == "pad:0.3"
    np.testing.assert_array_equal(got.hand.landmarks, near.landmarks)
    assert [h.attempt for h in far] == ["zoom:0.5"]  # copy 1 had no hand
    messages = [r.getMessage() for r in caplog.records]
    assert "landmarks: 1 of 1 images cached, 0 to detect" in messages
    assert "far copies: 2 of 2 cached, 0 to detect" in messages
