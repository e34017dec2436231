"""``WS /ws``: live video in (frames, or in on-device mode the hands the page found), one JSON
answer per frame out, and the text-editing commands.

The protocol (messages, hand crops, hand messages, commands, errors, close codes) is
``docs/protocol.md``. Here: one ``_Connection`` per socket (a reader task, a worker task that
recognises the newest frame or hand in a thread, the decoder in its own thread), and the route
that admits streams within ``max_connections``. The commands themselves are ``commands.py``
(``profile``, which picks a profile's model, ``teaching.py``), the hand message ``device.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..decoding import Lexicon, make_decoder
from ..errors import FrameError
from ..hands import Region
from .commands import COMMANDS, NOTICES
from ..predictor import Predictor
from .deps import get_predictor, get_settings, get_workers
from . import recognise
from .device import FRAME_IN_DEVICE_MODE, HAND_IN_SERVER_MODE, HandMessage, parse_hand_message
from .metrics import Streams
from .security import origin_allowed
from .settings import Settings
from .teaching import profile_command

log = logging.getLogger(__name__)

# Close codes (RFC 6455 and the IANA registry).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
CLOSE_BUSY = 1013
STOP_WAIT_S = 1.0  # how long a closing stream's worker may take to finish its frame before it is cancelled

router = APIRouter()


# --------------------------------------------------------------------------- one stream


class _Connection:
    """One WebSocket: its own hand tracker and spelling decoder, and at most one frame waiting.

    A reader task takes messages as they come: commands are answered at once, a frame replaces
    the one waiting (which is answered ``skipped``). A worker task recognises the waiting frame
    in a thread, so the event loop stays free. The decoder runs in a thread too (choosing a word
    weighs candidates in pure Python), one call at a time under ``_decoder_lock``, so a command
    and a frame never touch it at once.
    """

    def __init__(self, ws: WebSocket, predictor: Predictor, settings: Settings, cid: int,
                 workers: anyio.CapacityLimiter, lexicon: Lexicon | None):
        self.ws = ws
        self.predictor = predictor
        self.workers = workers
        self.hand_workers = ws.app.state.hand_workers  # hand messages' threads (app.py)
        self.settings = settings
        self.cid = cid
        self.decoder = make_decoder(settings.decoding, lexicon, settings.vocab, settings.spelling)
        self.mirror = False
        self.mode = "server"  # where hands are found: "server" (frames come) or "device" (hand messages come)
        self.image_bytes = self.hands = 0  # what came: image bytes (frames), hand messages
        self.stream = None
        self.warmed = False  # whether the stream's hand finder has seen a frame (recognise.frame)
        # What the stream reads with: the served bundle's own personal head (None: it has none) until
        # a profile's is chosen (teaching.profile_command); set on the stream before each frame.
        self.personal = getattr(predictor, "personal", None)
        self.profile: str | None = None  # that profile's id: its streams switch when its model changes
        self.frames = 0
        self.closed = False
        self._failed = False  # a frame failed other than with a FrameError (logged once a stream)
        self._waiting: tuple[int, bytes | HandMessage, float, Region | str | None] | None = None
        self.region: Region | str | None = None  # for the next frame: where it lies, or what was wrong
        self._wake = anyio.Event()
        self._send_lock = anyio.Lock()
        self._decoder_lock = anyio.Lock()
        self._worker_done = anyio.Event()
        self._t0 = self.opened_at = time.monotonic()
        self.on_closing = lambda: None  # called once, when the client leaves or is sent away

    def closing(self) -> None:
        """The client left or is being sent away: no more sends, and ``on_closing`` runs (once)."""
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
                    await self._stop_work(tg)
        finally:
            if self.stream is not None:
                with anyio.CancelScope(shield=True):
                    await run_in_threadpool(self.stream.close)
            # Whatever still refers to this connection (an exception's frames, until the cyclic
            # collector runs) no longer holds the stream's state: its words and its tracker.
            self.decoder = self.stream = self._waiting = None

    async def _stop_work(self, tg) -> None:
        """Let the worker see the stream closed and return by itself; cancel it only where it is
        stuck (a send the client does not read). A cancelled task's CancelledError holds the
        worker's frame, and so this connection, in a reference cycle with anyio's task_done
        (its ``exc``): the decoder and its user words stayed until the cyclic collector ran."""
        self.closed = True
        self._wake.set()
        try:
            with anyio.move_on_after(STOP_WAIT_S):
                await self._worker_done.wait()
        finally:
            tg.cancel_scope.cancel()  # waits for a predict already running in its thread

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
                self.closing()  # the client went away (or read nothing, see transport.py)

    async def close(self, code: int, reason: str) -> None:
        async with self._send_lock:
            if not self.closed:
                self.closing()
                try:
                    await self.ws.close(code, reason)
                except (WebSocketDisconnect, OSError, RuntimeError):
                    pass

    async def _read(self) -> None:
        limit, idle = self.settings.params.max_message_bytes, self.settings.params.stream_idle_s
        while not self.closed:
            with anyio.move_on_after(idle) as quiet:
                message = await self.ws.receive()
            if quiet.cancelled_caught:  # pings, which uvicorn answers, do not reach here: they keep no slot
                log.info("stream %d: closed after %g s without a frame or a command (1001)", self.cid, idle)
                await self.close(CLOSE_GOING_AWAY, f"idle: no frame or command for {idle:g} s")
                return
            if message["type"] == "websocket.disconnect":
                self.closing()
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
                self.image_bytes += size
                if self.mode == "device":
                    self.region = None
                    await self.send({"type": "error", "error": FRAME_IN_DEVICE_MODE, "frame": self.frames})
                    continue
                await self._queue(data)
            elif text is not None:
                answer = await self._command(text)
                if answer is not None:
                    await self.send(answer)

    async def _queue(self, data: bytes | HandMessage) -> None:
        """The next frame (or hand) to recognise; one already waiting is answered ``skipped``."""
        # Swap before awaiting the send: while it waits, the worker may take whatever is
        # waiting, and a frame it takes must not also be answered "skipped".
        stale, self._waiting = self._waiting, (self.frames, data, time.monotonic(), self.region)
        self.region = None
        self._wake.set()
        if stale is not None:
            await self.send({"type": "skipped", "skipped": True, "frame": stale[0]})

    def _state(self, fresh: bool = False) -> dict:
        state = self.decoder.state()
        if fresh:  # a command's answer: the last frame's commits were already reported
            state["committed"] = []
        return state

    async def _command(self, text: str) -> dict | None:
        """A text message's answer; None for a notice (``NOTICES``), which is not answered."""
        known = ", ".join([*COMMANDS, "profile"])
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return {"type": "error", "error": f'text messages are JSON commands like {{"type": "clear"}} ({known})'}
        name = doc.get("type") if isinstance(doc, dict) else None
        if name == "hand":  # a frame's hand, found in the page: answered as the frame would be
            return await self._hand(doc)
        if name == "profile":  # reads the data folder, not the decoder: not one of COMMANDS
            return await profile_command(self, doc)
        if isinstance(name, str) and name in NOTICES:
            NOTICES[name](self, doc)
            return None
        handler = COMMANDS.get(name) if isinstance(name, str) else None
        if handler is None:
            shown = json.dumps(name)[:40] if isinstance(name, str) else "missing"
            return {"type": "error", "error": f"unknown command type {shown}; known: {known}"}
        return await self._decoding(self._apply, handler, doc)

    async def _hand(self, doc: dict) -> dict | None:
        self.frames += 1
        self.hands += 1
        if self.mode != "device":
            return {"type": "error", "error": HAND_IN_SERVER_MODE, "frame": self.frames}
        try:
            message = parse_hand_message(doc)
        except ValueError as exc:
            return {"type": "error", "error": f"hand: {exc}", "frame": self.frames}
        await self._queue(message)
        return None

    def _apply(self, handler: Callable[["_Connection", dict], str | None], doc: dict) -> dict:
        """A command's answer, in the decoder's thread (``_decoding``)."""
        error = handler(self, doc)
        if error is not None:
            return {"type": "error", "error": error}
        return {"type": "state", "spelling": self._state(fresh=True), "mirror": self.mirror, "mode": self.mode}

    async def _decoding(self, fn: Callable, *args):
        """``fn(*args)`` in a worker thread, holding the decoder: a word's end (a space command, a
        pause in the frames) weighs its candidates there, not on the event loop that answers every
        stream and /health; one call at a time, in the order they asked."""
        async with self._decoder_lock:
            return await anyio.to_thread.run_sync(fn, *args)

    async def _work(self) -> None:
        try:
            await self._frames()
        finally:
            self._worker_done.set()

    async def _frames(self) -> None:
        self.stream = await run_in_threadpool(self.predictor.stream)
        while not self.closed:
            await self._wake.wait()
            if self.closed:
                return
            self._wake = anyio.Event()
            item, self._waiting = self._waiting, None
            if item is None:
                continue
            number, data, received, region = item
            mirror, t_ms = self.mirror, (received - self._t0) * 1000
            try:
                if isinstance(region, str):
                    raise FrameError(f"region: {region}")
                if isinstance(data, HandMessage):  # light: no recognition slot, the decoder in the same hop
                    async with self._decoder_lock:
                        answer = await anyio.to_thread.run_sync(recognise.hand, self, number, data, mirror, t_ms,
                                                                limiter=self.hand_workers)
                else:
                    pred, answer = await anyio.to_thread.run_sync(recognise.frame, self, number, data, mirror, region,
                                                                  limiter=self.workers)
                    answer["spelling"] = await self._decoding(recognise.update, self, pred, t_ms)
            except FrameError as exc:
                await self.send({"type": "error", "error": str(exc), "frame": number})
                continue
            except Exception as exc:  # noqa: BLE001 - what one frame's bytes set off must not end the stream
                # One line per stream, not a traceback per frame: a client must not fill the log.
                # The traceback is at DEBUG for whoever investigates.
                log.log(logging.DEBUG if self._failed else logging.WARNING, "stream %d: frame %d failed: %s: %s",
                        self.cid, number, type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                self._failed = True
                await self.send({"type": "error", "error": "this frame could not be recognised (a server fault; "
                                 "the server log has the details)", "frame": number})
                continue
            answer["timings_ms"]["server"] = round((time.monotonic() - received) * 1000, 2)
            answer["mirror"] = mirror
            await self.send(answer)


# --------------------------------------------------------------------------- the route


@router.websocket("/ws")
async def ws_stream(ws: WebSocket, predictor: Predictor = Depends(get_predictor),
                    settings: Settings = Depends(get_settings), workers: anyio.CapacityLimiter = Depends(get_workers)):
    streams: Streams = ws.app.state.streams
    await ws.accept()
    if not origin_allowed(ws.headers, settings.params, settings.hosts):
        await ws.close(CLOSE_POLICY, "this page's origin is not allowed (see cors_origins)")
        return
    cid = await streams.admit()
    if cid is None:
        await ws.close(CLOSE_BUSY, f"server busy: {streams.open} streams open; try again later")
        return
    conn = _Connection(ws, predictor, settings, cid, workers, ws.app.state.lexicon)
    conn.on_closing = streams.release
    streams.conns.add(conn)
    log.info("stream %d opened (%d open)", conn.cid, streams.open)
    try:
        await conn.serve()
    except Exception:  # noqa: BLE001 - one stream's failure must not take the server down
        log.exception("stream %d failed", conn.cid)
        await conn.close(CLOSE_ERROR, "internal error; the server log has the details")
    finally:
        conn.closing()
        streams.ended(conn)
        log.info("stream %d closed after %d frames", conn.cid, conn.frames)
