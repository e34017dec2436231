"""``WS /ws``: live video in, one JSON answer per frame out, and the text-editing commands.

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
  the next binary frame only and is not answered by itself (``NOTICES``): that frame's answer has
  the hand's landmarks normalised to the whole camera frame, as for a whole frame, and the stream
  keeps following the hand as the crop moves. A rectangle up to half a pixel past the frame's
  right or bottom edge (a client's rounding) is moved back inside it. A frame after a region that
  is not valid (numbers not finite or too large for a float, a rectangle not inside the frame, a
  side under 8 px or a frame side over 16384, an image not of the region's shape) is answered
  ``{"type": "error", "error": "region: ...", "frame": n}`` and the socket stays open. A frame
  with no region message before it is a whole frame.
* Text messages are JSON commands (``COMMANDS``): ``{"type": "backspace"}``, ``{"type": "space"}``
  (end the word now, or add one space), ``{"type": "clear"}``, ``{"type": "set_text", "text":
  "..."}`` (the page restoring its text after a reload or reconnect), ``{"type": "pick", "option":
  "..."}`` (switch the last chosen word to one of its ``options``: the letters as signed or
  another candidate), ``{"type": "vocab", "words": ["..."]}`` (the user's own words for this
  stream: names and places of at most 64 letters, at most 1,000 a stream with the server's
  ``--vocab`` words; what is not letters A-Z is skipped, and a word too long or a word past the
  1,000th refuses the whole command with ``{"type": "error", "error": "vocab: ..."}``),
  ``{"type": "config", "mirror": true}``. Each is answered with ``{"type": "state",
  "spelling": {...}, "mirror": bool}``.
* Mirroring: with ``mirror`` on, frames are recognised flipped left to right, and the landmarks
  are given back in the frame the client sent (``_Connection._recognise``, the one place).
* Frame errors: whatever goes wrong with one frame is that frame's ``{"type": "error", ...}``
  answer, and the socket stays open: a bad image (empty, not JPEG or PNG, truncated, over
  ``max_pixels``, a JPEG of over 100 scans), a bad region, and even a server fault on the frame's
  path (answered "a server fault", logged as one WARNING line a stream).
* Idle streams: a stream that sends no frame and no message for ``stream_idle_s`` (300 s by
  default) is closed with 1001 ("going away") and the reason ``idle: no frame or command for
  300 s``, so that clients that only answer pings cannot hold the ``max_connections`` slots. The
  page reconnects by itself.
* Close codes: 1001 for an idle stream, 1009 for a message over ``max_message_bytes``, 1013 when
  ``max_connections`` streams are already open, 1008 for a page from another origin (see
  ``cors_origins``), 1007 for a text message that is not UTF-8 (``transport.py``), 1011 for a
  server fault outside a frame's path (logged with its traceback). A handshake whose ``Host`` is
  not an allowed host is refused with 421 before the upgrade (``security.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

import anyio
import anyio.to_thread
import numpy as np
from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..decoding import Loading, make_decoder
from ..errors import FrameError
from ..hand import Region
from ..predictor import Prediction, Predictor
from .deps import get_predictor, get_settings, get_workers
from .security import origin_allowed
from .settings import SERVE_FORMATS, Settings

log = logging.getLogger(__name__)

MAX_VOCAB = 1000  # words one vocab command may carry (a stream keeps at most MAX_USER_WORDS, 64 letters each)
# Close codes (RFC 6455 and the IANA registry).
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_ERROR = 1011
CLOSE_BUSY = 1013
STOP_WAIT_S = 1.0  # how long a closing stream's worker may take to finish its frame before it is cancelled
CLOSING_WAIT_S = 5.0  # how long a new stream may wait for closing ones to be put away (takes ~1 s)

router = APIRouter()


class Streams:
    """The app's count of streams: ``open`` ones hold one of ``limit`` slots; ``alive`` ones also
    count those closing whose tracker is not yet put away (a second or so)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.open = 0
        self.alive = 0
        self.opened = 0  # ever: each stream's number in the log
        self.put_away = anyio.Event()  # set, and replaced, whenever a stream is put away


# --------------------------------------------------------------------------- commands
# Each takes the connection and the command's JSON object; it returns an error message or None.


def _backspace(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.backspace()


def _space(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.space()


def _clear(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.clear()


def _set_text(conn: "_Connection", doc: dict) -> str | None:
    if not isinstance(doc.get("text"), str):
        return 'set_text needs "text": a string'
    conn.decoder.set_text(doc["text"])


def _pick(conn: "_Connection", doc: dict) -> str | None:
    if not isinstance(doc.get("option"), str) or not conn.decoder.pick(doc["option"]):
        return 'pick needs "option": one of spelling.choice.options'


def _vocab(conn: "_Connection", doc: dict) -> str | None:
    words = doc.get("words")
    if not isinstance(words, list) or len(words) > MAX_VOCAB or not all(isinstance(w, str) for w in words):
        return f'vocab needs "words": a list of at most {MAX_VOCAB} strings'
    error = conn.decoder.check_words(words)  # all or nothing: a refused command adds no word
    if error is not None:
        return f"vocab: {error}"
    conn.decoder.add_words(words)


def _config(conn: "_Connection", doc: dict) -> str | None:
    if "mirror" in doc:
        if not isinstance(doc["mirror"], bool):
            return 'config "mirror" must be true or false'
        conn.mirror = doc["mirror"]


COMMANDS: dict[str, Callable[["_Connection", dict], str | None]] = {
    "backspace": _backspace, "space": _space, "clear": _clear, "set_text": _set_text, "pick": _pick,
    "vocab": _vocab, "config": _config,
}

# Messages about the next frame: not answered by themselves; what is wrong with one is that
# frame's error. Each takes the connection and the message's JSON object.

REGION_FIELDS = ("x", "y", "w", "h", "frame_w", "frame_h")


def _region(conn: "_Connection", doc: dict) -> None:
    """The next frame is the region's part of the camera frame (or, if it is not valid, an error)."""
    missing = [k for k in REGION_FIELDS if k not in doc]
    if missing:
        conn.region = f"missing {', '.join(missing)}: a region message has {', '.join(REGION_FIELDS)} (camera pixels)"
        return
    try:
        conn.region = Region(*(doc[k] for k in REGION_FIELDS))
    except ValueError as exc:
        conn.region = str(exc)


NOTICES: dict[str, Callable[["_Connection", dict], None]] = {"region": _region}


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
                 workers: anyio.CapacityLimiter, lexicon: Loading | None):
        self.ws = ws
        self.predictor = predictor
        self.workers = workers
        self.settings = settings
        self.cid = cid
        self.decoder = make_decoder(settings.decoding, lexicon, settings.vocab, settings.spelling)
        self.mirror = False
        self.stream = None
        self.frames = 0
        self.closed = False
        self._failed = False  # a frame failed other than with a FrameError (logged once a stream)
        self._waiting: tuple[int, bytes, float, Region | str | None] | None = None
        self.region: Region | str | None = None  # for the next frame: where it lies, or what was wrong
        self._wake = anyio.Event()
        self._send_lock = anyio.Lock()
        self._decoder_lock = anyio.Lock()
        self._worker_done = anyio.Event()
        self._t0 = time.monotonic()
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
                # Swap before awaiting the send: while it waits, the worker may take whatever is
                # waiting, and a frame it takes must not also be answered "skipped".
                stale, self._waiting = self._waiting, (self.frames, data, time.monotonic(), self.region)
                self.region = None
                self._wake.set()
                if stale is not None:
                    await self.send({"type": "skipped", "skipped": True, "frame": stale[0]})
            elif text is not None:
                answer = await self._command(text)
                if answer is not None:
                    await self.send(answer)

    def _state(self, fresh: bool = False) -> dict:
        state = self.decoder.state()
        if fresh:  # a command's answer: the last frame's commits were already reported
            state["committed"] = []
        return state

    async def _command(self, text: str) -> dict | None:
        """A text message's answer; None for a notice (``NOTICES``), which is not answered."""
        known = ", ".join(COMMANDS)
        try:
            doc = json.loads(text)
        except (ValueError, RecursionError):
            return {"type": "error", "error": f'text messages are JSON commands like {{"type": "clear"}} ({known})'}
        name = doc.get("type") if isinstance(doc, dict) else None
        if isinstance(name, str) and name in NOTICES:
            NOTICES[name](self, doc)
            return None
        handler = COMMANDS.get(name) if isinstance(name, str) else None
        if handler is None:
            shown = json.dumps(name)[:40] if isinstance(name, str) else "missing"
            return {"type": "error", "error": f"unknown command type {shown}; known: {known}"}
        return await self._decoding(self._apply, handler, doc)

    def _apply(self, handler: Callable[["_Connection", dict], str | None], doc: dict) -> dict:
        """A command's answer, in the decoder's thread (``_decoding``)."""
        error = handler(self, doc)
        if error is not None:
            return {"type": "error", "error": error}
        return {"type": "state", "spelling": self._state(fresh=True), "mirror": self.mirror}

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
        self.stream = await run_in_threadpool(self._open_stream)
        while not self.closed:
            await self._wake.wait()
            if self.closed:
                return
            self._wake = anyio.Event()
            item, self._waiting = self._waiting, None
            if item is None:
                continue
            number, data, received, region = item
            mirror = self.mirror
            try:
                if isinstance(region, str):
                    raise FrameError(f"region: {region}")
                pred, answer = await anyio.to_thread.run_sync(self._recognise, number, data, mirror, region,
                                                              limiter=self.workers)
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
            spelling = await self._decoding(self._update, pred, (received - self._t0) * 1000)
            answer["timings_ms"]["server"] = round((time.monotonic() - received) * 1000, 2)
            answer["spelling"] = spelling
            answer["mirror"] = mirror
            await self.send(answer)

    def _update(self, pred: Prediction, t_ms: float) -> dict:
        """The frame into the decoder, and its new state (in the decoder's thread)."""
        self.decoder.update(pred, t_ms, self.stream.position)
        return self._state()

    def _open_stream(self):
        stream = self.predictor.stream()
        # A detector's first frame costs ~10x a normal one (kernels set up): pay it now, on a
        # blank frame, rather than on the user's first. (The tracker warms itself.)
        stream.predict(np.zeros((480, 640, 3), dtype=np.uint8))
        return stream

    def _recognise(self, number: int, data: bytes, mirror: bool, region: Region | None) -> tuple[Prediction, dict]:
        """The frame's prediction and its answer; the server's one mirroring path.

        With ``mirror`` the stream recognises the frame flipped left to right (and looks afresh
        for the hand when that changes); the answer's landmarks are flipped back, into the frame
        the client sent, so the page draws them where the hand is. With ``region`` the frame is
        that part of the camera frame (mirrored with the frame), and the landmarks are the whole
        camera frame's.
        """
        pred = self.stream.predict_bytes(data, self.settings.params.max_pixels, SERVE_FORMATS, mirror=mirror,
                                         region=region)
        self.settings.save_frame(f"ws{self.cid}-{number:06d}", data)
        answer = {"type": "prediction", "frame": number, **pred.to_json()}
        if mirror and answer["hand"] is not None:
            for point in answer["hand"]["landmarks"]:
                point[0] = round(1.0 - point[0], 4)
        return pred, answer


# --------------------------------------------------------------------------- the route


@router.websocket("/ws")
async def ws_stream(ws: WebSocket, predictor: Predictor = Depends(get_predictor),
                    settings: Settings = Depends(get_settings), workers: anyio.CapacityLimiter = Depends(get_workers)):
    streams: Streams = ws.app.state.streams
    await ws.accept()
    if not origin_allowed(ws.headers, settings.params, settings.hosts):
        await ws.close(CLOSE_POLICY, "this page's origin is not allowed (see cors_origins)")
        return
    # Streams that are closing hold no slot, but still their tracker until it is put away (a
    # second or so): at most as many again as max_connections, so memory stays bounded. A new
    # stream waits a little for one of those rather than being refused.
    with anyio.move_on_after(CLOSING_WAIT_S):
        while streams.alive >= 2 * streams.limit:
            await streams.put_away.wait()
    if streams.open >= streams.limit or streams.alive >= 2 * streams.limit:
        log.warning("refused a stream: %d open (%d closing), the limit is %d", streams.open,
                    streams.alive - streams.open, streams.limit)
        await ws.close(CLOSE_BUSY, f"server busy: {streams.open} streams open; try again later")
        return
    streams.open += 1
    streams.alive += 1
    streams.opened += 1
    conn = _Connection(ws, predictor, settings, streams.opened, workers, ws.app.state.lexicon)

    def release():  # a stream that is closing holds no slot while its tracker is put away
        streams.open -= 1

    conn.on_closing = release
    log.info("stream %d opened (%d open)", conn.cid, streams.open)
    try:
        await conn.serve()
    except Exception:  # noqa: BLE001 - one stream's failure must not take the server down
        log.exception("stream %d failed", conn.cid)
        await conn.close(CLOSE_ERROR, "internal error; the server log has the details")
    finally:
        conn.closing()
        streams.alive -= 1
        streams.put_away.set()
        streams.put_away = anyio.Event()
        log.info("stream %d closed after %d frames", conn.cid, conn.frames)
