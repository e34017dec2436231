"""The connection deadlines of ``server/transport.py``: they fire for clients that read nothing,
and never for ordinary ones."""

from __future__ import annotations

import asyncio
import base64
import http.client
import logging
import os
import socket
import struct
import time
import urllib.request

from _live import ServerProcess
from fingerspell.server.transport import _AbortingTransport

ABORTED = "aborted a connection whose close did not complete"


class _Transport:
    """The asyncio transport surface the wrapper uses; records what was done to it."""

    def __init__(self):
        self.calls = []

    def close(self):
        self.calls.append("close")

    def abort(self):
        self.calls.append("abort")


def _run(steps, grace: float = 0.05) -> list[str]:
    async def go():
        inner = _Transport()
        wrapped = _AbortingTransport(inner, grace)
        for step in steps:
            getattr(wrapped, step)()
        await asyncio.sleep(grace * 4)
        return inner.calls

    return asyncio.run(go())


def test_a_close_that_does_not_complete_becomes_an_abort_with_one_log_line(caplog):
    with caplog.at_level(logging.INFO, logger="fingerspell.server.transport"):
        assert _run(["close"]) == ["close", "abort"]
    assert [r.getMessage() for r in caplog.records if ABORTED in r.getMessage()] == [
        "aborted a connection whose close did not complete in 0.05 s (the client reads nothing)"]


def test_a_close_after_the_connection_was_lost_is_no_abort_and_no_log_line(caplog):
    # uvicorn's connection_lost closes the transport once more: that close has nothing to wait for.
    with caplog.at_level(logging.INFO, logger="fingerspell.server.transport"):
        assert _run(["close", "lost", "close"]) == ["close", "close"]
        assert _run(["lost", "close"]) == ["close"]
    assert not [r for r in caplog.records if ABORTED in r.getMessage()]


def test_ordinary_requests_leave_no_abort_line_in_the_log(tiny_bundle, hand_model, tmp_path):
    close_timeout = 0.5
    with ServerProcess(tiny_bundle, log_dir=tmp_path, env={"FINGERSPELL_CLOSE_TIMEOUT_S": str(close_timeout)}) as server:
        for path in ("/health", "/", "/static/app.js", "/static/style.css", "/openapi.json"):
            with urllib.request.urlopen(server.url + path, timeout=10) as resp:  # closes after reading
                assert resp.status == 200, path
                resp.read()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # keep-alive, then closed by us
        for _ in range(3):
            conn.request("GET", "/health")
            assert conn.getresponse().read()
        conn.close()
        time.sleep(close_timeout * 4)  # past every close timer those requests could have armed
        log = server.logs()
    assert '"GET /health HTTP/1.1" 200' in log
    assert ABORTED not in log, log


def _ws_handshake(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16))
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (port, key))
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s


def test_a_client_that_goes_on_sending_past_its_1009_reads_the_close_frame_and_is_cut_off(tiny_bundle, hand_model, tmp_path):
    # The server half-closes after its 1009 and drops what still comes: the client reads the close
    # frame (no reset destroys it), and one that never stops sending is closed after close_timeout_s.
    close_timeout = 1.0
    env = {"FINGERSPELL_CLOSE_TIMEOUT_S": str(close_timeout), "FINGERSPELL_MAX_MESSAGE_BYTES": "100000"}
    with ServerProcess(tiny_bundle, log_dir=tmp_path, env=env) as server:
        s = _ws_handshake(server.port)
        s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", 50_000_000) + os.urandom(4))  # 50 MB, masked
        s.sendall(b"\0" * 30_000_000)  # a client that reads only once its message is sent
        received = s.recv(4096)
        start, cut_off = time.monotonic(), None
        while time.monotonic() - start < close_timeout + 10:  # one that never stops sending
            try:
                s.sendall(b"\0" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                cut_off = time.monotonic() - start
                break
            time.sleep(0.02)
        s.close()
    assert received[:4] == bytes([0x88, len(received) - 2]) + struct.pack(">H", 1009), received
    assert cut_off is not None and cut_off < close_timeout + 5, cut_off
