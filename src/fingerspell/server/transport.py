"""uvicorn's HTTP and WebSocket protocols with the deadlines a hostile client must not escape.

uvicorn (h11 and websockets-sansio) has a keep-alive timeout, but no deadline for a request head
or for a peer that stops reading: a send waits for the write buffer to drain for ever, and
``transport.close()`` waits for that same buffer, so a client that never reads keeps its socket,
and its stream slot, for as long as it likes. These subclasses add, per connection:

* a deadline for the request line and headers (``header_timeout_s``), from the moment the
  connection opens or its previous response ends, that trickled bytes do not extend;
* the request head's size checked however its bytes arrive (h11 only limits a head that is
  still incomplete in its buffer);
* a send that waits longer than ``send_timeout_s`` for the peer to read aborts the connection
  (a stream's socket send buffer is kept small, so that wait starts soon after the peer stops);
* a close that has not completed within ``close_timeout_s`` becomes an abort;
* after an early answer (413, 503) the rest of the body is read and dropped for at most
  ``body_timeout_s`` (a client that sends its whole body before it reads needs that), then the
  connection is closed;
* a stream closed for a message over the limit (1009) or text that is not UTF-8 (1007) sends
  its close frame and then reads and drops what the client still sends, for at most
  ``close_timeout_s``: closing at once would reset a client still sending, and the reset can
  destroy the close frame before the client reads it;
* client mistakes that uvicorn logs with a traceback (invalid UTF-8 in a text message, garbage
  after an early answer) are one INFO line, and its own 400 carries the security headers.

The subclasses only add to uvicorn's code paths (each override calls the original), so a uvicorn
upgrade that changes them shows up in tests/test_server.py's live-server tests, not as silence.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

log = logging.getLogger(__name__)
WS_SEND_BUFFER = 64 * 1024


class _AbortingTransport:
    """The connection's transport, with a ``close()`` that turns into ``abort()`` after ``grace`` s.

    ``close()`` flushes the write buffer first; when the peer reads nothing, that never ends and
    the connection is never lost. A thin wrapper is the one place every close path of uvicorn's
    protocols goes through (keep-alive ping timeout, close handshake timer, end of the app).
    """

    def __init__(self, transport: asyncio.Transport, grace: float):
        self._transport = transport
        self._grace = grace
        self._timer: asyncio.TimerHandle | None = None
        self._lost = False

    def close(self) -> None:
        self._transport.close()
        # uvicorn closes the transport again from connection_lost: a connection already lost
        # has nothing left to flush, and an abort then would log a close that did complete.
        if self._timer is None and not self._lost:
            self._timer = asyncio.get_running_loop().call_later(self._grace, self._abort)

    def _abort(self) -> None:
        log.info("aborted a connection whose close did not complete in %g s (the client reads nothing)", self._grace)
        self._transport.abort()

    def lost(self) -> None:
        self._lost = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def __getattr__(self, name):
        return getattr(self._transport, name)


def _wrap(transport, grace: float) -> _AbortingTransport:
    return transport if isinstance(transport, _AbortingTransport) else _AbortingTransport(transport, grace)


async def _wait_writable(event: asyncio.Event, transport, timeout: float, what: str) -> None:
    """Wait for the peer to read; abort the connection after ``timeout`` s of it reading nothing."""
    if event.is_set():
        return
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        log.info("aborted %s: the client read nothing for %g s", what, timeout)
        transport.abort()
        await asyncio.sleep(0)  # connection_lost runs (it was scheduled with call_soon)


class _TimedFlow(FlowControl):
    """uvicorn's HTTP flow control, whose wait for the peer to read aborts after ``timeout`` s."""

    def __init__(self, transport, timeout: float):
        super().__init__(transport)
        self.timeout = timeout

    async def drain(self) -> None:
        await _wait_writable(self._is_writable_event, self._transport, self.timeout, "an HTTP response")


def _head_size(event: h11.Request) -> int:
    return len(event.method) + len(event.target) + 12 + sum(len(k) + len(v) + 4 for k, v in event.headers)


class _HeadLimitedConnection(h11.Connection):
    """h11's connection, refusing a request head over ``max_head`` bytes even when it came whole."""

    def __init__(self, max_head: int):
        super().__init__(h11.SERVER, max_incomplete_event_size=max_head)
        self.max_head = max_head

    def next_event(self):
        event = super().next_event()
        if isinstance(event, h11.Request) and _head_size(event) > self.max_head:
            raise h11.RemoteProtocolError(f"request head over {self.max_head} bytes", error_status_hint=431)
        return event


def protocols(params, max_head: int, security_headers):
    """The (HTTP, WebSocket) protocol classes for ``uvicorn.run(http=..., ws=...)``.

    Args:
        params: ServeParams; its ``*_timeout_s`` fields are used.
        max_head: the most bytes a request line and headers may take.
        security_headers: ``() -> [(name, value)]``, the headers every HTTP answer carries.
    """

    class Http(H11Protocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.conn = _HeadLimitedConnection(max_head)
            self._head_timer: asyncio.TimerHandle | None = None
            self._linger_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport):
            super().connection_made(_wrap(transport, params.close_timeout_s))
            self.flow = _TimedFlow(self.transport, params.send_timeout_s)
            self._watch_head()

        def connection_lost(self, exc):
            for timer in (self._head_timer, self._linger_timer):
                if timer is not None:
                    timer.cancel()
            self.transport.lost()
            super().connection_lost(exc)

        def data_received(self, data):
            super().data_received(data)
            self._watch_head()

        def on_response_complete(self):
            super().on_response_complete()
            if self.conn.their_state is h11.SEND_BODY and self._linger_timer is None and not self.transport.is_closing():
                # Answered before the body ended (413, 503): drop what still comes, for a while.
                # uvicorn's 5 s keep-alive timer would cut off a client that pauses mid-body,
                # before it reads the answer; this deadline replaces it.
                self._unset_keepalive_if_required()
                self._linger_timer = self.loop.call_later(params.body_timeout_s, self._close_lingering)
            self._watch_head()

        def _watch_head(self):
            """A deadline runs while a request head is awaited; bytes that trickle in do not reset it."""
            waiting = self.conn.their_state is h11.IDLE and not self.transport.is_closing()
            if waiting and self._head_timer is None:
                self._arm_head(params.header_timeout_s, late_ok=True)
            elif not waiting and self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _arm_head(self, delay: float, late_ok: bool):
            self._head_due, self._head_late_ok = self.loop.time() + delay, late_ok
            self._head_timer = self.loop.call_later(delay, self._head_timeout)

        def _head_timeout(self):
            self._head_timer = None
            if self._head_late_ok and self.loop.time() - self._head_due > 0.5:
                # The event loop was stalled (a loaded machine): timers run before the reads
                # that came in meanwhile, so look once more after those have been handled.
                self._arm_head(0.5, late_ok=False)
                return
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                if self.conn.trailing_data[0]:  # a partial request: worth a line; an idle keep-alive is not
                    log.info("closed a connection that sent no complete request head in %g s", params.header_timeout_s)
                self.transport.close()

        def _close_lingering(self):
            self._linger_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers a malformed request itself, past the app: with our headers, and not
            # at all once an answer went out (garbage after a 413): h11 would raise, and the
            # event loop would log "Fatal error on transport" with a traceback.
            if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
                log.info("closed a connection that sent a malformed request after its answer")
                self.transport.close()
                return
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                       *security_headers()]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=msg.encode("ascii")), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    class WebSocket(WebSocketsSansIOProtocol):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.close_timeout = params.close_timeout_s  # uvicorn's wait for the client's close reply
            self._draining = False

        def connection_made(self, transport):
            super().connection_made(_wrap(transport, params.close_timeout_s))
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linux grows a send buffer to 4 MB: some 70,000 answers that a client that reads
                # nothing makes the server work out and queue before a send would wait (minutes).
                # Answers are ~1 KB at 15 a second; 64 KiB (the kernel doubles it) is plenty.
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, WS_SEND_BUFFER)
                except OSError:
                    pass

        def connection_lost(self, exc):
            self.transport.lost()
            super().connection_lost(exc)

        def data_received(self, data):
            if not self._draining:
                super().data_received(data)
            # else: the connection has failed (see handle_parser_exception): drop what still comes

        def eof_received(self):
            return None  # the client has stopped sending: asyncio closes the connection

        def handle_parser_exception(self):
            # uvicorn sends the close frame (1009: a message over the limit; 1007: text that is
            # not UTF-8) and closes the TCP connection at once. A client still sending the rest of
            # that message then gets a reset, which can destroy the close frame before it is read.
            # Instead: send the close frame and FIN, drop what still arrives, and close when the
            # client stops sending or after close_timeout_s. Rewritten, not extended: the original
            # ends by closing the connection, which is what must not happen yet.
            close = self.conn.close_sent
            self.queue.put_nowait({"type": "websocket.disconnect", "code": close.code, "reason": close.reason})
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self._draining = True
            # uvicorn's close timer: the end of the app leaves the connection to it; connection_lost cancels it
            self.close_timer = self.loop.call_later(params.close_timeout_s, self.transport.close)
            if self.transport.can_write_eof():  # not under TLS
                self.transport.write_eof()
            if self.read_paused:
                self.read_paused = False
                self.transport.resume_reading()

        async def send(self, message):
            await _wait_writable(self.writable, self.transport, params.send_timeout_s, "a stream")
            if self.disconnected:
                raise ClientDisconnected()
            await super().send(message)

        def send_receive_event_to_app(self):
            if self.curr_msg_data_type == "text" and not self.close_sent:
                try:
                    b"".join(self.frames).decode()
                except UnicodeDecodeError:
                    log.info("closed a stream that sent a text message that is not UTF-8 (1007)")
                    self.frames = []
                    self.conn.send_close(1007, "a text message must be UTF-8")
                    self.handle_parser_exception()
                    return
            super().send_receive_event_to_app()

    return Http, WebSocket
