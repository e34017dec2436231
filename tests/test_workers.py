"""``fingerspell serve --workers 2``: two server processes on one port, for real.

One server (the tiny bundle, no lexicon: quick to start) serves the module: both processes
answer on the one port; takes added to one profile through both at once are all kept (the
profile's file lock holds across processes); and a process killed mid-stream is started again
while its client reconnects to the other and gives back its text, as the page does.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request

import httpx
import pytest

from _live import ServerProcess

HAND = {"landmarks": [[0.3 + 0.01 * i, 0.5, 0.0] for i in range(21)], "handedness": "Right", "image_size": [640, 480]}


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("workers")
    server = ServerProcess(tiny_bundle, log_dir=folder, workers=2,
                           env={"FINGERSPELL_LEXICON": "false", "FINGERSPELL_DATA_DIR": str(folder / "data")})
    try:
        yield server.start()
    except BaseException:
        print("---- server log ----\n" + server.logs())
        raise
    finally:
        server.stop()


def metrics(server) -> dict:
    """/metrics over a new connection: whichever process the kernel hands it to answers."""
    request = urllib.request.Request(server.url + "/metrics", headers={"Connection": "close"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)


def pids(server, within_s: float = 60.0) -> set[int]:
    """The processes that answer /metrics within ``within_s`` (both, once both are up)."""
    seen, deadline = set(), time.monotonic() + within_s
    while len(seen) < 2 and time.monotonic() < deadline:
        seen.add(metrics(server)["pid"])
    return seen


def test_two_processes_answer_on_one_port_and_share_the_profiles(server):
    assert len(pids(server)) == 2
    token = httpx.post(server.url + "/profiles").json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    takes, failures = 8, []

    def add(label: str) -> None:
        for _ in range(takes):  # a new connection each: the takes reach both processes
            with httpx.Client(headers={**auth, "Connection": "close"}) as client:
                r = client.post(server.url + "/profile/samples", json={"label": label, "hands": [HAND] * 3})
                if r.status_code != 201:
                    failures.append(r.text)

    threads = [threading.Thread(target=add, args=(label,)) for label in "ABCD"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    profile = httpx.get(server.url + "/profile", headers=auth).json()
    assert profile["labels"] == {label: 3 * takes for label in "ABCD"}, "a take was lost between two processes"


def test_a_killed_process_is_started_again_and_its_stream_reconnects_to_the_other(server):
    from websockets.sync.client import connect

    ws = connect(server.url.replace("http", "ws", 1) + "/ws", open_timeout=30, legacy=True)
    ws.send(json.dumps({"type": "set_text", "text": "HELLO"}))
    assert json.loads(ws.recv(timeout=10))["spelling"]["text"] == "HELLO"
    holder = None
    for _ in range(80):  # the process whose /metrics lists the stream holds it
        seen = metrics(server)
        if seen["streams"]:
            holder = seen["pid"]
            break
    assert holder is not None
    os.kill(holder, signal.SIGKILL)
    with pytest.raises(Exception):  # the socket goes with its process
        ws.recv(timeout=10)
    ws.close()

    # The page's way back: a new stream (to whichever process is up), and its text given back.
    with connect(server.url.replace("http", "ws", 1) + "/ws", open_timeout=30) as again:
        again.send(json.dumps({"type": "set_text", "text": "HELLO"}))
        again.send(json.dumps({"type": "backspace"}))
        answers = [json.loads(again.recv(timeout=10)) for _ in range(2)]
        assert answers[-1]["spelling"]["text"] == "HELL"
    now = pids(server)
    assert len(now) == 2 and holder not in now, f"the killed process was not replaced: {now}"
    log = server.log_path.read_text(errors="replace")
    assert f"(pid {holder}) exited with code -9" in log and "starting another" in log
