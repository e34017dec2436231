"""The profile routes: a user's samples and personal model, behind the token ``POST /profiles`` gives.

The protocol is ``docs/protocol.md`` ("Profiles"); the storage ``fingerspell.teach.profiles``; the
training, and the streams' switch to a new model, ``teaching.py``. Every route but
``POST /profiles`` takes the token as ``Authorization: Bearer TOKEN``: the profile is the folder
the token's hash names, so one profile's token reaches no other. A body is read up to
``MAX_UPLOAD_BYTES`` and refused (413) as soon as it passes that, and checked whole before
anything is stored: a refused request changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from ..teach.profiles import (LIMITS, MAX_TAKE, MAX_UPLOAD_BYTES, BadSamples, Missing, NotReady, Profile, ProfileError,
                              ProfilesFull, StorageError, TooManySamples, UnknownProfile, records_from_upload,
                              takes_from_json)
from .bodies import ApiError, parse_json, read_body, take_within
from .http import ErrorAnswer

log = logging.getLogger(__name__)

router = APIRouter(tags=["profiles"])
bearer = HTTPBearer(auto_error=False, description="the token POST /profiles gave")
STATUS = {UnknownProfile: 401, ProfilesFull: 429, TooManySamples: 409, NotReady: 409, BadSamples: 422, Missing: 404,
          StorageError: 507}  # any other ProfileError: 422
NO_STORE = {"Cache-Control": "no-store"}  # a profile's answers (and its token) are kept by no cache
SAMPLES_EXAMPLE = '{"label": "G", "source": "teach", "hands": [{"landmarks": [[x, y, z], ...], ...}]}'


# --------------------------------------------------------------------------- documented shapes


class TakeInfo(BaseModel):
    batch: str | None = Field(description="the take's id: DELETE /profile/samples?batch=ID discards it")
    label: str
    n: int = Field(description="samples of the label in the take")
    source: str | None = Field(description='"teach", "learn" or "upload"')
    added: str | None = Field(description="when, ISO 8601")


class ModelState(BaseModel):
    state: Literal["none", "training", "ready", "failed"]
    progress: float = Field(description="0 to 1 while training")
    message: str = Field(description="what it is doing, or why it failed")
    card: dict | None = Field(description="what the model was taught: samples, labels, when, how long")


class ProfileAnswer(BaseModel):
    labels: dict[str, int] = Field(description="label -> samples of it")
    samples: int
    takes: list[TakeInfo]
    learn: bool = Field(description="whether the letters of kept words become samples (learn as you sign)")
    use: Literal["default", "personal"] = Field(description="the model the profile's streams use")
    model: ModelState
    limits: dict[str, int]


class NewProfile(BaseModel):
    token: str = Field(description="the profile's only key: keep it (the server stores only its hash)")
    profile: ProfileAnswer


class Uploaded(BaseModel):
    added: int
    profile: ProfileAnswer


class Added(Uploaded):
    batch: str = Field(description="the new take's id")


class HandIn(BaseModel):
    landmarks: list[list[float]] = Field(description="21 points [x, y, z], x and y as fractions of the image")
    handedness: Literal["Left", "Right"]
    image_size: list[int] = Field(description="[width, height] in pixels")


class TakeIn(BaseModel):
    label: str = Field(min_length=1, max_length=LIMITS["max_label_chars"])
    hands: list[HandIn] = Field(min_length=1, max_length=MAX_TAKE)


class SamplesIn(BaseModel):
    """A take (``label`` and ``hands``), or the letters of a word learnt as signed (``takes``)."""

    source: Literal["teach", "learn"] = "teach"
    label: str | None = Field(None, min_length=1, max_length=LIMITS["max_label_chars"])
    hands: list[HandIn] | None = Field(None, min_length=1, max_length=MAX_TAKE)
    takes: list[TakeIn] | None = Field(None, min_length=1)


class ProfileChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    learn: bool | None = None
    use: Literal["default", "personal"] | None = None


def _inline(schema: dict) -> dict:
    """``schema`` with its ``$defs`` written in place: a request body's schema in the OpenAPI document."""
    defs = schema.pop("$defs", {})

    def walk(x):
        if isinstance(x, dict):
            return walk(defs[x["$ref"].rsplit("/", 1)[-1]]) if "$ref" in x else {k: walk(v) for k, v in x.items()}
        return [walk(v) for v in x] if isinstance(x, list) else x

    return walk(schema)


_RECORDS_BODY = {"requestBody": {"required": True, "description": "a landmark records file, as GET gives it",
                                 "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}


def _body_of(model: type[BaseModel]) -> dict:
    return {"requestBody": {"required": True,
                            "content": {"application/json": {"schema": _inline(model.model_json_schema())}}}}


_WHY = {
    400: "the body is not JSON, or not an object",
    401: "no token, or no profile has it",
    404: "no such take, label or model in this profile",
    408: "the body did not arrive within body_timeout_s",
    409: "over the profile's samples, learning is off, no model yet, or a training is running",
    413: "a body over max_upload_bytes",
    422: "samples, labels or a records file not as the format says (the message names the field or line)",
    429: "the server holds max_profiles profiles",
    503: "max_uploads bodies are being received; retry after Retry-After seconds",
    507: "the server could not write its data folder",
}


def _errors(*codes: int) -> dict:
    return {code: {"model": ErrorAnswer, "description": _WHY[code]} for code in (401, *codes)}


# --------------------------------------------------------------------------- plumbing


async def _profile_error(request: Request, exc: ProfileError) -> JSONResponse:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 422)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    return JSONResponse({"error": str(exc)}, status_code=status, headers={**headers, **NO_STORE})


def install(app: FastAPI) -> None:
    """Add the profile routes to ``app``, and the answers to a refused profile request."""
    app.add_exception_handler(ProfileError, _profile_error)
    app.include_router(router)


async def the_profile(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Profile:
    """The profile of the request's ``Authorization: Bearer TOKEN``; 401 without one that opens a profile."""
    if credentials is None:
        raise UnknownProfile("this needs a profile's token: send Authorization: Bearer TOKEN (POST /profiles makes a "
                             "profile and gives its token)")
    return await run_in_threadpool(request.app.state.profiles.open, credentials.credentials)


@asynccontextmanager
async def _body(request: Request) -> AsyncIterator[bytes]:
    """The body, read within ``MAX_UPLOAD_BYTES``, holding one of the server's upload slots till the block ends."""
    params, uploads = request.app.state.settings.params, request.app.state.uploads
    if not await take_within(uploads, params.predict_wait_s):
        raise ApiError(503, f"busy: {params.max_uploads} uploads are being received; retry in a second",
                       headers={"Retry-After": "1"})
    try:
        yield await read_body(request, MAX_UPLOAD_BYTES, params.body_timeout_s)
    finally:
        uploads.release()


async def _answer(request: Request, profile: Profile, status: int = 200, **more) -> JSONResponse:
    """PROFILE: what the profile holds, its model's state and the limits (``more`` beside it as ``profile``)."""
    summary = await run_in_threadpool(profile.summary)
    doc = {key: summary[key] for key in ("labels", "samples", "takes", "learn", "use")}
    doc |= {"model": request.app.state.trainer.state(profile.id, summary), "limits": LIMITS}
    return JSONResponse({**more, "profile": doc} if more else doc, status_code=status, headers=NO_STORE)


def _file(data: bytes, media_type: str, name: str) -> Response:
    return Response(data, media_type=media_type,
                    headers={"Content-Disposition": f'attachment; filename="{name}"', **NO_STORE})


# --------------------------------------------------------------------------- routes


@router.post("/profiles", status_code=201, summary="Make a profile; the token it answers is its only key",
             response_model=NewProfile, responses=_errors(429, 507))
async def create_profile(request: Request):
    token, profile = await run_in_threadpool(request.app.state.profiles.create)
    log.info("profile %s made", profile.id[:8])
    return await _answer(request, profile, 201, token=token)


@router.get("/profile", summary="What the profile holds, and its personal model's state and progress",
            response_model=ProfileAnswer, responses=_errors())
async def read_profile(request: Request, profile: Profile = Depends(the_profile)):
    return await _answer(request, profile)


@router.patch("/profile", summary="Turn learning as you sign on or off; choose the default or the personal model",
              response_model=ProfileAnswer, responses=_errors(400, 409, 413, 422), openapi_extra=_body_of(ProfileChange))
async def change_profile(request: Request, profile: Profile = Depends(the_profile)):
    async with _body(request) as body:
        try:
            change = ProfileChange.model_validate(parse_json(body, '{"learn": true, "use": "personal"}'))
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ApiError(422, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    trainer = request.app.state.trainer
    if change.use == "personal":
        await trainer.personal(profile)  # loaded (or refused: none yet, or broken) before anything is saved
    await run_in_threadpool(profile.update, change.learn, change.use)
    if change.use is not None:
        await trainer.use(profile, change.use)
    return await _answer(request, profile)


@router.delete("/profile", status_code=204, summary="Delete the profile: its samples, its model, its token",
               responses=_errors(507))
async def delete_profile(request: Request, profile: Profile = Depends(the_profile)):
    await run_in_threadpool(profile.delete)
    await request.app.state.trainer.forget(profile.id)
    log.info("profile %s deleted", profile.id[:8])
    return Response(status_code=204, headers=NO_STORE)


@router.post("/profile/samples", status_code=201, summary="Add a take (a label's hands), or a kept word's letters",
             response_model=Added, responses=_errors(400, 408, 409, 413, 422, 503, 507),
             openapi_extra=_body_of(SamplesIn))
async def add_samples(request: Request, profile: Profile = Depends(the_profile)):
    async with _body(request) as body:
        source, takes = await run_in_threadpool(lambda: takes_from_json(parse_json(body, SAMPLES_EXAMPLE)))
        batch, added = await run_in_threadpool(profile.add, takes, source)
    return await _answer(request, profile, 201, batch=batch, added=added)


@router.get("/profile/samples", summary="The samples as a landmark records file (--data for train, evaluate, teach)",
            responses={200: {"content": {"application/x-ndjson": {}}}, **_errors()})
async def download_samples(profile: Profile = Depends(the_profile)):
    return _file(await run_in_threadpool(profile.samples_file), "application/x-ndjson", "fingerspell-samples.jsonl")


@router.put("/profile/samples", summary="Replace the samples with a landmark records file, checked whole first",
            response_model=ProfileAnswer, responses=_errors(408, 409, 413, 422, 503, 507), openapi_extra=_RECORDS_BODY)
async def replace_samples(request: Request, profile: Profile = Depends(the_profile)):
    async with _body(request) as body:
        samples = await run_in_threadpool(records_from_upload, body)
        await run_in_threadpool(profile.replace, samples)
    return await _answer(request, profile)


@router.post("/profile/samples/upload", status_code=201, summary="Add the samples of a landmark records file",
             response_model=Uploaded, responses=_errors(408, 409, 413, 422, 503, 507), openapi_extra=_RECORDS_BODY)
async def upload_samples(request: Request, profile: Profile = Depends(the_profile)):
    async with _body(request) as body:
        samples = await run_in_threadpool(records_from_upload, body)
        added = await run_in_threadpool(profile.append, samples)
    return await _answer(request, profile, 201, added=added)


@router.delete("/profile/samples", summary="Discard one take (?batch=ID) or every sample of a label (?label=NAME)",
               response_model=ProfileAnswer, responses=_errors(404, 422, 507))
async def discard_samples(request: Request, batch: str | None = None, label: str | None = None,
                          profile: Profile = Depends(the_profile)):
    await run_in_threadpool(profile.remove, batch, label)
    return await _answer(request, profile)


@router.post("/profile/train", status_code=202, summary="Train the personal model in the background",
             response_model=ProfileAnswer, responses=_errors(409, 422))
async def train(request: Request, profile: Profile = Depends(the_profile)):
    summary = await run_in_threadpool(profile.summary)
    if not summary["samples"]:
        raise BadSamples("this profile has no samples yet: teach it some signs first (POST /profile/samples)")
    request.app.state.trainer.start(profile)
    return await _answer(request, profile, 202)


@router.get("/profile/model", summary="The personal model, a bundle folder zipped (fingerspell --model takes it)",
            responses={200: {"content": {"application/zip": {}}}, **_errors(404)})
async def download_model(profile: Profile = Depends(the_profile)):
    return _file(await run_in_threadpool(profile.model_zip), "application/zip", "fingerspell-personal-model.zip")
