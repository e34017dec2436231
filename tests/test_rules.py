"""The temporal decoder: held signs become text, flickers and long holds do not."""

from __future__ import annotations

import json
import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerspell.labels import DEFAULT_LABELS, DELETE, NOTHING, SPACE
from fingerspell.decoding import base
from fingerspell.decoding.rules import Event, SpellingDecoder, SpellingParams, spell

STEP = 20  # ms between frames: 50 frames/s keeps every default time a whole number of frames


def timeline(*segments, step: int = STEP) -> list[tuple[float, str | None, float]]:
    """Frames for ``(label, duration_ms[, confidence])`` segments, one after another.

    A no-hand frame at t=0 starts the stream, so each segment's frames (at its start + step,
    ..., its start + duration) account for exactly ``duration_ms`` of time.
    """
    frames = [(0.0, None, 0.0)]
    t = 0
    for label, duration, *rest in segments:
        confidence = rest[0] if rest else 0.9
        for _ in range(duration // step):
            t += step
            frames.append((float(t), label, confidence))
    return frames


def feed(decoder: SpellingDecoder, frames) -> list[Event]:
    events = []
    for t, label, confidence in frames:
        events.extend(decoder.update(label, confidence, t))
    return events


# -- hold ---------------------------------------------------------------------------------------


def test_letter_held_for_hold_time_commits_once_on_the_frame_the_hold_completes():
    events = feed(SpellingDecoder(), timeline(("L", 2000)))
    assert events == [Event("letter", "L", "L", 400.0)]


def test_hold_shorter_than_hold_time_commits_nothing():
    assert spell(timeline(("L", 380), (None, 2000))) == ""


def test_confidence_below_min_confidence_never_commits_and_at_it_does():
    assert spell(timeline(("L", 2000, 0.59))) == ""
    assert spell(timeline(("L", 400, 0.6))) == "L"


def test_different_letter_after_a_commit_needs_only_its_own_hold():
    events = feed(SpellingDecoder(), timeline(("H", 400), ("I", 400)))
    assert [(e.text, e.t_ms) for e in events] == [("H", 400.0), ("I", 800.0)]


def test_a_custom_sign_commits_its_text_as_a_word_of_its_own():
    assert spell(timeline(("L", 400), (None, 200), ("hello", 400), (None, 200), ("L", 400))) == "L hello L"


# -- release ------------------------------------------------------------------------------------


def test_same_letter_held_continuously_commits_once():
    assert spell(timeline(("L", 400), ("L", 400), ("L", 3000))) == "L"


def test_same_letter_twice_with_a_release_gap_commits_twice():
    assert spell(timeline(("L", 400), (None, 200), ("L", 400))) == "LL"


def test_gap_shorter_than_release_time_does_not_repeat_the_letter():
    assert spell(timeline(("L", 400), (None, 120), ("L", 1000))) == "L"
    assert spell(timeline(("L", 400), (None, 140), ("L", 1000), step=10)) == "L"
    assert spell(timeline(("L", 400), (None, 150), ("L", 1000), step=10)) == "LL"


@pytest.mark.parametrize(
    "gap",
    [(NOTHING, 200), ("L", 200, 0.3), ("M", 200)],
    ids=["nothing", "low-confidence", "other-letter"],
)
def test_nothing_low_confidence_or_another_letter_also_release(gap):
    assert spell(timeline(("L", 400), gap, ("L", 400))) == "LL"


def test_released_letter_needs_a_new_full_hold():
    assert spell(timeline(("L", 400), (None, 200), ("L", 380), (None, 200))) == "L"


def test_released_letter_needs_a_new_full_hold_even_when_the_release_was_a_bridged_flicker():
    # release_ms < flicker_ms: the 60 ms gap releases L but does not end its (long) hold.
    params = SpellingParams(release_ms=50, flicker_ms=100)
    events = feed(SpellingDecoder(params), timeline(("L", 1000), (None, 60), ("L", 1000)))
    assert [e.t_ms for e in events] == [400.0, 1000.0 + 60.0 + 400.0]


# -- flicker ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "blip",
    [(None, 40), (NOTHING, 40), ("L", 40, 0.2), ("M", 80)],
    ids=["no-hand", "nothing", "low-confidence", "other-letter"],
)
def test_flicker_shorter_than_flicker_ms_keeps_the_hold(blip):
    # 200 + 200 ms of L around the blip: the hold completes although it was interrupted.
    assert spell(timeline(("L", 200), blip, ("L", 200))) == "L"


def test_interruption_as_long_as_flicker_ms_restarts_the_hold():
    assert spell(timeline(("L", 200), (None, 100), ("L", 300))) == ""


def test_flicker_time_does_not_count_towards_the_hold():
    events = feed(SpellingDecoder(), timeline(("L", 200), (None, 60), ("L", 400)))
    assert [e.t_ms for e in events] == [200.0 + 60.0 + 200.0]


def test_different_letter_that_persists_takes_over_with_the_time_it_has_held():
    events = feed(SpellingDecoder(), timeline(("L", 200), ("M", 1000)))
    assert [(e.text, e.t_ms) for e in events] == [("M", 200.0 + 400.0)]


# -- space and del ------------------------------------------------------------------------------


def test_space_sign_commits_one_space_between_letters():
    assert spell(timeline(("H", 400), (SPACE, 400), ("I", 400))) == "H I"


def test_space_sign_never_starts_the_text_nor_doubles_a_space():
    assert spell(timeline((SPACE, 400), ("H", 400))) == "H"
    assert spell(timeline(("H", 400), (SPACE, 400), (None, 200), (SPACE, 400))) == "H "


def test_del_sign_held_deletes_one_character_per_release():
    assert spell(timeline(("H", 400), ("I", 400), (DELETE, 3000))) == "H"
    assert spell(timeline(("H", 400), ("I", 400), (DELETE, 400), (None, 200), (DELETE, 400))) == ""


def test_del_sign_reports_the_character_it_removed_and_nothing_on_empty_text():
    events = feed(SpellingDecoder(), timeline((DELETE, 400), (None, 200), ("A", 400), (DELETE, 400)))
    assert [(e.kind, e.text) for e in events] == [("letter", "A"), ("delete", "A")]


def test_nothing_sign_commits_nothing():
    assert spell(timeline((NOTHING, 3000))) == ""


# -- word break after a pause -------------------------------------------------------------------


def test_pause_after_a_letter_inserts_one_word_break():
    decoder = SpellingDecoder()
    events = feed(decoder, timeline(("H", 400), ("I", 400), (None, 5000)))
    assert decoder.text == "HI "
    assert [(e.kind, e.t_ms) for e in events][-1] == ("word_break", 800.0 + 1500.0)
    assert spell(timeline(("H", 400), (None, 1500), ("I", 400), (NOTHING, 1500), ("Y", 400))) == "H I Y"


def test_pause_shorter_than_pause_space_ms_inserts_nothing():
    assert spell(timeline(("H", 400), (None, 1480), ("I", 400))) == "HI"


def test_pause_never_starts_the_text_nor_follows_a_space_or_a_delete():
    assert spell(timeline((None, 5000), ("H", 400))) == "H"
    assert spell(timeline(("H", 400), (SPACE, 400), (None, 5000))) == "H "
    assert spell(timeline(("H", 400), ("I", 400), (DELETE, 400), (None, 5000))) == "H"


def test_hand_glimpsed_shorter_than_flicker_ms_does_not_end_the_pause():
    assert spell(timeline(("H", 400), (None, 1000), ("X", 40, 0.2), (None, 500))) == "H "
    assert spell(timeline(("H", 400), (None, 1000), ("X", 200, 0.2), (None, 500))) == "H"


# -- page buttons -------------------------------------------------------------------------------


def test_backspace_removes_and_returns_the_last_character():
    decoder = SpellingDecoder()
    decoder.set_text("HI")
    assert decoder.backspace() == "I"
    assert decoder.text == "H"
    assert decoder.backspace() == "H"
    assert decoder.backspace() == ""
    assert decoder.text == ""


def test_backspace_disarms_the_word_break_so_a_pause_does_not_add_a_space():
    decoder = SpellingDecoder()
    frames = timeline(("H", 400), ("I", 400), (None, 5000))
    feed(decoder, frames[:41])
    decoder.backspace()
    feed(decoder, frames[41:])
    assert decoder.text == "H"


def test_clear_empties_the_text_and_a_letter_still_held_is_not_written_again():
    decoder = SpellingDecoder()
    frames = timeline(("L", 2000))
    feed(decoder, frames[:30])  # the hold completes at frame 20
    assert decoder.text == "L"
    decoder.clear()
    feed(decoder, frames[30:])
    assert decoder.text == ""


def test_set_text_is_continued_by_the_next_letter_and_not_followed_by_a_word_break():
    decoder = SpellingDecoder()
    decoder.set_text("HELLO")
    feed(decoder, timeline((None, 5000)))
    assert decoder.text == "HELLO"
    decoder = SpellingDecoder()
    decoder.set_text("HELL")
    feed(decoder, timeline(("O", 400)))
    assert decoder.text == "HELLO"


def test_text_beyond_max_text_drops_the_oldest_characters_and_a_leading_space(monkeypatch):
    monkeypatch.setattr(base, "MAX_TEXT", 3)  # the one cap every decoder keeps
    assert spell(timeline(*[(c, 400) for c in "ABCDE"])) == "CDE"
    monkeypatch.setattr(base, "MAX_TEXT", 2)
    assert spell(timeline(("A", 400), (SPACE, 400), ("B", 400))) == "B"


# -- time ---------------------------------------------------------------------------------------


def test_time_going_backwards_counts_as_no_time():
    # 200 ms of L, the clock jumps back 100 ms, 200 ms more: exactly one full hold.
    frames = timeline(("L", 200)) + [(t - 100.0, "L", 0.9) for t in range(200, 401, STEP)]
    assert spell(frames) == "L"
    assert spell(frames[:-1]) == ""


def test_times_that_are_not_finite_count_as_no_time():
    frames = timeline(("L", 200))
    frames += [(math.inf, "L", 0.9), (math.nan, "L", 0.9)]
    frames += [(float(t), "L", 0.9) for t in range(220, 400, STEP)]
    assert spell(frames) == ""
    assert spell(frames + [(400.0, "L", 0.9)]) == "L"


# -- state and params ---------------------------------------------------------------------------


def test_state_reports_the_pending_letter_its_progress_and_the_last_commits():
    decoder = SpellingDecoder()
    frames = timeline(("L", 600))
    feed(decoder, frames[:11])
    assert decoder.state() == {"text": "", "pending": "L", "progress": 0.5, "committed": []}
    feed(decoder, frames[11:21])
    state = decoder.state()
    assert state["committed"] == [{"kind": "letter", "text": "L", "label": "L", "t_ms": 400.0}]
    # Committed and not yet released: nothing is pending.
    assert (state["text"], state["pending"], state["progress"]) == ("L", None, 0.0)
    feed(decoder, frames[21:])
    assert decoder.state()["committed"] == []
    json.dumps(decoder.state())


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("min_confidence", 1.5, "min_confidence must be between 0 and 1"),
        ("hold_ms", -1.0, "hold_ms must be 0 or more"),
        ("flicker_ms", math.nan, "flicker_ms must be 0 or more"),
    ],
)
def test_params_out_of_range_are_refused_with_what_to_fix(field, value, match):
    with pytest.raises(ValueError, match=match):
        SpellingParams(**{field: value})


# -- properties ---------------------------------------------------------------------------------

LABELS = st.sampled_from([*DEFAULT_LABELS, None])
# Short times so that random streams commit often enough to exercise every rule.
QUICK = SpellingParams(hold_ms=60, release_ms=40, pause_space_ms=100, flicker_ms=20)
# Every time zero (with a one-character cap, below): the edges where a division or a slice could fail.
ZERO = SpellingParams(min_confidence=0.0, hold_ms=0.0, release_ms=0.0, pause_space_ms=0.0, flicker_ms=0.0)


@st.composite
def streams(draw, times=st.integers(-30, 60)):
    """Runs of frames (a signer holds a sign for a while), with random steps between frames."""
    frames, t = [], draw(st.integers(-1000, 1000))
    for _ in range(draw(st.integers(0, 40))):
        label = draw(LABELS)
        confidence = draw(st.floats(0.0, 1.0))
        for _ in range(draw(st.integers(1, 15))):
            t += draw(times)
            frames.append((float(t), label, confidence))
    return frames


def _positive_time(frames) -> float:
    total, last = 0.0, None
    for t, _, _ in frames:
        if last is not None and t > last:
            total += t - last
        last = t
    return total


@settings(max_examples=300, deadline=None)
@given(frames=streams())
def test_text_never_has_two_spaces_in_a_row_nor_starts_with_one(frames):
    decoder = SpellingDecoder(QUICK)
    for t, label, confidence in frames:
        decoder.update(label, confidence, t)
        assert "  " not in decoder.text
        assert not decoder.text.startswith(" ")


@settings(max_examples=300, deadline=None)
@given(frames=streams())
def test_text_is_never_longer_than_the_hold_windows_in_the_input(frames):
    # Every character needs its own hold (or pause) of frames no other character used.
    window = min(QUICK.hold_ms, QUICK.pause_space_ms)
    assert len(spell(frames, QUICK)) <= _positive_time(frames) // window


@settings(max_examples=300, deadline=None)
@given(frames=streams())
def test_events_replayed_on_empty_text_rebuild_the_text(frames):
    decoder, text = SpellingDecoder(QUICK), ""
    for event in feed(decoder, frames):
        text = text[: -len(event.text)] if event.kind == "delete" else text + event.text
    assert text == decoder.text


@settings(max_examples=200, deadline=None)
@given(step=st.integers(1, 100), frames=st.integers(1, 100))
def test_one_letter_held_any_length_commits_exactly_once_iff_held_for_hold_ms(step, frames):
    stream = [(float(i * step), "L", 0.9) for i in range(frames)]
    held = (frames - 1) * step  # the first frame of a stream accounts for no time
    assert spell(stream) == ("L" if held >= 400 else "")


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.one_of(LABELS, st.text(max_size=5)),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=200,
    ),
    params=st.sampled_from([SpellingParams(), QUICK, ZERO]),
)
def test_decoder_never_raises_and_its_state_stays_in_range(frames, params):
    cap = 1 if params is ZERO else base.MAX_TEXT
    with mock.patch.object(base, "MAX_TEXT", cap):
        decoder = SpellingDecoder(params)
        for t, label, confidence in frames:
            decoder.update(label, confidence, t)
            state = decoder.state()
            assert 0.0 <= state["progress"] <= 1.0
            assert len(state["text"]) <= cap
        json.dumps(decoder.state())
