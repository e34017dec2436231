"""The web app: the page, ``WS /ws`` for live video, ``POST /predict`` for single images.

``create_app`` builds a FastAPI app from arguments or ``FINGERSPELL_*`` environment variables; the
model is loaded once, in the lifespan. ``run`` is what ``fingerspell serve`` calls.

The stream protocol (``WS /ws``):

* The client sends each video frame as one binary message (JPEG or PNG bytes). The server
  answers every frame with one JSON message, ``{"type": "prediction", "frame": n, "letter",
  "confidence", "top", "hand", "timings_ms", "spelling": {"text", "pending", "progress",
  "committed"}, "mirror"}``, or ``{"type": "error", "error": "...", "frame": n}`` for a frame it
  cannot read (the socket stays open), or ``{"type": "skipped", "skipped": true, "frame": n}``
  for a frame that a newer one replaced while the server was busy. The page keeps one frame in
  flight, so it never sees a skip; a client that sends faster than the server answers gets only
  its latest frame recognised instead of a growing queue of stale ones.
* ``spelling`` is the decoder's state, and the page renders it (the server owns the text):
  ``text`` (written), ``word`` (the word being signed: ``letters`` and each one's
  ``alternatives``, or null), ``choice`` (the last chosen word: ``signed``, ``chosen``,
  ``options``, or null), ``pending`` and ``progress`` (the next letter's evidence, 0..1) and
  ``committed`` (what the frame changed).
* Hand crops: a client following a hand may send, instead of the whole frame, the part of it
  around the hand at the camera's full resolution. A text message ``{"type": "region", "x": 600,
  "y": 180, "w": 300, "h": 300, "frame_w": 1280, "frame_h": 720}`` just before a binary frame says
  that frame is the ``(x, y, w, h)`` rectangle (camera pixels) of a ``frame_w`` x ``frame_h``
  camera frame, at any scale that keeps its shape (the page sends at most 512x512). It applies to
  the next binary frame only and is not answered by itself: that frame's answer has the hand's
  landmarks normalised to the whole camera frame, as for a whole frame, and the stream keeps
  following the hand as the crop moves. A frame after a region that is not valid (numbers not
  finite, a rectangle not inside the frame, a side under 8 px or a frame side over 16384, an
  image not of the region's shape) is answered ``{"type": "error", "error": "region: ...",
  "frame": n}`` and the socket stays open. A frame with no region message before it is a whole
  frame.
* Text messages are JSON commands: ``{"type": "backspace"}``, ``{"type": "space"}`` (end the
  word now, or add one space), ``{"type": "clear"}``, ``{"type": "set_text", "text": "..."}``
  (the page restoring its text after a reload or reconnect), ``{"type": "pick", "option": "..."}``
  (switch the last chosen word to one of its ``options``: the letters as signed or another
  candidate), ``{"type": "vocab", "words": ["..."]}`` (the user's own words for this stream),
  ``{"type": "config", "mirror": true}``. Each is answered with ``{"type": "state",
  "spelling": {...}, "mirror": bool}``.
* Close codes: 1009 for a message over ``max_message_bytes``, 1013 when ``max_connections``
  streams are already open, 1008 for a page from another origin (see ``cors_origins``), 1007
  for a text message that is not UTF-8. A handshake whose ``Host`` is not an allowed host is
  refused with 421 before the upgrade.

This module never imports TensorFlow, Keras, matplotlib or the training code.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import errno
import functools
import importlib.util
import ipaddress
import json
import logging
import os
import platform
import re
import socket
import time
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..config import ConfigError, DecoderParams, ServeParams
from ..decoding import Loading, make_decoder, read_words
from ..errors import FrameError
from ..hands import Region
from ..predictor import Prediction, Predictor
from ..spelling import SpellingParams

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
ENV_PREFIX = "FINGERSPELL_"
IMAGE_TYPES = ("image/jpeg", "image/png")
# The decoders network bytes reach: what the page sends and /predict documents. Training reads
# more (BMP, WebP, GIF, TIFF); each is more decoder code for hostile bytes, and libtiff writes
# its complaints about a broken file straight to stderr.
SERVE_FORMATS = ("JPEG", "PNG")
COMMANDS = ("backspace", "space", "clear", "set_text", "pick", "vocab", "config")
MAX_VOCAB = 1000  # words one vocab command may carry (the decoder keeps at most MAX_USER_WORDS)
# Close codes (RFC 6455 and the IANA registry).
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
CLOSE_BUSY = 1013
# uvicorn drops larger messages itself (1009, no reason); ours, a little lower, says why.
WS_TRANSPORT_SLACK = 64 * 1024
MAX_HEADER_BYTES = 64 * 1024  # request line and headers; browsers send a few KiB
LARGE_BODY_BYTES = 1024 * 1024  # a /predict body past this is followed by a malloc trim
CLOSING_WAIT_S = 5.0  # how long a new stream may wait for closing ones to be put away (takes ~1 s)
# Swagger UI's script, style and icon for /docs, from the fastapi-offline package: no CDN, so
# /docs works without the internet. (swagger-ui-bundle ships Swagger UI 4, which cannot show
# FastAPI's OpenAPI 3.1 document.)
DOCS_ASSETS = Path(importlib.util.find_spec("fastapi_offline").origin).parent / "static"
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


# --------------------------------------------------------------------------- settings


def params_from_env(environ=None, base: ServeParams | None = None) -> ServeParams:
    """ServeParams with every ``FINGERSPELL_<FIELD>`` variable that is set applied over ``base``.

    ``FINGERSPELL_CORS_ORIGINS`` and ``FINGERSPELL_ALLOWED_HOSTS`` are comma-separated lists; an
    empty ``FINGERSPELL_SAVE_FRAMES_DIR`` means "do not save".

    Raises:
        ConfigError: a variable's value is not of its field's type.
    """
    environ = os.environ if environ is None else environ
    base = base or ServeParams()
    changes = {}
    for f in dataclasses.fields(ServeParams):
        name = ENV_PREFIX + f.name.upper()
        raw = environ.get(name)
        if raw is None:
            continue
        default = getattr(base, f.name)
        if isinstance(default, tuple):
            changes[f.name] = tuple(o.strip() for o in raw.split(",") if o.strip())
        elif f.name in ("save_frames_dir", "vocab"):
            changes[f.name] = raw.strip() or None
        elif isinstance(default, bool):
            value = raw.strip().lower()
            if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"{name}={raw!r} must be true or false")
            changes[f.name] = value in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a whole number") from None
            if value < (0 if f.name == "port" else 1):
                raise ConfigError(f"{name}={raw!r} must be positive")
            changes[f.name] = value
        elif isinstance(default, float):
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
            if not 0 < value < float("inf"):
                raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
            changes[f.name] = value
        else:
            changes[f.name] = raw
    return dataclasses.replace(base, **changes)


def is_loopback(host: str) -> bool:
    """True where ``host`` only accepts connections from this computer."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_and_port(value: str) -> tuple[str, int | None] | None:
    """``"Name:5000"`` -> ``("name", 5000)``, addresses in one spelling (IPv6 in brackets); None if malformed."""
    if not value or not _HOST_RE.match(value):
        return None
    if value.startswith("["):
        name, _, port = value.partition("]")
        name, port = name + "]", port[1:]
    else:
        name, _, port = value.partition(":")
    try:
        name = f"[{ipaddress.IPv6Address(name[1:-1]).compressed}]" if name.startswith("[") else \
            str(ipaddress.IPv4Address(name))
    except ValueError:
        pass  # a name, not an address
    return name.lower().rstrip("."), int(port) if port else None


def _machine_names(bind: str) -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        if not ipaddress.ip_address(bind.strip("[]")).is_unspecified:
            names.add(bind)
    except ValueError:
        names.add(bind)  # bound to a name
    try:
        names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return names


def resolve_allowed_hosts(params: ServeParams) -> frozenset[str]:
    """The host names (no port) requests may be addressed to: the loopback names, and
    ``params.allowed_hosts`` or, where none are named and the bind is not loopback, the bind
    address and this machine's names."""
    named = params.allowed_hosts
    if not named and not is_loopback(params.host):
        named = _machine_names(params.host)
    hosts = set(LOOPBACK_NAMES)
    for name in named:
        name = name.strip()
        if name.count(":") > 1 and not name.startswith("["):
            name = f"[{name}]"  # a bare IPv6 address
        parsed = _host_and_port(name)
        if parsed is None:
            raise ConfigError(f"allowed host {name!r} is not a host name or IP address")
        hosts.add(parsed[0])
    return frozenset(hosts)


class HostAllowList:
    """ASGI middleware: a request or stream whose ``Host`` is not an allowed host is answered 421.

    Without it a web page on any name that resolves to 127.0.0.1 (DNS rebinding) could reach a
    server on this machine from the user's own browser, with the origin check comparing the
    attacker's Origin with the attacker's Host. Ports are not checked: a tunnel may change them.
    """

    def __init__(self, app, allowed: frozenset[str]):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        parsed = _host_and_port(host)
        if parsed is not None and parsed[0] in self.allowed:
            return await self.app(scope, receive, send)
        shown = f"Host {json.dumps(host[:80])}" if host else "a request without a Host header"
        message = (f"this server does not answer {shown}: open it as localhost or 127.0.0.1, or start it "
                   "with --allowed-host NAME (FINGERSPELL_ALLOWED_HOSTS)")
        # For a WebSocket, Starlette sends this as the handshake's denial response.
        await _error(421, message)(scope, receive, send)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    """A request the server refuses: status code and a message that says what to fix."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def _security_headers(host: str | None, path: str = "") -> list[tuple[bytes, bytes]]:
    # The page needs its own scripts and styles, the camera (blob:/mediastream: video) and a
    # WebSocket back to this host. 'self' covers ws(s) of the same host in CSP 3, but not in
    # every browser yet, so the host is named as well where its header looks like a host name.
    connect = "'self'"
    if host and _HOST_RE.match(host):
        connect += f" ws://{host} wss://{host}"
    if path == "/docs":
        # FastAPI's Swagger UI page starts it with an inline script; only on /docs.
        scripts = styles = "'self' 'unsafe-inline'"
        images = "'self' data:"
    else:
        scripts = styles = "'self'"
        images = "'self' data: blob:"
    csp = (
        f"default-src 'self'; script-src {scripts}; style-src {styles}; img-src {images}; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        path = scope.get("path", "")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SECURITY_NAMES]
                message = {**message, "headers": headers + _security_headers(host, path)}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_SECURITY_NAMES = {k for k, _ in _security_headers(None)}


def _error(status: int, message: str, request: Request | None = None) -> JSONResponse:
    headers = None
    if status == 500:  # sent by the outermost middleware, past SecurityHeaders
        host = request.headers.get("host") if request is not None else None
        path = request.url.path if request is not None else ""
        headers = {k.decode(): v.decode() for k, v in _security_headers(host, path)}
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    resp = _error(exc.status, exc.message)
    resp.headers.update(exc.headers or {})
    return resp


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    messages = {404: "not found", 405: "method not allowed"}
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    message = messages.get(exc.status_code, detail)
    resp = _error(exc.status_code, message)
    if exc.headers:
        resp.headers.update(exc.headers)
    return resp


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(422, f"{where}: {first.get('msg', 'invalid request')}")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The last line of defence: log it, answer JSON, never send a traceback to the client.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal error; the server log has the details", request)


# --------------------------------------------------------------------------- documented shapes


class TopEntry(BaseModel):
    label: str
    score: float


class HandJson(BaseModel):
    landmarks: list[list[float]] = Field(description="21 points [x, y, z]; x and y normalised to the image (0..1)")
    handedness: str = Field(description='"Left" or "Right" as MediaPipe reports it')
    score: float
    attempt: str


class PredictAnswer(BaseModel):
    prediction: str = Field(description='the top label; "nothing" when no hand was found')
    confidence: float
    top: list[TopEntry]
    hand: HandJson | None
    timings_ms: dict[str, float]


class ErrorAnswer(BaseModel):
    error: str = Field(description="what was wrong with the request, in words")


class PredictJson(BaseModel):
    image: str = Field(description="a base64 data URL", examples=["data:image/jpeg;base64,/9j/4AAQ..."])


_ERRORS = {code: {"model": ErrorAnswer, "description": text} for code, text in {
    400: "malformed body: not JSON, no image field, not a base64 data URL",
    408: "the body did not arrive within body_timeout_s",
    413: "body over max_body_bytes",
    415: "content type other than application/json, image/jpeg or image/png",
    422: "the bytes are not a readable image, or it is over max_pixels",
    421: "the Host header is not one of the allowed hosts",
    500: "a server bug; the log has the details",
    503: "max_predicts requests were already being recognised for predict_wait_s; retry after Retry-After seconds",
}.items()}

_PREDICT_BODY = {
    "requestBody": {
        "required": True,
        "description": "The tutorial's JSON with a data URL, or the raw image bytes.",
        "content": {
            "application/json": {"schema": PredictJson.model_json_schema()},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


# --------------------------------------------------------------------------- helpers


def _image_from_json(body: bytes) -> bytes:
    example = '{"image": "data:image/jpeg;base64,..."}'
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise ApiError(400, f"the body is not valid JSON ({reason}); send {example}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"expected a JSON object like {example}")
    if "image" not in doc:
        raise ApiError(400, f'the JSON has no "image" field; send {example}')
    image = doc["image"]
    if not isinstance(image, str):
        kind = "null" if image is None else type(image).__name__
        raise ApiError(400, f'"image" must be a data URL string, not {kind}')
    header, comma, payload = image.partition(",")
    if not comma:
        raise ApiError(400, '"image" must be a data URL like "data:image/jpeg;base64,...": no comma found')
    if not (header.startswith("data:") and header.endswith(";base64")):
        raise ApiError(400, '"image" must be a base64 data URL: it should start "data:image/jpeg;base64,"')
    try:
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f'"image" is not valid base64 ({exc})') from None


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refused with 413 as soon as it is known to be over ``limit``, 408 after ``timeout`` s."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "the Content-Length header is not a number") from None
        if size > limit:
            raise ApiError(413, f"the body is {size:,} bytes, over the limit of {limit:,} bytes")
    body = bytearray()
    with anyio.move_on_after(timeout) as deadline:
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise ApiError(413, f"the body is over the limit of {limit:,} bytes")
        except ClientDisconnect:
            # Nobody is left to answer; one line for the operator, no traceback.
            log.info("POST /predict: the client went away after %s of %s bytes of the body", f"{len(body):,}",
                     f"{int(declared):,}" if declared else "a chunked body's")
            raise ApiError(400, "the client disconnected before the body ended") from None
    if deadline.cancelled_caught:
        raise ApiError(408, f"the body did not arrive within {timeout:g} s ({len(body):,} bytes came)")
    return bytes(body)


@functools.cache
def _libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):  # not glibc
        return None


def _trim_malloc() -> None:
    """Hand freed heap back to the system (glibc's ``malloc_trim``; a no-op elsewhere).

    glibc keeps what a thread's arena once held: after a burst of 100 concurrent 7.8 MB posts the
    server stayed 70-80 MB above where it started, 40-60 MB with this (bench/bench_burst.py). A
    trim costs a millisecond or two, so it follows only large bodies.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _save_frame(folder: str | None, name: str, data: bytes) -> None:
    if not folder:
        return
    suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
    try:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}{suffix}").write_bytes(data)
    except OSError as exc:
        log.warning("could not save a frame in %s: %s", folder, exc.strerror)


def _versions() -> dict:
    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"fingerspell": __version__, "mediapipe": version("mediapipe"),
            "ai_edge_litert": version("ai-edge-litert"), "fastapi": version("fastapi"),
            "python": platform.python_version()}


def _origin_allowed(headers, params: ServeParams, hosts: frozenset[str]) -> bool:
    """Browsers send Origin with every WebSocket; other clients usually send none.

    A page's origin must name an allowed host, on the port this request came to (another port
    is another program's page), unless ``cors_origins`` lists it.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in params.cors_origins or origin in params.cors_origins:
        return True
    page, here = _host_and_port(urlsplit(origin).netloc), _host_and_port(headers.get("host") or "")
    return page is not None and here is not None and page[0] in hosts and page[1] == here[1]


# --------------------------------------------------------------------------- the stream


class _Connection:
    """One WebSocket: its own hand tracker and spelling decoder, and at most one frame waiting.

    A reader task takes messages as they come: commands are answered at once, a frame replaces
    the one waiting (which is answered ``skipped``). A worker task recognises the waiting frame
    in a thread, so the event loop stays free. The decoder is only touched on the event loop.
    """

    def __init__(self, ws: WebSocket, predictor: Predictor, params: ServeParams, spelling: SpellingParams, cid: int,
                 limiter: anyio.CapacityLimiter, decoding: DecoderParams, lexicon: Loading | None, vocab=()):
        self.ws = ws
        self.predictor = predictor
        self.limiter = limiter
        self.params = params
        self.cid = cid
        self.decoder = make_decoder(decoding, lexicon, vocab, spelling)
        self.mirror = False
        self.stream = None
        self.frames = 0
        self.closed = False
        self._waiting: tuple[int, bytes, float, Region | str | None] | None = None
        self._region: Region | str | None = None  # for the next frame: where it lies, or what was wrong
        self._wake = anyio.Event()
        self._send_lock = anyio.Lock()
        self._t0 = time.monotonic()
        self.on_closing = lambda: None  # called once, when the client leaves or is sent away

    def _closing(self) -> None:
        self.closed = True
        self.on_closing()
        self.on_closing = lambda: None

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._work)  # opens the stream first; meanwhile the reader sees a client leave
                try:
                    await self._read()
                finally:
                    tg.cancel_scope.cancel()  # waits for a predict already running in its thread
        finally:
            if self.stream is not None:
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(self.stream.close)

    async def send(self, message: dict) -> None:
        try:
            text = json.dumps(message, allow_nan=False)
        except ValueError:  # NaN or infinity from a broken model: JSON cannot carry it
            log.warning("stream %d: an answer held a number JSON cannot carry: %r", self.cid, message)
            text = json.dumps({"type": "error", "error": "the model gave no usable answer for this frame",
                               "frame": message.get("frame")})
        async with self._send_lock:
            if self.closed:
                return
            try:
                await self.ws.send_text(text)
            except (WebSocketDisconnect, OSError, RuntimeError):
                self._closing()  # the client went away (or read nothing, see transport.py)

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if not self.closed:
                self._closing()
                try:
                    await self.ws.close(code, reason)
                except (WebSocketDisconnect, OSError, RuntimeError):
                    pass

    async def _read(self) -> None:
        limit = self.params.max_message_bytes
        while not self.closed:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self._closing()
                return
            data, text = message.get("bytes"), message.get("text")
            size = len(data) if data is not None else len(text or "")
            if text is not None and size * 4 > limit:
                size = len(text.encode("utf-8", "surrogatepass"))
            if size > limit:
                await self.close(CLOSE_TOO_BIG, f"message of {size:,} bytes is over the {limit:,}-byte limit")
                return
            if data is not None:
                self.frames += 1
                # Swap before awaiting the send: while it waits, the worker may take whatever is
                # waiting, and a frame it takes must not also be answered "skipped".
                stale, self._waiting = self._waiting, (self.frames, data, time.monotonic(), self._region)
                self._region = None
                self._wake.set()
                if stale is not None:
                    await self.send({"type": "skipped", "skipped": True, "frame": stale[0]})
            elif text is not None:
                region = _region(text)
                if region is not None:
                    self._region = region
                else:
                    await self.send(self._command(text))

    def _state(self, fresh: bool = False) -> dict:
        state = self.decoder.state()
        if fresh:  # a command's answer: the last frame's commits were already reported
            state["committed"] = []
        return state

    def _command(self, text: str) -> dict:
        known = ", ".join(COMMANDS)
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return {"type": "error", "error": f'text messages are JSON commands like {{"type": "clear"}} ({known})'}
        kind = doc.get("type") if isinstance(doc, dict) else None
        if kind == "backspace":
            self.decoder.backspace()
        elif kind == "space":
            self.decoder.space()
        elif kind == "pick":
            if not isinstance(doc.get("option"), str) or not self.decoder.pick(doc["option"]):
                return {"type": "error", "error": 'pick needs "option": one of spelling.choice.options'}
        elif kind == "vocab":
            words = doc.get("words")
            if not isinstance(words, list) or len(words) > MAX_VOCAB or not all(isinstance(w, str) for w in words):
                return {"type": "error", "error": f'vocab needs "words": a list of at most {MAX_VOCAB} strings'}
            self.decoder.add_words(words)
        elif kind == "clear":
            self.decoder.clear()
        elif kind == "set_text":
            if not isinstance(doc.get("text"), str):
                return {"type": "error", "error": 'set_text needs "text": a string'}
            self.decoder.set_text(doc["text"])
        elif kind == "config":
            if "mirror" in doc:
                if not isinstance(doc["mirror"], bool):
                    return {"type": "error", "error": 'config "mirror" must be true or false'}
                self.mirror = doc["mirror"]
        else:
            shown = json.dumps(kind)[:40] if isinstance(kind, str) else "missing"
            return {"type": "error", "error": f"unknown command type {shown}; known: {known}"}
        return {"type": "state", "spelling": self._state(fresh=True), "mirror": self.mirror}

    async def _work(self) -> None:
        self.stream = await run_in_threadpool(self._open_stream)
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            item, self._waiting = self._waiting, None
            if item is None:
                continue
            number, data, received, region = item
            mirror = self.mirror
            try:
                if isinstance(region, str):
                    raise FrameError(f"region: {region}")
                pred = await anyio.to_thread.run_sync(self._predict, number, data, mirror, region,
                                                      limiter=self.limiter)
            except FrameError as exc:
                await self.send({"type": "error", "error": str(exc), "frame": number})
                continue
            self.decoder.update(pred, (received - self._t0) * 1000, self.stream.position)
            answer = {"type": "prediction", "frame": number, **pred.to_json()}
            if mirror and answer["hand"] is not None:
                # Recognised flipped; the landmarks are given back in the frame the client sent.
                for point in answer["hand"]["landmarks"]:
                    point[0] = round(1.0 - point[0], 4)
            answer["timings_ms"]["server"] = round((time.monotonic() - received) * 1000, 2)
            answer["spelling"] = self._state()
            answer["mirror"] = mirror
            await self.send(answer)

    def _open_stream(self):
        stream = self.predictor.stream()
        # A detector's first frame costs ~10x a normal one (kernels set up): pay it now, on a
        # blank frame, rather than on the user's first. (The tracker warms itself.)
        stream.predict(np.zeros((480, 640, 3), dtype=np.uint8))
        return stream

    def _predict(self, number: int, data: bytes, mirror: bool, region: Region | None) -> Prediction:
        pred = self.stream.predict_bytes(data, self.params.max_pixels, SERVE_FORMATS, mirror=mirror, region=region)
        _save_frame(self.params.save_frames_dir, f"ws{self.cid}-{number:06d}", data)
        return pred


REGION_FIELDS = ("x", "y", "w", "h", "frame_w", "frame_h")


def _region(text: str) -> Region | str | None:
    """A region message's Region, or what is wrong with it; None for any other text message."""
    if '"region"' not in text:  # a command: parsed once, by _command
        return None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("type") != "region":
        return None
    missing = [k for k in REGION_FIELDS if k not in doc]
    if missing:
        return f"missing {', '.join(missing)}: a region message has {', '.join(REGION_FIELDS)} (camera pixels)"
    try:
        return Region(*(doc[k] for k in REGION_FIELDS))
    except ValueError as exc:
        return str(exc)


# --------------------------------------------------------------------------- the app


def create_app(model=None, params: ServeParams | None = None, spelling: SpellingParams | None = None,
               decoding: DecoderParams | None = None) -> FastAPI:
    """The web app.

    Args:
        model: a bundle folder, a loaded ``Predictor``, or None for ``$FINGERSPELL_MODEL`` or,
            where that is unset, the bundled default model. A folder is loaded in the lifespan.
        params: server limits; None reads ``FINGERSPELL_*`` variables over the defaults.
        spelling: the letters decoder's hold and release times; None for the defaults.
        decoding: the decoder's settings; None takes ``params.decoder`` and ``params.lexicon``
            over the defaults. The English lexicon loads in a thread from the lifespan (~5 s, once
            a process); until it is ready, words come out as signed.

    Raises:
        ConfigError: an unknown decoder kind, or ``params.vocab`` cannot be read.

    Returns:
        A FastAPI app. Errors in loading the model surface when it starts (the lifespan).
    """
    params = params or params_from_env()
    spelling = spelling or SpellingParams()
    hosts = resolve_allowed_hosts(params)
    decoding = decoding or DecoderParams(kind=params.decoder, lexicon=params.lexicon)
    vocab = tuple(read_words(params.vocab)) if params.vocab else ()
    if model is None:
        model = os.environ.get(ENV_PREFIX + "MODEL") or None

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if isinstance(model, Predictor):
            predictor, owned = model, False
        else:
            t = time.perf_counter()
            predictor, owned = await run_in_threadpool(Predictor.from_bundle, model), True
            log.info("loaded %s model (%d labels) from %s in %.1f s", predictor.kind, len(predictor.labels),
                     predictor.path, time.perf_counter() - t)
        app.state.predictor = predictor
        # ~5 s, in a thread: the page works at once, and its words come out as signed until it is ready.
        app.state.lexicon = Loading() if decoding.kind == "words" and decoding.lexicon else None
        # Recognition runs in worker threads, at most one per CPU core: more would only take turns
        # on the cores, and every extra thread grows memory (malloc arenas, MediaPipe buffers).
        app.state.limiter = anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
        app.state.open_streams = 0
        app.state.alive_streams = 0  # open, and closing but not yet put away
        app.state.stream_put_away = anyio.Event()
        app.state.stream_ids = 0
        app.state.predict_slots = anyio.Semaphore(params.max_predicts)
        try:
            yield
        finally:
            if owned:
                predictor.close()

    app = FastAPI(
        title="fingerspell",
        version=__version__,
        description="Real-time ASL fingerspelling recognition. Open / for the page; WS /ws streams video frames.",
        lifespan=lifespan,
        docs_url=None,  # /docs below, with Swagger UI served from here
        redoc_url=None,  # one set of docs, /docs, is enough
        debug=False,
    )
    app.state.params = params
    app.state.spelling = spelling
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    if params.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(params.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(HostAllowList, allowed=hosts)
    app.add_middleware(SecurityHeaders)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/health", summary="Model, versions and limits")
    async def health(request: Request) -> dict:
        predictor: Predictor = request.app.state.predictor
        return {
            "status": "ok",
            "model": {"kind": predictor.kind, "labels": predictor.labels,
                      "hand_model_sha256": predictor.hand_model_sha256},
            "versions": _versions(),
            "limits": {"max_body_bytes": params.max_body_bytes, "max_message_bytes": params.max_message_bytes,
                       "max_pixels": params.max_pixels, "max_connections": params.max_connections},
            "open_streams": request.app.state.open_streams,
            "spelling": dataclasses.asdict(spelling),
            "decoder": {**dataclasses.asdict(decoding), "vocab_words": len(vocab)},
        }

    @app.post("/predict", summary="Recognise the letter in one image", response_model=PredictAnswer,
              responses=_ERRORS, openapi_extra=_PREDICT_BODY)
    async def predict(request: Request):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json" and content_type not in IMAGE_TYPES:
            shown = content_type or "no content type"
            raise ApiError(415, f"{shown} is not supported: send application/json "
                                '{"image": "data:image/jpeg;base64,..."} or an image/jpeg or image/png body')
        # Each request in here holds its body several times over (bytes, JSON, image): a bound on
        # them is a bound on memory. One that waits holds only what uvicorn buffers (64 KiB).
        slots: anyio.Semaphore = request.app.state.predict_slots
        taken = False
        with anyio.move_on_after(params.predict_wait_s):
            await slots.acquire()
            taken = True
        if not taken:
            raise ApiError(503, f"busy: {params.max_predicts} images are being recognised; retry in a second",
                           headers={"Retry-After": "1"})
        try:
            body = await _read_body(request, params.max_body_bytes, params.body_timeout_s)
            data = _image_from_json(body) if content_type == "application/json" else body
            predictor: Predictor = request.app.state.predictor

            def run_predict() -> Prediction:
                pred = predictor.predict_bytes(data, params.max_pixels, SERVE_FORMATS)
                _save_frame(params.save_frames_dir, f"post-{time.time_ns()}", data)
                return pred

            try:
                pred = await anyio.to_thread.run_sync(run_predict, limiter=request.app.state.limiter)
            except FrameError as exc:
                raise ApiError(422, str(exc)) from None
            finally:
                large = len(body) > LARGE_BODY_BYTES
                del body, data
                if large:
                    _trim_malloc()
        finally:
            slots.release()
        answer = pred.to_json()
        answer["prediction"] = answer.pop("letter")
        return JSONResponse(answer)

    @app.websocket("/ws")
    async def ws_stream(ws: WebSocket):
        state = ws.app.state
        await ws.accept()
        if not _origin_allowed(ws.headers, params, hosts):
            await ws.close(CLOSE_POLICY, "this page's origin is not allowed (see cors_origins)")
            return
        # Streams that are closing hold no slot, but still their tracker until it is put away (a
        # second or so): at most as many again as max_connections, so memory stays bounded. A new
        # stream waits a little for one of those rather than being refused.
        with anyio.move_on_after(CLOSING_WAIT_S):
            while state.alive_streams >= 2 * params.max_connections:
                await state.stream_put_away.wait()
        if state.open_streams >= params.max_connections or state.alive_streams >= 2 * params.max_connections:
            log.warning("refused a stream: %d open (%d closing), the limit is %d", state.open_streams,
                        state.alive_streams - state.open_streams, params.max_connections)
            await ws.close(CLOSE_BUSY, f"server busy: {state.open_streams} streams open; try again later")
            return
        state.open_streams += 1
        state.alive_streams += 1
        state.stream_ids += 1
        conn = _Connection(ws, state.predictor, params, spelling, state.stream_ids, state.limiter, decoding,
                           state.lexicon, vocab)

        def release():  # a stream that is closing holds no slot while its tracker is put away
            state.open_streams -= 1

        conn.on_closing = release
        log.info("stream %d opened (%d open)", conn.cid, state.open_streams)
        try:
            await conn.serve()
        except Exception:  # noqa: BLE001 - one stream's failure must not take the server down
            log.exception("stream %d failed", conn.cid)
            await conn.close(CLOSE_ERROR, "internal error; the server log has the details")
        finally:
            conn._closing()
            state.alive_streams -= 1
            state.stream_put_away.set()
            state.stream_put_away = anyio.Event()
            log.info("stream %d closed after %d frames", conn.cid, conn.frames)

    @app.get("/docs", include_in_schema=False)
    async def docs():
        # FastAPI's recipe for self-hosted docs assets (get_swagger_ui_html with local URLs).
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
                                   swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/assets/swagger-ui.css",
                                   swagger_favicon_url="/docs/assets/favicon.png")

    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def check_listen(host: str, port: int) -> None:
    """Refuse, in one line, a port or host the server could not listen on, before anything starts.

    A probe socket is bound the way uvicorn binds (``SO_REUSEADDR``) and closed again.

    Raises:
        ConfigError: the port is out of range or in use, or the host is not an address here.
    """
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is not a port number: give --port a number from 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"--host {host!r} is not an address or a name this machine can resolve") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use (another server?); stop it or give "
                                  "--port another number") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"--host {host} is not an address of this machine") from None
            if exc.errno == errno.EACCES:
                raise ConfigError(f"port {port} needs administrator rights here; give --port 1024 or above") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run(host: str | None = None, port: int | None = None, model=None, tls_cert: str | None = None,
        tls_key: str | None = None, *, cache_dir=None, params: ServeParams | None = None,
        spelling: SpellingParams | None = None, log_level: str = "info", allowed_hosts=None) -> None:
    """Serve the app with uvicorn until interrupted (what ``fingerspell serve`` calls).

    The model is loaded before the server starts, so a missing or corrupt bundle is reported as
    its typed error, not as a failed startup.

    Args:
        host, port: where to listen; None takes them from ``params`` (127.0.0.1:5000 by default).
        model: a bundle folder, or None for ``$FINGERSPELL_MODEL`` or the bundled default.
        tls_cert, tls_key: PEM files; with them the page works from other devices (browsers
            allow the camera only on https or localhost).
        cache_dir: where the hand model is cached (None: ``$FINGERSPELL_CACHE_DIR`` or the user cache).
        params: server limits; None reads ``FINGERSPELL_*`` variables over the defaults.
        spelling: the spelling decoder's settings.
        log_level: uvicorn's log level.
        allowed_hosts: host names to answer besides the loopback names (``--allowed-host``);
            None takes them from ``params``.

    Raises:
        ConfigError: only one of the TLS files, a file that does not exist, or a port or host
            it cannot listen on (``check_listen``).
        BundleError, HandModelError: the model cannot be loaded.
    """
    import uvicorn

    from .transport import protocols

    params = params or params_from_env()
    params = dataclasses.replace(params, host=host or params.host, port=params.port if port is None else port)
    if allowed_hosts:
        params = dataclasses.replace(params, allowed_hosts=tuple(allowed_hosts))
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path and not Path(path).is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    check_listen(params.host, params.port)
    if not is_loopback(params.host):
        log.warning("listening on %s: frames will be accepted from the network (use --host 127.0.0.1 to keep "
                    "the server to this computer)", params.host)
        log.info("answering requests addressed to %s (name others with --allowed-host)",
                 ", ".join(sorted(resolve_allowed_hosts(params))))
    predictor = Predictor.from_bundle(model or os.environ.get(ENV_PREFIX + "MODEL") or None, cache_dir=cache_dir)
    app = create_app(predictor, params, spelling)
    scheme = "https" if tls_cert else "http"
    shown = "localhost" if params.host in ("127.0.0.1", "::1") else params.host
    log.info("open %s://%s:%d/ in a browser", scheme, shown, params.port)
    # h11, not httptools: httptools takes request headers of any size (a never-ending header
    # grows the server without bound); h11 refuses a request line and headers over 64 KiB with
    # 400. transport.py adds the deadlines uvicorn lacks (request head, a peer that reads nothing).
    http, ws = protocols(params, MAX_HEADER_BYTES, lambda: _security_headers(None))
    try:
        uvicorn.run(app, host=params.host, port=params.port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                    ws_max_size=params.max_message_bytes + WS_TRANSPORT_SLACK, log_level=log_level,
                    server_header=False, reload=False, timeout_graceful_shutdown=3, http=http, ws=ws,
                    h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    finally:
        predictor.close()
