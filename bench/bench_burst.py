"""A burst of concurrent large ``POST /predict`` requests: the server's memory and its answers.

Starts the real server (uvicorn in a subprocess on a free port of 127.0.0.1, the bundled model),
posts one warm-up image, then sends ``--clients`` JSON posts at once, each a data URL of a
photo-noise JPEG of about ``--mb`` MB (7.8 MB of JSON is just under the 8 MiB body limit). Prints
the server's resident memory before, at its peak during the burst, and ``--settle`` seconds after
it, and how many requests got each status. Exits 1 when any answer was a 5xx other than the
documented 503 (busy, with Retry-After), or when a request failed outright.

    python bench/bench_burst.py                              # 100 posts of 7.8 MB
    python bench/bench_burst.py --env MALLOC_ARENA_MAX=2     # the same, with the server's malloc tuned
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import io
import json
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the live-server helpers the tests use
sys.path.insert(0, str(ROOT / "src"))

from _live import PeakRss, ServerProcess  # noqa: E402

MAX_CLIENTS = 100  # a tool for one machine's loopback, not a way to flood anything


def noise_jpeg(mb: float, seed: int = 0) -> bytes:
    """A whole JPEG of noise whose base64 data URL is at most, and close to, ``mb`` MB."""
    rng = np.random.default_rng(seed)
    target = mb * 1e6 * 3 / 4
    side, best = 1200, b""
    for _ in range(8):  # noise compresses about the same at any size: a few steps converge
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side * 3 // 4, side, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        if len(best) < buf.tell() <= target:
            best = buf.getvalue()
        side = int(side * (0.995 * target / buf.tell()) ** 0.5)
    return best


def rss_mb(proc: psutil.Process) -> float:
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


async def burst(url: str, body: bytes, clients: int) -> tuple[collections.Counter, list[str]]:
    statuses, failures = collections.Counter(), []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=180) as http:
        async def one():
            try:
                r = await http.post(url + "/predict", content=body, headers={"content-type": "application/json"})
                statuses[r.status_code] += 1
                if r.status_code == 503 and r.headers.get("retry-after") is None:
                    failures.append("a 503 without Retry-After")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")

        await asyncio.gather(*(one() for _ in range(clients)))
    return statuses, failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=100, help=f"concurrent posts (<= {MAX_CLIENTS})")
    ap.add_argument("--mb", type=float, default=7.8, help="size of each JSON body in MB (default: %(default)s)")
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after the burst before memory is read again")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="environment for the server")
    args = ap.parse_args(argv)
    if not 1 <= args.clients <= MAX_CLIENTS:
        ap.error(f"--clients must be 1..{MAX_CLIENTS}")
    image = noise_jpeg(args.mb * 0.999)
    body = json.dumps({"image": "data:image/jpeg;base64," + base64.b64encode(image).decode()}).encode()
    env = dict(item.split("=", 1) for item in args.env)
    with ServerProcess(None, env=env) as server:
        proc = psutil.Process(server.proc.pid)
        warm = httpx.post(server.url + "/predict", content=body, headers={"content-type": "application/json"},
                          timeout=120)
        time.sleep(1)
        before = rss_mb(proc)
        t = time.monotonic()
        with PeakRss(proc, interval=0.02) as peak:
            statuses, failures = asyncio.run(burst(server.url, body, args.clients))
        took = time.monotonic() - t
        time.sleep(args.settle)
        after = rss_mb(proc)
        log = server.logs()
    bad = {code: n for code, n in statuses.items() if code >= 500 and code != 503}
    print(f"body {len(body):,} bytes (JPEG {len(image):,} bytes; warm-up answered {warm.status_code}); "
          f"{args.clients} concurrent posts in {took:.1f} s; server env {env or 'as given'}")
    print(f"server RSS: {before:.0f} MB before, {peak.mb:.0f} MB peak, {after:.0f} MB {args.settle:g} s after")
    print("statuses: " + ", ".join(f"{code} x{n}" for code, n in sorted(statuses.items())))
    for f in failures[:5]:
        print(f"failed: {f}")
    tracebacks = log.count("Traceback")
    print(f"server log: {tracebacks} tracebacks")
    ok = not bad and not failures and not tracebacks
    print("PASS" if ok else "FAIL: " + ", ".join(filter(None, [bad and f"5xx {bad}", failures and "failures",
                                                              tracebacks and "tracebacks"])))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
