"""A stream's own words over ``WS /ws``: bounded, chosen off the event loop, let go of on close."""

from __future__ import annotations

import asyncio
import gc
import json
import random
import threading
import time
import weakref
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from _fakes import FakePredictor
from fingerspell.config import ConfigError, DecoderParams, ServeParams
from fingerspell.decoding import Position, WordDecoder, make_decoder
from fingerspell.server import create_app, stream

# No English list: user words alone turn word choice on, and no test waits ~5 s for the list.
PARAMS = ServeParams(max_connections=3, allowed_hosts=("testserver",), lexicon=False)
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def command(ws, doc) -> dict:
    ws.send_text(json.dumps(doc))
    return ws.receive_json()


def word_of(n, seed=0) -> str:
    """``n`` letters, no letter twice in a row (a double letter needs a slide to be signed)."""
    rng, out = random.Random(seed), ""
    while len(out) < n:
        out += rng.choice([c for c in LETTERS if not out.endswith(c)])
    return out


def near_duplicates(word, n, seed=0) -> list[str]:
    """``n`` words one or two letters from ``word``: every one a candidate when ``word`` ends."""
    rng, out = random.Random(seed), set()
    while len(out) < n:
        w = list(word)
        for _ in range(rng.randint(1, 2)):
            w[rng.randrange(len(w))] = rng.choice(LETTERS)
        if "".join(w) != word:
            out.add("".join(w))
    return sorted(out)


def sign(decoder, word, ms=400) -> None:
    """The letters of ``word`` held ``ms`` each, surely read, and no pause after them: the word
    is still being signed."""
    t = 0
    for ch in word:
        for _ in range(ms // 33):
            decoder.update(SimpleNamespace(top=[(ch, 0.9), ("Q", 0.07)]), t, Position(0.5, 0.5, 0.2))
            t += 33


def on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


def test_vocab_refuses_a_word_over_64_letters_or_past_1000_words_a_stream_with_one_line():
    words = ["".join(chr(65 + (i // 26 ** k) % 26) for k in range(3)) for i in range(1000)]
    with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)) as c, c.websocket_connect("/ws") as ws:
        assert command(ws, {"type": "vocab", "words": ["Lupita", "B" * 64, "O'Neil"]})["type"] == "state"
        essay = command(ws, {"type": "vocab", "words": ["Siobhan", "A" * 100_000]})
        assert essay == {"type": "error", "error": "vocab: word 2 is 100,000 characters long; send names and "
                                                   "places of at most 64 letters"}
        assert command(ws, {"type": "vocab", "words": words[:600]})["type"] == "state"  # 602 words now
        over = command(ws, {"type": "vocab", "words": words[600:]})
        assert over == {"type": "error", "error": "vocab: 400 new words would pass the limit of 1,000 a stream "
                                                  "keeps (it has 602); send at most 398 new words"}
        # A refused command added nothing: there is room for 398 more, and then for none.
        assert command(ws, {"type": "vocab", "words": ["Siobhan"] + words[600:997]})["type"] == "state"
        assert command(ws, {"type": "vocab", "words": words[997:]})["error"].startswith("vocab: 3 new words")
        ws.send_bytes(b"not an image")  # the socket still works
        assert ws.receive_json()["type"] == "error"


def test_a_vocab_file_past_the_limits_stops_the_server_naming_the_file_and_line(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("Lupita\n" + "A" * 1_900_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"--vocab {names}, line 2: a word of 1,900,000 characters; user words"):
        create_app(predictor=FakePredictor(), params=ServeParams(vocab=str(names)))


def test_a_closed_streams_decoder_is_freed_at_once_not_by_the_cyclic_collector(monkeypatch):
    made = []

    def tracked(*args, **kwargs):
        decoder = make_decoder(*args, **kwargs)
        made.append(weakref.ref(decoder))
        return decoder

    monkeypatch.setattr(stream, "make_decoder", tracked)
    with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)) as c:
        gc.collect()
        gc.disable()  # only reference counting frees anything from here
        try:
            with c.websocket_connect("/ws") as ws:
                assert command(ws, {"type": "vocab", "words": near_duplicates(word_of(38), 1000)})["type"] == "state"
                ws.send_bytes(b"not an image")
                assert ws.receive_json()["type"] == "error"
            # The server puts the stream away after the client left; give it time, but no collector.
            deadline = time.monotonic() + 10
            while made[0]() is not None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert made[0]() is None, "the closed stream's decoder (and its 1,000 words) is still held"
        finally:
            gc.enable()


class GatedDecoder(WordDecoder):
    """A words decoder that notes where each call runs and holds a word's choice until ``release``."""

    def __init__(self, *args, **kwargs):
        self.on_loop: list[tuple[str, bool]] = []
        self.started, self.release = threading.Event(), threading.Event()
        self.order: list[str] = []
        super().__init__(*args, **kwargs)

    def add_words(self, words) -> int:
        self.on_loop.append(("add_words", on_event_loop()))
        return super().add_words(words)

    def _choose(self, evidence):
        self.on_loop.append(("choose", on_event_loop()))
        self.started.set()
        self.release.wait(10)  # on the event loop (the old way) this blocks every request till then
        choice = super()._choose(evidence)
        self.order.append("chosen")
        return choice


def test_a_word_ending_against_1000_near_duplicate_user_words_leaves_the_event_loop_answering(monkeypatch):
    name = word_of(38)
    made: list[GatedDecoder] = []

    def gated(params, lexicon, vocab, spelling):
        decoder = GatedDecoder(DecoderParams(), None, vocab)  # words chosen, from the user's words alone
        sign(decoder, name)
        decoder.on_loop.clear()  # made and fed here, by the test: from now on the server calls it
        made.append(decoder)
        return decoder

    monkeypatch.setattr(stream, "make_decoder", gated)
    with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)) as c, c.websocket_connect("/ws") as ws:
        assert command(ws, {"type": "vocab", "words": near_duplicates(name, 999) + [name]})["type"] == "state"
        ws.send_bytes(b"not an image")
        assert ws.receive_json()["type"] == "error"
        decoder = made[0]
        ws.send_text(json.dumps({"type": "space"}))  # the word ends: choose among 1,000 candidates
        assert decoder.started.wait(10)
        health = c.get("/health")  # while the word is being chosen
        decoder.order.append("health")
        decoder.release.set()
        state = ws.receive_json()
    assert health.status_code == 200
    assert decoder.order == ["health", "chosen"]
    assert state["spelling"]["text"] == name + " "
    assert state["spelling"]["choice"]["options"][0] == name  # chosen among the user words
    assert [call for call, loop in decoder.on_loop if loop] == []
    assert {call for call, _ in decoder.on_loop} == {"add_words", "choose"}
