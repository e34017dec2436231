"""Who may talk to the server, and what every answer carries.

* ``HostAllowList``: a request or stream whose ``Host`` is not an allowed host is answered 421
  (against DNS rebinding); ``resolve_allowed_hosts`` says which hosts are allowed.
* ``origin_allowed``: a browser page opening the stream must come from an allowed host on the
  port it talks to, or be listed in ``cors_origins``.
* ``SecurityHeaders``: no framing, no sniffing, no referrer, and a Content-Security-Policy on
  every HTTP answer (``security_headers`` gives them to uvicorn's own 400 too).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

from ..config import ConfigError, ServeParams

HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(host: str) -> bool:
    """True where ``host`` only accepts connections from this computer."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_and_port(value: str) -> tuple[str, int | None] | None:
    """``"Name:5000"`` -> ``("name", 5000)``, addresses in one spelling (IPv6 in brackets); None if malformed."""
    if not value or not HOST_RE.match(value):
        return None
    if value.startswith("["):
        name, _, port = value.partition("]")
        name, port = name + "]", port[1:]
    else:
        name, _, port = value.partition(":")
    try:
        name = f"[{ipaddress.IPv6Address(name[1:-1]).compressed}]" if name.startswith("[") else \
            str(ipaddress.IPv4Address(name))
    except ValueError:
        pass  # a name, not an address
    return name.lower().rstrip("."), int(port) if port else None


def _machine_names(bind: str) -> set[str]:
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        if not ipaddress.ip_address(bind.strip("[]")).is_unspecified:
            names.add(bind)
    except ValueError:
        names.add(bind)  # bound to a name
    try:
        names.update(str(info[4][0]) for info in socket.getaddrinfo(socket.gethostname(), None))
    except OSError:
        pass
    return names


def resolve_allowed_hosts(params: ServeParams) -> frozenset[str]:
    """The host names (no port) requests may be addressed to: the loopback names, and
    ``params.allowed_hosts`` or, where none are named and the bind is not loopback, the bind
    address and this machine's names.

    Raises:
        ConfigError: a named host is not a host name or IP address.
    """
    named = params.allowed_hosts
    if not named and not is_loopback(params.host):
        named = _machine_names(params.host)
    hosts = set(LOOPBACK_NAMES)
    for name in named:
        name = name.strip()
        if name.count(":") > 1 and not name.startswith("["):
            name = f"[{name}]"  # a bare IPv6 address
        parsed = host_and_port(name)
        if parsed is None:
            raise ConfigError(f"allowed host {name!r} is not a host name or IP address")
        hosts.add(parsed[0])
    return frozenset(hosts)


class HostAllowList:
    """ASGI middleware: a request or stream whose ``Host`` is not an allowed host is answered 421.

    Without it a web page on any name that resolves to 127.0.0.1 (DNS rebinding) could reach a
    server on this machine from the user's own browser, with the origin check comparing the
    attacker's Origin with the attacker's Host. Ports are not checked: a tunnel may change them.
    """

    def __init__(self, app, allowed: frozenset[str]):
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        parsed = host_and_port(host)
        if parsed is not None and parsed[0] in self.allowed:
            return await self.app(scope, receive, send)
        shown = f"Host {json.dumps(host[:80])}" if host else "a request without a Host header"
        message = (f"this server does not answer {shown}: open it as localhost or 127.0.0.1, or start it "
                   "with --allowed-host NAME (FINGERSPELL_ALLOWED_HOSTS)")
        # For a WebSocket, Starlette sends this as the handshake's denial response.
        await JSONResponse({"error": message}, status_code=421)(scope, receive, send)


def origin_allowed(headers, params: ServeParams, hosts: frozenset[str]) -> bool:
    """Browsers send Origin with every WebSocket; other clients usually send none.

    A page's origin must name an allowed host, on the port this request came to (another port
    is another program's page), unless ``cors_origins`` lists it.
    """
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in params.cors_origins or origin in params.cors_origins:
        return True
    page, here = host_and_port(urlsplit(origin).netloc), host_and_port(headers.get("host") or "")
    return page is not None and here is not None and page[0] in hosts and page[1] == here[1]


def security_headers(host: str | None = None, path: str = "") -> list[tuple[bytes, bytes]]:
    """The headers every HTTP answer carries, for a request to ``host`` (its header) and ``path``."""
    # The page needs its own scripts and styles, the camera (blob:/mediastream: video) and a
    # WebSocket back to this host. 'self' covers ws(s) of the same host in CSP 3, but not in
    # every browser yet, so the host is named as well where its header looks like a host name.
    connect = "'self'"
    if host and HOST_RE.match(host):
        connect += f" ws://{host} wss://{host}"
    if path == "/docs":
        # FastAPI's Swagger UI page starts it with an inline script; only on /docs.
        scripts = styles = "'self' 'unsafe-inline'"
        images = "'self' data:"
    else:
        # The page's hand landmarker is WebAssembly: compiling it needs 'wasm-unsafe-eval' (no
        # eval of strings). Without it the SIMD check fails silently and so does the fallback.
        scripts, styles = "'self' 'wasm-unsafe-eval'", "'self'"
        images = "'self' data: blob:"
    csp = (
        f"default-src 'self'; script-src {scripts}; style-src {styles}; img-src {images}; "
        f"media-src 'self' blob: mediastream:; connect-src {connect}; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return [
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]


_SECURITY_NAMES = {k for k, _ in security_headers()}


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        path = scope.get("path", "")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _SECURITY_NAMES]
                message = {**message, "headers": headers + security_headers(host, path)}
            await send(message)

        await self.app(scope, receive, send_with_headers)
