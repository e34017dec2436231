"""What a route or the stream takes from the app, as FastAPI dependencies.

The lifespan (``app.py``) puts these on ``app.state``; routes ask with ``Depends(get_predictor)``
and so on, so a test may hand the app a fake predictor (``create_app(predictor=...)``) or swap
one getter (``app.dependency_overrides[get_predictor] = ...``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
from starlette.requests import HTTPConnection

from .settings import Settings

if TYPE_CHECKING:
    from ..predictor import Predictor


def get_predictor(conn: HTTPConnection) -> "Predictor":
    """The model the app loaded in its lifespan (or was given)."""
    return conn.app.state.predictor


def get_settings(conn: HTTPConnection) -> Settings:
    """The settings ``create_app`` resolved."""
    return conn.app.state.settings


def get_workers(conn: HTTPConnection) -> anyio.CapacityLimiter:
    """The worker threads recognition runs on, shared by every stream and ``/predict``."""
    return conn.app.state.workers
