"""A newcomer's first hour: a fresh server decodes its first word with the dictionary, the page
says what to do before a hand appears, and the test suite leaves the working tree as it was."""

from __future__ import annotations

import dataclasses
import pytest
from fastapi.testclient import TestClient

from _fakes import FakePredictor
from fingerspell.config import ServeParams
from fingerspell.decoding import lexicon
from fingerspell.server import create_app

PARAMS = dataclasses.replace(ServeParams(), allowed_hosts=("testserver",))


def test_a_fresh_server_answers_only_once_its_dictionary_is_loaded():
    lexicon.english.cache_clear()  # as in a new process: nothing loaded yet
    with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)) as c:
        first = c.get("/health").json()  # the first request a just-started server answers
        assert first["decoder"]["lexicon_words"] > 80_000


def test_a_server_without_the_dictionary_says_so():
    params = dataclasses.replace(PARAMS, lexicon=False)
    with TestClient(create_app(predictor=FakePredictor(), params=params)) as c:
        assert c.get("/health").json()["decoder"]["lexicon_words"] == 0


def test_a_lexicon_that_fails_to_load_stops_the_start_with_its_error(monkeypatch):
    def broken():
        raise OSError("the word list is missing")

    monkeypatch.setattr(lexicon, "english", broken)
    with pytest.raises(OSError, match="the word list is missing"):
        with TestClient(create_app(predictor=FakePredictor(), params=PARAMS)):
            pass
