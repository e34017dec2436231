"""On-device mode without a browser: the page's assets obtained and served, and the hand message.

The assets' fetch and checks run on a tarball made here (the pinned names and hashes swapped for
its own), never the npm registry. The stream's hand message runs against a fake predictor (what
the server does with it) and the tiny real bundle (that it reads as ``Stream.push`` does).
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient

from _fakes import FakePredictor
from _live import free_port
from fingerspell.config import ServeParams
from fingerspell.errors import HandModelError
from fingerspell.hands import Hand, browser, ensure_browser_assets
from fingerspell.records import hand_to_json
from fingerspell.server import create_app
from fingerspell.server.device import FRAME_IN_DEVICE_MODE, HAND_IN_SERVER_MODE

PARAMS = ServeParams(allowed_hosts=("testserver",))
FILES = {"vision_bundle.mjs": b"export const x = 1;\n", "wasm/vision_wasm_internal.js": b"var M;\n",
         "wasm/vision_wasm_internal.wasm": b"\0asm\1\0\0\0"}


def tarball(files: dict[str, bytes], extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {**files, **(extra or {})}.items():
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sri(blob: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()


@pytest.fixture
def pinned(monkeypatch):
    """The pinned release is a tarball made here: its integrity and file hashes."""
    blob = tarball(FILES, {"../evil": b"x", "package.json": b"{}"})
    monkeypatch.setattr(browser, "FILES", {k: hashlib.sha256(v).hexdigest() for k, v in FILES.items()})
    monkeypatch.setattr(browser, "INTEGRITY", sri(blob))
    return blob


def hand(x: float = 0.4, handedness: str = "Right") -> dict:
    points = np.random.default_rng(0).uniform(0.3, 0.6, (21, 3)).astype(np.float32)
    points[:, 0] = np.linspace(x, x + 0.2, 21)
    return {"landmarks": points.tolist(), "handedness": handedness, "image_size": [640, 480]}


def message(h=None, t_ms: int = 0, **changes) -> str:
    return json.dumps({"type": "hand", "v": 1, "t_ms": t_ms, "hand": h, **changes})


# --------------------------------------------------------------------------- the assets


def test_setup_keeps_only_the_pinned_files_of_a_tarball_whose_integrity_holds(tmp_path, pinned):
    source = tmp_path / "tasks-vision.tgz"
    source.write_bytes(pinned)
    folder = ensure_browser_assets(tmp_path / "cache", tarball=source)
    assert folder == tmp_path / "cache" / browser.FOLDER
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(FILES)
    assert not (tmp_path / "cache" / "evil").exists()
    assert ensure_browser_assets(tmp_path / "cache", download=False) == folder  # cached: checked, not fetched


def test_a_tarball_that_is_not_the_pinned_release_is_refused_and_nothing_is_written(tmp_path, pinned):
    other = tmp_path / "other.tgz"
    other.write_bytes(tarball({**FILES, "vision_bundle.mjs": b"fetch('https://elsewhere')"}))
    with pytest.raises(HandModelError, match="fails its integrity check"):
        ensure_browser_assets(tmp_path / "cache", tarball=other)
    assert not (tmp_path / "cache" / browser.FOLDER).exists()


def test_a_folder_holding_files_setup_did_not_write_is_refused_and_left_as_it_was(tmp_path, pinned):
    source = tmp_path / "tasks-vision.tgz"
    source.write_bytes(pinned)
    folder = tmp_path / "cache" / browser.FOLDER
    (folder / "wasm").mkdir(parents=True)
    (folder / "wasm" / "notes.txt").write_text("mine")
    with pytest.raises(HandModelError, match=r"holds wasm/notes.txt, which fingerspell did not put there"):
        ensure_browser_assets(tmp_path / "cache", tarball=source)
    assert (folder / "wasm" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in folder.rglob("*")) == ["notes.txt", "wasm"]


def test_a_cached_file_changed_since_is_noticed(tmp_path, pinned):
    source = tmp_path / "tasks-vision.tgz"
    source.write_bytes(pinned)
    folder = ensure_browser_assets(tmp_path / "cache", tarball=source)
    (folder / "vision_bundle.mjs").write_text("tampered")
    with pytest.raises(HandModelError, match="run `fingerspell setup`"):
        ensure_browser_assets(tmp_path / "cache", download=False)


def test_without_npm_or_the_registry_the_error_says_how_to_place_the_files_by_hand(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(HandModelError, match=r"npm is not installed; cannot download http://127\.0\.0\.1:\d+/@mediapipe/"
                                             r"tasks-vision/-/tasks-vision-0\.10\.35\.tgz.*npm pack "
                                             r"@mediapipe/tasks-vision@0\.10\.35.*fingerspell setup --tasks-vision"):
        ensure_browser_assets(tmp_path / "cache")
    assert not (tmp_path / "cache" / browser.FOLDER).exists()


def test_without_npm_the_tarball_comes_from_the_registry_over_http_and_is_checked(tmp_path, pinned, monkeypatch):
    asked = []

    class Registry(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(pinned)))
            self.end_headers()
            self.wfile.write(pinned)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{server.server_port}/mirror")
        folder = ensure_browser_assets(tmp_path / "cache")
    finally:
        server.shutdown()
    assert asked == ["/mirror/@mediapipe/tasks-vision/-/tasks-vision-0.10.35.tgz"]
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(FILES)


def test_the_server_serves_the_assets_and_its_hand_model_from_its_own_origin(tmp_path, pinned, monkeypatch):
    source = tmp_path / "tasks-vision.tgz"
    source.write_bytes(pinned)
    ensure_browser_assets(tmp_path / "cache", tarball=source)
    predictor = FakePredictor()
    predictor.hand_model = tmp_path / "hand_landmarker.task"
    predictor.hand_model.write_bytes(b"task")
    with TestClient(create_app(params=PARAMS, predictor=predictor, cache_dir=tmp_path / "cache")) as client:
        on_device = client.get("/health").json()["on_device"]
        assert on_device["available"] and on_device["package"] == "@mediapipe/tasks-vision@0.10.35"
        module = client.get(on_device["module"])
        assert module.status_code == 200 and module.headers["content-type"].startswith("text/javascript")
        wasm = client.get(on_device["wasm"] + "/vision_wasm_internal.wasm")
        assert wasm.headers["content-type"] == "application/wasm" and wasm.content == FILES["wasm/vision_wasm_internal.wasm"]
        assert client.get(on_device["model"]).content == b"task"
        assert client.get(on_device["wasm"] + "/../../../../etc/passwd").status_code == 404
        assert client.get(on_device["wasm"] + "/vision_wasm_module_internal.js").status_code == 404
        csp = client.get("/").headers["content-security-policy"]
        assert "script-src 'self' 'wasm-unsafe-eval';" in csp and "connect-src 'self'" in csp


def test_without_the_assets_health_says_why_and_nothing_is_served(tmp_path):
    predictor = FakePredictor()
    predictor.hand_model = tmp_path / "hand_landmarker.task"
    with TestClient(create_app(params=PARAMS, predictor=predictor, cache_dir=tmp_path / "empty")) as client:
        on_device = client.get("/health").json()["on_device"]
        assert on_device == {"available": False, "why": on_device["why"]} and "fingerspell setup" in on_device["why"]
        assert client.get(f"/vendor/{browser.FOLDER}/vision_bundle.mjs").status_code == 404
        assert client.get("/vendor/hand_landmarker.task").status_code == 404


# --------------------------------------------------------------------------- the hand message


@pytest.fixture
def fake():
    return FakePredictor()


@pytest.fixture
def client(fake):
    with TestClient(create_app(params=PARAMS, predictor=fake)) as c:
        yield c


def device_mode(ws, mirror: bool = False) -> dict:
    ws.send_text(json.dumps({"type": "config", "mode": "device", "mirror": mirror}))
    return ws.receive_json()


def test_a_hand_message_is_answered_like_a_frame_and_counted_as_no_image_bytes(client, fake):
    with client.websocket_connect("/ws") as ws:
        assert device_mode(ws)["mode"] == "device"
        ws.send_text(message(hand(), t_ms=1000))
        answer = ws.receive_json()
        assert answer["type"] == "prediction" and answer["frame"] == 1 and "hand" not in answer  # the page has it
        assert answer["letter"] == "nothing" and "timings_ms" in answer and "spelling" in answer
        ws.send_text(message(None, t_ms=1033))
        assert ws.receive_json()["frame"] == 2
        [stream] = client.get("/metrics").json()["streams"]
        assert stream == {**stream, "mode": "device", "image_bytes": 0, "hands": 2, "frames": 2}
    pushed = fake.hands
    assert [t for _, t in pushed] == [1000, 1033] and pushed[1][0] is None
    np.testing.assert_allclose(pushed[0][0].landmarks, np.float32(hand()["landmarks"]))


def test_with_mirror_on_the_hand_is_read_flipped_and_answered_where_the_page_drew_it(client, fake):
    sent = hand(x=0.1, handedness="Left")
    with client.websocket_connect("/ws") as ws:
        device_mode(ws, mirror=True)
        ws.send_text(message(sent))
        assert ws.receive_json()["type"] == "prediction"
    pushed = fake.hands[0][0]
    assert pushed.handedness == "Right"
    np.testing.assert_allclose(pushed.landmarks[:, 0], 1.0 - np.float32(sent["landmarks"])[:, 0], atol=1e-6)


@pytest.mark.parametrize("changes,fragment", [
    ({"v": 2}, 'hand message version 2: this server reads "v": 1'),
    ({"v": None}, "hand message version missing"),
    ({"t_ms": -1}, '"t_ms" must be a whole number'),
    ({"t_ms": 1.5}, '"t_ms" must be a whole number'),
    ({"t_ms": True}, '"t_ms" must be a whole number'),
    ({"hand": {**hand(), "landmarks": hand()["landmarks"][:20]}}, '"hand.landmarks" must be 21 points'),
    ({"hand": {**hand(), "landmarks": [[0.5, 0.5]] * 21}}, '"hand.landmarks" must be 21 points'),
    ({"hand": {**hand(), "landmarks": [[0.5, 0.5, 0.0]] * 100_000}}, '"hand.landmarks" must be 21 points'),
    ({"hand": {**hand(), "landmarks": [[float("nan"), 0.5, 0.0]] * 21}}, "must be finite numbers"),
    ({"hand": {**hand(), "landmarks": [[10 ** 400, 0.5, 0.0]] * 21}}, "must be finite numbers"),
    ({"hand": {**hand(), "landmarks": [["0.5", 0.5, 0.0]] * 21}}, "must be finite numbers"),
    ({"hand": {**hand(), "handedness": "both"}}, '"hand.handedness" must be "Left" or "Right"'),
    ({"hand": {**hand(), "image_size": [640, 0]}}, '"hand.image_size" must be'),
    ({"hand": "a hand"}, '"hand" must be null or an object'),
    ({"hand": [1, 2, 3]}, '"hand" must be null or an object'),
], ids=["v2", "no-v", "t-negative", "t-float", "t-bool", "20-points", "2d-points", "100k-points", "nan", "huge-int",
        "string", "handedness", "size", "string-hand", "list-hand"])
def test_a_bad_hand_message_is_answered_with_an_error_and_the_socket_stays_usable(client, changes, fragment):
    with client.websocket_connect("/ws") as ws:
        device_mode(ws)
        doc = {"type": "hand", "v": 1, "t_ms": 0, "hand": None, **changes}
        if doc["v"] is None:
            del doc["v"]
        ws.send_text(json.dumps(doc))
        answer = ws.receive_json()
        assert answer["type"] == "error" and answer["frame"] == 1 and fragment in answer["error"], answer
        ws.send_text(message(hand(), t_ms=5))
        assert ws.receive_json()["type"] == "prediction"


def test_a_hand_in_server_mode_and_a_frame_in_device_mode_are_errors_and_both_modes_work_after(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_text(message(hand()))
        assert ws.receive_json() == {"type": "error", "error": HAND_IN_SERVER_MODE, "frame": 1}
        device_mode(ws)
        ws.send_bytes(b"\xff\xd8 not even a jpeg")
        assert ws.receive_json() == {"type": "error", "error": FRAME_IN_DEVICE_MODE, "frame": 2}
        ws.send_text(json.dumps({"type": "config", "mode": "phone"}))
        assert "must be \"server\"" in ws.receive_json()["error"]
        ws.send_text(message(hand()))
        assert ws.receive_json()["type"] == "prediction"
        [stream] = client.get("/metrics").json()["streams"]
        assert stream["image_bytes"] == len(b"\xff\xd8 not even a jpeg")  # counted though refused


def test_a_hand_message_reads_as_stream_push_reads_the_same_hands(tiny_bundle):
    from fingerspell.predictor import Predictor

    hands = [Hand(np.float32(hand(x)["landmarks"]), np.zeros((21, 3), np.float32), "Right", 1.0, (640, 480), "record")
             for x in np.linspace(0.2, 0.5, 8)]
    predictor = Predictor.from_bundle(tiny_bundle)
    try:
        with predictor.stream() as stream:
            direct = [stream.push(h, 33 * i).top for i, h in enumerate(hands)]
        with TestClient(create_app(params=PARAMS, predictor=predictor)) as client, \
                client.websocket_connect("/ws") as ws:
            device_mode(ws)
            served = []
            for i, h in enumerate(hands):
                ws.send_text(message(hand_to_json(h), t_ms=33 * i))
                served.append([(e["label"], e["score"]) for e in ws.receive_json()["top"]])
    finally:
        predictor.close()
    assert served == [[(k, round(v, 4)) for k, v in top] for top in direct]


def test_a_z_traced_in_hand_messages_is_read_from_the_streams_window_as_stream_push_reads_it(hand_model):
    from conftest import DATA
    from fingerspell.predictor import Predictor
    from fingerspell.training import motion, streams
    from fingerspell.training.motion_bundle import read

    data = DATA / "landmarks_tresajoby"
    if not data.is_dir():
        pytest.skip(f"the recorded landmarks are not at {data} (set FINGERSPELL_DATA to ../shared/data)")
    recs, _ = read(data)
    held = [r for r in motion.Split().recordings(recs, True) if r.label == "Z"]
    predictor = Predictor.from_bundle(None, hand_model=hand_model)  # the bundled model carries the motion recogniser
    try:
        for rec in held:  # the first held-out Z the motion recogniser reads through Stream.push
            hands = [(int(r.t_ms), r.hand) for r in streams.to_records(rec.t_ms, list(rec.points))]
            with predictor.stream() as stream:
                direct = [stream.push(h, t) for t, h in hands]
            if any(p.motion == "Z" for p in direct):
                break
        else:
            pytest.fail("the motion recogniser read none of the held-out Z recordings")
        with TestClient(create_app(params=PARAMS, predictor=predictor)) as client, \
                client.websocket_connect("/ws") as ws:
            device_mode(ws, mirror=True)  # the page's selfie view: the hand and its path flipped there and back
            served = []
            for t, h in hands:
                sent = None if h is None else {**hand_to_json(h), "landmarks": (
                    np.float32(h.landmarks) * np.float32([-1, 1, 1]) + np.float32([1, 0, 0])).tolist(),
                    "handedness": "Left"}
                ws.send_text(message(sent, t_ms=t))
                served.append(ws.receive_json())
    finally:
        predictor.close()
    assert [a["letter"] for a in served] == [p.letter for p in direct]
    paths = [(a.get("path"), p.path) for a, p in zip(served, direct) if p.path]
    assert paths, "a J or Z read from motion sends its fingertip's path"
    for got, want in paths:  # in the frame the page sent (its mirror image of the recording's)
        np.testing.assert_allclose(np.array(got), np.array(want) * [-1, 1] + [1, 0], atol=2e-3)
