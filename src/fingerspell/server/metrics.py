"""The app's streams counted: slots within ``max_connections``, and what each stream received.

``Streams`` admits a new stream where a slot is free (``admit``) and puts it away when it ends
(``ended``). ``GET /metrics`` reports, for this server process, each open stream's mode and the
image bytes and hand messages it received, and the totals since the process started: in
on-device mode a stream's ``image_bytes`` stays 0, since no frame leaves the page.
"""

from __future__ import annotations

import logging
import os
import time

import anyio
from fastapi import APIRouter, Request

log = logging.getLogger(__name__)

CLOSING_WAIT_S = 5.0  # how long a new stream may wait for closing ones to be put away (takes ~1 s)

router = APIRouter()


class Streams:
    """The app's count of streams: ``open`` ones hold one of ``limit`` slots; ``alive`` ones also
    count those closing whose tracker is not yet put away (a second or so). ``conns``: the open
    and closing streams themselves; ``totals``: what the ended ones received."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self.alive = 0
        self.opened = 0  # ever: each stream's number in the log
        self.put_away = anyio.Event()  # set, and replaced, whenever a stream is put away
        self.conns: set = set()
        self.totals = {"image_bytes": 0, "hands": 0, "frames": 0}

    async def admit(self) -> int | None:
        """A slot for a new stream, and its number; None where every slot is taken (log says so).

        Streams that are closing hold no slot, but still their tracker until it is put away (a
        second or so): at most as many again as ``limit``, so memory stays bounded. A new stream
        waits a little for one of those rather than being refused.
        """
        with anyio.move_on_after(CLOSING_WAIT_S):
            while self.alive >= 2 * self.limit:
                await self.put_away.wait()
        if self.open >= self.limit or self.alive >= 2 * self.limit:
            log.warning("refused a stream: %d open (%d closing), the limit is %d", self.open,
                        self.alive - self.open, self.limit)
            return None
        self.open += 1
        self.alive += 1
        self.opened += 1
        return self.opened

    def release(self) -> None:
        """A stream is closing: it holds no slot while its tracker is put away."""
        self.open -= 1

    def ended(self, conn) -> None:
        """``conn`` is put away: its counts join the totals."""
        self.conns.discard(conn)
        for key in self.totals:
            self.totals[key] += getattr(conn, key)
        self.alive -= 1
        self.put_away.set()
        self.put_away = anyio.Event()

    def to_json(self) -> dict:
        now = time.monotonic()
        streams = [{"id": c.cid, "mode": c.mode, "image_bytes": c.image_bytes, "hands": c.hands, "frames": c.frames,
                    "seconds": round(now - c.opened_at, 1), "closing": c.closed}
                   for c in sorted(self.conns, key=lambda c: c.cid)]
        totals = {k: v + sum(s[k] for s in streams) for k, v in self.totals.items()}
        return {"pid": os.getpid(), "open_streams": self.open, "streams_opened": self.opened, "streams": streams,
                "totals": totals}


@router.get("/metrics", summary="What this server process's streams received")
async def metrics(request: Request) -> dict:
    """Each open stream's mode, image bytes, hand messages and frames (hand messages included),
    and the totals since this process started. Several processes (``--workers``) each answer for
    their own streams."""
    return request.app.state.streams.to_json()
