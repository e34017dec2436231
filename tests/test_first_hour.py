"""A newcomer's first hour: a fresh server decodes its first word with the dictionary, the page
says what to do before a hand appears, and the test suite leaves the working tree as it was."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import pytest
from fastapi.testclient import TestClient

from _fakes import FakePredictor
from _live import ROOT
from fingerspell.cli import _parser
from fingerspell.config import ServeParams
from fingerspell.decoding import lexicon
from fingerspell.server import create_app, params_from_env

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


def test_the_suite_leaves_no_tool_folders_where_it_runs(tmp_path):
    ran_in = tmp_path / "cwd"
    ran_in.mkdir()
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml"),
                          "--rootdir", str(ROOT), "--basetemp", str(tmp_path / "basetemp"),
                          "-k", "finite_float32_features or any_json_line",  # a hypothesis test in each file
                          str(ROOT / "tests" / "test_features.py"), str(ROOT / "tests" / "test_records.py")],
                         cwd=ran_in, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "HYPOTHESIS_STORAGE_DIRECTORY"})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "2 passed" in out.stdout
    assert sorted(p.name for p in ran_in.iterdir()) == []


def test_the_readmes_start_section_says_how_to_use_another_port():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme[readme.index("## Start"):readme.index("\n## ", readme.index("## Start") + 1)]
    flag = re.search(r"`\./scripts/serve\.sh --port (\d+)`", start)
    env = re.search(r"`FINGERSPELL_PORT=(\d+) \./scripts/serve\.sh`", start)
    assert flag and env, start
    # What the README promises is what they do: serve.sh hands its arguments to `fingerspell serve`,
    # which takes --port, and the variable is read as the port.
    assert 'fingerspell serve "$@"' in (ROOT / "scripts" / "serve.sh").read_text()
    args = _parser().parse_args(["serve", "--port", flag.group(1)])
    assert args.port == int(flag.group(1))
    assert params_from_env({"FINGERSPELL_PORT": env.group(1)}).port == int(env.group(1))
