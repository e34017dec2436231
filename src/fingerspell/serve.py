"""``fingerspell serve``: the web app (``fingerspell.server``) under uvicorn until Ctrl-C.

The CLI side of the server: where to listen, TLS, and uvicorn's options (``server/transport.py``
holds its protocol subclasses). The app itself, and the model it loads, are ``create_app``'s.
Only the CLI imports this module.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import socket
import sys
from pathlib import Path

from .config import ConfigError, ServeParams
from .decoding import SpellingParams

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 64 * 1024  # request line and headers; browsers send a few KiB
# uvicorn drops larger messages itself (1009, no reason); ours, a little lower, says why.
WS_TRANSPORT_SLACK = 64 * 1024
STARTUP_FAILURE = 3  # uvicorn's exit code for a server that never started


def check_listen(host: str, port: int) -> None:
    """Refuse, in one line, a port or host the server could not listen on, before anything starts.

    A probe socket is bound the way uvicorn binds (``SO_REUSEADDR``) and closed again.

    Raises:
        ConfigError: the port is out of range or in use, or the host is not an address here.
    """
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ConfigError(f"port {port} is not a port number: give --port a number from 1 to 65535")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError):
        raise ConfigError(f"--host {host!r} is not an address or a name this machine can resolve") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(f"port {port} on {host} is already in use (another server?); stop it or give "
                                  "--port another number") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(f"--host {host} is not an address of this machine") from None
            if exc.errno == errno.EACCES:
                raise ConfigError(f"port {port} needs administrator rights here; give --port 1024 or above") from None
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run(host: str | None = None, port: int | None = None, model=None, tls_cert: str | None = None,
        tls_key: str | None = None, *, cache_dir=None, params: ServeParams | None = None,
        spelling: SpellingParams | None = None, log_level: str = "info", allowed_hosts=None,
        workers: int | None = None) -> None:
    """Serve the app with uvicorn until interrupted (what ``fingerspell serve`` calls).

    The model is loaded (in the app's lifespan) before the server listens, so a missing or
    corrupt bundle is reported as its typed error, not as a failed startup. The page's own hand
    landmarker is fetched first where it is not cached (``fingerspell setup`` does the same);
    where it cannot be had, the page finds hands on the server.

    Args:
        host, port: where to listen; None takes them from ``params`` (127.0.0.1:5000 by default).
        model: a bundle folder, or None for ``$FINGERSPELL_MODEL`` or the bundled default.
        tls_cert, tls_key: PEM files; with them the page works from other devices (browsers
            allow the camera only on https or localhost).
        cache_dir: where the hand model is cached (None: ``$FINGERSPELL_CACHE_DIR`` or the user cache).
        params: server limits; None reads ``FINGERSPELL_*`` variables over the defaults.
        spelling: the spelling decoder's settings.
        log_level: uvicorn's log level.
        allowed_hosts: host names to answer besides the loopback names (``--allowed-host``);
            None takes them from ``params``.
        workers: server processes on the one port (None: ``params.workers``); see ``workers.py``.

    Raises:
        ConfigError: only one of the TLS files, a file that does not exist, or a port or host
            it cannot listen on (``check_listen``).
        BundleError, HandModelError: the model cannot be loaded.
    """
    from .server import create_app, params_from_env
    from .server.security import is_loopback, resolve_allowed_hosts

    params = params or params_from_env()
    params = dataclasses.replace(params, host=host or params.host, port=params.port if port is None else port,
                                 workers=params.workers if workers is None else workers)
    if allowed_hosts:
        params = dataclasses.replace(params, allowed_hosts=tuple(allowed_hosts))
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("give both --tls-cert and --tls-key, or neither")
    for path in (tls_cert, tls_key):
        if path and not Path(path).is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    if params.workers < 1:
        raise ConfigError(f"--workers {params.workers}: give 1 or more server processes")
    check_listen(params.host, params.port)
    if not is_loopback(params.host):
        log.warning("listening on %s: frames will be accepted from the network (use --host 127.0.0.1 to keep "
                    "the server to this computer)", params.host)
        log.info("answering requests addressed to %s (name others with --allowed-host)",
                 ", ".join(sorted(resolve_allowed_hosts(params))))
    app = create_app(model, params, spelling, cache_dir=cache_dir)  # checks the settings before anything starts
    _fetch_browser_assets(cache_dir)
    scheme = "https" if tls_cert else "http"
    shown = "localhost" if params.host in ("127.0.0.1", "::1") else params.host
    url = f"{scheme}://{shown}:{params.port}/"
    if params.workers > 1:
        from .workers import supervise

        supervise(params.workers, url, model=model, params=params, spelling=spelling, cache_dir=cache_dir,
                  tls_cert=tls_cert, tls_key=tls_key, log_level=log_level)
        return
    serve_app(app, url=url, **uvicorn_options(params, tls_cert, tls_key, log_level))


def uvicorn_options(params: ServeParams, tls_cert=None, tls_key=None, log_level: str = "info") -> dict:
    """``uvicorn.Config``'s options for ``params``: where to listen, TLS, and the protocols."""
    from .server.security import security_headers
    from .server.transport import protocols

    # h11, not httptools: httptools takes request headers of any size (a never-ending header
    # grows the server without bound); h11 refuses a request line and headers over 64 KiB with
    # 400. transport.py adds the deadlines uvicorn lacks (request head, a peer that reads nothing).
    http, ws = protocols(params, MAX_HEADER_BYTES, security_headers)
    # No permessage-deflate: compressing every ~1 KB answer (and inflating every hand message)
    # was a sixth of the server's CPU a message in on-device mode, to save a few KB/s a stream.
    return dict(host=params.host, port=params.port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                ws_max_size=params.max_message_bytes + WS_TRANSPORT_SLACK, ws_per_message_deflate=False,
                log_level=log_level, server_header=False,
                reload=False, timeout_graceful_shutdown=3, http=http, ws=ws,
                h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def _fetch_browser_assets(cache_dir) -> None:
    """The page's hand landmarker, fetched on the first start; without it the page uses server mode."""
    from .errors import HandModelError
    from .hands import ensure_browser_assets

    try:
        ensure_browser_assets(cache_dir)
    except HandModelError as exc:
        log.warning("the page will find hands on the server (frames are sent): %s", exc)


def serve_app(app, url: str | None = None, sockets=None, on_ready=None, **options) -> None:
    """``uvicorn.run(app, **options)``, with the app's lifespan entered before anything listens.

    So the model loads first, and one that cannot be loaded raises its typed error from here
    (the CLI's one line and exit code) instead of uvicorn's logged traceback. ``url`` is logged
    once it has loaded. Ctrl-C after the start stops the server quietly, as with ``uvicorn.run``.
    ``sockets``: listening sockets to serve on (a worker process's, bound by its supervisor);
    ``on_ready()`` is called once the model has loaded.
    """
    import uvicorn

    class Server(uvicorn.Server):
        async def serve(self, sockets=None):
            async with app.router.lifespan_context(app):
                if url:
                    log.info("open %s in a browser", url)
                if on_ready is not None:
                    on_ready()
                await super().serve(sockets)

    server = Server(uvicorn.Config(app, lifespan="off", **options))
    try:
        server.run(sockets=sockets)
    except KeyboardInterrupt:
        if not server.started:
            raise
    if not server.started:
        sys.exit(STARTUP_FAILURE)
