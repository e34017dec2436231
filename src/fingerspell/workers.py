"""``fingerspell serve --workers N``: N server processes on one port, and their supervisor.

The supervisor binds the port once and starts N processes (``spawn``: each its own Python, its
own model, streams and threads) that accept connections from that one socket, the kernel
handing each new connection to one of them. A stream lives in the process that accepted it;
when that process dies, its streams close, the page reconnects (to another process) and gives
back its text. What is stored, the profiles, is shared through the data folder, under file locks
(``teach/locks.py``). A process that dies is started again; one that fails to start stops them
all (its error is in the log), as a single server that cannot start does.

Only the CLI (through ``serve.run``) imports this module.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time

log = logging.getLogger(__name__)

STOP_WAIT_S = 10.0  # how long processes may take to stop (their streams closed, 3 s) before they are killed
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket every process accepts from (bound as uvicorn binds)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


@contextlib.contextmanager
def _stderr_for_children():
    """A child is started with this process's fd 2: the real stderr, even where the CLI pointed
    fd 2 at /dev/null to silence native libraries (the child does that itself, ``_quiet``)."""
    real = sys.stderr.fileno() if hasattr(sys.stderr, "fileno") else 2
    if real == 2:
        yield False
        return
    saved = os.dup(2)
    os.dup2(real, 2)
    try:
        yield True
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _quiet() -> None:
    """As the CLI does: fd 2 (native libraries' logs) to /dev/null, Python's stderr kept."""
    real = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(real, "w", buffering=1, errors="backslashreplace")


def _process(sock: socket.socket, number: int, options: dict, level: int, ready, quiet: bool) -> None:
    """One server process (the spawned child's entry point): the app on the shared socket."""
    from .errors import FingerspellError
    from .serve import STARTUP_FAILURE, serve_app, uvicorn_options
    from .server import create_app

    if quiet:
        _quiet()
    logging.basicConfig(level=level, format=f"%(levelname)s [{number}] %(name)s: %(message)s", stream=sys.stderr)
    # SIGTERM (the supervisor stopping): uvicorn closes the streams, then the process ends by it.
    try:
        app = create_app(options["model"], options["params"], options["spelling"], cache_dir=options["cache_dir"])
        serve_app(app, sockets=[sock], on_ready=ready.set, **uvicorn_options(options["params"], options["tls_cert"], options["tls_key"],
                                                         options["log_level"]))
    except FingerspellError as exc:
        log.error("server process %d could not start: %s", number, exc)
        sys.exit(STARTUP_FAILURE)
    except KeyboardInterrupt:
        pass


def supervise(count: int, url: str, **options) -> None:
    """Run ``count`` server processes on ``options["params"]``'s host and port until interrupted.

    Args:
        count: how many processes.
        url: the address users open (logged).
        options: ``model``, ``params``, ``spelling``, ``cache_dir``, ``tls_cert``, ``tls_key`` and
            ``log_level``, as ``serve.run`` takes them.
    """
    from .serve import STARTUP_FAILURE

    params = options["params"]
    sock = _bind(params.host, params.port)
    context = multiprocessing.get_context("spawn")
    level = logging.getLogger().getEffectiveLevel()
    running: dict[int, tuple[multiprocessing.process.BaseProcess, object]] = {}  # number -> (process, its ready event)
    stopping = False

    def start(number: int) -> None:
        ready = context.Event()
        with _stderr_for_children() as quiet:
            proc = context.Process(target=_process, args=(sock, number, options, level, ready, quiet),
                                   name=f"fingerspell-{number}")
            proc.start()
        running[number] = (proc, ready)

    def stop(signum, frame) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = False
    try:
        for number in range(1, count + 1):
            start(number)
        log.info("%d server processes (pids %s) on %s; open %s in a browser", count,
                 ", ".join(str(p.pid) for p, _ in running.values()), params.port, url)
        while not stopping:
            multiprocessing.connection.wait([p.sentinel for p, _ in running.values()], timeout=0.5)
            for number, (proc, ready) in list(running.items()):
                if proc.exitcode is None or stopping:
                    continue
                if not ready.is_set():
                    log.error("server process %d exited with code %s as it started; stopping the others",
                              number, proc.exitcode)
                    failed = stopping = True
                    break
                log.warning("server process %d (pid %d) exited with code %s; its streams reconnect to the others; "
                            "starting another", number, proc.pid, proc.exitcode)
                start(number)
    finally:
        for proc, _ in running.values():
            if proc.is_alive():
                proc.terminate()
        deadline = time.monotonic() + STOP_WAIT_S
        for proc, _ in running.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        sock.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failed:
        sys.exit(STARTUP_FAILURE)
