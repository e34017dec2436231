"""Landmark records: the JSON Lines format every sample, recording and browser hand uses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TEMPLATE
from fingerspell import records
from fingerspell.errors import DatasetError
from fingerspell.hands import Hand


def _hand(handedness="Right", size=(640, 480)) -> Hand:
    lm = ((TEMPLATE + [320, 400, 0]) / [640, 480, 640]).astype(np.float32)
    return Hand(lm, np.zeros((21, 3), np.float32), handedness, 1.0, size)


def _file(tmp_path, *lines) -> str:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n")
    return str(path)


def test_records_round_trip_through_a_file_with_the_documented_header(tmp_path):
    recs = [records.Record(_hand(), 0, "A", "me"), records.Record(None, 33),
            records.Record(_hand("Left", (1280, 720)), None, "MY-NAME", extra={"score": 0.5, "mine": [1]})]
    path = records.write(tmp_path / "r.jsonl", recs)
    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == {"format": "fingerspell-landmarks", "version": 1}
    assert json.loads(lines[2]) == {"t_ms": 33, "hand": None}
    back = records.read(path)
    assert [(r.t_ms, r.label, r.group, r.extra) for r in back] == [(0, "A", "me", {}), (33, None, None, {}),
                                                                    (None, "MY-NAME", None, {"score": 0.5, "mine": [1]})]
    assert back[1].hand is None
    for a, b in ((recs[0], back[0]), (recs[2], back[2])):
        np.testing.assert_allclose(a.hand.landmarks, b.hand.landmarks, atol=1e-5)
        assert (b.hand.handedness, b.hand.image_size) == (a.hand.handedness, a.hand.image_size)
    assert records.is_records_file(path) and not records.is_records_file(tmp_path)


HAND = records.hand_to_json(_hand())


@pytest.mark.parametrize("line,error", [
    ({"hand": {**HAND, "landmarks": HAND["landmarks"][:20]}}, "must be 21 points"),
    ({"hand": {**HAND, "landmarks": [[float("nan"), 0, 0]] + HAND["landmarks"][1:]}}, "finite numbers"),
    ({"hand": {**HAND, "landmarks": [[10**400, 0, 0]] + HAND["landmarks"][1:]}}, "finite numbers"),
    ({"hand": {**HAND, "landmarks": [["0.1", 0, 0]] + HAND["landmarks"][1:]}}, "finite numbers"),
    ({"hand": {**HAND, "handedness": "left"}}, '"Left" or "Right"'),
    ({"hand": {**HAND, "image_size": [640]}}, "image_size"),
    ({"hand": {**HAND, "image_size": [640, 10**6]}}, "image_size"),
    ({"hand": {**HAND, "image_size": [640.0, 480]}}, "image_size"),
    ({"hand": HAND, "t_ms": -1}, "t_ms"),
    ({"hand": HAND, "t_ms": 1.5}, "t_ms"),
    ({"hand": HAND, "label": "../../etc"}, "slashes"),
    ({"hand": HAND, "label": "x" * 65}, "1 to 64"),
    ({"hand": HAND, "label": "A\u0000"}, "control characters"),
    ({"label": "A"}, 'needs "hand"'),
    ([1, 2], "JSON object"),
    ("{not json", "Expecting property name"),
])
def test_a_bad_line_is_refused_with_the_file_the_line_and_what_to_fix(tmp_path, line, error):
    path = _file(tmp_path, records.HEADER, {"hand": None}, line)
    with pytest.raises(DatasetError, match=rf"r\.jsonl:3: .*{error}") as caught:
        records.read(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("first,error", [
    ({"format": "something-else", "version": 1}, "not a landmark records file"),
    ({"format": "fingerspell-landmarks", "version": 2}, "version 2 of the format"),
])
def test_a_file_without_this_header_is_refused(tmp_path, first, error):
    with pytest.raises(DatasetError, match=rf"r\.jsonl:1: .*{error}"):
        records.read(_file(tmp_path, first, {"hand": None}))
    with pytest.raises(DatasetError, match="empty"):
        records.read(_file(tmp_path, ""))


def test_an_oversized_line_is_refused_before_it_is_parsed(tmp_path):
    with pytest.raises(DatasetError, match=r":2: a line of .* at most 65,536"):
        records.read(_file(tmp_path, records.HEADER, " " * 70_000 + "{}"))


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                           max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["hand", "t_ms", "label", "group", "x"]), json_values, max_size=5)
       | st.fixed_dictionaries({"hand": st.fixed_dictionaries(
           {"landmarks": json_values, "handedness": json_values, "image_size": json_values})}))
def test_any_json_line_is_a_record_or_a_valueerror(doc):
    try:
        rec = records.record_from_json(doc)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert rec.hand is None or rec.hand.landmarks.shape == (21, 3)


def test_arrays_of_recorded_frames_become_timed_records_and_zero_rows_no_hand():
    pts = np.random.default_rng(0).uniform(0.2, 0.8, (3, 63)).astype(np.float32)
    pts[1] = 0
    recs = records.from_points(pts, label="J", group="J/0", t0_ms=1000, fps=30)
    assert [r.t_ms for r in recs] == [1000, 1033, 1067]
    assert recs[1].hand is None and recs[0].hand.image_size == (640, 480)
    np.testing.assert_array_equal(recs[2].hand.landmarks, pts[2].reshape(21, 3))
    assert [r.label for r in records.from_points(pts[:1])] == [None]
