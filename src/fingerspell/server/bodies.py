"""What a route reads, and how it refuses: ``ApiError``, and request bodies read within a size
limit and a deadline (never trusting ``Content-Length`` alone), parsed as JSON where asked.

``http.py`` (``/predict``) and ``profiles.py`` (the profile routes) read their bodies here.
"""

from __future__ import annotations

import json
import logging

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A request the server refuses: status code and a message that says what to fix."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
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
            log.info("%s %s: the client went away after %s of %s bytes of the body", request.method, request.url.path,
                     f"{len(body):,}", f"{int(declared):,}" if declared else "a chunked body's")
            raise ApiError(400, "the client disconnected before the body ended") from None
    if deadline.cancelled_caught:
        raise ApiError(408, f"the body did not arrive within {timeout:g} s ({len(body):,} bytes came)")
    return bytes(body)


async def take_within(semaphore: anyio.Semaphore, wait: float) -> bool:
    """Acquire ``semaphore`` within ``wait`` s; False where it stayed taken that long."""
    with anyio.move_on_after(wait):
        await semaphore.acquire()
        return True
    return False


def parse_json(body: bytes, example: str) -> dict:
    """The body's JSON object; a 400 that shows ``example`` where it is not JSON or not an object."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else type(exc).__name__
        raise ApiError(400, f"the body is not valid JSON ({reason}); send {example}") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"expected a JSON object like {example}")
    return doc
