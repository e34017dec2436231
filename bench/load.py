"""Load and soak: WebSocket clients streaming real hand frames, and clients posting to /predict.

Starts the real server itself (uvicorn in a subprocess on a free port of 127.0.0.1), drives it
over loopback for ``--duration`` seconds with plain ``websockets`` and ``httpx`` clients, stops it,
and prints per-window counts, latency percentiles and the server's memory, then one verdict line
per acceptance criterion. Exits 0 when every verdict passes, 1 otherwise.

    python bench/load.py --ws-clients 8 --fps 15 --predict-clients 2 --duration 60   # load
    python bench/load.py --ws-clients 1 --fps 0 --duration 600                       # soak
    python bench/load.py --model runs/x ...                                           # another bundle

Each WebSocket client sends 640x480 JPEG frames (quality 80, as the page sends them) made from the
photos in ../shared/data at ``--fps`` frames per second whatever the answers, like a camera; the
server answers each frame with a prediction, or with ``skipped`` where a newer frame replaced it
while it was busy. ``--fps 0`` keeps one frame in flight instead, as the page does: full speed
without skips. Each /predict client posts one frame, waits for the answer, and posts the next.

Counted: frames sent, answered (a prediction), skipped, errors (an error answer, an unexpected
close, a failed request, an error in the server log) and dropped (sent but never answered once the
clients have stopped and waited ``--drain`` seconds). Latency is from sending a frame to its
prediction. Memory is the resident set of the server process and its children (psutil).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the live-server helpers the browser tests use
sys.path.insert(0, str(ROOT / "src"))

from _live import ServerProcess, letterbox  # noqa: E402

# Bounds: this is a tool for one machine's loopback, not a way to flood anything.
MAX_WS_CLIENTS = 64
MAX_PREDICT_CLIENTS = 16
MAX_FPS = 60
MAX_DURATION = 3600
MEMORY_GROWTH_LIMIT = 0.10  # from the end of the first window to the end of the run
TREND_LIMIT = 0.05  # rise of the least-squares line through the window samples, as a share of window 1


# --------------------------------------------------------------------------- frames


def load_frames(data: Path, photos: int) -> list[bytes]:
    """640x480 JPEG frames (quality 80, like the page) of real photos, letters interleaved."""
    folder = data / "roboflow_letters_train"
    if not folder.is_dir():
        folder = data / "asl_alphabet_sample"
    if not folder.is_dir():
        sys.exit(f"no photos under {data}; pass --data ../shared/data")
    letters = sorted(p.name for p in folder.iterdir() if p.is_dir() and len(p.name) == 1)
    by_letter = [sorted((folder / letter).glob("*.jpg")) for letter in letters]
    chosen = [group[i] for i in range(max(map(len, by_letter))) for group in by_letter if i < len(group)]
    frames = []
    for path in chosen[:photos]:
        buf = io.BytesIO()
        Image.fromarray(letterbox(path)).save(buf, "JPEG", quality=80)
        frames.append(buf.getvalue())
    return frames


# --------------------------------------------------------------------------- what is counted


@dataclass
class Window:
    """Counts of one reporting window, by the time each event happened."""

    sent: int = 0
    answered: int = 0
    skipped: int = 0
    errors: int = 0
    latency_ms: list[float] = field(default_factory=list)
    predict_ok: int = 0
    predict_errors: int = 0
    predict_ms: list[float] = field(default_factory=list)
    rss_mb: float | None = None  # the last memory sample taken in the window


class Tally:
    def __init__(self, start: float, interval: float, windows: int):
        self.start = start
        self.interval = interval
        self.windows = [Window() for _ in range(windows)]
        self.error_samples: list[str] = []
        self.refused: list[str] = []  # close reasons of streams refused with 1013
        self.dropped = 0
        self.refused_frames = 0
        self.unexpected_closes = 0

    def at(self, t: float) -> Window:
        i = int((t - self.start) // self.interval)
        return self.windows[min(max(i, 0), len(self.windows) - 1)]

    def error(self, t: float, what: str, predict: bool = False) -> None:
        w = self.at(t)
        if predict:
            w.predict_errors += 1
        else:
            w.errors += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what)


# --------------------------------------------------------------------------- clients


async def ws_client(n: int, port: int, frames: list[bytes], hold: int, fps: float, stop_at: float, drain: float,
                    tally: Tally) -> None:
    """One stream: frames at ``fps`` (0: one in flight), every answer matched to its frame."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    sent_at: dict[int, float] = {}  # frame number (the server counts from 1) -> send time
    waiting = asyncio.Event()
    offset = n * len(frames) // 7  # clients start on different photos
    try:
        async with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=30) as ws:
            async def receive():
                try:
                    await read_answers()
                finally:
                    waiting.set()  # a sender waiting for an answer must not wait for ever

            async def read_answers():
                async for message in ws:
                    t = time.monotonic()
                    answer = json.loads(message)
                    kind, frame = answer.get("type"), answer.get("frame")
                    w = tally.at(t)
                    sent = sent_at.pop(frame, None)
                    if sent is None:
                        tally.error(t, f"stream {n}: an answer to no frame in flight: {str(answer)[:200]}")
                    elif kind == "prediction":
                        w.answered += 1
                        w.latency_ms.append((t - sent) * 1e3)
                    elif kind == "skipped":
                        w.skipped += 1
                    else:
                        tally.error(t, f"stream {n}: {str(answer)[:200]}")
                    if not sent_at:
                        waiting.set()

            receiver = asyncio.create_task(receive())
            try:
                k = 0
                start = time.monotonic()
                while True:
                    now = time.monotonic()
                    if now >= stop_at or receiver.done():
                        break
                    if fps > 0:
                        due = start + k / fps
                        if due > now:
                            await asyncio.sleep(min(due, stop_at) - now)
                            continue
                    waiting.clear()
                    frame = frames[(offset + k // hold) % len(frames)]
                    k += 1
                    sent_at[k] = time.monotonic()
                    tally.at(sent_at[k]).sent += 1
                    await ws.send(frame)
                    if fps <= 0:
                        await waiting.wait()
                if sent_at and not receiver.done():  # let the last answers arrive
                    try:
                        await asyncio.wait_for(waiting.wait(), drain)
                    except TimeoutError:
                        pass
                if receiver.done() and receiver.exception() is not None:
                    raise receiver.exception()  # the socket closed under the reader: handled below
                tally.dropped += len(sent_at)
            finally:
                receiver.cancel()
                if receiver.done() and not receiver.cancelled():
                    receiver.exception()  # retrieved, so asyncio does not warn about it
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd is not None else None
        if code == 1013:
            tally.refused.append(exc.rcvd.reason)
            tally.refused_frames += len(sent_at)  # sent before the refusal arrived; never read
        else:
            tally.unexpected_closes += 1
            tally.error(time.monotonic(), f"stream {n} closed: {exc}")
            tally.dropped += len(sent_at)
    except Exception as exc:  # noqa: BLE001 - counted and shown, never a crash of the whole run
        tally.unexpected_closes += 1
        tally.error(time.monotonic(), f"stream {n}: {type(exc).__name__}: {exc}")
        tally.dropped += len(sent_at)


async def predict_client(n: int, port: int, frames: list[bytes], stop_at: float, tally: Tally) -> None:
    """POST /predict, one request at a time, until the end."""
    import httpx

    k = n * 5
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        while time.monotonic() < stop_at:
            frame = frames[k % len(frames)]
            k += 1
            t = time.monotonic()
            try:
                r = await client.post("/predict", content=frame, headers={"content-type": "image/jpeg"})
            except httpx.HTTPError as exc:
                tally.error(time.monotonic(), f"predict {n}: {type(exc).__name__}: {exc}", predict=True)
                continue
            done = time.monotonic()
            if r.status_code == 200:
                w = tally.at(done)
                w.predict_ok += 1
                w.predict_ms.append((done - t) * 1e3)
            else:
                tally.error(done, f"predict {n}: HTTP {r.status_code} {r.text[:200]}", predict=True)


def server_rss_mb(proc) -> float:
    """Resident memory of the server and every process it started."""
    import psutil

    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


async def sample_memory(proc, tally: Tally, until: float, samples: list) -> None:
    while time.monotonic() < until:
        t = time.monotonic()
        mb = server_rss_mb(proc)
        samples.append((t - tally.start, mb))
        tally.at(t).rss_mb = mb
        await asyncio.sleep(1.0)


async def drive(args, port: int, frames: list[bytes], proc) -> tuple[Tally, list, float, float]:
    interval = args.interval
    windows = max(1, -(-int(args.duration) // int(interval)))
    start = time.monotonic()
    tally = Tally(start, interval, windows)
    stop_at = start + args.duration
    samples: list = []
    rss_start = server_rss_mb(proc)
    sampler = asyncio.create_task(sample_memory(proc, tally, stop_at, samples))
    clients = [ws_client(i, port, frames, args.hold, args.fps, stop_at, args.drain, tally)
               for i in range(args.ws_clients)]
    clients += [predict_client(i, port, frames, stop_at, tally) for i in range(args.predict_clients)]
    await asyncio.wait_for(asyncio.gather(*clients), args.duration + args.drain + 60)
    await sampler
    return tally, samples, rss_start, server_rss_mb(proc)


# --------------------------------------------------------------------------- report


def pct(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q):.1f}" if values else "-"


def print_table(tally: Tally, rss_start: float, rss_end: float) -> Window:
    head = (f"{'window':>12} {'sent':>7} {'answered':>9} {'skipped':>8} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'p99 ms':>8} | {'predict':>7} {'errors':>7} {'p50 ms':>8} {'p95 ms':>8} | {'RSS MB':>7}")
    print(head)
    print("-" * len(head))
    total = Window()
    print(f"{'start':>12} {'':>7} {'':>9} {'':>8} {'':>7} {'':>8} {'':>8} {'':>8} | {'':>7} {'':>7} {'':>8} {'':>8} "
          f"| {rss_start:7.0f}")
    for i, w in enumerate(tally.windows):
        a, b = i * tally.interval, (i + 1) * tally.interval
        label = f"{a / 60:g}-{b / 60:g} min" if tally.interval >= 60 else f"{a:g}-{b:g} s"
        rss = f"{w.rss_mb:7.0f}" if w.rss_mb is not None else f"{'-':>7}"
        print(f"{label:>12} {w.sent:7d} {w.answered:9d} {w.skipped:8d} {w.errors:7d} {pct(w.latency_ms, 50):>8} "
              f"{pct(w.latency_ms, 95):>8} {pct(w.latency_ms, 99):>8} | {w.predict_ok:7d} {w.predict_errors:7d} "
              f"{pct(w.predict_ms, 50):>8} {pct(w.predict_ms, 95):>8} | {rss}")
        for name in ("sent", "answered", "skipped", "errors", "predict_ok", "predict_errors"):
            setattr(total, name, getattr(total, name) + getattr(w, name))
        total.latency_ms += w.latency_ms
        total.predict_ms += w.predict_ms
    print("-" * len(head))
    print(f"{'all':>12} {total.sent:7d} {total.answered:9d} {total.skipped:8d} {total.errors:7d} "
          f"{pct(total.latency_ms, 50):>8} {pct(total.latency_ms, 95):>8} {pct(total.latency_ms, 99):>8} | "
          f"{total.predict_ok:7d} {total.predict_errors:7d} {pct(total.predict_ms, 50):>8} "
          f"{pct(total.predict_ms, 95):>8} |")
    print(f"{'after':>12} {'':>7} {'':>9} {'':>8} {'':>7} {'':>8} {'':>8} {'':>8} | {'':>7} {'':>7} {'':>8} {'':>8} "
          f"| {rss_end:7.0f}   (the clients gone)")
    return total


def verdicts(args, tally: Tally, total: Window, rss_end: float, log_errors: list[str]) -> list[tuple[bool, str]]:
    """(passed, line) for each acceptance criterion."""
    out = []
    errors = total.errors + total.predict_errors + len(log_errors)
    out.append((errors == 0, f"zero errors: {total.errors} in streams (of which {tally.unexpected_closes} unexpected "
                             f"closes), {total.predict_errors} from /predict, {len(log_errors)} in the server log"))
    accounted = total.answered + total.skipped + total.errors + tally.refused_frames
    refused = f" + {tally.refused_frames:,} on streams refused with 1013" if tally.refused else ""
    out.append((tally.dropped == 0 and accounted + tally.dropped == total.sent,
                f"every frame answered or explicitly skipped: {total.sent:,} sent = {total.answered:,} answered + "
                f"{total.skipped:,} skipped + {total.errors:,} errors{refused} + {tally.dropped:,} dropped"))
    have = bool(total.latency_ms) or not args.ws_clients
    out.append((have and (bool(total.predict_ms) or not args.predict_clients),
                f"p95 latency: stream {pct(total.latency_ms, 95)} ms (p99 {pct(total.latency_ms, 99)}), "
                f"/predict {pct(total.predict_ms, 95)} ms"))
    first, last = tally.windows[0].rss_mb, tally.windows[-1].rss_mb
    if first and last and len(tally.windows) > 1:
        growth = (last - first) / first
        out.append((growth < MEMORY_GROWTH_LIMIT,
                    f"server memory growth from the end of window 1 ({first:.0f} MB) to the end of the load "
                    f"({last:.0f} MB): {growth:+.1%} (limit {MEMORY_GROWTH_LIMIT:.0%}); {rss_end:.0f} MB once the "
                    "clients had gone"))
    points = [(i, w.rss_mb) for i, w in enumerate(tally.windows) if w.rss_mb is not None]
    if len(points) >= 5 and first:  # a trend needs a few points; short runs have the growth check
        x = np.array([p[0] for p in points], dtype=float)
        y = np.array([p[1] for p in points], dtype=float)
        slope = float(np.polyfit(x, y, 1)[0])
        rise = slope * (x[-1] - x[0])
        per = "min" if tally.interval == 60 else f"{tally.interval:g} s"
        out.append((rise < TREND_LIMIT * first,
                    f"no memory growth trend: least-squares slope {slope:+.2f} MB per {per}, {rise:+.1f} MB over "
                    f"the run (limit {TREND_LIMIT:.0%} of window 1 = {TREND_LIMIT * first:.0f} MB)"))
    if tally.refused:
        out.append((True, f"{len(tally.refused)} stream(s) refused beyond max_connections with close code 1013 "
                          f"(designed): {tally.refused[0]!r}"))
    return out


def server_log_errors(server: ServerProcess) -> list[str]:
    return [line for line in server.logs().splitlines()
            if line.startswith(("ERROR", "CRITICAL")) or "Traceback" in line or " ERROR " in line]


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ws-clients", type=int, default=8, help=f"WebSocket streams (<= {MAX_WS_CLIENTS})")
    ap.add_argument("--fps", type=float, default=15.0,
                    help=f"frames per second per stream (<= {MAX_FPS}); 0 = one frame in flight, full speed")
    ap.add_argument("--predict-clients", type=int, default=0,
                    help=f"clients posting to /predict (<= {MAX_PREDICT_CLIENTS})")
    ap.add_argument("--duration", type=float, default=60.0, help=f"seconds of load (<= {MAX_DURATION})")
    ap.add_argument("--model", help="bundle folder (default: the bundled default model)")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="real photos")
    ap.add_argument("--photos", type=int, default=52, help="distinct photos the frames are made from")
    ap.add_argument("--hold", type=int, default=15, help="frames per photo in a stream (a held letter)")
    ap.add_argument("--interval", type=float, help="seconds per table row (default: 60, or 10 for runs under 3 min)")
    ap.add_argument("--drain", type=float, default=10.0, help="seconds to wait for the last answers")
    args = ap.parse_args(argv)
    for name, value, top in (("--ws-clients", args.ws_clients, MAX_WS_CLIENTS), ("--fps", args.fps, MAX_FPS),
                             ("--predict-clients", args.predict_clients, MAX_PREDICT_CLIENTS),
                             ("--duration", args.duration, MAX_DURATION)):
        if not 0 <= value <= top:
            ap.error(f"{name} must be between 0 and {top}")
    if args.duration < 1 or args.ws_clients + args.predict_clients == 0:
        ap.error("give a --duration of at least 1 s and at least one client")
    if args.interval is None:
        args.interval = 60.0 if args.duration >= 180 else 10.0
    model = args.model
    if model is None:
        from fingerspell.bundle import DEFAULT_BUNDLE

        if not DEFAULT_BUNDLE.is_dir():
            sys.exit(f"the default model {DEFAULT_BUNDLE} is not there; pass --model a bundle folder")
    if model is not None and not Path(model).is_dir():
        sys.exit(f"--model {model}: no such folder")

    import psutil

    from fingerspell.bundle import load_meta, resolve

    meta = load_meta(model)
    frames = load_frames(args.data, args.photos)
    mode = f"{args.fps:g} fps each" if args.fps > 0 else "one frame in flight (full speed)"
    print(f"load: {args.ws_clients} stream(s) at {mode}, {args.predict_clients} /predict client(s), "
          f"{args.duration:g} s; model {resolve(model)} ({meta.kind}, {len(meta.labels)} labels); "
          f"{len(frames)} photos as 640x480 JPEG (mean {statistics.mean(map(len, frames)) / 1024:.0f} KiB), "
          f"{args.hold} frames per photo; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    server = ServerProcess(model, startup_timeout=120)
    try:
        server.start()
        proc = psutil.Process(server.proc.pid)
        limits = json.loads(urllib.request.urlopen(server.url + "/health", timeout=10).read())["limits"]
        print(f"server up in {server.started_in:.1f} s on 127.0.0.1:{server.port}; limits {limits}")
        tally, samples, rss_start, rss_end = asyncio.run(drive(args, server.port, frames, proc))
        log_errors = server_log_errors(server)
        alive = server.proc.poll() is None
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()
    print()
    total = print_table(tally, rss_start, rss_end)
    print()
    if tally.error_samples:
        print("first errors:")
        for line in tally.error_samples:
            print(f"  {line}")
    if log_errors:
        print("server log errors:")
        for line in log_errors[:10]:
            print(f"  {line}")
    results = verdicts(args, tally, total, rss_end, log_errors)
    results.append((alive, "the server was still running at the end"))
    for ok, text in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
