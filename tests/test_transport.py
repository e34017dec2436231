"""The connection deadlines of ``server/transport.py``: they fire for clients that read nothing,
and never for ordinary ones."""

from __future__ import annotations

import asyncio
import http.client
import logging
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
