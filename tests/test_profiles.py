"""Profiles: a user's samples and personal model behind a token (``teach/profiles.py``, the routes
in ``server/profiles.py``, the trainings and the stream's switch in ``server/teaching.py``).

In process, against ``FakePredictor`` (tests/_fakes.py), each test with its own data folder under
tmp_path. The hands are synthetic (``records.from_points`` of seeded random points): storage does
not care what they show. Training runs a stand-in for ``fingerspell.teach.teach`` that writes a
folder and reports progress, so what is checked is the job (its turn, its progress, its failure,
the swap, the streams' switch), not the personal model's method.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from _fakes import FakePredictor
from test_teach import base_folder  # noqa: F401 (the fixture: the default model less one person's hands)
from fingerspell import outputs, records
from fingerspell import teach as teaching
from fingerspell.config import ServeParams
from fingerspell.errors import FingerspellError
from fingerspell.server import create_app
from fingerspell.server.settings import data_dir
from fingerspell.teach import profiles as storage
from fingerspell.teach import samples as checks

ROUTES = [("GET", "/profile"), ("PATCH", "/profile"), ("DELETE", "/profile"), ("POST", "/profile/samples"),
          ("GET", "/profile/samples"), ("PUT", "/profile/samples"), ("POST", "/profile/samples/upload"),
          ("DELETE", "/profile/samples"), ("POST", "/profile/train"), ("GET", "/profile/model")]


def hands(n: int, seed: int = 0) -> list[dict]:
    """``n`` hands as the page sends them (landmark records' ``hand`` objects)."""
    points = np.random.default_rng(seed).uniform(0.2, 0.8, (n, 21, 3)).astype(np.float32)
    return [records.hand_to_json(r.hand) for r in records.from_points(points)]


def app(folder: Path, predictor=None):
    params = ServeParams(allowed_hosts=("testserver",), data_dir=str(folder))
    return TestClient(create_app(predictor=predictor or FakePredictor(), params=params))


@pytest.fixture
def data(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def client(data):
    with app(data) as c:
        yield c


def new_profile(client) -> dict:
    """Headers with a new profile's token."""
    r = client.post("/profiles")
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def teach(client, auth, label="A", n=5, seed=0, source="teach") -> dict:
    r = client.post("/profile/samples", json={"label": label, "source": source, "hands": hands(n, seed)}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` and its bytes: what a refused request must leave as it was."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- the happy paths


def test_a_new_profile_is_a_private_folder_named_by_the_tokens_hash(client, data):
    r = client.post("/profiles")
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    token, profile = r.json()["token"], r.json()["profile"]
    assert profile["samples"] == 0 and profile["model"]["state"] == "none" and profile["use"] == "default"
    assert profile["limits"]["max_samples"] == storage.MAX_SAMPLES
    folder = data / "profiles" / hashlib.sha256(token.encode()).hexdigest()[:32]
    assert json.loads((folder / "profile.json").read_text())["learn"] is False
    for path in (data, data / "profiles", folder):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert not any(token in p.name or token.encode() in p.read_bytes() for p in data.rglob("*") if p.is_file())


def test_the_data_folder_is_made_only_when_the_first_profile_is(client, data):
    assert client.get("/health").json()["limits"]["max_profiles"] == storage.MAX_PROFILES
    assert client.get("/profile", headers={"Authorization": "Bearer " + "x" * 43}).status_code == 401
    assert not data.exists()
    new_profile(client)
    assert data.is_dir()


def test_the_data_folder_is_the_flag_then_the_variable_then_the_user_data_folder(tmp_path):
    env = {"FINGERSPELL_DATA_DIR": str(tmp_path / "env")}
    assert data_dir(ServeParams(data_dir=str(tmp_path / "flag")), env) == tmp_path / "flag"
    assert data_dir(ServeParams(), env) == tmp_path / "env"
    import platformdirs

    assert data_dir(ServeParams(), {}) == Path(platformdirs.user_data_dir("fingerspell"))


def test_serve_data_dir_reaches_the_servers_settings(monkeypatch, tmp_path):
    from fingerspell import cli, serve

    seen = {}
    monkeypatch.setattr(serve, "run", lambda **kw: seen.update(kw))
    assert cli.main(["serve", "--data-dir", str(tmp_path / "mine")]) == 0
    assert seen["params"].data_dir == str(tmp_path / "mine")


def test_a_take_is_stored_as_landmark_records_that_the_records_reader_takes(client, data):
    auth = new_profile(client)
    answer = teach(client, auth, "G", n=4)
    assert answer["added"] == 4 and answer["profile"]["labels"] == {"G": 4}
    take = answer["profile"]["takes"][0]
    assert (take["batch"], take["label"], take["n"], take["source"]) == (answer["batch"], "G", 4, "teach")
    r = client.get("/profile/samples", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert 'filename="fingerspell-samples.jsonl"' in r.headers["content-disposition"]
    got = list(records.iter_lines(r.content.splitlines()))
    assert [(s.label, s.group, s.extra["batch"], s.extra["source"]) for s in got] == [
        ("G", take["batch"], take["batch"], "teach")] * 4
    sent = np.array([h["landmarks"] for h in hands(4)], np.float32)
    assert np.array_equal(np.stack([s.hand.landmarks for s in got]), sent)
    downloaded = data / "mine.jsonl"
    downloaded.write_bytes(r.content)
    assert len(records.read(downloaded)) == 4  # what train, evaluate and teach read as --data


def test_learnt_letters_need_learning_on_and_come_as_one_take_of_several_labels(client):
    auth = new_profile(client)
    word = {"source": "learn", "takes": [{"label": "H", "hands": hands(1, 1)}, {"label": "I", "hands": hands(2, 2)}]}
    r = client.post("/profile/samples", json=word, headers=auth)
    assert r.status_code == 409 and '{"learn": true}' in r.json()["error"]
    r = client.patch("/profile", json={"learn": True}, headers=auth)
    assert r.status_code == 200 and r.json()["learn"] is True
    r = client.post("/profile/samples", json=word, headers=auth)
    assert r.status_code == 201 and r.json()["profile"]["labels"] == {"H": 1, "I": 2}
    assert {t["source"] for t in r.json()["profile"]["takes"]} == {"learn"}


def test_a_take_or_a_label_can_be_discarded(client):
    auth = new_profile(client)
    first = teach(client, auth, "A", 3)["batch"]
    teach(client, auth, "A", 2, seed=1)
    teach(client, auth, "B", 2, seed=2)
    r = client.delete("/profile/samples", params={"batch": first}, headers=auth)
    assert r.status_code == 200 and r.json()["labels"] == {"A": 2, "B": 2}
    r = client.delete("/profile/samples", params={"label": "A"}, headers=auth)
    assert r.status_code == 200 and r.json()["labels"] == {"B": 2}
    r = client.delete("/profile/samples", params={"batch": first}, headers=auth)
    assert r.status_code == 404 and first in r.json()["error"]
    r = client.delete("/profile/samples", headers=auth)
    assert r.status_code == 422 and "batch=ID" in r.json()["error"]


def test_samples_downloaded_go_back_up_as_they_were_and_an_upload_appends(client):
    mine, other = new_profile(client), new_profile(client)
    teach(client, mine, "A", 3)
    teach(client, mine, "Bob", 2, seed=1)
    file = client.get("/profile/samples", headers=mine).content
    r = client.put("/profile/samples", content=file, headers=other)
    assert r.status_code == 200, r.text
    assert r.json()["takes"] == client.get("/profile", headers=mine).json()["takes"]
    assert client.get("/profile/samples", headers=other).content == file
    r = client.post("/profile/samples/upload", content=file, headers=other)
    assert r.status_code == 201 and r.json()["added"] == 5 and r.json()["profile"]["labels"] == {"A": 6, "Bob": 4}


def test_an_upload_without_takes_becomes_one_take_of_its_own(client):
    auth = new_profile(client)
    points = np.random.default_rng(3).uniform(0.2, 0.8, (3, 21, 3))
    r = client.post("/profile/samples/upload", content=records.dumps(records.from_points(points, label="C")),
                    headers=auth)
    assert r.status_code == 201
    assert [(t["label"], t["n"], t["source"]) for t in r.json()["profile"]["takes"]] == [("C", 3, "upload")]


def test_the_personal_model_can_be_chosen_only_once_there_is_one(client):
    auth = new_profile(client)
    r = client.patch("/profile", json={"use": "personal"}, headers=auth)
    assert r.status_code == 409 and "POST /profile/train" in r.json()["error"]
    assert client.get("/profile/model", headers=auth).status_code == 404
    for bad in ({"use": "mine"}, {"learn": "yes"}, {"colour": "red"}):
        r = client.patch("/profile", json=bad, headers=auth)
        assert r.status_code == 422, bad
    assert client.patch("/profile", content=b"{", headers=auth).status_code == 400
    assert client.get("/profile", headers=auth).json()["use"] == "default"


def test_a_deleted_profile_is_gone_and_its_token_opens_nothing(client, data):
    auth = new_profile(client)
    teach(client, auth)
    assert client.delete("/profile", headers=auth).status_code == 204
    assert list((data / "profiles").iterdir()) == []
    for method, path in ROUTES:
        r = client.request(method, path, headers=auth)
        assert r.status_code == 401 and "no profile has this token" in r.json()["error"], (method, path)


def test_a_profile_survives_a_new_app_on_the_same_data_folder(data):
    with app(data) as first:
        auth = new_profile(first)
        teach(first, auth, "A", 3)
        first.patch("/profile", json={"learn": True}, headers=auth)
        before = first.get("/profile/samples", headers=auth).content
    with app(data) as second:
        r = second.get("/profile", headers=auth)
        assert r.status_code == 200 and r.json()["labels"] == {"A": 3} and r.json()["learn"] is True
        assert second.get("/profile/samples", headers=auth).content == before


# --------------------------------------------------------------------------- tokens


@pytest.mark.parametrize("header", [None, "Bearer", "Basic dXNlcjpwYXNz", "Bearer short", "Bearer ../../etc/passwd",
                                    "Bearer " + "A" * 43, "Bearer " + "A" * 500])
def test_a_request_without_a_profiles_token_is_401_and_changes_nothing(client, data, header):
    auth = new_profile(client)
    teach(client, auth)
    before = snapshot(data)
    for method, path in ROUTES:
        r = client.request(method, path, headers={"Authorization": header} if header else {},
                           json={"label": "A", "hands": hands(1)} if method in ("POST", "PATCH") else None,
                           params={"label": "A"} if method == "DELETE" else None)
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["error"]
    assert snapshot(data) == before


def test_one_profiles_token_reads_and_deletes_only_its_own(client, data):
    mine, theirs = new_profile(client), new_profile(client)
    teach(client, mine, "A", 3)
    teach(client, theirs, "Z", 2, seed=5)
    mine_before = client.get("/profile/samples", headers=mine).content
    assert client.get("/profile", headers=theirs).json()["labels"] == {"Z": 2}
    assert b'"label":"A"' not in client.get("/profile/samples", headers=theirs).content
    assert client.delete("/profile/samples", params={"label": "A"}, headers=theirs).status_code == 404
    assert client.delete("/profile", headers=theirs).status_code == 204
    assert client.get("/profile/samples", headers=mine).content == mine_before
    assert len(list((data / "profiles").iterdir())) == 1


# --------------------------------------------------------------------------- bad input


def test_a_body_over_the_upload_limit_is_413_as_it_is_read_and_nothing_is_saved(client, data):
    auth = new_profile(client)
    teach(client, auth)
    before = snapshot(data)
    over = storage.MAX_UPLOAD_BYTES + 1
    r = client.put("/profile/samples", content=b"x" * over, headers=auth)
    assert r.status_code == 413 and "8,388,608" in r.json()["error"]

    sent = 0

    def chunks():  # no Content-Length: the limit holds while the body is read
        nonlocal sent
        while sent <= over:
            sent += 1 << 20
            yield b" " * (1 << 20)

    for method, path in (("POST", "/profile/samples"), ("POST", "/profile/samples/upload"), ("PATCH", "/profile")):
        sent = 0
        r = client.request(method, path, content=chunks(), headers=auth)
        assert r.status_code == 413 and "over the limit of 8,388,608 bytes" in r.json()["error"], (method, path)
    r = client.post("/profile/samples", content=b"1", headers={**auth, "content-length": "999999999"})
    assert r.status_code == 413
    assert snapshot(data) == before


@pytest.mark.parametrize("label", ["../x", "a/b", "a\\b", "..", ".", "a\x00b", "new\nline", "\x1b[31m", "x" * 65, "",
                                   "   ", 7, None, ["A"]])
def test_a_label_that_could_not_name_a_sign_is_422_and_nothing_is_saved(client, data, label):
    auth = new_profile(client)
    before = snapshot(data)
    r = client.post("/profile/samples", json={"label": label, "hands": hands(2)}, headers=auth)
    assert r.status_code == 422 and '"label"' in r.json()["error"], r.text
    r = client.post("/profile/samples", json={"source": "teach", "takes": [{"label": "A", "hands": hands(1)},
                                                                           {"label": label, "hands": hands(1)}]},
                    headers=auth)
    assert r.status_code == 422 and r.json()["error"].startswith("takes[1]: ")
    assert snapshot(data) == before


def test_a_label_of_64_printable_characters_is_a_sign(client):
    auth = new_profile(client)
    assert teach(client, auth, "É" * 64, 1)["profile"]["labels"] == {"É" * 64: 1}


@pytest.mark.parametrize("doc, said", [
    ({"label": "A", "hands": [hands(1)[0], {"landmarks": [[0, 0, 0]] * 20, "handedness": "Right",
                                           "image_size": [640, 480]}]}, "hands[1]: \"hand.landmarks\" must be 21"),
    ({"label": "A", "hands": [{**hands(1)[0], "handedness": "Up"}]}, "hands[0]: \"hand.handedness\""),
    ({"label": "A", "hands": [{**hands(1)[0], "image_size": [0, 480]}]}, "hands[0]: \"hand.image_size\""),
    ({"label": "A", "hands": [None]}, "hands[0] is null"),
    ({"label": "A", "hands": []}, '"hands" must be a list of 1 to 120'),
    ({"label": "A", "hands": hands(1) * (storage.MAX_TAKE + 1)}, "a take holds at most 120"),
    ({"label": "A", "hands": hands(1), "source": "upload"}, '"source" must be "teach" or "learn"'),
    ({"label": "A", "hands": hands(1), "takes": []}, 'not both'),
    ({"takes": "AB"}, '"takes" must be a list'),
    ([1, 2], None),
])
def test_hands_that_are_not_as_the_format_says_are_refused_naming_the_hand(client, data, doc, said):
    auth = new_profile(client)
    teach(client, auth)
    before = snapshot(data)
    r = client.post("/profile/samples", json=doc, headers=auth)
    assert r.status_code == (400 if said is None else 422), r.text
    assert said is None or said in r.json()["error"]
    assert snapshot(data) == before


def test_numbers_json_cannot_carry_are_not_hands(client):
    auth = new_profile(client)
    hand = hands(1)[0]
    body = json.dumps({"label": "A", "hands": [hand]}).replace(str(hand["landmarks"][0][0]), "NaN", 1)
    r = client.post("/profile/samples", content=body, headers=auth)
    assert r.status_code == 422 and "finite" in r.json()["error"]
    assert client.post("/profile/samples", content=b"not json", headers=auth).status_code == 400


def records_file(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


GOOD = json.dumps({"label": "A", "hand": hands(1)[0]})
HEADER = json.dumps(records.HEADER)


@pytest.mark.parametrize("body, said", [
    (b"", "upload: empty"),
    (records_file('{"format": "something-else"}', GOOD), "upload:1: the first line must be"),
    (records_file(json.dumps({**records.HEADER, "version": 9}), GOOD), "upload:1: version 9"),
    (records_file(HEADER, GOOD, '{"label": "A", "hand": '), "upload:3:"),
    (records_file(HEADER, GOOD, GOOD, json.dumps({"label": "../up", "hand": hands(1)[0]})), "upload:4: \"label\""),
    (records_file(HEADER, GOOD, json.dumps({"hand": hands(1)[0]})), 'upload:3: a sample needs a "label"'),
    (records_file(HEADER, json.dumps({"label": "A", "hand": None})), 'upload:2: a sample needs a "label" and a "hand"'),
    (records_file(HEADER, "", GOOD, json.dumps({"label": "A", "hand": {"landmarks": []}})), "upload:4: \"hand.landmarks\""),
    (records_file(HEADER, json.dumps({"label": "A", "hand": hands(1)[0], "pad": "x" * 70_000})), "upload:2: a line of"),
    (b"\xff\xfe" + records_file(HEADER, GOOD), "upload:1:"),
])
def test_a_malformed_records_file_is_422_naming_the_line_and_nothing_is_changed(client, data, body, said):
    auth = new_profile(client)
    teach(client, auth, "Z", 2)
    before = snapshot(data)
    for method, path in (("PUT", "/profile/samples"), ("POST", "/profile/samples/upload")):
        r = client.request(method, path, content=body, headers=auth)
        assert r.status_code == 422 and r.json()["error"].startswith(said), (method, r.text)
        assert "nothing was changed" in r.json()["error"]
    assert snapshot(data) == before


def test_samples_past_a_profiles_limit_are_409_and_none_is_added(client, data, monkeypatch):
    monkeypatch.setattr(storage, "MAX_SAMPLES", 6)
    monkeypatch.setattr(checks, "MAX_SAMPLES", 6)
    auth = new_profile(client)
    teach(client, auth, "A", 5)
    before = snapshot(data)
    r = client.post("/profile/samples", json={"label": "B", "hands": hands(2)}, headers=auth)
    assert r.status_code == 409 and "would hold 7 samples, over its limit of 6" in r.json()["error"]
    file = records.dumps(records.from_points(np.full((7, 21, 3), 0.5), label="C")).encode()
    r = client.put("/profile/samples", content=file, headers=auth)
    assert r.status_code == 409 and "over 6 samples" in r.json()["error"]
    two = records.dumps(records.from_points(np.full((2, 21, 3), 0.5), label="C")).encode()
    r = client.post("/profile/samples/upload", content=two, headers=auth)
    assert r.status_code == 409 and "would hold 7 samples" in r.json()["error"]
    assert snapshot(data) == before
    assert teach(client, auth, "B", 1)["profile"]["samples"] == 6  # up to the limit is fine


def test_profiles_past_the_servers_limit_are_429(client, data, monkeypatch):
    monkeypatch.setattr(storage, "MAX_PROFILES", 2)
    first = new_profile(client)
    new_profile(client)
    r = client.post("/profiles")
    assert r.status_code == 429 and "holds 2 profiles, its limit" in r.json()["error"]
    assert len(list((data / "profiles").iterdir())) == 2
    client.delete("/profile", headers=first)
    new_profile(client)  # room again


@pytest.mark.parametrize("where", ["write", "replace"])
def test_a_save_that_fails_midway_loses_nothing_saved_before(client, data, monkeypatch, where):
    auth = new_profile(client)
    teach(client, auth, "A", 3)
    client.patch("/profile", json={"learn": True}, headers=auth)
    before = snapshot(data)

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if where == "write":
        monkeypatch.setattr(outputs.os, "fsync", fail)  # the new file half written, not yet in place
    else:
        monkeypatch.setattr(outputs.os, "replace", fail)  # written whole, the swap fails
    for method, path, body in (("POST", "/profile/samples", {"label": "B", "hands": hands(2)}),
                               ("PATCH", "/profile", {"learn": False}),
                               ("DELETE", "/profile/samples", None)):
        r = client.request(method, path, json=body, params={"label": "A"} if method == "DELETE" else None,
                           headers=auth)
        assert r.status_code == 507 and "No space left on device" in r.json()["error"], (method, path, r.text)
        assert "nothing was changed" in r.json()["error"] and str(data) not in r.json()["error"]
    monkeypatch.undo()
    assert snapshot(data) == before  # no half file, no temporary file left beside it
    r = client.get("/profile", headers=auth)
    assert r.json()["labels"] == {"A": 3} and r.json()["learn"] is True


# --------------------------------------------------------------------------- training


class FakeTeach:
    """Stands in for ``fingerspell.teach.teach`` / ``load_personal``: writes ``version.txt`` into
    ``out``; ``fail`` raises after writing half a bundle; ``hold`` blocks until set or stopped."""

    def __init__(self):
        self.version = 0
        self.fail: Exception | None = None
        self.hold = threading.Event()
        self.hold.set()
        self.calls = []

    def teach(self, base, samples, out, *, progress=None, stop=None):
        self.calls.append((base, len(samples)))
        out.mkdir()
        (out / "half.txt").write_text("")
        progress(0.5, "fitting")
        while not self.hold.wait(0.01):
            if stop():
                return None
        if self.fail is not None:
            raise self.fail
        self.version += 1
        (out / "version.txt").write_text(str(self.version))
        progress(1.0)
        return SimpleNamespace(to_json=lambda: {"taught": {"A": len(samples)}, "seconds": 0.1})

    @staticmethod
    def load_personal(folder):
        return SimpleNamespace(labels=["A", "B", "custom"], version=(folder / "version.txt").read_text())


@pytest.fixture
def fake_teach(monkeypatch) -> FakeTeach:
    fake = FakeTeach()
    monkeypatch.setattr(teaching, "teach", fake.teach)
    monkeypatch.setattr(teaching, "load_personal", fake.load_personal)
    return fake


def wait_for(client, auth, state: str, seconds: float = 10.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        profile = client.get("/profile", headers=auth).json()
        if profile["model"]["state"] == state:
            return profile
        time.sleep(0.02)
    raise AssertionError(f"the model never became {state}: {profile['model']}")


def wait_for_progress(client, auth, progress: float, seconds: float = 10.0) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        profile = client.get("/profile", headers=auth).json()
        if profile["model"]["progress"] >= progress:
            return profile
        time.sleep(0.02)
    raise AssertionError(f"the training never reached {progress}: {profile['model']}")


def zipped_version(client, auth) -> str:
    r = client.get("/profile/model", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        return zf.read("fingerspell-personal/version.txt").decode()


def test_training_runs_in_the_background_reports_progress_and_swaps_in_the_model(client, data, fake_teach):
    auth = new_profile(client)
    teach(client, auth, "A", 3)
    teach(client, auth, "B", 2, seed=1)
    fake_teach.hold.clear()
    r = client.post("/profile/train", headers=auth)
    assert r.status_code == 202 and r.json()["model"]["state"] == "training"
    running = wait_for_progress(client, auth, 0.5)
    assert running["model"]["state"] == "training" and running["model"]["progress"] == 0.5 and running["model"]["message"] == "fitting"
    assert client.get("/health").status_code == 200  # the server answers meanwhile
    fake_teach.hold.set()
    ready = wait_for(client, auth, "ready")
    assert ready["use"] == "personal"
    card = ready["model"]["card"]
    assert card["samples"] == 5 and card["labels"] == {"A": 3, "B": 2} and card["taught"] == {"A": 5}
    assert zipped_version(client, auth) == "1"
    assert fake_teach.calls == [(None, 5)]  # the fake predictor has no bundle folder
    folder = next((data / "profiles").iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["model", "profile.json", "samples.jsonl"]


def test_a_failed_training_keeps_the_previous_model_and_says_why(client, data, fake_teach):
    auth = new_profile(client)
    teach(client, auth)
    client.post("/profile/train", headers=auth)
    wait_for(client, auth, "ready")
    fake_teach.fail = FingerspellError("B has no samples")
    assert client.post("/profile/train", headers=auth).status_code == 202
    failed = wait_for(client, auth, "failed")
    assert failed["model"]["message"] == "training failed: B has no samples; the profile's model was not changed"
    assert failed["model"]["card"]["samples"] == 5 and failed["use"] == "personal"
    assert zipped_version(client, auth) == "1"
    fake_teach.fail = RuntimeError("a bug")
    client.post("/profile/train", headers=auth)
    assert "server fault" in wait_for(client, auth, "failed")["model"]["message"]
    assert not (next((data / "profiles").iterdir()) / "model.new").exists()
    fake_teach.fail = None
    client.post("/profile/train", headers=auth)
    wait_for(client, auth, "ready")
    assert zipped_version(client, auth) == "2"  # the failed ones wrote none


def test_one_training_at_a_time_the_same_profile_twice_is_409_another_waits(client, fake_teach):
    mine, theirs = new_profile(client), new_profile(client)
    teach(client, mine)
    teach(client, theirs, seed=1)
    fake_teach.hold.clear()
    assert client.post("/profile/train", headers=mine).status_code == 202
    wait_for_progress(client, mine, 0.5)
    r = client.post("/profile/train", headers=mine)
    assert r.status_code == 409 and "already" in r.json()["error"]
    r = client.post("/profile/train", headers=theirs)
    assert r.status_code == 202 and r.json()["model"]["message"].startswith("waiting")
    time.sleep(0.1)
    assert len(fake_teach.calls) == 1
    fake_teach.hold.set()
    wait_for(client, mine, "ready")
    wait_for(client, theirs, "ready")
    assert len(fake_teach.calls) == 2


def test_training_without_samples_is_422(client, fake_teach):
    auth = new_profile(client)
    r = client.post("/profile/train", headers=auth)
    assert r.status_code == 422 and "no samples yet" in r.json()["error"]
    assert fake_teach.calls == []


def test_deleting_a_profile_stops_its_training_and_leaves_no_folder(client, data, fake_teach):
    auth = new_profile(client)
    teach(client, auth)
    fake_teach.hold.clear()
    client.post("/profile/train", headers=auth)
    wait_for_progress(client, auth, 0.5)
    assert client.delete("/profile", headers=auth).status_code == 204
    deadline = time.monotonic() + 5
    while any((data / "profiles").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list((data / "profiles").iterdir()) == []


# --------------------------------------------------------------------------- the stream


class Recording(FakePredictor):
    """A fake predictor that keeps its streams, to see which model each frame was recognised with."""

    def __init__(self):
        super().__init__()
        self.streams = []

    def stream(self):
        self.streams.append(super().stream())
        return self.streams[-1]


def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (180, 120, 90)).save(buf, "JPEG")
    return buf.getvalue()


def test_the_profile_command_picks_the_streams_model_and_a_bad_token_keeps_the_socket(data, fake_teach):
    predictor = Recording()
    with app(data, predictor) as client, client.websocket_connect("/ws") as ws:
        auth = new_profile(client)
        token = auth["Authorization"].split()[1]
        for doc in ({"type": "profile"}, {"type": "profile", "token": 5}, {"type": "profile", "token": "x" * 43}):
            ws.send_text(json.dumps(doc))
            answer = ws.receive_json()
            assert answer["type"] == "error" and "no profile has this token" in answer["error"]
        ws.send_text(json.dumps({"type": "profile", "token": token, "use": "mine"}))
        assert '"use" must be' in ws.receive_json()["error"]
        ws.send_text(json.dumps({"type": "profile", "token": token, "use": "personal"}))
        assert "no personal model yet" in ws.receive_json()["error"]
        ws.send_text(json.dumps({"type": "profile", "token": token}))  # the profile's choice: the default
        assert ws.receive_json() == {"type": "profile", "use": "default", "labels": predictor.labels}
        teach(client, auth)
        client.post("/profile/train", headers=auth)
        switched = ws.receive_json()  # the training ended: the stream is told, and switched
        assert switched == {"type": "profile", "use": "personal", "labels": ["A", "B", "custom"]}
        ws.send_bytes(jpeg())
        assert ws.receive_json()["type"] == "prediction"
        assert predictor.streams[-1].personal.version == "1"
        client.patch("/profile", json={"use": "default"}, headers=auth)
        assert ws.receive_json()["use"] == "default"
        ws.send_bytes(jpeg())
        ws.receive_json()
        assert predictor.streams[-1].personal is None
        ws.send_text(json.dumps({"type": "profile", "token": token, "use": "personal"}))
        assert ws.receive_json()["use"] == "personal"
        client.delete("/profile", headers=auth)
        assert ws.receive_json() == {"type": "profile", "use": "default", "labels": predictor.labels}
        ws.send_text(json.dumps({"type": "clear"}))
        assert ws.receive_json()["type"] == "state"


def test_a_personal_model_that_will_not_load_is_an_error_not_a_closed_stream(data, fake_teach, monkeypatch):
    with app(data) as client, client.websocket_connect("/ws") as ws:
        auth = new_profile(client)
        teach(client, auth)
        client.post("/profile/train", headers=auth)
        wait_for(client, auth, "ready")
    with app(data) as client, client.websocket_connect("/ws") as ws:  # a new server: nothing cached

        def broken(folder):
            raise FingerspellError("personal.npz is damaged")

        monkeypatch.setattr(teaching, "load_personal", broken)
        ws.send_text(json.dumps({"type": "profile", "token": auth["Authorization"].split()[1]}))
        answer = ws.receive_json()
        assert answer["type"] == "error" and "personal.npz is damaged" in answer["error"]
        ws.send_text(json.dumps({"type": "clear"}))
        assert ws.receive_json()["type"] == "state"
        assert client.patch("/profile", json={"use": "default"}, headers=auth).status_code == 200
        r = client.patch("/profile", json={"use": "personal"}, headers=auth)
        assert r.status_code == 409 and "personal.npz is damaged" in r.json()["error"]
        assert client.get("/profile", headers=auth).json()["use"] == "default"  # refused, so not saved


# --------------------------------------------------------------------------- with the real model


def test_a_custom_sign_taught_through_the_routes_is_read_by_the_model_they_train(data, base_folder, tmp_path):
    # The real fingerspell.teach over the default model (less the anchors that are this person's
    # hands: test_teach's base_folder), through the routes and the stream as the page uses them.
    from fingerspell.predictor import Predictor
    from test_teach import _person

    y = _person("Y", turn=120)  # this person's name sign: a Y turned as no one else turns it
    predictor = Predictor.from_bundle(base_folder)
    try:
        with app(data, predictor) as client, client.websocket_connect("/ws") as ws:
            auth = new_profile(client)
            r = client.post("/profile/samples", json={"label": "HELLO", "hands": [records.hand_to_json(h) for h in y[:8]]},
                            headers=auth)
            assert r.status_code == 201
            ws.send_text(json.dumps({"type": "profile", "token": auth["Authorization"].split()[1]}))
            assert ws.receive_json() == {"type": "profile", "use": "default", "labels": predictor.labels}
            assert client.post("/profile/train", headers=auth).status_code == 202
            switched = ws.receive_json()
            assert switched["use"] == "personal" and switched["labels"] == [*predictor.labels, "HELLO"]
            model = client.get("/profile", headers=auth).json()["model"]
            assert model["state"] == "ready" and model["card"]["taught"] == {"HELLO": 8}
            assert model["card"]["new_labels"] == ["HELLO"]
            with zipfile.ZipFile(io.BytesIO(client.get("/profile/model", headers=auth).content)) as zf:
                zf.extractall(tmp_path)
        mine = predictor.stream()
        mine.personal = predictor.load_personal(tmp_path / "fingerspell-personal")  # as the server's stream has it
        assert [mine.push(h, t).letter for t, h in enumerate(y[10:])].count("HELLO") >= 8
        assert predictor.stream().push(y[10], 0).letter != "HELLO"
    finally:
        predictor.close()
    taken = Predictor.from_bundle(tmp_path / "fingerspell-personal")  # the download is a bundle for --model
    try:
        assert taken.all_labels[-1] == "HELLO"
    finally:
        taken.close()
