"""``create_app``: the web app, wired from its rooms.

``settings.py`` (what the server was told), ``security.py`` (hosts, origins, headers),
``http.py`` (the page, ``/health``, ``POST /predict``, ``/docs``), ``profiles.py`` (a user's
samples and personal model; ``teaching.py`` trains it), ``stream.py`` (``WS /ws``; ``device.py``
its hand message), ``metrics.py`` (the streams counted, ``/metrics``) and ``vendor.py`` (the
page's own hand landmarker, served from here).
The model loads here, once, in the lifespan, and reaches the routes and the stream through
``Depends(get_predictor)``.

This package never imports TensorFlow, Keras, matplotlib or the training code.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..config import DecoderParams, ServeParams
from ..decoding import Loading
from ..predictor import Predictor
from ..decoding import SpellingParams
from ..teach.profiles import Profiles
from . import http, metrics, profiles, stream, vendor
from .security import HostAllowList, SecurityHeaders
from .settings import model_from_env, resolve
from .teaching import Trainer

log = logging.getLogger(__name__)


def create_app(model=None, params: ServeParams | None = None, spelling: SpellingParams | None = None,
               decoding: DecoderParams | None = None, *, predictor: Predictor | None = None,
               cache_dir=None) -> FastAPI:
    """The web app.

    Args:
        model: a bundle folder, or None for ``$FINGERSPELL_MODEL`` or, where that is unset, the
            bundled default model. It is loaded in the lifespan.
        params: server limits; None reads ``FINGERSPELL_*`` variables over the defaults.
        spelling: the letters decoder's hold and release times; None for the defaults.
        decoding: the decoder's settings; None takes ``params.decoder`` and ``params.lexicon``
            over the defaults. The English lexicon loads in the lifespan (~3 s, once a process,
            beside the model): the app answers only once it is ready.
        predictor: a loaded predictor (or anything with its public surface, such as a test's
            fake) to serve instead of loading ``model``; the caller closes it.
        cache_dir: where the hand model is cached (None: ``$FINGERSPELL_CACHE_DIR`` or the user cache).

    Raises:
        ConfigError: an unknown decoder kind, an allowed host that is no host name, or
            ``params.vocab`` cannot be read.
        TypeError: ``model`` is not a folder name (a loaded predictor goes in ``predictor``).

    Returns:
        A FastAPI app. Errors in loading the model surface when it starts (the lifespan).
    """
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model is a bundle folder, not a {type(model).__name__}: pass a loaded predictor as "
                        "predictor=")
    settings = resolve(params, spelling, decoding)
    model = model or model_from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # The lexicon (~3 s) loads in a thread while the model loads, and the server listens
        # only once both are ready: the first word signed on a fresh server is decoded with it.
        loading = Loading() if settings.wants_lexicon else None
        served = predictor
        if served is None:
            t = time.perf_counter()
            served = await run_in_threadpool(functools.partial(Predictor.from_bundle, model, cache_dir=cache_dir))
            log.info("loaded %s model (%d labels) from %s in %.1f s", served.kind, len(served.labels),
                     served.path, time.perf_counter() - t)
        app.state.predictor = served
        app.state.lexicon = await run_in_threadpool(loading.wait) if loading is not None else None
        # Recognition runs in worker threads, at most one per CPU core: more would only take turns
        # on the cores, and every extra thread grows memory (malloc arenas, MediaPipe buffers).
        app.state.workers = anyio.CapacityLimiter(max(2, os.cpu_count() or 2))
        # Hand messages (on-device mode) have threads of their own, so a frame stream's slow
        # recognitions never hold them up; a few: with anyio's default forty, a hundred streams
        # kept forty threads fighting for the GIL (90 streams on one core: p95 180 ms, against 45).
        app.state.hand_workers = anyio.CapacityLimiter(2 * max(2, os.cpu_count() or 2))
        app.state.streams = metrics.Streams(settings.params.max_connections)
        app.state.on_device = vendor.OnDevice.resolve(served, cache_dir)
        app.state.predict_slots = anyio.Semaphore(settings.params.max_predicts)
        app.state.uploads = anyio.Semaphore(settings.params.max_uploads)
        app.state.profiles = Profiles(settings.data_dir)  # writes nothing until a profile is made
        try:
            async with anyio.create_task_group() as trainings:
                app.state.trainer = Trainer(app.state.profiles, served, trainings)
                try:
                    yield
                finally:
                    app.state.trainer.close()  # a training still running stops at its next check
                    trainings.cancel_scope.cancel()
        finally:
            if predictor is None:  # loaded here, so closed here
                served.close()

    app = FastAPI(
        title="fingerspell",
        version=__version__,
        description="Real-time ASL fingerspelling recognition. Open / for the page; WS /ws streams video frames.",
        lifespan=lifespan,
        docs_url=None,  # /docs in http.py, with Swagger UI served from here
        redoc_url=None,  # one set of docs, /docs, is enough
        debug=False,
    )
    app.state.settings = settings
    if settings.params.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.params.cors_origins),
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Content-Type", "Authorization"])
    app.add_middleware(HostAllowList, allowed=settings.hosts)
    app.add_middleware(SecurityHeaders)
    app.include_router(stream.router)
    app.include_router(metrics.router)
    app.include_router(vendor.router)
    http.install(app)
    profiles.install(app)
    return app
