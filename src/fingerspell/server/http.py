"""The HTTP routes: the page (``/``), ``/health``, ``POST /predict`` and ``/docs``.

Also what they answer with: the handlers that turn every error (``ApiError`` and the rest) into
``{"error": "..."}`` JSON (never a traceback), the documented shapes for the OpenAPI document,
and ``/predict``'s body parsing (its reading within limits is ``bodies.py``'s).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import importlib.util
import logging
import platform
import time
from importlib import metadata
from pathlib import Path

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import FrameError
from ..images import MAX_JPEG_SCANS
from ..predictor import Prediction, Predictor
from ..teach.profiles import LIMITS as PROFILE_LIMITS
from .bodies import ApiError, parse_json, read_body, take_within
from .deps import get_predictor, get_settings, get_workers
from .security import security_headers
from .settings import SERVE_FORMATS, Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
IMAGE_TYPES = ("image/jpeg", "image/png")
LARGE_BODY_BYTES = 1024 * 1024  # a /predict body past this is followed by a malloc trim
# Swagger UI's script, style and icon for /docs, from the fastapi-offline package: no CDN, so
# /docs works without the internet. (swagger-ui-bundle ships Swagger UI 4, which cannot show
# FastAPI's OpenAPI 3.1 document.)
DOCS_ASSETS = Path(importlib.util.find_spec("fastapi_offline").origin).parent / "static"

router = APIRouter()


# --------------------------------------------------------------------------- errors


def _error(status: int, message: str, request: Request | None = None) -> JSONResponse:
    headers = None
    if status == 500:  # sent by the outermost middleware, past SecurityHeaders
        host = request.headers.get("host") if request is not None else None
        path = request.url.path if request is not None else ""
        headers = {k.decode(): v.decode() for k, v in security_headers(host, path)}
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


def install(app: FastAPI) -> None:
    """Add the routes, the static folders and the error handlers to ``app``."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
    app.include_router(router)
    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")


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
    422: f"the bytes are not a readable image, it is over max_pixels, or a JPEG of over {MAX_JPEG_SCANS} scans",
    421: "the Host header is not one of the allowed hosts",
    500: "a server bug; the log has the details",
    503: "max_uploads bodies were already being received, or max_predicts images being recognised, for "
         "predict_wait_s; retry after Retry-After seconds",
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


# --------------------------------------------------------------------------- the body


def _image_from_json(body: bytes) -> bytes:
    example = '{"image": "data:image/jpeg;base64,..."}'
    doc = parse_json(body, example)
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


def _versions() -> dict:
    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {"fingerspell": __version__, "mediapipe": version("mediapipe"),
            "ai_edge_litert": version("ai-edge-litert"), "fastapi": version("fastapi"),
            "python": platform.python_version()}


# --------------------------------------------------------------------------- routes


@router.get("/", include_in_schema=False)
async def index():
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/health", summary="Model, versions and limits")
async def health(request: Request, predictor: Predictor = Depends(get_predictor),
                 settings: Settings = Depends(get_settings)) -> dict:
    info, params = predictor.info(), settings.params
    return {
        "status": "ok",
        "model": {key: info[key] for key in ("kind", "labels", "hand_model_sha256")},
        "versions": _versions(),
        "limits": {"max_body_bytes": params.max_body_bytes, "max_message_bytes": params.max_message_bytes,
                   "max_pixels": params.max_pixels, "max_jpeg_scans": MAX_JPEG_SCANS,
                   "max_connections": params.max_connections, "max_predicts": params.max_predicts,
                   "max_uploads": params.max_uploads, "stream_idle_s": params.stream_idle_s, **PROFILE_LIMITS},
        "open_streams": request.app.state.streams.open,
        "on_device": request.app.state.on_device.to_json(),
        "spelling": dataclasses.asdict(settings.spelling),
        "decoder": {**dataclasses.asdict(settings.decoding), "vocab_words": len(settings.vocab),
                    "lexicon_words": len(lexicon.counts) if (lexicon := request.app.state.lexicon) else 0},
    }


@router.post("/predict", summary="Recognise the letter in one image", response_model=PredictAnswer,
             responses=_ERRORS, openapi_extra=_PREDICT_BODY)
async def predict(request: Request, predictor: Predictor = Depends(get_predictor),
                  settings: Settings = Depends(get_settings), workers: anyio.CapacityLimiter = Depends(get_workers)):
    params = settings.params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json" and content_type not in IMAGE_TYPES:
        shown = content_type or "no content type"
        raise ApiError(415, f"{shown} is not supported: send application/json "
                            '{"image": "data:image/jpeg;base64,..."} or an image/jpeg or image/png body')
    # The body is read before a recognition slot is taken: a client that uploads slowly holds one
    # of max_uploads (which bound the memory of bodies held), never one of max_predicts, so it
    # cannot keep others' images from being recognised. Each request being recognised holds its
    # body several times over (bytes, JSON, image): max_predicts bounds those.
    uploads: anyio.Semaphore = request.app.state.uploads
    if not await take_within(uploads, params.predict_wait_s):
        raise ApiError(503, f"busy: {params.max_uploads} uploads are being received or recognised; retry in a second",
                       headers={"Retry-After": "1"})
    try:
        body = await read_body(request, params.max_body_bytes, params.body_timeout_s)
        large = len(body) > LARGE_BODY_BYTES
        data = _image_from_json(body) if content_type == "application/json" else body
        del body  # the image's bytes are all that is kept while waiting for a slot

        def run_predict() -> Prediction:
            pred = predictor.predict_bytes(data, params.max_pixels, SERVE_FORMATS)
            settings.save_frame(f"post-{time.time_ns()}", data)
            return pred

        slots: anyio.Semaphore = request.app.state.predict_slots
        try:
            if not await take_within(slots, params.predict_wait_s):
                raise ApiError(503, f"busy: {params.max_predicts} images are being recognised; retry in a second",
                               headers={"Retry-After": "1"})
            try:
                pred = await anyio.to_thread.run_sync(run_predict, limiter=workers)
            except FrameError as exc:
                raise ApiError(422, str(exc)) from None
            finally:
                slots.release()
        finally:
            del data
            if large:
                _trim_malloc()
    finally:
        uploads.release()
    answer = pred.to_json()
    answer["prediction"] = answer.pop("letter")
    return JSONResponse(answer)


@router.get("/docs", include_in_schema=False)
async def docs(request: Request):
    # FastAPI's recipe for self-hosted docs assets (get_swagger_ui_html with local URLs).
    app = request.app
    return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - Swagger UI",
                               swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                               swagger_css_url="/docs/assets/swagger-ui.css",
                               swagger_favicon_url="/docs/assets/favicon.png")
