"""The decoders on synthetic probability streams: letters from segments, words from a lexicon."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fingerspell.config import ConfigError, DecoderParams
from fingerspell.decoding import LetterDecoder, Lexicon, Position, WordDecoder, make_decoder, read_words
from fingerspell.decoding.rules import spell

STEP = 33  # ms between frames: a 30 frames/s camera
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
# A small lexicon of common words, with names' neighbours among them (THE for THEO, ANY for ANYA...).
COMMON = {"THE": 23_000_000, "OF": 13_000_000, "AND": 12_000_000, "ANY": 1_800_000, "MARK": 500_000,
          "ELF": 4_000, "BORN": 300_000, "HELLO": 33_000, "HELP": 600_000, "BOOK": 400_000, "COFFEE": 80_000,
          "STUDY": 150_000, "CAMERA": 90_000, "FAMILY": 300_000, "APPLE": 80_000, "CAT": 47_000, "CAR": 260_000,
          "TOMAS": 1_400, "THOMAS": 65_000, "WORLD": 900_000, "SHE": 2_000_000, "AS": 5_000_000}


def hand(x=0.5, y=0.5, size=0.2) -> Position:
    return Position(x, y, size)


def letter_frames(t, label, ms, *, p=0.9, alt="Q", x=0.5, slide_from=None):
    """Frames of one letter for ``ms`` from ``t``; with ``slide_from``, the hand slides in from there
    in its first 80 ms."""
    out = []
    n = max(1, round(ms / STEP))
    for i in range(n):
        pos = x
        if slide_from is not None:
            pos = slide_from + (x - slide_from) * min(1.0, (i + 1) * STEP / 80)
        third = next(c for c in "XYW" if c not in (label, alt))
        out.append((t + i * STEP, [(label, p), (alt, (1 - p) * 0.7), (third, (1 - p) * 0.2)],
                    hand(pos)))
    return out, t + n * STEP


def no_hand(t, ms):
    n = max(1, round(ms / STEP))
    return [(t + i * STEP, [("nothing", 1.0)], None) for i in range(n)], t + n * STEP


def signed(word, pace_ms=400, *, t=0, slide=True, pause_ms=900, paces=None, **kw):
    """A clean stream: each letter held ``pace_ms`` (or ``paces[i]``), a double letter slid sideways
    by a hand's width, then a pause."""
    frames, x = [], 0.5
    for i, ch in enumerate(word):
        ms = paces[i] if paces else pace_ms
        if i and ch == word[i - 1] and slide:
            new_x = 0.7 if x < 0.6 else 0.5
            part, t = letter_frames(t, ch, ms, x=new_x, slide_from=x, **kw)
            x = new_x
        else:
            part, t = letter_frames(t, ch, ms, x=x, **kw)
        frames += part
    gap, t = no_hand(t, pause_ms)
    return frames + gap, t


def run(decoder, frames):
    events = []
    for t, top, pos in frames:
        events += decoder.update(SimpleNamespace(top=top), t, pos)
    return events


@pytest.fixture(scope="module")
def small():
    return Lexicon(COMMON)


@pytest.fixture(scope="module")
def english():
    return Lexicon.english()


def decode(word_frames, lex=None, **params):
    d = WordDecoder(DecoderParams(**params), lex)
    run(d, word_frames)
    return d


# -- segments -----------------------------------------------------------------------------------


_small = Lexicon(COMMON)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(word=st.text(alphabet=LETTERS, min_size=1, max_size=8),
       pace=st.floats(min_value=250, max_value=1000),
       spread=st.lists(st.floats(min_value=0.7, max_value=1.3), min_size=8, max_size=8))
def test_a_clean_stream_of_any_word_at_any_pace_decodes_to_that_word(word, pace, spread):
    # Pace varies by +-30% within the word around 0.25-1 s a letter; each letter 0.25-1 s.
    frames, _ = signed(word, paces=[min(1000.0, max(250.0, pace * s)) for s in spread[:len(word)]])
    assert decode(frames, _small).text == word + " "


@settings(max_examples=30, deadline=None)
@given(word=st.text(alphabet=LETTERS, min_size=1, max_size=8), pace=st.floats(min_value=250, max_value=1000))
def test_without_the_lexicon_a_clean_stream_is_written_exactly_as_signed(word, pace):
    frames, _ = signed(word, pace)
    assert decode(frames, None).text == word + " "


def test_a_letter_held_a_quarter_second_is_written_while_it_is_held():
    frames, _ = signed("CAT", 250)
    d = WordDecoder(DecoderParams(), None)
    events = run(d, frames)
    letters = [e for e in events if e["kind"] == "letter"]
    assert [e["text"] for e in letters] == ["C", "A", "T"]
    for i, e in enumerate(letters):  # each letter's segment ends at (i + 1) x 250 ms
        assert e["t_ms"] - (i + 1) * 250 < 300


def test_same_letter_twice_with_a_slide_is_a_double_letter_and_without_one_a_single_letter():
    assert decode(signed("LL", 400)[0]).text == "LL "
    assert decode(signed("LL", 400, slide=False)[0]).text == "L "


def test_same_letter_again_after_the_hand_left_briefly_is_a_double_letter():
    a, t = letter_frames(0, "O", 400)
    gap, t = no_hand(t, 200)
    b, t = letter_frames(t, "O", 400)
    end, _ = no_hand(t, 900)
    assert decode(a + gap + b + end).text == "OO "


def test_a_slow_drift_during_a_long_hold_is_not_a_slide():
    frames = [(i * STEP, [("M", 0.9), ("N", 0.07)], hand(0.4 + i * 0.002)) for i in range(60)]
    assert decode(frames + no_hand(60 * STEP, 900)[0]).text == "M "


@pytest.mark.parametrize("blip", [[("E", 0.8)], [("E", 0.8), ("S", 0.7)], [("nothing", 1.0)]])
def test_a_flicker_of_another_label_or_a_lost_hand_inside_a_hold_is_absorbed(blip):
    a, t = letter_frames(0, "A", 300)
    mid = [(t + i * STEP, [blip[i]], hand() if blip[i][0] != "nothing" else None) for i in range(len(blip))]
    b, t = letter_frames(t + len(blip) * STEP, "A", 300)
    assert decode(a + mid + b + no_hand(t, 900)[0]).text == "A "


def test_an_uncertain_letter_is_kept_with_its_alternatives():
    frames = []
    t = 0
    for label, p, alt in (("C", 0.9, "O"), ("A", 0.45, "S"), ("T", 0.9, "X")):
        part, t = letter_frames(t, label, 400, p=p, alt=alt)
        frames += part
    d = WordDecoder(DecoderParams(), None)
    run(d, frames)
    word = d.state()["word"]
    assert word["letters"] == ["C", "A", "T"]
    assert word["alternatives"][1][:2] == ["A", "S"]
    assert d.visible() == "CAT"


def test_a_shape_read_as_two_letters_in_turn_is_one_letter():
    a, t = letter_frames(0, "E", 400)
    mixed = [(t + i * STEP, [("M", 0.45), ("N", 0.4), ("E", 0.1)] if i % 2 else [("N", 0.46), ("M", 0.44)], hand())
             for i in range(12)]
    d = decode(a + mixed + no_hand(t + 12 * STEP, 900)[0])
    assert len(d.text.strip()) == 2 and d.text[1] in "MN"


def test_a_pause_ends_the_word_and_a_hand_glimpsed_in_it_does_not():
    a, t = signed("HI", 400, pause_ms=300)
    glimpse = [(t, [("A", 0.9)], hand())]
    rest, t = no_hand(t + STEP, 400)
    d = decode(a + glimpse + rest)
    assert d.text == "HI "
    d = decode(signed("HI", 400, pause_ms=400)[0])
    assert d.text == "" and d.visible() == "HI"


def test_space_sign_ends_the_word_and_del_sign_removes_the_last_letter():
    frames, t = [], 0
    for label, ms in (("H", 400), ("I", 400), ("space", 500), ("Y", 400), ("O", 400), ("del", 500)):
        part, t = letter_frames(t, label, ms)
        frames += part
    d = WordDecoder(DecoderParams(), None)
    run(d, frames)
    assert d.text == "HI " and d.visible() == "HI Y"


def test_time_going_backwards_or_not_finite_counts_as_no_time_and_never_raises():
    d = WordDecoder(DecoderParams(), None)
    for t in (0, 1000, 500, math.nan, math.inf, "soon", None):
        d.update(SimpleNamespace(top=[("A", 0.9)]), t, hand())
    d.update(SimpleNamespace(top=[("A", math.nan), ("B", None)]), 1100, None)
    assert d.visible() in ("", "A")


# -- words ----------------------------------------------------------------------------------------


def missed_u(t=0):
    """STUDY with the U lost: the hand not found for a letter's time (the page's detector missed it)."""
    st_, t = signed("ST", 400, t=t, pause_ms=400)
    dy, t = signed("DY", 400, t=t)
    return st_ + dy, t


def test_a_missed_letter_is_put_back_by_the_lexicon_where_the_timing_has_room_for_it(small):
    assert decode(missed_u()[0], small).text == "STUDY "


def lost_letter(word, index, pace=400, t=0):
    """``word`` with the letter at ``index`` lost for longer than a pause that ends a word: the
    hand not found for a letter and a half (a photo the detector misses)."""
    before, t = signed(word[:index], pace, t=t, pause_ms=int(pace * 1.5))
    after, t = signed(word[index + 1:], pace, t=t)
    return before + after, t


def test_a_word_split_by_a_lost_letter_is_joined_again_when_the_lexicon_knows_it(small):
    d = WordDecoder(DecoderParams(), small)
    frames, t = lost_letter("CAMERA", 2)
    events = run(d, frames)
    assert d.text == "CAMERA "
    # The page first saw the pause end a word (CA), then the joined word replace it.
    words = [e for e in events if e["kind"] == "word"]
    assert [w["text"] for w in words] == ["CA", "CAMERA"] and words[-1].get("joined")
    assert d.state()["choice"]["signed"] == "CAERA"


def test_pieces_the_lexicon_cannot_join_into_one_word_stay_apart(small):
    # Two names after a short pause: joining them explains nothing, so they stay two words.
    first, t = signed("ELIF", 400, pause_ms=700)
    second, t = signed("TOMASZ", 400, t=t)
    assert decode(first + second, small).text == "ELIF TOMASZ "
    # Two words after a pause of several letters' length stay two even when they would make one.
    first, t = signed("CA", 400, pause_ms=1400)
    second, t = signed("ERA", 400, t=t)
    assert decode(first + second, small).text == "CA ERA "


def test_an_edit_after_a_word_ends_stops_the_next_word_joining_it(small):
    d = WordDecoder(DecoderParams(), small)
    first, t = signed("CA", 400, pause_ms=600)
    run(d, first)
    d.set_text(d.text + "x ")
    run(d, signed("ERA", 400, t=t)[0])
    assert d.text == "CA x ERA "


def test_with_spelling_weight_a_misread_letter_that_leaves_no_english_spelling_is_corrected(english):
    # TNXT: the E read as N with no doubt, so no evidence points at TEXT; but no name or word is
    # spelled TNXT, while LUPITA is spelled as names are. Off by default: it also costs names
    # spelled unlike English.
    assert "TNXT" not in english.counts
    assert english.surprisal("TNXT") > english.surprisal("LUPITA") + 5
    frames, t = [], 0
    for ch in "TNXT":
        part, t = letter_frames(t, ch, 400)
        frames += part
    frames += no_hand(t, 900)[0]
    assert decode(frames, english, spelling_weight=0.5).text == "TEXT "
    assert decode(frames, english).text == "TNXT "
    for name in ("LUPITA", "HARUKI"):
        assert decode(signed(name, 400)[0], english, spelling_weight=0.5).text == name + " "


def test_a_clean_stream_gets_no_letter_it_did_not_show(small):
    # AS and THE are common words one letter away, but nothing in the timing left room for a letter.
    assert decode(signed("A", 400)[0], small).text == "A "
    assert decode(signed("STDY", 400)[0], small).text == "STDY "


def test_a_misread_letter_whose_true_letter_is_second_is_corrected(small):
    frames, t = [], 0
    for ch in "CAMERA":
        part, t = letter_frames(t, "N" if ch == "M" else ch, 400, p=0.5 if ch == "M" else 0.9,
                                alt="M" if ch == "M" else "Q")
        frames += part
    frames += no_hand(t, 900)[0]
    assert decode(frames, small).text == "CAMERA "


def test_one_long_letter_may_stand_for_a_double_letter_when_a_word_says_so(small):
    frames, _ = signed("HELO", paces=[400, 400, 800, 400])
    assert decode(frames, small).text == "HELLO "
    # ...and a long letter of a name stays one letter.
    frames, _ = signed("ELIF", paces=[400, 400, 800, 400])
    assert decode(frames, small).text == "ELIF "


def test_names_that_are_in_no_dictionary_survive_the_english_lexicon(english):
    for name in ("ELIF", "LUPITA", "HARUKI", "OKSANA", "TOMASZ", "SIOBHAN", "THEO", "ANYA", "MAREK", "BJORN"):
        assert name not in english.counts
        for pace in (300, 600):
            assert decode(signed(name, pace)[0], english).text == name + " ", (name, pace)


def test_common_words_with_double_letters_come_out_right_at_a_fluent_pace(english):
    for word in ("HELLO", "BOOK", "COFFEE", "APPLE", "LITTLE", "SUMMER"):
        assert decode(signed(word, 300)[0], english).text == word + " "


def test_a_user_word_wins_over_the_dictionary_when_signed_with_a_letter_wrong(small):
    frames, t = signed("TOMAS", 400, pause_ms=0)
    z, t = letter_frames(t, "X", 400, p=0.6, alt="Z")
    frames += z + no_hand(t, 900)[0]
    d = WordDecoder(DecoderParams(), small, vocab=["Tomasz"])
    run(d, frames)
    assert d.text == "TOMASZ "


def test_the_lexicon_can_be_turned_off(small):
    assert decode(missed_u()[0], small, lexicon=False).text == "STDY "
    assert make_decoder(DecoderParams(lexicon=False), small).lexicon is None


def test_pick_reverts_the_chosen_word_to_the_letters_as_signed_and_back(small):
    d = decode(missed_u()[0], small)
    choice = d.state()["choice"]
    assert choice["signed"] == "STDY" and choice["chosen"] == "STUDY"
    assert choice["options"][:2] == ["STUDY", "STDY"] and 2 <= len(choice["options"]) <= 4
    assert d.pick("STDY") and d.text == "STDY "
    assert d.pick("STUDY") and d.text == "STUDY "
    assert not d.pick("NOT AN OPTION") and d.text == "STUDY "
    d.backspace()  # an edit: the choice can no longer be switched
    assert d.state()["choice"] is None and not d.pick("STDY")


def test_pick_replaces_only_the_last_word(small):
    a, t = signed("CAT", 400)
    b, t = missed_u(t)
    d = decode(a + b, small)
    assert d.text == "CAT STUDY "
    assert d.pick("STDY") and d.text == "CAT STDY "


def test_backspace_takes_the_word_being_signed_first_then_the_text_and_space_ends_the_word(small):
    a, t = signed("CAT", 400)
    b, _ = signed("DO", 400, t=t, pause_ms=100)
    d = decode(a + b, small)
    assert d.visible() == "CAT DO"
    assert d.backspace() == "O" and d.visible() == "CAT D"
    d.space()
    assert d.text == "CAT D " and d.state()["word"] is None
    d.space()
    assert d.text == "CAT D "
    assert d.backspace() == " " and d.text == "CAT D"
    d.set_text("kept")
    assert d.text == "kept"
    d.clear()
    assert d.text == "" and d.visible() == ""


def test_read_words_takes_the_first_word_of_each_line_and_says_what_is_wrong(tmp_path):
    f = tmp_path / "vocab.txt"
    f.write_text("# names\nLupita 10\n\nsiobhan\n", encoding="utf-8")
    assert read_words(f) == ["Lupita", "siobhan"]
    with pytest.raises(Exception, match="cannot read it as a UTF-8 word list"):
        read_words(tmp_path / "missing.txt")


# -- the interface --------------------------------------------------------------------------------


def test_the_letters_decoder_writes_what_the_old_rules_write():
    frames = []
    t = 0
    for label, ms in (("H", 500), ("I", 500)):
        part, t = letter_frames(t, label, ms)
        frames += part
    frames += no_hand(t, 1600)[0]
    d = LetterDecoder()
    run(d, frames)
    assert d.text == spell((f[0], f[1][0][0] if f[1][0][0] != "nothing" else None, f[1][0][1]) for f in frames)
    assert d.text == "HI "
    assert d.state()["word"] is None
    d.space()
    assert d.text == "HI "


def test_make_decoder_builds_the_kind_the_config_names_and_unknown_kinds_are_refused(small):
    assert isinstance(make_decoder(DecoderParams(kind="letters")), LetterDecoder)
    assert isinstance(make_decoder(DecoderParams(), small), WordDecoder)
    with pytest.raises(ConfigError, match="decoder kind 'spell' is not known; choose one of words, letters"):
        DecoderParams(kind="spell")
    with pytest.raises(ConfigError, match="word_pause_ms must be 0 or more"):
        DecoderParams(word_pause_ms=-1.0)
    with pytest.raises(ConfigError, match="trust_floor is a share of the letters' weight: at most 1, got 1.5"):
        DecoderParams(trust_floor=1.5)
    with pytest.raises(ConfigError, match=r"adapt_to \(0.3\) must be more than adapt_from \(0.35\)"):
        DecoderParams(adapt_to=0.3)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list("ABLO") + ["space", "del", "nothing"]),
                          st.floats(min_value=0, max_value=1), st.floats(min_value=0, max_value=0.5),
                          st.integers(min_value=0, max_value=120), st.booleans()), max_size=120))
def test_the_words_decoder_never_raises_and_its_state_stays_consistent(steps):
    d = WordDecoder(DecoderParams(), _small)
    t = 0
    for label, p, x, dt, present in steps:
        t += dt
        d.update(SimpleNamespace(top=[(label, p), ("B", 1 - p)]), t, hand(x) if present else None)
        state = d.state()
        assert 0.0 <= state["progress"] <= 1.0
        assert d.visible().startswith(d.text)
        assert "  " not in d.text and not d.text.startswith(" ")
    d.finish(t)
    assert d.state()["word"] is None


def test_a_stream_keeps_at_most_max_user_words_and_only_words_of_letters():
    from fingerspell.decoding.words import MAX_USER_WORDS

    d = WordDecoder(DecoderParams(), None)
    assert d.add_words(["Lupita", "lupita", "O'Neil", "x1", ""]) == 1
    many = ["".join(chr(65 + (i // 26 ** k) % 26) for k in range(3)) for i in range(MAX_USER_WORDS + 500)]
    assert d.add_words(many) == MAX_USER_WORDS - 1
    assert len(d.vocab) == MAX_USER_WORDS


def sure_misread(word, index, read, alt, p):
    """A clean stream of ``word`` whose letter ``index`` is read as ``read`` at ``p``, ``alt`` second."""
    frames, t = [], 0
    for i, ch in enumerate(word):
        part, t = letter_frames(t, read if i == index else ch, 400, p=p if i == index else 0.9,
                                alt=alt if i == index else "Q")
        frames += part
    return frames + no_hand(t, 900)[0]


def test_a_surely_read_letter_is_kept_but_an_unsure_closed_hand_letter_may_be_another(english):
    # MAREK's K read at 0.88 with S second: MARES is one letter away, but a sure letter stays
    assert "MARES" in english.counts and "MAREK" not in english.counts
    assert decode(sure_misread("MAREK", 4, "K", "S", 0.88), english).text == "MAREK "
    # TEXT's E read as N at 0.7, E not even among the top three: closed-hand letters the model confuses
    assert decode(sure_misread("TEXT", 1, "N", "Q", 0.7), english).text == "TEXT "
    # ...but not a letter of another shape read as unsurely (TEXT's E as a V is left as signed)
    assert decode(sure_misread("TEXT", 1, "V", "Q", 0.7), english).text == "TVXT "


# A signer the model reads badly: in every word one letter is misread, the true one second.
MISREAD = [("HELLO", 1, "A"), ("STUDY", 2, "E"), ("CAMERA", 3, "O"), ("FAMILY", 2, "N"), ("APPLE", 4, "O"),
           ("COFFEE", 1, "E"), ("BOOK", 3, "O"), ("HELP", 2, "A")]


def sign_in_turn(decoder, streams, t=0):
    """Run ``streams`` (each starting at 0 ms) one after another through ``decoder``; the time after them."""
    for frames in streams:
        run(decoder, [(ft + t, top, pos) for ft, top, pos in frames])
        t += frames[-1][0] + STEP
    return t


def misread(words):
    return [sure_misread(word, i, read, word[i], 0.55) for word, i, read in words]


def test_where_the_lexicon_keeps_changing_words_the_letters_are_trusted_less_and_a_revert_counts(small):
    d = WordDecoder(DecoderParams(), small)
    t = sign_in_turn(d, misread(MISREAD))
    assert d.text.split() == [w for w, _, _ in MISREAD]  # the lexicon put every one right...
    assert d.trust() == pytest.approx(DecoderParams().trust_floor)  # ...and so trusts the letters less
    # WORLD with its L read as X at 0.85: a fresh stream keeps a letter read that surely...
    world = sure_misread("WORLD", 3, "X", "L", 0.85)
    assert decode(world, small).text == "WORXD "
    # ...this one lets the lexicon have it
    sign_in_turn(d, [world], t)
    assert d.text.endswith(" WORLD ")
    # the user reverts a word: the letters were right after all, and that counts against the lexicon
    d = WordDecoder(DecoderParams(adapt_from=0.0, adapt_to=1.0), small)  # trust falls with every change
    sign_in_turn(d, misread(MISREAD[:6]))
    floor = DecoderParams().trust_floor
    assert d.trust() == pytest.approx(floor) and d.pick(d.choice.signed) and d.text.endswith(" CEFE ")
    assert d.trust() == pytest.approx(1 - (1 - floor) * 5 / 6)


def test_a_signer_read_well_keeps_full_trust_and_adapt_words_0_turns_adapting_off(small):
    d = WordDecoder(DecoderParams(), small)
    sign_in_turn(d, [signed(word)[0] for word in
                     ["HELLO", "STUDY", "CAMERA", "FAMILY", "APPLE", "COFFEE", "BOOK", "HELP", "THEO", "ANYA"]])
    assert d.text.split()[-2:] == ["THEO", "ANYA"] and d.trust() == 1.0
    off = WordDecoder(DecoderParams(adapt_words=0), small)
    sign_in_turn(off, misread(MISREAD[:6]))
    assert off.text.split() == ["HELLO", "STUDY", "CAMERA", "FAMILY", "APPLE", "COFFEE"] and off.trust() == 1.0


def test_a_letter_held_short_but_clearly_is_not_dropped_for_a_common_word(english):
    # MAREK at 0.45 s a letter with its E held 0.28 s and read clearly: a real letter, not the hand
    # between two shapes (with a full letter length needed to count in full, it became MARK)
    frames, _ = signed("MAREK", paces=[450, 450, 450, 280, 450], p=0.9)
    assert "MARK" in english.counts and "MAREK" not in english.counts
    assert decode(frames, english).text == "MAREK "


# -- user words: bounded, and found through an index -------------------------------------------------


def test_a_user_word_over_64_letters_or_past_the_streams_1000_refuses_the_lot_with_one_line():
    from fingerspell.decoding.lexicon import MAX_USER_WORDS, MAX_WORD_LETTERS

    d = WordDecoder(DecoderParams(), None)
    essay = "A" * 1_900_000
    assert d.check_words(["Lupita", "B" * MAX_WORD_LETTERS, "O'Neil"]) is None
    assert d.check_words(["Lupita", essay]) == ("word 2 is 1,900,000 characters long; send names and places "
                                                f"of at most {MAX_WORD_LETTERS} letters")
    assert d.add_words(["Lupita", essay, "C" * (MAX_WORD_LETTERS + 1)]) == 1  # added anyway, the long ones are not
    assert sorted(d.vocab) == ["LUPITA"]
    many = ["".join(chr(65 + (i // 26 ** k) % 26) for k in range(3)) for i in range(MAX_USER_WORDS)]
    assert d.check_words(["lupita"] + many[:MAX_USER_WORDS - 1]) is None  # LUPITA is no new word
    assert d.check_words(many) == (f"{MAX_USER_WORDS:,} new words would pass the limit of {MAX_USER_WORDS:,} a "
                                   f"stream keeps (it has 1); send at most {MAX_USER_WORDS - 1:,} new words")


def test_a_vocab_file_with_a_word_too_long_or_too_many_words_is_refused_naming_the_line(tmp_path):
    from fingerspell.decoding.lexicon import MAX_USER_WORDS

    f = tmp_path / "names.txt"
    f.write_text("# names\nLupita\n" + "X" * 65 + " a note\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^--vocab {f}, line 3: a word of 65 characters; user words "
                                          r"\(names, places\) are at most 64 letters$"):
        read_words(f)
    words = ["".join(chr(65 + (i // 26 ** k) % 26) for k in range(3)) for i in range(MAX_USER_WORDS + 1)]
    f.write_text("\n".join(["Lupita", "lupita", "O'Neil"] + words[:MAX_USER_WORDS - 1]), encoding="utf-8")
    assert len(read_words(f)) == MAX_USER_WORDS + 2  # a repeat and a word that is not letters count for nothing
    f.write_text("\n".join(words), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"line {MAX_USER_WORDS + 1}: more than 1,000 words; a stream keeps"):
        read_words(f)


@settings(max_examples=300, deadline=None)
@given(words=st.sets(st.text(alphabet="ABC", min_size=1, max_size=12), max_size=40),
       query=st.text(alphabet="ABC", min_size=1, max_size=12))
def test_the_user_words_index_finds_what_the_old_scan_found_within_edit_distance_2(words, query):
    from fingerspell.decoding.lexicon import UserWords, _distance

    scan = {w: _distance(w, query) for w in words if abs(len(w) - len(query)) <= 2 and _distance(w, query) <= 2}
    assert UserWords(words).lookup(query) == scan


def near_duplicates(word, n, keep=(), seed=0):
    """``n`` words one or two letters from ``word`` (the letters at ``keep`` kept): every one of
    them a candidate for it."""
    import random

    rng, out = random.Random(seed), set()
    free = [i for i in range(len(word)) if i not in keep]
    while len(out) < n:
        w = list(word)
        for _ in range(rng.randint(1, 2)):
            w[rng.choice(free)] = rng.choice(LETTERS)
        if "".join(w) != word:
            out.add("".join(w))
    return out


def test_a_word_is_chosen_among_1000_near_duplicate_user_words_through_the_index(small, monkeypatch):
    from fingerspell.decoding import lexicon

    def scan(a, b):
        raise AssertionError("user words were scanned one by one")

    monkeypatch.setattr(lexicon, "_distance", scan)
    name = "TOMASZEWSKI"
    d = WordDecoder(DecoderParams(), small, vocab=sorted(near_duplicates(name, 999, keep=(4,))) + [name])
    assert len(d.vocab) == 1000
    frames, t = signed(name[:4], pause_ms=0)
    q, t = letter_frames(t, "Q", 400, p=0.6, alt="S")  # the S misread, S second: the user word puts it right
    rest, t = signed(name[5:], t=t)
    run(d, frames + q + rest)
    assert d.text == name + " "


# -- custom signs -------------------------------------------------------------------------------


def test_a_custom_sign_commits_its_own_text_as_a_word_between_spelled_words(small):
    # HI, then the taught sign "Sam" held as a letter is, then CAT: the spelled word before it ends
    # and the sign is written as signed (never changed by the lexicon), a word of its own.
    hi, t = letter_frames(0, "H", 400)
    i, t = letter_frames(t, "I", 400)
    sam, t = letter_frames(t, "Sam", 500)
    cat, _ = signed("CAT", t=t)
    d = decode(hi + i + sam + cat, small)
    assert d.text == "HI Sam CAT "
    frames = hi + i + sam
    events = run(WordDecoder(DecoderParams(), small), frames)
    assert [e["kind"] for e in events][-2:] == ["word", "sign"] and events[-1]["text"] == "Sam"


def test_the_letters_decoder_writes_a_custom_sign_as_a_word_too():
    d = LetterDecoder()
    frames, t = letter_frames(0, "A", 600)
    sign, t = letter_frames(t, "MY-NAME", 700)
    gap, _ = no_hand(t, 300)
    run(d, frames + gap[:2] + sign + gap)
    assert d.text == "A MY-NAME "
