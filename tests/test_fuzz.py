"""Hostile input: schemathesis against the app's own OpenAPI schema, a fuzzer of the frame path,
and a fuzzer of request and message shapes.

The frame fuzzer starts from real photos (JPEG and PNG, and the other formats training reads) and
breaks them: bit flips, overwritten bytes, truncation, splices of two files, dimensions in the
JPEG SOF or PNG IHDR header set anywhere up to 2**31, huge APPn/COM segments and text/ICC chunks
(some of them zlib bombs), or plain random bytes. What must hold, for every input:

* ``decode_image`` returns RGB pixels within ``max_pixels`` or raises ``FrameError``, nothing else,
  within a deadline;
* ``POST /predict`` answers 200 or a 4xx with a JSON error, never a 5xx, within a deadline;
* the stream answers every frame with a prediction or an error and stays open.

The shape fuzzer sends what is not a frame at all: any content type, JSON of any shape, data URLs
with wrong prefixes, and WebSocket text messages (commands with odd fields, any JSON, any text).
The command fuzzer sends every text command the stream knows, and region messages (numbers of
any size, NaN and infinities, rectangles at the frame's edge, with mirroring on and off), each
followed by a frame: one answer each, never a closed socket, never a traceback in the log. The
hand fuzzer sends on-device mode's hand messages, broken (wrong shapes, NaN, huge arrays, wrong
types, unknown versions), in either mode, and frames in device mode: the same holds.

Sized for CI (about half a minute on 2 cores). ``FINGERSPELL_FUZZ_EXAMPLES=10000`` spreads that
many generated inputs over the fuzzers instead (the long run: several minutes); either way the
counts are printed at the end of the module.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import struct
import threading
import time
import zlib
from collections import Counter

import numpy as np
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

from conftest import KAGGLE, ROBOFLOW
from fingerspell.config import ServeParams
from fingerspell.errors import FrameError
from fingerspell.images import decode_image
from fingerspell.predictor import Predictor
from fingerspell.server import create_app
from fingerspell.server.settings import data_dir
from fingerspell.teach.profiles import Profiles

PARAMS = ServeParams(allowed_hosts=("testserver",))  # the limits a user gets; TestClient's Host
# PIL warns (corrupt EXIF, odd TIFF tags) on its way to decoding or refusing; the outcome is what counts.
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning:PIL")]
TOTAL = int(os.environ.get("FINGERSPELL_FUZZ_EXAMPLES", "0") or 0)
SHARE = {"schemathesis": 0.20, "decode": 0.25, "predict": 0.10, "stream": 0.10, "requests": 0.10, "messages": 0.10,
         "commands": 0.10, "hands": 0.05}
CI_EXAMPLES = {"schemathesis": 150, "decode": 400, "predict": 80, "stream": 100, "requests": 150, "messages": 150,
               "commands": 150, "hands": 150}
DECODE_DEADLINE_S = float(os.environ.get("FINGERSPELL_FUZZ_DEADLINE_S", "3"))  # 3x the slowest of 10,000 (busy 2 cores)
REQUEST_DEADLINE_S = 20.0  # decode + up to five hand-detector runs, on a loaded 2-core machine
SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)
TALLY: Counter = Counter()  # (fuzzer, outcome) -> count; printed at the end of the module
SLOWEST: dict[str, float] = {}  # fuzzer -> seconds of its slowest input


def examples(fuzzer: str) -> int:
    return max(1, round(TOTAL * SHARE[fuzzer])) if TOTAL else CI_EXAMPLES[fuzzer]


class Hang(AssertionError):
    pass


def bounded(seconds: float, fn, *args):
    """``fn(*args)`` in a daemon thread; Hang where it has not returned within ``seconds``."""
    out: dict = {}

    def target():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            out["error"] = exc

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise Hang(f"{getattr(fn, '__name__', fn)} did not return within {seconds} s")
    if "error" in out:
        raise out["error"]
    return out["value"]


def call(fuzzer: str, seconds: float, fn, *args):
    """``fn(*args)`` under a deadline, counted: one input, and a hang or a crash where it is one."""
    TALLY[fuzzer, "inputs"] += 1
    t = time.perf_counter()
    try:
        return bounded(seconds, fn, *args)
    except FrameError:
        raise
    except Hang:
        TALLY[fuzzer, "hangs"] += 1
        raise
    except BaseException:
        TALLY[fuzzer, "crashes"] += 1
        raise
    finally:
        SLOWEST[fuzzer] = max(SLOWEST.get(fuzzer, 0.0), time.perf_counter() - t)


@pytest.fixture(scope="module", autouse=True)
def print_counts(request):
    yield
    if not TALLY:
        return
    fuzzers = sorted({f for f, _ in TALLY})
    outcomes = ["inputs", "2xx", "4xx", "5xx", "pixels", "FrameError", "crashes", "hangs", "tracebacks"]
    lines = [f"fuzz counts ({'FINGERSPELL_FUZZ_EXAMPLES=' + str(TOTAL) if TOTAL else 'CI size'}):",
             f"{'fuzzer':<28}" + "".join(f"{o:>11}" for o in outcomes) + f"{'slowest ms':>12}"]
    for f in fuzzers + ["all"]:
        row = {o: sum(v for (g, k), v in TALLY.items() if k == o and (g == f or f == "all")) for o in outcomes}
        slowest = max(SLOWEST.values()) if f == "all" else SLOWEST.get(f, 0.0)
        lines.append(f"{f:<28}" + "".join(f"{row[o]:>11,}" for o in outcomes) + f"{slowest * 1e3:>12,.0f}")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            for line in lines:
                reporter.write_line(line)


# --------------------------------------------------------------------------- seeds


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo() -> Image.Image:
    """A real hand photo where ../shared/data is present, else a drawn stand-in (the fuzzer needs no hand)."""
    for folder in (ROBOFLOW, KAGGLE):
        found = sorted(folder.glob("B/*.jpg"))
        if found:
            return ImageOps.exif_transpose(Image.open(found[0])).convert("RGB")
    img = Image.new("RGB", (416, 416), (190, 150, 120))
    img.paste((90, 60, 40), (120, 80, 300, 360))
    return img


def make_seeds() -> dict[str, bytes]:
    """Valid files in every format and flavour the decoders meet: the fuzzer's starting points."""
    photo = _photo()
    small = photo.resize((96, 72))
    frame = Image.new("RGB", (640, 480))
    frame.paste(photo.resize((480, 480)), (80, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate on decode (the exif_transpose path)
    return {
        "frame.jpg": _encode(frame, "JPEG", quality=80),  # what the page sends
        "photo.jpg": (sorted(ROBOFLOW.glob("B/*.jpg"))[0].read_bytes() if ROBOFLOW.is_dir()
                      else _encode(photo, "JPEG", quality=90)),
        "progressive.jpg": _encode(small, "JPEG", quality=70, progressive=True),
        "exif.jpg": _encode(small, "JPEG", quality=70, exif=exif.tobytes()),
        "gray.jpg": _encode(small.convert("L"), "JPEG"),
        "cmyk.jpg": _encode(small.convert("CMYK"), "JPEG"),
        "photo.png": _encode(small, "PNG"),
        "interlaced-palette.png": _encode(small.convert("P"), "PNG", interlace=1, transparency=0),
        "gray16.png": _encode(small.convert("I;16"), "PNG"),
        "rgba.png": _encode(small.convert("RGBA"), "PNG"),
        "photo.gif": _encode(small, "GIF"),
        "photo.bmp": _encode(small, "BMP"),
        "photo.webp": _encode(small, "WEBP", quality=60),
        "photo.tiff": _encode(small, "TIFF", compression="tiff_lzw"),
    }


SEEDS = make_seeds()
SMALL_SEEDS = {k: v for k, v in SEEDS.items() if len(v) < 40_000}  # for the fuzzers that run the hand detector
TINY_SEEDS = {"tiny.jpg": _encode(_photo().resize((64, 48)), "JPEG")}  # for the shape fuzzer: the shape is the point


# --------------------------------------------------------------------------- mutations


def _segments(data: bytes):
    """(offset, marker) of each JPEG marker segment before the scan."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        yield i, marker
        if marker == 0xDA:
            return
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
DIMENSIONS = st.one_of(st.sampled_from([0, 1, 2, 4095, 4096, 4097, 16384, 65535]), st.integers(0, 65535))
BIG_DIMENSIONS = st.one_of(DIMENSIONS, st.sampled_from([2**31 - 1, 2**32 - 1, 10**6]), st.integers(0, 2**32 - 1))


def set_jpeg_size(data: bytearray, width: int, height: int) -> bytearray:
    for i, marker in _segments(bytes(data)):
        if marker in SOF and i + 9 <= len(data):
            data[i + 5:i + 9] = struct.pack(">HH", height, width)
    return data


def set_png_header(data: bytearray, width: int, height: int, depth: int | None, colour: int | None,
                   fix_crc: bool) -> bytearray:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 33:
        return data
    data[16:24] = struct.pack(">II", width, height)
    if depth is not None:
        data[24] = depth
    if colour is not None:
        data[25] = colour
    if fix_crc:
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return data


@st.composite
def header_edit(draw, data: bytearray) -> bytearray:
    if data[:2] == b"\xff\xd8":
        event("mutation: JPEG SOF size")
        return set_jpeg_size(data, draw(DIMENSIONS), draw(DIMENSIONS))
    event("mutation: PNG IHDR")
    return set_png_header(data, draw(BIG_DIMENSIONS), draw(BIG_DIMENSIONS),
                          draw(st.none() | st.sampled_from([0, 1, 2, 4, 8, 16, 255])),
                          draw(st.none() | st.sampled_from([0, 2, 3, 4, 6, 7, 255])), draw(st.booleans()))


@st.composite
def huge_header(draw, data: bytearray) -> bytearray:
    """Header segments and chunks far larger than the pixels they come with."""
    if data[:2] == b"\xff\xd8":
        count = draw(st.integers(1, 20))
        marker = draw(st.sampled_from([0xE1, 0xE2, 0xED, 0xEE, 0xFE]))  # EXIF/XMP, ICC, IPTC, Adobe, comment
        filler = draw(st.binary(min_size=1, max_size=64))
        body = (filler * (65533 // len(filler) + 1))[:65533]
        if marker == 0xE1 and draw(st.booleans()):  # an EXIF block claiming 65535 IFD entries
            body = (b"Exif\0\0MM\0\x2a\0\0\0\x08\xff\xff" + body)[:65533]
        event(f"mutation: {count} x 64 KiB JPEG segment {marker:#x}")
        return data[:2] + (bytes([0xFF, marker]) + struct.pack(">H", 65535) + body) * count + data[2:]
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        kind = draw(st.sampled_from([b"tEXt", b"zTXt", b"iTXt", b"iCCP", b"eXIf", b"zzZz"]))
        size = draw(st.sampled_from([2**16, 2**20, 2**26]))  # the last only as a zlib bomb
        if kind in (b"zTXt", b"iCCP"):
            body = b"k\0\0" + zlib.compress(b"\0" * size, 9)
        else:
            body = b"k\0" + draw(st.binary(min_size=1, max_size=8)) * (min(size, 2**20) // 8)
        event(f"mutation: PNG {kind.decode()} chunk")
        return data[:33] + _png_chunk(kind, body) + data[33:]
    return data


# Under max_message_bytes, so that the stream fuzzer is about frames (an oversize message closes
# the socket with 1009: test_server.py covers that).
MAX_FRAME = 3 * PARAMS.max_message_bytes // 4
# Weighted towards changes that leave a decodable image, so that the detector sees odd pixels too.
OPS = ["bit flips"] * 4 + ["bytes"] * 2 + ["truncate", "splice", "header", "huge header", "insert", "delete"]


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> bytes:
    """One seed, changed one to three times."""
    name = draw(st.sampled_from(sorted(seeds)))
    event(f"seed: {name}")
    data = bytearray(seeds[name])
    # Positions from a seeded Random: uniform over the file (Hypothesis favours 0 and the ends).
    rnd = draw(st.randoms(use_true_random=True))
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3]))):
        op = draw(st.sampled_from(OPS))
        if not data:
            data = bytearray(draw(st.binary(max_size=64)))
            continue
        # A third of the changes go to the first KiB: headers are where parsers decide what to allocate.
        top = min(len(data), 1024) if rnd.random() < 1 / 3 else len(data)
        if op == "bit flips":
            for _ in range(rnd.choice([1, 1, 2, 3, 4, 8, 16])):
                data[rnd.randrange(top)] ^= 1 << rnd.randrange(8)
        elif op == "bytes":
            i = rnd.randrange(top)
            chunk = draw(st.binary(min_size=1, max_size=16) | st.sampled_from([b"\xff" * 4, b"\0" * 4, b"\x7f\xff"]))
            data[i:i + len(chunk)] = chunk
        elif op == "truncate":
            del data[rnd.randrange(len(data)):]
        elif op == "splice":
            other = seeds[draw(st.sampled_from(sorted(seeds)))]
            data = data[:rnd.randint(0, len(data))] + other[rnd.randint(0, len(other)):]
        elif op == "header":
            data = draw(header_edit(data))
        elif op == "huge header":
            data = draw(huge_header(data))
        elif op == "insert":
            i = rnd.randint(0, top)
            data[i:i] = draw(st.binary(min_size=1, max_size=256))
        else:
            i = rnd.randrange(top)
            del data[i:i + rnd.randint(1, 512)]
        event(f"op: {op}")
    return bytes(data[:MAX_FRAME])


def hostile_frames(seeds: dict[str, bytes]):
    magic = st.sampled_from([b"\xff\xd8\xff", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"\x89PNG\r\n\x1a\n",
                             b"GIF89a", b"BM", b"RIFF\0\0\0\0WEBP", b"II*\0", b"MM\0*"])
    return st.one_of(
        mutated(seeds), mutated(seeds), mutated(seeds), mutated(seeds),
        st.binary(max_size=4096),
        st.tuples(magic, st.binary(max_size=2048)).map(lambda t: t[0] + t[1]),
    )


# --------------------------------------------------------------------------- the decoder


def check_decode(data: bytes, fuzzer: str) -> None:
    try:
        rgb = call(fuzzer, DECODE_DEADLINE_S, decode_image, data, PARAMS.max_pixels)
    except FrameError as exc:
        TALLY[fuzzer, "FrameError"] += 1
        assert str(exc), "a FrameError must say what is wrong"
        return
    TALLY[fuzzer, "pixels"] += 1
    assert isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert 0 < rgb.shape[0] * rgb.shape[1] <= PARAMS.max_pixels


@settings(max_examples=examples("decode"), **SETTINGS)
@given(data=hostile_frames(SEEDS))
def test_decode_image_gives_pixels_or_a_frame_error_for_any_bytes_within_a_deadline(data):
    check_decode(data, "decode_image")


HUGE = [("frame.jpg", 65535, 65535), ("progressive.jpg", 4097, 4096), ("frame.jpg", 65535, 257),
        ("photo.png", 65535, 65535), ("interlaced-palette.png", 4097, 4096), ("photo.png", 1, 16_777_217),
        ("photo.png", 2**31 - 1, 2**31 - 1)]


@pytest.mark.parametrize("seed,width,height", HUGE)
def test_a_header_claiming_more_than_max_pixels_is_refused_before_decoding(seed, width, height):
    data = bytearray(SEEDS[seed])
    if seed.endswith(".jpg"):
        data = set_jpeg_size(data, width, height)
    else:
        data = set_png_header(data, width, height, None, None, fix_crc=True)
    t = time.perf_counter()
    shown = rf"({width}x{height}|{width * height:,}) pixels, over the limit of 16,777,216 pixels"
    with pytest.raises(FrameError, match=shown):
        decode_image(bytes(data), PARAMS.max_pixels)
    assert time.perf_counter() - t < 0.5, "refused from the header, before any pixel is decoded"


# Formats Pillow reads that neither the page nor training uses: EPS hands the bytes to Ghostscript
# where it is installed; the others are rarely used decoders, each more code for hostile bytes.
OTHER_FORMATS = ["EPS", "JPEG2000", "ICO", "ICNS", "PPM", "TGA", "PCX", "SGI", "DDS", "QOI", "IM", "SPIDER",
                 "MSP", "XBM", "AVIF"]


@pytest.mark.parametrize("fmt", OTHER_FORMATS)
def test_formats_other_than_those_training_reads_are_refused_unopened(fmt):
    img = Image.new("1" if fmt in ("MSP", "XBM") else "L" if fmt == "SPIDER" else "RGB", (32, 24), 1)
    try:
        data = _encode(img, fmt)
    except (OSError, KeyError, ValueError) as exc:
        pytest.skip(f"this Pillow cannot write {fmt} ({exc})")
    assert Image.open(io.BytesIO(data)).format == fmt  # Pillow itself would read it
    with pytest.raises(FrameError, match="not an image PIL can read"):
        decode_image(data, PARAMS.max_pixels)


@pytest.mark.parametrize("seed", ["photo.gif", "photo.bmp", "photo.webp", "photo.tiff"])
def test_the_server_decodes_only_jpeg_and_png_though_training_reads_more(client, seed):
    data = SEEDS[seed]
    assert decode_image(data, PARAMS.max_pixels).shape == (72, 96, 3)  # training reads it
    r = client.post("/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 422 and "send JPEG or PNG" in r.json()["error"], r.text
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(data)
        answer = ws.receive_json()
    assert answer["type"] == "error" and "send JPEG or PNG" in answer["error"], answer


@pytest.mark.parametrize("kind", [b"zTXt", b"iCCP"])
def test_a_zlib_bomb_in_a_png_chunk_is_refused_quickly(kind):
    bomb = _png_chunk(kind, b"k\0\0" + zlib.compress(b"\0" * 2**27, 9))  # 128 MiB of zeros in 130 KB
    data = SEEDS["photo.png"][:33] + bomb + SEEDS["photo.png"][33:]
    t = time.perf_counter()
    try:
        rgb = decode_image(data, PARAMS.max_pixels)
    except FrameError as exc:
        assert "too large" in str(exc).lower() or "could not be decoded" in str(exc)
    else:
        assert rgb.shape == (72, 96, 3)  # the chunk was left unread
    assert time.perf_counter() - t < 1.0


# --------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def predictor(tiny_bundle):
    p = Predictor.from_bundle(tiny_bundle)
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor=predictor, params=PARAMS)) as c:
        yield c


@pytest.fixture(scope="module")
def api_schema(predictor):
    """The app's own OpenAPI document, loaded through the app (schemathesis calls it in-process)."""
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(predictor=predictor, params=PARAMS))


# Response conformance where the schema can say it. Left out: positive_data_acceptance, because
# "image" is documented as a string but only a base64 data URL of a readable image is accepted
# (no schema can say "a JPEG"), so schema-valid bodies are rightly answered 400 or 422.
CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_headers_conformance, st_checks.response_schema_conformance,
          st_checks.negative_data_rejection]


@pytest.mark.parametrize("operation", ["POST /predict", "GET /health", "POST /profiles", "GET /profile", "PATCH /profile",
                                       "POST /profile/samples", "DELETE /profile/samples"])
def test_the_api_answers_schema_generated_requests_as_documented_and_never_with_5xx(api_schema, operation):
    # The profile routes with a real profile's token, so that their bodies are read, not refused at the door.
    # (PUT and upload take a records file, which schemathesis cannot make: tests/test_profiles.py sends them.)
    token = Profiles(data_dir(PARAMS)).create()[0] if operation.split()[1].startswith("/profile/") or \
        operation.split()[1] == "/profile" else None
    op = api_schema.find_operation_by_label(operation)
    assert op is not None, f"{operation} is not in the OpenAPI document"
    cases = st.one_of(op.as_strategy(generation_mode=GenerationMode.POSITIVE),
                      op.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    name = f"schemathesis {operation}"

    @settings(max_examples=examples("schemathesis"), **SETTINGS)
    @given(case=cases)
    def one(case):
        if token is not None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
        response = call(name, REQUEST_DEADLINE_S, case.call)
        TALLY[name, f"{response.status_code // 100}xx"] += 1
        event(f"status {response.status_code}")
        assert response.status_code < 500, response.text
        assert response.headers["x-frame-options"] == ["DENY"]
        if response.status_code >= 400:
            assert isinstance(response.json()["error"], str)
        case.validate_response(response, checks=CHECKS)

    one()


def _post(client, data: bytes, how: str):
    if how == "json":
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
        return client.post("/predict", json={"image": url})
    return client.post("/predict", content=data, headers={"content-type": how})


@settings(max_examples=examples("predict"), **SETTINGS)
@given(data=hostile_frames(SMALL_SEEDS), how=st.sampled_from(["image/jpeg", "image/png", "json"]))
def test_predict_answers_any_frame_with_200_or_a_4xx_never_5xx(client, data, how):
    name = "POST /predict frames"
    r = call(name, REQUEST_DEADLINE_S, _post, client, data, how)
    TALLY[name, f"{r.status_code // 100}xx"] += 1
    event(f"status {r.status_code}")
    assert r.status_code in (200, 422), r.text
    body = r.json()
    if r.status_code == 200:
        assert body["prediction"] in client.app.state.predictor.labels
    else:
        assert body["error"] and "Traceback" not in r.text


def test_the_stream_answers_every_frame_and_stays_open(client):
    name = "WS /ws frames"
    with client.websocket_connect("/ws") as ws:
        sent = 0

        def exchange(data: bytes) -> dict:
            ws.send_bytes(data)
            return ws.receive_json()

        @settings(max_examples=examples("stream"), **SETTINGS)
        @given(data=hostile_frames(SMALL_SEEDS))
        def one(data):
            nonlocal sent
            assert len(data) <= PARAMS.max_message_bytes
            sent += 1
            answer = call(name, REQUEST_DEADLINE_S, exchange, data)
            TALLY[name, "2xx" if answer["type"] == "prediction" else "4xx"] += 1
            event(f"answer {answer['type']}")
            assert answer["type"] in ("prediction", "error"), answer
            assert answer["frame"] == sent
            if answer["type"] == "error":
                assert isinstance(answer["error"], str) and answer["error"]

        one()
        ws.send_bytes(SEEDS["frame.jpg"])
        assert ws.receive_json()["type"] == "prediction"


# --------------------------------------------------------------------------- request and message shapes


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


@st.composite
def predict_requests(draw):
    """(content type, body): JSON of any shape, data URLs with odd prefixes, bytes under any type."""
    content_type = draw(st.sampled_from(["application/json"] * 3 + ["image/jpeg"] * 3 + ["image/png", "text/plain", ""]))
    if content_type == "application/json":
        kind = draw(st.sampled_from(["json", "image-url", "image-url", "bytes"]))
    else:
        kind = draw(st.sampled_from(["jpeg", "jpeg", "bytes"]))
    event(f"request: {content_type or 'no type'} {kind}")
    if kind == "bytes":
        body = draw(st.binary(max_size=2000))
    elif kind == "jpeg":
        body = draw(hostile_frames(TINY_SEEDS))
    elif kind == "json":
        body = json.dumps(draw(json_values)).encode()
    else:
        payload = draw(st.sampled_from(["data:image/jpeg;base64,"] * 3 + ["data:,", "", "data:image/png;base64"]))
        inner = draw(hostile_frames(TINY_SEEDS))
        body = json.dumps({"image": payload + base64.b64encode(inner).decode() + draw(st.text(max_size=3))}).encode()
    return content_type, body


@settings(max_examples=examples("requests"), **SETTINGS)
@given(req=predict_requests())
def test_predict_never_answers_5xx_to_random_input(client, req):
    name = "POST /predict requests"
    content_type, body = req
    r = call(name, REQUEST_DEADLINE_S, lambda: client.post(
        "/predict", content=body, headers={"content-type": content_type} if content_type else {}))
    TALLY[name, f"{r.status_code // 100}xx"] += 1
    event(f"status {r.status_code}")
    assert r.status_code < 500, r.text
    if r.status_code == 200:
        assert set(r.json()) == {"prediction", "confidence", "top", "hand", "timings_ms"}
    else:
        assert 400 <= r.status_code < 500 and isinstance(r.json()["error"], str)


stream_messages = st.one_of(
    st.binary(max_size=2000).map(lambda b: ("bytes", b)),
    hostile_frames(TINY_SEEDS).map(lambda b: ("bytes", b)),
    json_values.map(lambda v: ("text", json.dumps(v))),
    st.fixed_dictionaries({"type": st.sampled_from(["backspace", "clear", "set_text", "config", "x"]),
                           "text": json_values, "mirror": json_values}).map(lambda v: ("text", json.dumps(v))),
    st.text(max_size=200).map(lambda t: ("text", t)),
)


def test_stream_never_fails_on_random_messages(client):
    name = "WS /ws messages"
    with client.websocket_connect("/ws") as ws:
        def exchange(kind: str, payload) -> dict:
            (ws.send_bytes if kind == "bytes" else ws.send_text)(payload)
            return ws.receive_json()

        @settings(max_examples=examples("messages"), **SETTINGS)
        @given(message=stream_messages)
        def one(message):
            answer = call(name, REQUEST_DEADLINE_S, exchange, *message)
            TALLY[name, "4xx" if answer["type"] == "error" else "2xx"] += 1
            event(f"answer {answer['type']}")
            assert answer["type"] in {"prediction", "error", "state"}, answer
            if answer["type"] == "error":
                assert isinstance(answer["error"], str)
            elif answer["type"] == "state":
                assert isinstance(answer["spelling"]["text"], str)

        one()
        ws.send_bytes(SEEDS["frame.jpg"])
        assert ws.receive_json()["type"] == "prediction"


# --------------------------------------------------------------------------- every command, and regions


COMMAND_TYPES = ["backspace", "space", "clear", "set_text", "pick", "vocab", "config", "profile"]
# Numbers as JSON carries them: integers of any size (400 digits overflow a float), NaN and
# infinities (Python's json reads NaN and Infinity), and the edges of the region's checks.
numbers = st.one_of(
    st.integers(), st.integers(10 ** 300, 10 ** 500).map(lambda n: n * (-1) ** (n % 2)), st.floats(),
    st.sampled_from([0, 0.5, 1, 7.99, 8, 8.1, 408, 872.4, 1271.9, 1280, 16384, 16385, -0.0, -1]))
REGION_FIELDS = ("x", "y", "w", "h", "frame_w", "frame_h")
FUZZ_FRAME_SIDE = 32  # the frame after a region: square, so square regions reach recognition


@st.composite
def region_messages(draw) -> dict:
    """A region message: any values, some fields missing, or a square near the frame's far edges."""
    if draw(st.booleans()):
        values = st.one_of(numbers, json_values)
        doc = draw(st.fixed_dictionaries({}, optional={k: values for k in REGION_FIELDS}))
        event(f"region: {len(doc)} fields")
    else:  # square, and within a pixel of the right or bottom edge: the slack and float rounding
        frame_w, frame_h = draw(st.sampled_from([(1280, 720), (640, 480), (8, 8), (16384, 16384)]) |
                                st.tuples(st.integers(1, 17000), st.integers(1, 17000)))
        side = draw(st.sampled_from([8, 8.1, 408, min(frame_w, frame_h)]) | st.floats(7, 1000))
        doc = {"x": frame_w - side + draw(st.floats(-1, 0.7)), "y": draw(st.sampled_from([0, frame_h - side + 0.4])),
               "w": side, "h": side, "frame_w": frame_w, "frame_h": frame_h}
        event("region: at the edge")
    return {"type": "region", **doc}


@st.composite
def commands(draw) -> dict:
    """A command of every known type, with fields of the right type or of any other."""
    name = draw(st.sampled_from(COMMAND_TYPES))
    event(f"command: {name}")
    fields = {
        "text": st.text(max_size=50) | json_values, "option": st.text(max_size=20) | json_values,
        "words": st.lists(st.text(max_size=20), max_size=20) | json_values, "mirror": st.booleans() | json_values,
        "token": st.text(max_size=60) | json_values, "use": st.sampled_from(["personal", "default"]) | json_values,
    }
    return {"type": name, **draw(st.fixed_dictionaries({}, optional=fields))}


def fuzz_frame() -> bytes:
    return _encode(_photo().resize((FUZZ_FRAME_SIDE, FUZZ_FRAME_SIDE)), "JPEG")


def test_the_stream_answers_every_command_and_region_message_and_stays_open(client, caplog):
    name = "WS /ws commands"
    frame = fuzz_frame()
    with caplog.at_level(logging.INFO), client.websocket_connect("/ws") as ws:
        frames = 0

        def exchange(message: dict) -> dict:
            nonlocal frames
            ws.send_text(json.dumps(message))  # NaN and Infinity as Python's json writes them
            if message["type"] != "region":
                return ws.receive_json()
            ws.send_bytes(frame)  # a region is answered with its frame
            frames += 1
            return ws.receive_json()

        @settings(max_examples=examples("commands"), **SETTINGS)
        @given(steps=st.lists(commands() | region_messages(), min_size=1, max_size=4))
        def one(steps):
            for message in steps:
                try:
                    answer = call(name, REQUEST_DEADLINE_S, exchange, message)
                except Exception:
                    TALLY[name, "5xx"] += 1  # the socket closed: the server failed
                    raise
                event(f"answer {answer['type']}")
                TALLY[name, "4xx" if answer["type"] == "error" else "2xx"] += 1
                if message["type"] == "region":
                    assert answer["type"] in ("prediction", "error") and answer["frame"] == frames, answer
                    if answer["type"] == "error":
                        assert answer["error"].startswith("region: ") and "\n" not in answer["error"], answer
                else:  # vocab too: its bounds are the decoder's business, one answer is the stream's
                    assert answer["type"] in ("state", "error"), answer
                    if answer["type"] == "error":
                        assert isinstance(answer["error"], str) and answer["error"] and "frame" not in answer
                    else:
                        assert isinstance(answer["spelling"]["text"], str) and isinstance(answer["mirror"], bool)

        one()
        ws.send_text(json.dumps({"type": "config", "mirror": False}))  # usable after them all
        assert ws.receive_json()["type"] == "state"
        ws.send_bytes(SEEDS["frame.jpg"])
        assert ws.receive_json()["type"] == "prediction"
    faults = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]
    TALLY[name, "tracebacks"] += len(faults)
    assert not faults, "\n".join(r.getMessage() for r in faults[:3])


# --------------------------------------------------------------------------- on-device mode's hand messages


def _points(draw) -> list:
    """21 points that are a hand, or what is not: other counts, other lengths, any value."""
    good = [[0.3 + 0.01 * i, 0.5, 0.0] for i in range(21)]
    kind = draw(st.sampled_from(["good", "count", "length", "value", "huge", "any"]))
    event(f"hand landmarks: {kind}")
    if kind == "count":
        return good[:1] * draw(st.sampled_from([0, 1, 20, 22, 63]))
    if kind == "length":
        return [p[:draw(st.integers(0, 2))] + [0.0] * draw(st.integers(0, 3)) for p in good]
    if kind == "value":
        i, j = draw(st.integers(0, 20)), draw(st.integers(0, 2))
        good[i][j] = draw(numbers | st.sampled_from([None, "0.5", True, [0.5], {}, 4.0001, -4.0001]))
    if kind == "huge":  # within max_message_bytes (a larger message closes the socket with 1009, as documented)
        return good * draw(st.sampled_from([1000, 4000]))
    if kind == "any":
        return draw(json_values)
    return good


@st.composite
def hand_messages(draw) -> dict:
    """A hand message of any version, time and hand; some fields missing, some of any type."""
    hand = draw(st.one_of(st.none(), json_values, st.fixed_dictionaries(
        {"landmarks": st.just(None), "handedness": st.sampled_from(["Left", "Right"]) | json_values,
         "image_size": st.sampled_from([[640, 480], [1280, 720]]) | json_values},
        optional={"score": st.floats(0, 1) | json_values})))
    if isinstance(hand, dict) and "landmarks" in hand and hand["landmarks"] is None:
        hand["landmarks"] = _points(draw)
    doc = {"type": "hand", "v": draw(st.sampled_from([1, 1, 1, 0, 2, "1", None, 1.0])),
           "t_ms": draw(st.integers(0, 10 ** 6) | numbers | json_values), "hand": hand}
    for key in draw(st.lists(st.sampled_from(["v", "t_ms", "hand"]), max_size=1)):
        del doc[key]
    return doc


def test_the_stream_answers_every_hand_message_in_either_mode_and_stays_open(client, caplog):
    name = "WS /ws hands"
    frame = fuzz_frame()
    with caplog.at_level(logging.INFO), client.websocket_connect("/ws") as ws:
        mode = "server"

        @settings(max_examples=examples("hands"), **SETTINGS)
        @given(want=st.sampled_from(["server", "device", "device", "device"]), doc=hand_messages(),
               as_frame=st.booleans())
        def one(want, doc, as_frame):
            nonlocal mode
            if want != mode:
                ws.send_text(json.dumps({"type": "config", "mode": want}))
                assert ws.receive_json()["mode"] == want
                mode = want
            send = (lambda: ws.send_bytes(frame)) if as_frame and mode == "device" else \
                (lambda: ws.send_text(json.dumps(doc)))
            try:
                answer = call(name, REQUEST_DEADLINE_S, lambda: (send(), ws.receive_json())[1])
            except Exception:
                TALLY[name, "5xx"] += 1  # the socket closed: the server failed
                raise
            event(f"{mode}: answer {answer['type']}")
            TALLY[name, "4xx" if answer["type"] == "error" else "2xx"] += 1
            assert answer["type"] in ("prediction", "error") and isinstance(answer["frame"], int), answer
            if answer["type"] == "error":
                assert isinstance(answer["error"], str) and "\n" not in answer["error"], answer
            assert mode == "device" or answer["type"] == "error"  # a hand in server mode is refused

        one()
        ws.send_text(json.dumps({"type": "config", "mode": "device"}))  # usable after them all
        assert ws.receive_json()["type"] == "state"
        ws.send_text(json.dumps({"type": "hand", "v": 1, "t_ms": 10 ** 7, "hand": None}))
        assert ws.receive_json()["type"] == "prediction"
    faults = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR or "Traceback" in r.getMessage()]
    TALLY[name, "tracebacks"] += len(faults)
    assert not faults, "\n".join(r.getMessage() for r in faults[:3])
