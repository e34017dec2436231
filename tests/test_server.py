"""The web app: /predict, /health, /docs, static files, security headers and the /ws stream.

Most run against ``FakePredictor`` (tests/_fakes.py: real image decoding, no MediaPipe, never a
hand): they check the protocol and the handling of bad input, not recognition. Those that need
real hands or the real model's start-up use the untrained ``tiny_bundle`` (real LiteRT model and
real MediaPipe hand tracker, random classifier weights). A few start the real server with
uvicorn in a subprocess.
"""

from __future__ import annotations

import dataclasses

import base64
import contextlib
import io
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from _fakes import FakePredictor
from _live import ROOT, ServerProcess, scan_bomb, seconds_until_closed, upgrade
from conftest import real_images
from fingerspell import serve
from fingerspell.config import ConfigError, ServeParams
from fingerspell.errors import FrameError
from fingerspell.images import MAX_JPEG_SCANS, decode_image
from fingerspell.server import create_app, get_predictor, params_from_env
from fingerspell.server.security import resolve_allowed_hosts

# TestClient addresses its requests to "testserver"; a real server answers only loopback names.
LIMITS = ServeParams(max_body_bytes=300_000, max_message_bytes=200_000, max_pixels=1_000_000, max_connections=3,
                     allowed_hosts=("testserver",))
HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def jpeg(size=(320, 240), colour=(180, 120, 90), quality=85) -> bytes:
    img = Image.new("RGB", size, colour)
    img.paste((20, 40, 200), (size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def png(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width=60_000, height=60_000) -> bytes:
    """A valid PNG header claiming 3.6 billion pixels, with almost no data behind it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def data_url(data: bytes, mime="image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def real_hand_jpeg() -> bytes:
    """A Roboflow photo in which MediaPipe finds a hand (skips where the data is absent)."""
    return real_images("B", 1)[0].read_bytes()


@pytest.fixture(scope="module")
def client():
    """The app with a fake predictor: the protocol without MediaPipe."""
    with TestClient(create_app(predictor=FakePredictor(), params=LIMITS)) as c:
        yield c


@pytest.fixture(scope="module")
def real_client(tiny_bundle):
    """The app with the real (untrained) model, for real hands and the real recognition path."""
    with TestClient(create_app(model=tiny_bundle, params=LIMITS)) as c:
        yield c


def assert_prediction_json(body: dict, labels, key="prediction") -> None:
    assert body[key] in labels
    assert 0.0 <= body["confidence"] <= 1.0
    assert 1 <= len(body["top"]) <= 3
    assert all(set(t) == {"label", "score"} and t["label"] in labels for t in body["top"])
    assert body["top"][0]["label"] == body[key]
    assert set(body["timings_ms"]) >= {"decode", "detect", "classify", "total"}
    if body["hand"] is not None:
        assert len(body["hand"]["landmarks"]) == 21
        assert all(len(p) == 3 for p in body["hand"]["landmarks"])
        assert body["hand"]["handedness"] in ("Left", "Right")


# --------------------------------------------------------------------------- POST /predict


def test_predict_accepts_the_tutorials_json_data_url(client):
    labels = client.get("/health").json()["model"]["labels"]
    r = client.post("/predict", json={"image": data_url(jpeg())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_prediction_json(body, labels)
    assert body["prediction"] == "nothing" and body["hand"] is None  # a drawn rectangle is no hand


@pytest.mark.parametrize("content_type,make", [("image/jpeg", jpeg), ("image/png", png),
                                               ("image/jpeg; charset=binary", jpeg)])
def test_predict_accepts_a_raw_image_body(client, content_type, make):
    r = client.post("/predict", content=make(), headers={"content-type": content_type})
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"prediction", "confidence", "top", "hand", "timings_ms"}


def test_predict_finds_the_hand_in_a_real_photo(real_client):
    client = real_client
    labels = client.get("/health").json()["model"]["labels"]
    r = client.post("/predict", content=real_hand_jpeg(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert_prediction_json(body, labels)
    assert body["hand"] is not None, "MediaPipe should find the hand in this photo"
    xs = [p[0] for p in body["hand"]["landmarks"]]
    assert 0.0 <= min(xs) < max(xs) <= 1.0  # normalised for drawing


def _json(doc) -> tuple[str, bytes]:
    return "application/json", json.dumps(doc).encode()


BAD_REQUESTS = {
    "missing field": (*_json({"img": "x"}), 400, 'no "image" field'),
    "null image": (*_json({"image": None}), 400, "not null"),
    "number image": (*_json({"image": 5}), 400, "not int"),
    "not JSON": ("application/json", b"{this is not json", 400, "not valid JSON"),
    "empty JSON body": ("application/json", b"", 400, "not valid JSON"),
    "JSON array": (*_json([1, 2]), 400, "JSON object"),
    "deeply nested JSON": ("application/json", b"[" * 100_000, 400, "not valid JSON"),
    "no comma": (*_json({"image": "data:image/jpeg;base64"}), 400, "no comma"),
    "not a data URL": (*_json({"image": "http://example.com/a.jpg,x"}), 400, "base64 data URL"),
    "invalid base64": (*_json({"image": "data:image/jpeg;base64,@@@not base64@@@"}), 400, "not valid base64"),
    "base64 of text": (*_json({"image": data_url(b"hello, I am not an image")}), 422, "not an image"),
    "base64 of nothing": (*_json({"image": "data:image/jpeg;base64,"}), 422, "empty"),
    "zero bytes": ("image/jpeg", b"", 422, "empty"),
    "non-image bytes": ("image/jpeg", b"GIF89a but not really" * 10, 422, "could not be decoded|not an image"),
    "truncated JPEG": ("image/jpeg", jpeg()[:400], 422, "truncated"),
    "over the pixel limit": ("image/png", png((1200, 1000)), 422, "over the limit of 1,000,000 pixels"),
    "decompression bomb": ("image/png", png_bomb(), 422, r"^the image is 3,600,000,000 pixels, over the limit of "
                                                         r"1,000,000 pixels$"),
    "over Pillow's bomb limit": ("image/png", png_bomb(10_000, 9_000), 422, r"^the image is 90,000,000 pixels, over "
                                                                         r"the limit of 1,000,000 pixels$"),
    "unsupported type": ("text/plain", b"hello", 415, "text/plain is not supported"),
    "no content type": ("", jpeg(), 415, "no content type is not supported"),
    "octet stream": ("application/octet-stream", jpeg(), 415, "not supported"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_predict_answers_bad_input_with_a_4xx_and_a_message(client, name):
    content_type, body, status, match = BAD_REQUESTS[name]
    t = time.perf_counter()
    r = client.post("/predict", content=body, headers={"content-type": content_type} if content_type else {})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert re.search(match, error), error
    assert "Traceback" not in r.text
    if "bomb" in name:
        assert time.perf_counter() - t < 2, "a bomb must be refused from its header, before decoding"


def test_predict_refuses_a_body_over_the_limit_with_413(client):
    big = jpeg() + b"\0" * LIMITS.max_body_bytes
    r = client.post("/predict", content=big, headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    assert "over the limit of 300,000 bytes" in r.json()["error"]
    r = client.post("/predict", json={"image": data_url(big)})
    assert r.status_code == 413


def test_predict_refuses_a_chunked_body_over_the_limit_with_413(client):
    def chunks():  # no Content-Length: counted while streaming
        for _ in range(8):
            yield b"\xff" * 50_000

    r = client.post("/predict", content=chunks(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 413
    assert "over the limit" in r.json()["error"]


def test_a_jpeg_of_thousands_of_scans_is_refused_before_decoding_with_one_line(client):
    # Each scan is a pass over the whole image: 2,000 of them cost a 4096x4096 image ~20 s
    # (bench/bench_scans.py); 64x64 here, so that the unfixed server decodes it and the test is fast.
    bomb = scan_bomb(64, 2000)
    assert Image.open(io.BytesIO(bomb)).size == (64, 64)  # a valid JPEG that Pillow would decode
    with pytest.raises(FrameError, match=f"the JPEG has 2,000 scans, over the limit of {MAX_JPEG_SCANS}"):
        decode_image(bomb)
    assert decode_image(scan_bomb(64, MAX_JPEG_SCANS)).shape == (64, 64, 3)  # up to the limit: decoded
    r = client.post("/predict", content=bomb, headers={"content-type": "image/jpeg"})
    assert r.status_code == 422 and "2,000 scans" in r.json()["error"] and "\n" not in r.json()["error"], r.text
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(bomb)
        error = ws.receive_json()
        assert error["type"] == "error" and "2,000 scans, over the limit" in error["error"], error
        ws.send_bytes(jpeg())  # the socket stays open
        assert ws.receive_json()["type"] == "prediction"


def test_predict_beyond_max_predicts_being_recognised_gets_503():
    params = dataclasses.replace(LIMITS, max_predicts=1, predict_wait_s=0.3)
    with TestClient(create_app(predictor=FakePredictor(delay_s=3.0), params=params)) as c:
        first: dict = {}
        slow = threading.Thread(target=lambda: first.update(r=c.post(
            "/predict", content=jpeg(), headers={"content-type": "image/jpeg"})))
        slow.start()
        while not c.app.state.predict_slots.value == 0 and slow.is_alive():  # the one slot is taken
            time.sleep(0.05)
        r = c.post("/predict", content=jpeg(), headers={"content-type": "image/jpeg"})
        slow.join(30)
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["error"] == "busy: 1 images are being recognised; retry in a second"
    assert first["r"].status_code == 200


def test_predict_is_documented_as_post_only(client):
    r = client.get("/predict")
    assert r.status_code == 405
    assert r.json() == {"error": "method not allowed"}


def test_an_unexpected_error_is_a_json_500_without_traceback(caplog):
    app = create_app(predictor=FakePredictor(), params=LIMITS)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("secret internal detail")

    with TestClient(app, raise_server_exceptions=False) as c, caplog.at_level(logging.ERROR):
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error; the server log has the details"}
    assert "secret" not in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert "secret internal detail" in caplog.text  # logged for the operator


# --------------------------------------------------------------------------- other routes


def test_health_reports_model_versions_and_hand_model_hash(client):
    r = client.get("/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["model"]["kind"] == "landmarks"
    assert "A" in body["model"]["labels"] and "nothing" in body["model"]["labels"]
    assert len(body["model"]["hand_model_sha256"]) == 64
    assert set(body["versions"]) >= {"fingerspell", "mediapipe", "python"}
    assert body["limits"]["max_body_bytes"] == LIMITS.max_body_bytes


def test_docs_and_openapi_describe_every_predict_body(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]
    assert set(body["content"]) == {"application/json", "image/jpeg", "image/png"}
    assert body["content"]["application/json"]["schema"]["required"] == ["image"]
    assert body["content"]["image/png"]["schema"]["format"] == "binary"
    assert {"200", "400", "408", "413", "415", "421", "422", "503"} <= set(spec["paths"]["/predict"]["post"]["responses"])


def test_docs_load_swagger_ui_from_this_server_only(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "/docs/assets/swagger-ui.css" in page.text
    csp = page.headers["content-security-policy"]
    assert "http" not in csp.replace("connect-src 'self' ws://testserver wss://testserver", ""), csp
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
        assert client.get(f"/docs/assets/{asset}").status_code == 200


def test_index_is_the_page_and_uses_no_cdn_or_fixed_socket_address(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for marker in ('id="letter"', 'id="text"', 'id="camera-message"', "/static/app.js", "aria-live"):
        assert marker in r.text
    js = client.get("/static/app.js")
    assert js.status_code == 200
    assert "localhost:5000" not in js.text and "ws://localhost" not in js.text
    assert "location.host" in js.text
    css = client.get("/static/style.css").text
    static = ROOT / "src" / "fingerspell" / "server" / "static"
    modules = [client.get(f"/static/{p.name}").text for p in sorted(static.glob("*.js"))]
    external = re.compile(r"""(src|href)=["']?(https?:)?//|url\(["']?(https?:)?//|import\s.*https?:""")
    for asset in (r.text, css, *modules):
        assert not external.search(asset), external.search(asset)


def test_the_page_scripts_are_es_modules_served_as_javascript(client):
    # A module script with another MIME type is refused by the browser (nosniff makes it strict).
    assert '<script type="module" src="/static/app.js">' in client.get("/").text
    imported = set(re.findall(r'from "\./([\w-]+\.js)"', client.get("/static/app.js").text))
    assert {"camera.js", "transport.js", "view.js", "text.js"} <= imported
    for name in {"app.js", *imported}:
        r = client.get(f"/static/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")


@pytest.mark.parametrize("path", ["/", "/health", "/static/app.js", "/static/missing.js", "/nowhere", "/docs"])
def test_every_response_carries_the_security_headers(client, path):
    r = client.get(path)
    for name, value in HEADERS.items():
        assert r.headers[name] == value
    csp = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp


def test_the_page_csp_allows_no_inline_script_and_the_socket_to_this_host(client):
    csp = client.get("/").headers["content-security-policy"]
    assert "'unsafe-inline'" not in csp
    assert "connect-src 'self' ws://testserver wss://testserver" in csp
    assert "mediastream:" in csp


@pytest.mark.parametrize("path", [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/..%2fapp.py", "/static/%2e%2e%2fapp.py",
    "/static/..%5capp.py", "/static/%252e%252e/app.py", "/static/....//app.py", "/static//etc/passwd",
    "/static/%2e%2e/%2e%2e/config.py", "/static/..%2f..%2f__init__.py",
])
def test_static_files_refuse_path_traversal(client, path):
    r = client.get(path)
    assert r.status_code == 404, path
    assert "def " not in r.text and "import" not in r.text


def test_cors_is_closed_unless_configured(client):
    origin = {"origin": "https://elsewhere.example"}
    assert "access-control-allow-origin" not in client.get("/health", headers=origin).headers
    pre = client.options("/predict", headers={**origin, "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in pre.headers
    params = ServeParams(cors_origins=("https://elsewhere.example",), allowed_hosts=("testserver",))
    with TestClient(create_app(predictor=FakePredictor(), params=params)) as open_client:
        r = open_client.get("/health", headers=origin)
        assert r.headers["access-control-allow-origin"] == "https://elsewhere.example"


# --------------------------------------------------------------------------- settings and run()


def test_params_come_from_fingerspell_environment_variables():
    env = {"FINGERSPELL_MAX_BODY_BYTES": "1_000", "FINGERSPELL_PORT": "8080",
           "FINGERSPELL_CORS_ORIGINS": "https://a.example, https://b.example", "FINGERSPELL_SAVE_FRAMES_DIR": ""}
    params = params_from_env(env)
    assert params.max_body_bytes == 1000 and params.port == 8080
    assert params.cors_origins == ("https://a.example", "https://b.example")
    assert params.save_frames_dir is None
    assert params.max_connections == ServeParams().max_connections
    with pytest.raises(ConfigError, match="FINGERSPELL_MAX_PIXELS='lots' is not a whole number"):
        params_from_env({"FINGERSPELL_MAX_PIXELS": "lots"})
    with pytest.raises(ConfigError, match="must be positive"):
        params_from_env({"FINGERSPELL_MAX_CONNECTIONS": "0"})


def test_create_app_takes_limits_and_model_from_the_environment(tiny_bundle, monkeypatch):
    monkeypatch.setenv("FINGERSPELL_MODEL", str(tiny_bundle))
    monkeypatch.setenv("FINGERSPELL_MAX_BODY_BYTES", "1000")
    monkeypatch.setenv("FINGERSPELL_ALLOWED_HOSTS", "testserver")
    with TestClient(create_app()) as c:
        assert c.get("/health").json()["limits"]["max_body_bytes"] == 1000
        r = c.post("/predict", content=jpeg(), headers={"content-type": "image/jpeg"})
        assert r.status_code == 413


def test_frames_are_saved_only_where_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app(predictor=FakePredictor(), params=ServeParams(allowed_hosts=("testserver",)))) as c:
        c.post("/predict", content=jpeg(), headers={"content-type": "image/jpeg"})
        with c.websocket_connect("/ws") as ws:
            ws.send_bytes(jpeg())
            ws.receive_json()
    assert list(tmp_path.iterdir()) == []
    folder = tmp_path / "frames"
    params = ServeParams(save_frames_dir=str(folder), allowed_hosts=("testserver",))
    with TestClient(create_app(predictor=FakePredictor(), params=params)) as c:
        c.post("/predict", content=png(), headers={"content-type": "image/png"})
        with c.websocket_connect("/ws") as ws:
            ws.send_bytes(jpeg())
            ws.receive_json()
    names = sorted(p.suffix for p in folder.iterdir())
    assert names == [".jpg", ".png"]


def test_a_predictor_is_injected_through_get_predictor_and_left_open_for_its_owner():
    given, swapped = FakePredictor(), FakePredictor()
    app = create_app(predictor=given, params=LIMITS)
    with TestClient(app) as c:
        assert c.post("/predict", content=jpeg(), headers={"content-type": "image/jpeg"}).status_code == 200
        assert given.frames == 1
        app.dependency_overrides[get_predictor] = lambda: swapped  # the same getter serves the stream
        assert c.post("/predict", content=jpeg(), headers={"content-type": "image/jpeg"}).status_code == 200
        with c.websocket_connect("/ws") as ws:
            ws.send_bytes(jpeg())
            assert ws.receive_json()["type"] == "prediction"
        assert given.frames == 1 and swapped.frames == 3  # a post; the stream's warm-up and its frame
    assert swapped.open_streams == 0  # the stream put its tracker away
    assert not given.closed  # the caller's, not the app's, to close


def test_run_warns_when_frames_can_come_from_the_network(tiny_bundle, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(serve, "serve_app", lambda app, **kw: calls.append(kw))
    with caplog.at_level(logging.WARNING, logger="fingerspell.serve"):
        serve.run("127.0.0.1", 5001, tiny_bundle)
    assert "network" not in caplog.text
    assert calls[-1]["reload"] is False and calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 5001
    assert calls[-1]["ws_max_size"] > ServeParams().max_message_bytes
    with caplog.at_level(logging.WARNING, logger="fingerspell.serve"):
        serve.run("0.0.0.0", 5001, tiny_bundle)
    warnings = [r for r in caplog.records if "frames will be accepted from the network" in r.getMessage()]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()


def test_run_needs_both_tls_files(tiny_bundle, tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ConfigError, match="give both --tls-cert and --tls-key"):
        serve.run("127.0.0.1", 5001, tiny_bundle, tls_cert=str(cert))
    with pytest.raises(ConfigError, match="does not exist"):
        serve.run("127.0.0.1", 5001, tiny_bundle, tls_cert=str(cert), tls_key=str(tmp_path / "no.pem"))


def test_server_process_never_imports_tensorflow_and_starts_quickly(tiny_bundle):
    code = textwrap.dedent(f"""
        import sys, time, io, json
        from fastapi.testclient import TestClient
        t = time.perf_counter()  # import of the server, its model and the hand tracker, and start-up
        from fingerspell.config import ServeParams
        from fingerspell.server import create_app
        # Without the lexicon, whose ~3 s load this does not time (test_first_hour.py checks it is ready).
        with TestClient(create_app(model={str(tiny_bundle)!r}, params=ServeParams(lexicon=False)),
                        base_url="http://localhost") as c:
            started = time.perf_counter() - t
            from PIL import Image
            buf = io.BytesIO(); Image.new("RGB", (64, 64)).save(buf, "JPEG")
            assert c.post("/predict", content=buf.getvalue(), headers={{"content-type": "image/jpeg"}}).status_code == 200
            with c.websocket_connect("ws://localhost/ws") as ws:
                ws.send_bytes(buf.getvalue()); ws.receive_json()
        heavy = [m for m in ("tensorflow", "keras", "matplotlib", "fingerspell.training.train", "fingerspell.dataset")
                 if m in sys.modules]
        print(json.dumps({{"heavy": heavy, "started": started}}))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["started"] < 3.0, f"import + model load took {result['started']:.1f} s"


# --------------------------------------------------------------------------- the real server


def _serving(server: ServerProcess):
    """Start ``server`` for a module's tests; print its log if starting fails; stop it after."""
    try:
        yield server.start()
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(tiny_bundle, tmp_path_factory):
    yield from _serving(ServerProcess(
        tiny_bundle, log_dir=tmp_path_factory.mktemp("server"),
        env={"FINGERSPELL_MAX_BODY_BYTES": "300000", "FINGERSPELL_MAX_MESSAGE_BYTES": "200000",
             "FINGERSPELL_MAX_PREDICTS": "1", "FINGERSPELL_MAX_UPLOADS": "1", "FINGERSPELL_PREDICT_WAIT_S": "0.5",
             "FINGERSPELL_BODY_TIMEOUT_S": "2", "FINGERSPELL_HEADER_TIMEOUT_S": "2"}))


def _raw_request(port: int, head: bytes, body_parts=(), wait: float = 5.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(head)
        try:
            for part in body_parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading: what is being tested
        s.settimeout(wait)
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += s.recv(65536)
        head_part, _, body = answer.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head_part, re.I).group(1))
        while len(body) < length:
            body += s.recv(65536)
        return head_part + b"\r\n\r\n" + body


def test_live_server_refuses_a_declared_oversize_body_before_it_is_sent(live):
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 1000000000\r\n\r\n")
    answer = _raw_request(live.port, head)  # not a byte of the gigabyte is sent
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"1,000,000,000 bytes, over the limit" in answer


def test_live_server_stops_reading_a_chunked_body_once_over_the_limit(live):
    head = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"\xff" * 100_000
    parts = [b"%x\r\n" % len(chunk) + chunk + b"\r\n"] * 4  # 400 kB of a body that never ends
    answer = _raw_request(live.port, head, parts)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"over the limit of 300,000 bytes" in answer


def test_live_server_closes_oversize_socket_messages_with_1009(live):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    for size in (250_000, 2_000_000, 3_000_000):  # over our limit; over the transport's (limit + 64 KiB) too
        with connect(f"ws://127.0.0.1:{live.port}/ws", max_size=None) as ws:
            ws.send(jpeg())
            assert json.loads(ws.recv(timeout=10))["type"] == "prediction"
            ws.send(b"\xff" * size)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd.code == 1009


# --------------------------------------------------------------------------- WS /ws


def test_stream_answers_a_frame_with_letter_hand_timings_and_spelling(client):
    labels = client.get("/health").json()["model"]["labels"]
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(jpeg())
        answer = ws.receive_json()
    assert answer["type"] == "prediction" and answer["frame"] == 1
    assert_prediction_json(answer, labels, key="letter")
    assert answer["timings_ms"]["server"] >= answer["timings_ms"]["total"] - 1
    assert set(answer["spelling"]) == {"text", "pending", "progress", "committed", "word", "choice"}
    assert answer["mirror"] is False


def test_stream_gives_landmarks_back_in_the_frame_sent_when_mirroring(real_client):
    client = real_client
    photo = real_hand_jpeg()
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(photo)
        plain = ws.receive_json()["hand"]
        ws.send_text(json.dumps({"type": "config", "mirror": True}))
        assert ws.receive_json()["mirror"] is True
        ws.send_bytes(photo)
        answer = ws.receive_json()
    assert plain is not None and answer["hand"] is not None
    assert answer["mirror"] is True
    a, b = np.array(plain["landmarks"]), np.array(answer["hand"]["landmarks"])
    assert np.abs(a[:, :2] - b[:, :2]).max() < 0.08  # flipped to recognise, flipped back to draw


def test_a_bad_frame_gets_an_error_and_the_socket_keeps_working(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(b"not an image at all")
        error = ws.receive_json()
        assert error["type"] == "error" and error["frame"] == 1
        assert "not an image" in error["error"]
        ws.send_bytes(png((1200, 1000)))
        assert "over the limit" in ws.receive_json()["error"]
        ws.send_bytes(jpeg())
        assert ws.receive_json()["type"] == "prediction"


class FaultyPredictor(FakePredictor):
    """A fake whose streams fail on a frame of ``b"fault"`` as a bug would: not with a FrameError."""

    def stream(self):
        stream = super().stream()
        recognise = stream.predict_bytes

        def predict_bytes(data, *args, **kwargs):
            if data == b"fault":
                raise ValueError("a bug on the frame's path")
            return recognise(data, *args, **kwargs)

        stream.predict_bytes = predict_bytes
        return stream


def test_a_fault_on_a_frames_path_is_that_frames_error_and_one_log_line(caplog):
    with TestClient(create_app(predictor=FaultyPredictor(), params=LIMITS)) as c, \
            caplog.at_level(logging.INFO), c.websocket_connect("/ws") as ws:
        for frame in (1, 2, 3):
            ws.send_bytes(b"fault")
            error = ws.receive_json()
            assert error["type"] == "error" and error["frame"] == frame, error
            assert "server fault" in error["error"] and "bug" not in error["error"]
        ws.send_bytes(jpeg())  # the stream goes on
        assert ws.receive_json()["type"] == "prediction"
    faults = [r for r in caplog.records if "failed" in r.getMessage()]
    assert len(faults) == 1 and faults[0].levelno == logging.WARNING, caplog.text  # once a stream
    assert "ValueError: a bug on the frame's path" in faults[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


def test_an_oversize_message_closes_the_socket_with_1009(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(b"\0" * (LIMITS.max_message_bytes + 1))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009
    assert "200,001 bytes is over the 200,000-byte limit" in closed.value.reason


def test_an_oversize_text_message_closes_the_socket_with_1009(client):
    with client.websocket_connect("/ws") as ws:
        ws.send_text(json.dumps({"type": "set_text", "text": "é" * LIMITS.max_message_bytes}))
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1009


def test_streams_beyond_the_limit_are_refused_as_busy(client):
    def ready(ws):
        ws.send_text('{"type": "clear"}')
        return ws.receive_json()["type"] == "state"

    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b, \
            client.websocket_connect("/ws") as c:
        assert ready(a) and ready(b) and ready(c)
        with client.websocket_connect("/ws") as extra:
            with pytest.raises(WebSocketDisconnect) as closed:
                extra.receive_json()
        assert closed.value.code == 1013
        assert "server busy" in closed.value.reason
        assert client.get("/health").json()["open_streams"] == 3
    with client.websocket_connect("/ws") as again:  # the closed ones were counted out
        assert ready(again)


def test_a_page_from_another_origin_is_refused(client):
    with client.websocket_connect("/ws", headers={"origin": "https://evil.example"}) as ws:
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    with client.websocket_connect("/ws", headers={"origin": "http://testserver"}) as ws:
        ws.send_text('{"type": "clear"}')
        assert ws.receive_json()["type"] == "state"


def test_commands_edit_the_text_and_answer_the_new_state(client):
    with client.websocket_connect("/ws") as ws:
        def cmd(doc):
            ws.send_text(json.dumps(doc) if not isinstance(doc, str) else doc)
            return ws.receive_json()

        assert cmd({"type": "set_text", "text": "HELLO"})["spelling"]["text"] == "HELLO"
        state = cmd({"type": "backspace"})
        assert state["type"] == "state" and state["spelling"]["text"] == "HELL"
        assert state["spelling"]["committed"] == []
        assert cmd({"type": "clear"})["spelling"]["text"] == ""
        assert cmd({"type": "backspace"})["spelling"]["text"] == ""
        assert cmd({"type": "config", "mirror": True})["mirror"] is True
        assert cmd({"type": "config", "mirror": "yes"})["error"] == 'config "mirror" must be true or false'
        assert "set_text needs" in cmd({"type": "set_text"})["error"]
        assert 'unknown command type "jump"' in cmd({"type": "jump"})["error"]
        assert "JSON commands" in cmd("backspace please")["error"]
        assert "unknown command type missing" in cmd([1, 2])["error"]
        ws.send_bytes(jpeg())  # the socket still recognises frames
        assert ws.receive_json()["type"] == "prediction"


def test_space_pick_and_vocab_commands_are_the_servers_edits(client):
    with client.websocket_connect("/ws") as ws:
        def cmd(doc):
            ws.send_text(json.dumps(doc))
            return ws.receive_json()

        assert cmd({"type": "set_text", "text": "HI"})["spelling"]["text"] == "HI"
        assert cmd({"type": "space"})["spelling"]["text"] == "HI "
        assert cmd({"type": "space"})["spelling"]["text"] == "HI "  # never two spaces: the server's rule
        assert cmd({"type": "pick", "option": "HI"})["error"] == 'pick needs "option": one of spelling.choice.options'
        assert cmd({"type": "vocab", "words": ["Lupita", "Siobhan"]})["type"] == "state"
        assert "a list of at most" in cmd({"type": "vocab", "words": "Lupita"})["error"]
        state = cmd({"type": "clear"})["spelling"]
        assert state["text"] == "" and state["word"] is None and state["choice"] is None


def test_the_decoder_is_chosen_by_settings_and_the_old_rules_stay_available(tiny_bundle, tmp_path):
    vocab = tmp_path / "names.txt"
    vocab.write_text("Lupita\nSiobhan\n", encoding="utf-8")
    params = params_from_env({"FINGERSPELL_DECODER": "letters", "FINGERSPELL_LEXICON": "off",
                              "FINGERSPELL_VOCAB": str(vocab)})
    assert (params.decoder, params.lexicon, params.vocab) == ("letters", False, str(vocab))
    with pytest.raises(ConfigError, match="FINGERSPELL_LEXICON='maybe' must be true or false"):
        params_from_env({"FINGERSPELL_LEXICON": "maybe"})
    # TestClient addresses streams to "testserver", whatever its base_url
    with TestClient(create_app(predictor=FakePredictor(),
                               params=dataclasses.replace(params, allowed_hosts=("testserver",)))) as c:
        decoder = c.get("/health").json()["decoder"]
        assert decoder["kind"] == "letters" and decoder["vocab_words"] == 2
        with c.websocket_connect("/ws") as ws:
            ws.send_text(json.dumps({"type": "set_text", "text": "HI"}))
            assert ws.receive_json()["spelling"]["word"] is None
    with pytest.raises(ConfigError, match="decoder kind 'spell' is not known"):
        create_app(model=tiny_bundle, params=ServeParams(decoder="spell"))
    with pytest.raises(ConfigError, match="cannot read it as a UTF-8 word list"):
        create_app(model=tiny_bundle, params=ServeParams(vocab=str(tmp_path / "missing.txt")))


def test_a_client_that_sends_faster_than_it_reads_gets_stale_frames_skipped():
    photo = jpeg()
    # Recognition as slow as a real one: the frames arrive faster than they are recognised.
    with TestClient(create_app(predictor=FakePredictor(delay_s=0.05), params=LIMITS)) as client, \
            client.websocket_connect("/ws") as ws:
        for _ in range(6):
            ws.send_bytes(photo)
        answers = [ws.receive_json() for _ in range(6)]
    assert sorted(a["frame"] for a in answers) == [1, 2, 3, 4, 5, 6]  # each frame answered once
    kinds = {a["frame"]: a["type"] for a in answers}
    assert kinds[6] == "prediction"  # the newest frame is always recognised
    assert "skipped" in kinds.values()
    assert all(a["skipped"] is True for a in answers if a["type"] == "skipped")


# --------------------------------------------------------------------------- hosts (DNS rebinding)


@pytest.fixture(scope="module")
def loopback_client():
    """The app as a user runs it (bound to loopback), addressed as the page addresses it."""
    with TestClient(create_app(predictor=FakePredictor(), params=ServeParams()), base_url="http://127.0.0.1:5000") as c:
        yield c


ROUTES = [("GET", "/"), ("GET", "/health"), ("POST", "/predict"), ("GET", "/docs"), ("GET", "/openapi.json"),
          ("GET", "/static/app.js"), ("GET", "/docs/assets/swagger-ui.css")]


@pytest.mark.parametrize("host", ["evil.example:5099", "evil.example", "127.0.0.1.evil.example", "", "testserver",
                                  "[::2]:5000", "localhost@evil.example"])
def test_a_request_for_a_host_not_allowed_is_refused_on_every_route(loopback_client, host):
    for method, path in ROUTES:
        r = loopback_client.request(method, path, headers={"host": host, "content-type": "image/jpeg"},
                                    content=jpeg() if method == "POST" else None)
        assert r.status_code == 421, (path, r.text)
        assert "--allowed-host" in r.json()["error"]
        assert r.headers["x-frame-options"] == "DENY"


@pytest.mark.parametrize("host,origin", [("evil.example:5099", "http://evil.example:5099"), ("", "null"),
                                         ("evil.example:5099", None)])
def test_a_stream_for_a_host_not_allowed_is_refused(loopback_client, host, origin):
    from starlette.testclient import WebSocketDenialResponse

    headers = {"host": host, **({"origin": origin} if origin else {})}
    with pytest.raises(WebSocketDenialResponse) as denied:
        with loopback_client.websocket_connect("/ws", headers=headers) as ws:
            ws.receive_json()
    assert denied.value.status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "[::1]:5000", "LOCALHOST", "127.0.0.1",
                                  "localhost.:8080", "[0:0:0:0:0:0:0:1]:5000"])
def test_the_loopback_names_are_answered_on_any_port(loopback_client, host):
    assert loopback_client.get("/health", headers={"host": host}).status_code == 200


def test_a_page_must_come_from_an_allowed_host_on_the_port_it_talks_to(loopback_client):
    def verdict(origin):
        with loopback_client.websocket_connect("ws://127.0.0.1:5000/ws", headers={"origin": origin}) as ws:
            ws.send_text('{"type": "clear"}')
            try:
                return ws.receive_json()["type"]
            except WebSocketDisconnect as closed:
                return closed.code

    assert verdict("http://127.0.0.1:5000") == "state"
    assert verdict("http://localhost:5000") == "state"  # the same server by its other name
    assert verdict("http://localhost:8080") == 1008  # another program's page on this machine
    assert verdict("http://evil.example:5000") == 1008
    assert verdict("null") == 1008


def test_on_another_bind_the_named_hosts_and_this_machines_names_are_allowed(monkeypatch):
    default = resolve_allowed_hosts(ServeParams(host="0.0.0.0"))
    assert socket.gethostname().lower() in default and {"localhost", "127.0.0.1", "[::1]"} <= default
    assert "192.168.1.20" in resolve_allowed_hosts(ServeParams(host="192.168.1.20"))
    named = ServeParams(host="0.0.0.0", allowed_hosts=("Phone.LAN", "::1", "10.0.0.7:5000"))
    assert resolve_allowed_hosts(named) == {"phone.lan", "[::1]", "10.0.0.7", "localhost", "127.0.0.1"}
    with pytest.raises(ConfigError, match="allowed host 'not a host' is not a host name or IP address"):
        resolve_allowed_hosts(ServeParams(allowed_hosts=("not a host",)))
    monkeypatch.setenv("FINGERSPELL_ALLOWED_HOSTS", "phone.lan, tablet.lan")
    assert params_from_env().allowed_hosts == ("phone.lan", "tablet.lan")
    with TestClient(create_app(predictor=FakePredictor(), params=named), base_url="http://phone.lan:5000") as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", headers={"host": "evil.example"}).status_code == 421


def test_serve_passes_allowed_hosts_to_the_server(monkeypatch):
    from fingerspell.cli import _parser
    from fingerspell.cli.serving import cmd_serve

    calls = []
    monkeypatch.setattr(serve, "run", lambda **kw: calls.append(kw))
    cmd_serve(_parser().parse_args(["serve", "--allowed-host", "phone.lan", "--allowed-host", "10.0.0.7"]))
    assert calls[-1]["allowed_hosts"] == ["phone.lan", "10.0.0.7"]


def test_run_warns_which_hosts_a_network_bind_answers(tiny_bundle, monkeypatch, caplog):
    calls = []
    monkeypatch.setattr(serve, "serve_app", lambda app, **kw: calls.append(kw))
    with caplog.at_level(logging.INFO, logger="fingerspell.serve"):
        serve.run("0.0.0.0", 5001, tiny_bundle, allowed_hosts=["phone.lan"])
    assert "answering requests addressed to 127.0.0.1, [::1], localhost, phone.lan" in caplog.text


def raw_ws_handshake(port: int, host: str, origin: str) -> bytes:
    s, head = upgrade(port, host=host, origin=origin)
    s.close()
    return head


def test_live_server_refuses_a_rebound_name_before_the_upgrade(live):
    answer = raw_ws_handshake(live.port, "evil.example:5099", "http://evil.example:5099")
    assert answer.startswith(b"HTTP/1.1 421"), answer[:200]
    answer = raw_ws_handshake(live.port, "", "null")
    assert answer.startswith(b"HTTP/1.1 421"), answer[:200]
    answer = raw_ws_handshake(live.port, f"127.0.0.1:{live.port}", f"http://127.0.0.1:{live.port}")
    assert answer.startswith(b"HTTP/1.1 101"), answer[:200]


# --------------------------------------------------------------------------- client mistakes in the log


def log_since(server: ServerProcess, offset: int) -> str:
    return server.log_path.read_bytes()[offset:].decode(errors="replace")


def test_client_mistakes_are_one_log_line_without_a_traceback(live):
    offset = live.log_path.stat().st_size
    port = live.port
    # An upload that stops half way: the client goes away mid-body.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"x" * 100)
        time.sleep(0.3)
    # A chunked upload that goes on after its 413, with bytes that are no chunk.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"\xff" * 100_000
        for _ in range(4):
            s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
        s.sendall(b"zz\r\nnot a chunk\r\n")
        time.sleep(0.3)
    # A WebSocket text message that is not UTF-8: closed with 1007.
    s, head = upgrade(port)
    with s:
        s.sendall(bytes([0x81, 0x82]) + b"\0\0\0\0" + b"\xff\xfe")
        close = s.recv(100)
        assert close[:1] == b"\x88" and struct.unpack(">H", close[2:4])[0] == 1007, close
    time.sleep(1.0)
    log = log_since(live, offset)
    assert "Traceback" not in log and "ERROR" not in log, log[-4000:]
    assert log.count("the client went away after 100 of 100,000 bytes") == 1, log[-3000:]
    assert log.count("sent a malformed request after its answer") == 1, log[-3000:]
    assert log.count("text message that is not UTF-8") == 1, log[-3000:]
    assert len(log) < 3000, f"{len(log)} bytes of log for three 100-byte mistakes"


def test_uvicorns_own_400_carries_the_security_headers(live):
    answer = raw_http_answer(live.port, b"GARBAGE\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"x-frame-options: DENY" in answer and b"frame-ancestors 'none'" in answer


@pytest.mark.parametrize("size", [70_000, 100_000])
def test_a_request_head_over_64_kib_is_refused_even_in_one_write(live, size):
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * size + b"\r\n\r\n"
    answer = raw_http_answer(live.port, head)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]


def raw_http_answer(port: int, request: bytes, wait: float = 10.0) -> bytes:
    """Send ``request`` in one write; everything the server sends until it closes (or ``wait`` s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(request)
        answer = b""
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


# --------------------------------------------------------------------------- bounded work and time


def test_predict_requests_beyond_max_uploads_get_503_and_a_stalled_body_408(live):
    body = jpeg()
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as stalled:
        # Holds the one upload slot (max_uploads is 1 here): a body that stops after 100 of its bytes.
        stalled.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
        time.sleep(0.3)
        t = time.monotonic()
        r = httpx.post(live.url + "/predict", content=body, headers={"content-type": "image/jpeg"}, timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert "busy: 1 uploads" in r.json()["error"] and time.monotonic() - t > 0.4  # it waited predict_wait_s first
        answer = b""  # the body timeout (2 s here) frees the slot; head and body may come apart
        while not answer.endswith(b"}"):
            chunk = stalled.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 408") and b"did not arrive within 2 s" in answer, answer[:300]
    r = httpx.post(live.url + "/predict", content=body, headers={"content-type": "image/jpeg"}, timeout=10)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def crowded(tiny_bundle, tmp_path_factory):
    """A real server with few slots, a long body timeout and a short idle limit: for clients that hold slots."""
    yield from _serving(ServerProcess(
        tiny_bundle, log_dir=tmp_path_factory.mktemp("crowded"),
        env={"FINGERSPELL_MAX_PREDICTS": "2", "FINGERSPELL_PREDICT_WAIT_S": "1", "FINGERSPELL_BODY_TIMEOUT_S": "60",
             "FINGERSPELL_MAX_CONNECTIONS": "3", "FINGERSPELL_STREAM_IDLE_S": "5"}))


def test_slow_uploaders_as_many_as_max_predicts_do_not_keep_others_images_from_being_recognised(crowded):
    body = jpeg()
    head = (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    slow = [socket.create_connection(("127.0.0.1", crowded.port), timeout=10) for _ in range(2)]  # max_predicts
    stop = threading.Event()

    def trickle():  # a byte each 0.2 s on each: the bodies would take minutes to arrive
        for i in range(100, len(body) - 1):
            if stop.wait(0.2):
                return
            for s in slow:
                s.sendall(body[i:i + 1])

    feeder = threading.Thread(target=trickle, daemon=True)
    try:
        for s in slow:
            s.sendall(head + body[:100])
        feeder.start()
        time.sleep(1.0)  # both uploads are under way (before the fix, each held a recognition slot)
        r = httpx.post(crowded.url + "/predict", content=body, headers={"content-type": "image/jpeg"}, timeout=30)
        assert r.status_code == 200, r.text
        assert feeder.is_alive()  # answered while the slow uploads go on, unanswered
        for s in slow:
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(100)
    finally:
        stop.set()
        feeder.join(10)
        for s in slow:
            s.close()


def test_streams_that_send_nothing_are_closed_at_the_idle_limit_and_free_their_slots(crowded):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = f"ws://127.0.0.1:{crowded.port}/ws"
    # Clients that ping the server (and answer its pings), but send no frame and no command.
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(connect(url, ping_interval=0.3)) for _ in range(3)]  # max_connections
        with connect(url) as extra, pytest.raises(ConnectionClosed) as busy:
            extra.recv(timeout=10)
        assert busy.value.rcvd.code == 1013  # every slot is held
        for ws in idle:
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=20)
            assert closed.value.rcvd.code == 1001, closed.value
            assert closed.value.rcvd.reason == "idle: no frame or command for 5 s"
    with connect(url) as ws:  # the slots are free again; a stream that sends something outlives the limit
        for _ in range(14):  # 7 s: past the 5 s limit
            ws.send(json.dumps({"type": "clear"}))
            assert json.loads(ws.recv(timeout=10))["type"] == "state"
            time.sleep(0.5)
        ws.send(jpeg())
        assert json.loads(ws.recv(timeout=10))["type"] == "prediction"
    log = crowded.logs()
    assert "Traceback" not in log and log.count("without a frame or a command (1001)") == 3, log[-3000:]


def test_a_request_head_that_trickles_in_is_cut_off_at_the_header_timeout(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        head = b"GET /health HTTP/1.1\r\nX-Slow: " + b"a" * 20  # a byte every 0.5 s: 16 s in all
        closed = seconds_until_closed(s, [bytes([b]) for b in head], interval=0.5, limit=8)
    assert closed is not None and closed < 4, "a head trickling in is still open after 8 s"
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as idle:  # nothing sent at all
        idle.settimeout(6)
        t = time.monotonic()
        assert idle.recv(100) == b"" and time.monotonic() - t < 4


def test_after_an_early_answer_the_rest_of_a_body_is_dropped_for_at_most_the_body_timeout(live):
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as s:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 400_000 + b"\xff" * 400_000 + b"\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 413")
        # A chunk every 0.3 s, for ever; the body timeout here is 2 s.
        ended = seconds_until_closed(s, [b"1\r\nx\r\n"] * 100, interval=0.3, limit=8)
    assert ended is not None and 1.5 < ended < 4, ended
