"""Faults around the program, met at the process level, and the security defaults a user gets.

The real thing each time: ``fingerspell serve`` in a subprocess on a free port (no ``--host``, so
the defaults are what is tested), sockets that vanish mid-frame, a client that sends faster than
it reads, a hand model or bundle that is damaged at start-up, training killed mid-run, and a data
folder with loops, empty folders and empty files. test_server.py covers the protocol in-process;
test_bundle.py, test_hands.py and test_dataset.py the library's side of the same faults.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from starlette.websockets import WebSocketDisconnect

from _fakes import FakePredictor
from _live import PeakRss, letterbox, upgrade
from conftest import ROBOFLOW, need_data
from fingerspell import bundle
from fingerspell.config import ServeParams

CPP_NOISE = ("I0000", "W0000", "E0000", "INFO: ", "WARNING: All log", "WARNING: Logging before", "To enable the",
             "WARNING: Read-only tensor")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def clean_env(root: Path, hand_model: Path, **extra) -> dict:
    """No FINGERSPELL_* settings from the developer; private HOME, cache and temp folders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERSPELL_")}
    for name in ("home", "cache", "tmp"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(root / "home"), TMPDIR=str(root / "tmp"), FINGERSPELL_CACHE_DIR=str(root / "cache"),
               FINGERSPELL_HAND_MODEL=str(hand_model), PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def fingerspell(*args) -> list[str]:
    return [sys.executable, "-m", "fingerspell", *map(str, args)]


def error_lines(text: str, command: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"fingerspell {command}: error: ")]


def photo_frame() -> bytes:
    """A 640x480 JPEG of a real hand, as the page sends it."""
    need_data(ROBOFLOW)
    buf = io.BytesIO()
    Image.fromarray(letterbox(sorted((ROBOFLOW / "B").glob("*.jpg"))[0])).save(buf, "JPEG", quality=80)
    return buf.getvalue()


class Served:
    """``fingerspell serve --model M --port P`` as a user starts it, output in a log file."""

    def __init__(self, model: Path, root: Path, hand_model: Path, *extra, env: dict | None = None):
        self.port = free_port()
        self.root = root
        self.cwd = root / "work"
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.log_path = root / "server.log"
        env = clean_env(root, hand_model, **(env or {}))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(fingerspell("serve", "--model", model, "--port", self.port, *extra),
                                         stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.cwd)
        self.ps = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not up after 90 s:\n{self.log()}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def log(self) -> str:
        return "\n".join(line for line in self.log_path.read_text(errors="replace").splitlines()
                         if not line.startswith(CPP_NOISE))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def files_below(*folders: Path) -> set[str]:
    return {str(p) for folder in folders for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def server(tiny_bundle, hand_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    s = Served(tiny_bundle, root, hand_model)
    s.files_at_start = files_below(s.cwd, root / "tmp", root / "home", root / "cache")
    try:
        yield s
    except BaseException:
        print(s.log())
        raise
    finally:
        s.stop()


def wait_until(predicate, seconds: float, what):
    """Poll ``predicate``; fail saying ``what`` (a string, or a function giving one) when it stays false."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what() if callable(what) else what}")
        time.sleep(0.1)


# --------------------------------------------------------------------------- the stream under faults


def open_socket_and_vanish_mid_message(port: int, frame: bytes) -> None:
    """Upgrade to a WebSocket, send the first third of a binary message, and close the socket."""
    s, head = upgrade(port)
    with s:
        assert head.startswith(b"HTTP/1.1 101"), head
        s.sendall(bytes([0x82, 0x80 | 127]) + struct.pack(">Q", len(frame)) + b"\0\0\0\0" + frame[:len(frame) // 3])


def test_clients_vanishing_mid_frame_leave_others_served_streams_closed_and_the_log_quiet(server):
    from websockets.asyncio.client import connect

    frame = photo_frame()
    ws_url = f"ws://127.0.0.1:{server.port}/ws"

    async def warm_up():
        async with connect(ws_url, max_size=None) as ws:
            await ws.send(frame)
            await ws.recv()

    asyncio.run(warm_up())
    wait_until(lambda: server.health()["open_streams"] == 0, 10, "the warm-up stream is counted out")
    time.sleep(1)
    threads, fds = server.ps.num_threads(), server.ps.num_fds()
    log_lines = len(server.log().splitlines())
    vanished = 12

    async def steady() -> list[str]:
        kinds = []
        async with connect(ws_url, max_size=None) as ws:
            for _ in range(40):
                await ws.send(frame)
                kinds.append(json.loads(await asyncio.wait_for(ws.recv(), 30))["type"])
        return kinds

    async def vanish():
        for _ in range(vanished):
            ws = await connect(ws_url, max_size=None)
            await ws.send(frame)
            await ws.recv()
            for _ in range(3):  # the server is busy recognising one of these when the socket goes
                await ws.send(frame)
            ws.transport.abort()  # no close handshake: the TCP connection just goes
            await asyncio.to_thread(open_socket_and_vanish_mid_message, server.port, frame)

    async def both():
        kinds, _ = await asyncio.gather(steady(), vanish())
        return kinds

    kinds = asyncio.run(both())
    assert kinds == ["prediction"] * 40, "the client that stayed lost answers"
    wait_until(lambda: server.health()["open_streams"] == 0, 15, "every vanished stream is counted out")
    time.sleep(1.5)
    log = server.log().splitlines()
    opened = {m.group(1) for line in log if (m := re.search(r"stream (\d+) opened", line))}
    closed = {m.group(1) for line in log if (m := re.search(r"stream (\d+) closed after", line))}
    assert len(opened) >= 2 * vanished and opened == closed, f"streams never closed: {sorted(opened - closed)}"
    new = log[log_lines:]
    assert not [line for line in new if re.search(r"ERROR|Traceback|Exception|WARNING", line)], "\n".join(new)
    assert len(new) <= 6 * (2 * vanished + 1), "a log storm:\n" + "\n".join(new[-50:])
    # An open stream holds its own classifier (LiteRT) and state; 24 left open would keep their
    # threads and descriptors; the slack is for worker threads that outlive a busy moment.
    wait_until(lambda: server.ps.num_threads() <= threads + 10 and server.ps.num_fds() <= fds + 10, 20,
               lambda: f"threads {threads} -> {server.ps.num_threads()}, descriptors {fds} -> "
                       f"{server.ps.num_fds()}: the vanished streams' resources are released")


def test_a_client_sending_faster_than_it_reads_gets_each_frame_answered_once_in_bounded_memory(server):
    from websockets.asyncio.client import connect

    frame = photo_frame()
    count = 300  # 6.6 MB of JPEG; as decoded frames waiting in a queue it would be 270 MB

    async def flood():
        async with connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as ws:
            await ws.send(frame)
            await ws.recv()
            before = server.ps.memory_info().rss / 2**20
            with PeakRss(server.ps, interval=0.02) as peak:
                for _ in range(count):  # as fast as the socket takes them, reading nothing
                    await ws.send(frame)
                answers = [json.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in range(count)]
            await ws.send(json.dumps({"type": "clear"}))
            state = json.loads(await asyncio.wait_for(ws.recv(), 30))
            try:  # nothing more may come: every frame had its one answer
                extra = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            except TimeoutError:
                extra = None
            return answers, state, extra, peak.mb - before

    answers, state, extra, grew = asyncio.run(flood())
    frames = sorted(a["frame"] for a in answers)
    assert frames == list(range(2, count + 2)), "each frame answered exactly once"
    assert extra is None, f"an answer beyond one per frame: {extra}"
    kinds = {a["frame"]: a["type"] for a in answers}
    assert set(kinds.values()) <= {"prediction", "skipped"}
    assert kinds[count + 1] == "prediction", "the newest frame is always recognised"
    assert list(kinds.values()).count("skipped") > count // 2, "stale frames are skipped, not queued"
    assert state["type"] == "state", "the connection survives"
    assert grew < 120, f"server memory grew {grew:.0f} MB while frames piled up"


# --------------------------------------------------------------------------- start-up faults


def run_until_exit(cmd, env, port: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run a command; where it is a server, watch that it never listens on ``port``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    listened = False
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        listened |= port is not None and listening(port)
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"still running after {timeout} s (a half-started server?):\n{err[-3000:]}")
    out, err = proc.communicate()
    assert not listened, "something listened on the port before the error"
    assert port is None or not listening(port)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


HAND_MODEL_FAULTS = {
    "placed file is corrupt": ("placed", r"hand model .*hand_landmarker\.task is not a readable \.task file"),
    "placed file is missing": ("missing", r"FINGERSPELL_HAND_MODEL=.*missing\.task is not a file"),
    "cached file is corrupt, no download possible": ("cached", r"could not obtain the hand model .*place the \.task "
                                                               r"at .*hand_landmarker\.task"),
}


@pytest.mark.parametrize("fault", list(HAND_MODEL_FAULTS))
def test_serve_with_a_bad_hand_model_exits_with_one_error_line_and_never_listens(fault, tiny_bundle, hand_model,
                                                                                tmp_path):
    how, message = HAND_MODEL_FAULTS[fault]
    env = clean_env(tmp_path, hand_model)
    damaged = tmp_path / "hand_landmarker.task"
    damaged.write_bytes(hand_model.read_bytes()[:5000])  # a download cut short
    if how == "placed":
        env["FINGERSPELL_HAND_MODEL"] = str(damaged)
    elif how == "missing":
        env["FINGERSPELL_HAND_MODEL"] = str(tmp_path / "missing.task")
    else:
        del env["FINGERSPELL_HAND_MODEL"]
        shutil.copyfile(damaged, tmp_path / "cache" / "hand_landmarker.task")
        # Downloads impossible: the official URL through a proxy that refuses, pip without an index.
        proxy = f"http://127.0.0.1:{free_port()}"
        env.update(https_proxy=proxy, http_proxy=proxy, HTTPS_PROXY=proxy, HTTP_PROXY=proxy, no_proxy="",
                   NO_PROXY="", PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull)
    port = free_port()
    out = run_until_exit(fingerspell("serve", "--model", tiny_bundle, "--port", port), env, port)
    assert out.returncode == 5, out.stderr
    errors = error_lines(out.stderr, "serve")
    assert len(errors) == 1 and re.search(message, errors[0]), out.stderr
    assert "Traceback" not in out.stderr and "Uvicorn running" not in out.stderr


def damage_bundle(folder: Path, damage: str) -> Path:
    """Break a copy of a bundle; returns the file the error must name."""
    if damage == "bundle.json is not JSON":
        (folder / bundle.META).write_text('{"kind": "landmarks", ')
        return folder / bundle.META
    if damage == "another format version":
        meta = json.loads((folder / bundle.META).read_text())
        meta["format_version"] = 99
        (folder / bundle.META).write_text(json.dumps(meta))
        return folder / bundle.META
    if damage == "serving export is corrupt":
        (folder / bundle.TFLITE).write_bytes((folder / bundle.TFLITE).read_bytes()[:4096])
        return folder / bundle.TFLITE
    shutil.rmtree(folder)
    return folder


BUNDLE_FAULTS = {
    "bundle.json is not JSON": r"bundle\.json is corrupt",
    "another format version": r"bundle\.json has format version 99; this fingerspell reads version 1",
    "serving export is corrupt": r"model\.tflite is not a loadable LiteRT model",
    "folder is missing": r"does not exist",
}


@pytest.mark.parametrize("command,damage", [("serve", d) for d in BUNDLE_FAULTS] + [
    ("predict", "another format version"), ("predict", "serving export is corrupt")])
def test_serve_and_predict_with_a_bad_bundle_exit_with_one_error_naming_the_file(command, damage, tiny_bundle,
                                                                                hand_model, tmp_path):
    folder = Path(shutil.copytree(tiny_bundle, tmp_path / "model"))
    named = damage_bundle(folder, damage)
    env = clean_env(tmp_path, hand_model)
    port = free_port()
    if command == "serve":
        out = run_until_exit(fingerspell("serve", "--model", folder, "--port", port), env, port)
    else:
        image = tmp_path / "hand.jpg"
        Image.new("RGB", (64, 48)).save(image)
        out = run_until_exit(fingerspell("predict", image, "--model", folder), env)
    assert out.returncode == 4, out.stderr
    errors = error_lines(out.stderr, command)
    assert len(errors) == 1, out.stderr
    assert str(named) in errors[0] and re.search(BUNDLE_FAULTS[damage], errors[0]), errors[0]
    assert "Traceback" not in out.stderr, out.stderr  # nothing after the error either (MediaPipe at exit)


# --------------------------------------------------------------------------- training faults


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def train_cmd(data: Path, out: Path, epochs: int, *extra) -> list[str]:
    return fingerspell("train", "--data", data, "--out", out, "--epochs", epochs, "--workers", 1,
                       "--grouping", "random", "--val-fraction", 0.25, *extra)


@pytest.mark.slow
def test_training_interrupted_or_killed_mid_run_keeps_the_previous_bundle_and_the_next_run_works(
        real_slice, tiny_bundle, hand_model, tmp_path):
    runs = {}
    for how in ("SIGINT", "SIGKILL"):
        root = tmp_path / how
        out = Path(shutil.copytree(tiny_bundle, root / "models" / "model"))
        env = clean_env(root, hand_model, PYTHONFAULTHANDLER="1")
        log = root / "train.log"
        with open(log, "wb") as f:
            # A shell that starts a job in the background (as CI runners may) leaves SIGINT ignored,
            # and children inherit that; a person's Ctrl-C reaches a process whose SIGINT is default.
            proc = subprocess.Popen(train_cmd(real_slice, out, 100_000), stdout=f, stderr=subprocess.STDOUT,
                                    env=env, start_new_session=True,
                                    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        runs[how] = (root, out, snapshot(out), log, proc)
    try:
        for how, (root, out, before, log, proc) in runs.items():
            def fitting(log=log, proc=proc):
                return "training landmark MLP" in log.read_text(errors="replace") or proc.poll() is not None

            wait_until(fitting, 240, f"{how}: training reaches the fit")
            assert proc.poll() is None, log.read_text()
        time.sleep(2)  # well inside the fit
        for how, (root, out, before, log, proc) in runs.items():
            os.killpg(proc.pid, getattr(signal, how))  # Ctrl-C reaches the whole process group, too
        for how, (root, out, before, log, proc) in runs.items():
            try:
                proc.wait(240)  # generous: a loaded CI machine can take a while to unwind TensorFlow
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack into the log
                proc.wait(30)
                pytest.fail(f"{how}: training still running 240 s after the signal:\n{log.read_text()[-6000:]}")
    finally:
        for _, _, _, _, proc in runs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    for how, (root, out, before, log, proc) in runs.items():
        text = log.read_text(errors="replace")
        if how == "SIGINT":
            assert proc.returncode == 130 and "fingerspell train: interrupted" in text, text[-3000:]
            assert "Traceback" not in text, text[-3000:]
            assert list((root / "tmp").iterdir()) == [], "temporary files left behind"
        else:
            assert proc.returncode == -signal.SIGKILL
        assert snapshot(out) == before, f"{how}: the previous bundle changed"
        assert bundle.load_meta(out).labels == bundle.load_meta(tiny_bundle).labels
        assert leftovers(out.parent) == [], f"{how}: left {leftovers(out.parent)}"

    root, out = runs["SIGKILL"][0], runs["SIGKILL"][1]
    later = subprocess.run(train_cmd(real_slice, out, 2), capture_output=True, text=True,
                           env=clean_env(root, hand_model), timeout=400)
    assert later.returncode == 0, later.stderr[-3000:]
    assert bundle.load_meta(out).labels == ["A", "B", "C"]
    assert leftovers(out.parent) == []


@pytest.mark.slow
def test_training_and_evaluation_survive_a_messy_data_folder_and_list_what_they_skipped(
        real_slice, hand_model, tmp_path):
    data = real_slice
    os.symlink(data / "B", data / "B" / "again")  # a folder linked into itself: a loop
    (data / "A" / "empty.jpg").write_bytes(b"")
    (data / "A" / "notes.txt").write_text("not a picture")
    good = sorted((data / "C").glob("*.jpg"))[0]
    (data / "C" / "cut-short.jpg").write_bytes(good.read_bytes()[:300])
    os.symlink(tmp_path / "nowhere.jpg", data / "C" / "dangling.jpg")
    (data / "D").mkdir()  # a class folder with nothing in it
    # The landmark cache below a regular file: unwritable for every user, root included.
    (tmp_path / "a-file").write_text("in the way")
    cache = tmp_path / "a-file" / "cache"
    env = clean_env(tmp_path, hand_model)
    out = tmp_path / "model"

    trained = subprocess.run(train_cmd(data, out, 2, "--cache-dir", cache), capture_output=True, text=True,
                             env=env, timeout=400)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "landmarks are kept in memory for this run" in trained.stderr
    report = json.loads((out / bundle.METRICS).read_text())["data"]
    reasons = {Path(f["path"]).name: f["reason"] for f in report["skipped_files"]}
    assert reasons["empty.jpg"] == "empty file (0 bytes)"
    assert reasons["notes.txt"] == "not an image file"
    assert reasons["again"].startswith("symlink loop")
    assert "cannot read" in reasons["dangling.jpg"]
    assert "truncated" in reasons["cut-short.jpg"]
    assert any("class folder" in n and n.rstrip().endswith("has no images; left out") for n in report["notes"])
    assert report["labels"] == ["A", "B", "C"]

    evaluated = subprocess.run(fingerspell("evaluate", "--model", out, "--data", data, "--json", "--cache-dir", cache),
                               capture_output=True, text=True, env=env, timeout=400)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    figures = json.loads(evaluated.stdout)
    listed = {Path(f["path"]).name for f in figures["data"]["skipped_files"]}
    assert {"empty.jpg", "notes.txt", "again", "dangling.jpg", "cut-short.jpg"} <= listed


# --------------------------------------------------------------------------- security defaults


def test_serve_binds_to_loopback_by_default_and_runs_without_reload(server):
    sockets = [c for c in server.ps.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert [(c.laddr.ip, c.laddr.port) for c in sockets] == [("127.0.0.1", server.port)]
    assert server.ps.children(recursive=True) == [], "a reloader or worker processes"
    assert f"open http://localhost:{server.port}/" in server.log()
    assert "reloader" not in server.log().lower()


@pytest.mark.parametrize("flag", ["--reload", "--debug", "--workers"])
def test_serve_has_no_reload_debug_or_workers_switch(flag):
    from fingerspell.cli import _parser

    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["serve", flag])
    assert exited.value.code == 2


def test_the_server_writes_no_frame_anywhere_unless_asked(server):
    from websockets.sync.client import connect

    frame = photo_frame()
    with connect(f"ws://127.0.0.1:{server.port}/ws", max_size=None) as ws:
        for data in (frame, frame, b"not an image"):
            ws.send(data)
            json.loads(ws.recv(timeout=30))
    for body in (frame, b"\xff\xd8 broken"):
        httpx.post(server.url + "/predict", content=body, headers={"content-type": "image/jpeg"}, timeout=30)
    root = server.root
    now = files_below(server.cwd, root / "tmp", root / "home", root / "cache")
    assert now == server.files_at_start, f"new files: {sorted(now - server.files_at_start)}"
    open_files = [f.path for f in server.ps.open_files()]
    assert not [p for p in open_files if p.endswith((".jpg", ".jpeg", ".png"))], open_files


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        answer = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, body = answer.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.I)
                if length and len(body) >= int(length.group(1)):
                    break
        return answer


TRAVERSALS = ["/static/../app.py", "/static/../../fingerspell/config.py", "/static/..%2fapp.py",
              "/static/%2e%2e/%2e%2e/config.py", "/static/..%5c..%5cconfig.py", "/static/%252e%252e/app.py",
              "/static/....//app.py", "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/..;/app.py",
              "/../src/fingerspell/config.py", "/static/app.js/../../app.py", "/static/%c0%ae%c0%ae/app.py"]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_the_live_server_serves_only_its_static_folder_to_raw_paths(server, path):
    answer = raw_http(server.port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    status = int(answer.split(b" ", 2)[1])
    assert status in (400, 404), answer[:300]
    for secret in (b"def ", b"import ", b"root:", b"ServeParams"):
        assert secret not in answer, answer[:300]


@pytest.mark.parametrize("name,request_bytes,status", [
    ("not found", b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 404),
    ("wrong method", b"DELETE /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 405),
    ("body declared over the limit", b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                                     b"Content-Length: 1000000000\r\nConnection: close\r\n\r\n", 413),
    ("unreadable image", b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
                         b"Content-Length: 4\r\nConnection: close\r\n\r\nnope", 422),
])
def test_the_live_server_refuses_with_anti_framing_headers_and_json(server, name, request_bytes, status):
    answer = raw_http(server.port, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status}".encode()), head
    headers = head.lower()
    assert b"x-frame-options: deny" in headers and b"frame-ancestors 'none'" in headers
    assert b"x-content-type-options: nosniff" in headers
    assert isinstance(json.loads(body)["error"], str)


def test_a_huge_request_header_is_refused_and_the_server_keeps_serving(server):
    answer = raw_http(server.port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Junk: " + b"a" * 1_000_000 + b"\r\n\r\n")
    assert answer == b"" or int(answer.split(b" ", 2)[1]) in (400, 413, 431), answer[:200]
    assert server.health()["status"] == "ok"


def test_limits_are_on_by_default(monkeypatch):
    for name in list(os.environ):
        if name.startswith("FINGERSPELL_") and name not in ("FINGERSPELL_HAND_MODEL", "FINGERSPELL_CACHE_DIR"):
            monkeypatch.delenv(name)
    defaults = ServeParams()
    assert (defaults.host, defaults.cors_origins, defaults.save_frames_dir) == ("127.0.0.1", (), None)
    from fingerspell.server import create_app

    with TestClient(create_app(predictor=FakePredictor()), base_url="http://127.0.0.1:5000") as client:
        assert client.get("/health").json()["limits"] == {
            "max_body_bytes": 8 * 2**20, "max_message_bytes": 2 * 2**20, "max_pixels": 4096 * 4096,
            "max_jpeg_scans": 100, "max_connections": 16, "max_predicts": 4, "max_uploads": 16,
            "stream_idle_s": 300.0, "max_samples": 5000, "max_profiles": 1000, "max_upload_bytes": 8 * 2**20,
            "max_take": 120, "max_label_chars": 64}
        r = client.post("/predict", content=b"\0" * (8 * 2**20 + 1), headers={"content-type": "image/jpeg"})
        assert r.status_code == 413 and "over the limit of 8,388,608 bytes" in r.json()["error"]
        tall = io.BytesIO()
        Image.new("L", (4097, 4096)).save(tall, "PNG")  # 16,781,312 pixels: one row over
        r = client.post("/predict", content=tall.getvalue(), headers={"content-type": "image/png"})
        assert r.status_code == 422 and "over the limit of 16,777,216 pixels" in r.json()["error"]
        with client.websocket_connect("ws://127.0.0.1:5000/ws") as ws:
            ws.send_bytes(b"\0" * (2 * 2**20 + 1))
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
        assert closed.value.code == 1009 and "over the 2,097,152-byte limit" in closed.value.reason


# --------------------------------------------------------------------------- clients that hold slots


def send_until_the_server_stops_reading(socks: list[socket.socket], seconds: float = 20.0) -> list[int]:
    """Send 1-byte binary frames on every socket, reading nothing, until none took a byte for a second."""
    frame = bytes([0x82, 0x81]) + b"\0\0\0\0" + b"x"  # masked (with zeros), one byte of payload
    batch = memoryview(frame * 1000)
    sent = [0] * len(socks)
    for s in socks:
        s.setblocking(False)
    last_progress, deadline = time.monotonic(), time.monotonic() + seconds
    while time.monotonic() < deadline and time.monotonic() - last_progress < 1.0:
        moved = False
        for i, s in enumerate(socks):
            try:
                sent[i] += s.send(batch[sent[i] % len(frame):])  # whole frames, whatever each send took
                moved = True
            except BlockingIOError:
                pass
        if moved:
            last_progress = time.monotonic()
        else:
            time.sleep(0.01)
    return sent


@pytest.mark.slow
def test_clients_that_never_read_cannot_keep_the_stream_slots(tiny_bundle, hand_model, tmp_path):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    served = Served(tiny_bundle, tmp_path, hand_model)  # the defaults: 16 streams
    hogs = []
    try:
        limit = served.health()["limits"]["max_connections"]
        answers = [upgrade(served.port, rcvbuf=4096) for _ in range(limit)]
        hogs = [h for h, _ in answers]
        assert all(head.startswith(b"HTTP/1.1 101") for _, head in answers)
        # All at once: uvicorn's keep-alive ping times out 40 s after each connected, and where
        # its close completes that frees the slot too (late); the deadline here is 30 s from idle.
        assert all(n > 0 for n in send_until_the_server_stops_reading(hogs))
        idle_since = time.monotonic()  # every hog is idle from here on, and never reads
        refused, served_after = 0, None
        while time.monotonic() - idle_since < 30 and served_after is None:
            try:
                # A new stream may wait up to close_timeout_s (5 s) for closing ones to free a slot
                # before its handshake is answered: allow for that, and count a slow answer as not yet.
                with connect(f"ws://127.0.0.1:{served.port}/ws", open_timeout=10) as ws:
                    ws.send(json.dumps({"type": "clear"}))
                    if json.loads(ws.recv(timeout=5))["type"] == "state":
                        served_after = time.monotonic() - idle_since
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1013, closed
                refused += 1
                time.sleep(1)
            except TimeoutError:
                refused += 1
        assert served_after is not None, f"refused {refused} times in 30 s: the never-reading clients keep every slot"
        assert refused > 0, "the hogs should have held the slots for a while"
        wait_until(lambda: served.health()["open_streams"] == 0, 10, "the hogs' streams are counted out")
        log = served.log()
        assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
        assert "the client read nothing for 10 s" in log
    finally:
        for h in hogs:
            h.close()
        served.stop()


def test_a_stream_that_is_closing_does_not_hold_a_slot(tiny_bundle, hand_model, tmp_path):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    served = Served(tiny_bundle, tmp_path, hand_model, env={"FINGERSPELL_MAX_CONNECTIONS": "2"})
    try:
        frame = photo_frame()
        refused = 0
        for _ in range(60):  # one at a time: connect, send a frame, close without waiting for its answer
            with connect(f"ws://127.0.0.1:{served.port}/ws", max_size=None) as ws:
                try:
                    ws.send(frame)
                except ConnectionClosed:
                    pass
            refused += ws.close_code == 1013  # the server's code: it spoke first
        assert refused == 0, f"{refused} of 60 one-at-a-time streams refused as busy"
    finally:
        served.stop()
