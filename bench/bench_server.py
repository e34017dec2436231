"""Serving speed: the fingerspell server over WebSocket, and the tutorial's pipeline on the same frames.

Starts the real server (uvicorn, a subprocess on a free port), streams real 640x480 JPEG frames
made from the photos in ../shared/data over ``/ws`` - one frame in flight per client, as the page
does - and prints per-frame server time (from the answers' timings), round-trip latency, frames
per second for 1 and for 4 concurrent clients, and the server's memory. Then, in this process,
the tutorial's way: PIL decode, resize to 64x64 and ``model.predict`` of a 64x64 CNN of the
tutorial's size (random weights: only its speed matters here), per frame.

    python bench/bench_server.py                  # the bundled default model
    python bench/bench_server.py --model runs/x   # another bundle
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the live-server helpers the browser tests use
sys.path.insert(0, str(ROOT / "src"))

from _live import PeakRss, ServerProcess, letterbox  # noqa: E402

TARGETS = {  # what the server should reach on a laptop-class CPU
    "server_ms_median": 15.0,
    "fps_1_client": 25.0,
    "fps_4_clients": 60.0,
    "rss_mb": 500.0,
}
WARMUP = 5


def load_frames(data: Path, count: int, hold: int) -> list[bytes]:
    """``count`` JPEG frames (640x480, quality 80 like the page) from real photos, letters interleaved.

    Each photo is repeated ``hold`` times, as a held letter is in a video: the tracker follows the
    hand from frame to frame instead of searching the whole frame anew (``--hold 1``: worst case).
    """
    folders = [data / "roboflow_letters_train", data / "asl_alphabet_sample"]
    per_letter = []
    for folder in folders:
        if folder.is_dir():
            for letter in sorted(p.name for p in folder.iterdir() if p.is_dir()):
                per_letter.append(sorted((folder / letter).glob("*.jpg"))[:4])
    photos = [p for group in zip(*[g for g in per_letter if len(g) == 4]) for p in group]
    if not photos:
        sys.exit(f"no photos found under {data}; pass --data ../shared/data")
    frames = []
    for photo in photos[: -(-count // hold)]:
        buf = io.BytesIO()
        Image.fromarray(letterbox(photo)).save(buf, "JPEG", quality=80)
        frames += [buf.getvalue()] * hold
    while len(frames) < count:
        frames += frames[: count - len(frames)]
    return frames[:count]


def stream(port: int, frames: list[bytes], results: list, barrier: threading.Barrier | None = None) -> None:
    """One client: send a frame, wait for its answer, send the next."""
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{port}/ws", max_size=None, open_timeout=30) as ws:
        for frame in frames[:WARMUP]:
            ws.send(frame)
            ws.recv(timeout=30)
        if barrier is not None:
            barrier.wait()
        start = time.perf_counter()
        for frame in frames:
            t = time.perf_counter()
            ws.send(frame)
            answer = json.loads(ws.recv(timeout=30))
            rtt = (time.perf_counter() - t) * 1e3
            if answer.get("type") != "prediction":
                raise RuntimeError(f"unexpected answer: {answer}")
            results.append((rtt, answer["timings_ms"]["total"], answer["hand"] is not None, answer["timings_ms"]))
        results.append(("elapsed", time.perf_counter() - start))


def run_clients(port: int, frames: list[bytes], clients: int) -> dict:
    results: list[list] = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients)
    threads = [threading.Thread(target=stream, args=(port, frames, results[i], barrier)) for i in range(clients)]
    wall = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall
    rows = [r for res in results for r in res if r[0] != "elapsed"]
    elapsed = max(r[1] for res in results for r in res if r[0] == "elapsed")
    rtt = [r[0] for r in rows]
    server = [r[1] for r in rows]
    return {
        "clients": clients,
        "frames": len(rows),
        "server_ms_median": statistics.median(server),
        "server_ms_p95": float(np.percentile(server, 95)),
        "rtt_ms_median": statistics.median(rtt),
        "rtt_ms_p95": float(np.percentile(rtt, 95)),
        "fps_total": len(rows) / elapsed,
        "hands_found": sum(r[2] for r in rows) / len(rows),
        **{f"{stage}_ms_median": statistics.median(r[3].get(stage, 0.0) for r in rows)
           for stage in ("decode", "detect", "classify")},
    }


def tutorial_pipeline(frames: list[bytes], labels: int = 29) -> dict:
    """The tutorial's server: PIL decode, 64x64 resize, Keras ``model.predict`` per request."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((64, 64, 3)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(128, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5),
        layers.Dense(labels, activation="softmax"),
    ])

    def one(data: bytes) -> float:
        t = time.perf_counter()
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64))
        x = np.asarray(img, dtype=np.float32)[None] / 255.0
        model.predict(x, verbose=0)
        return (time.perf_counter() - t) * 1e3

    for frame in frames[:WARMUP]:
        one(frame)
    start = time.perf_counter()
    times = [one(frame) for frame in frames]
    elapsed = time.perf_counter() - start
    return {"ms_median": statistics.median(times), "ms_p95": float(np.percentile(times, 95)),
            "fps": len(times) / elapsed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle folder (default: the bundled default model)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="real photos")
    parser.add_argument("--frames", type=int, default=200, help="frames per client")
    parser.add_argument("--hold", type=int, default=10, help="frames per photo (a held letter; 1 = every frame new)")
    parser.add_argument("--no-tutorial", action="store_true", help="skip the Keras comparison")
    args = parser.parse_args(argv)

    import psutil

    frames = load_frames(args.data, args.frames, max(1, args.hold))
    print(f"{len(frames)} frames of 640x480 JPEG (mean {np.mean([len(f) for f in frames]) / 1024:.0f} KiB, "
          f"{args.hold} per photo), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    server = ServerProcess(args.model)
    try:
        server.start()
        print(f"server up in {server.started_in:.1f} s (process start to /health answering)")
        proc = psutil.Process(server.proc.pid)
        idle_mb = proc.memory_info().rss / 2**20
        peak = PeakRss(proc)
        with peak:
            one = run_clients(server.port, frames, 1)
        one_mb = peak.mb
        with peak:
            four = run_clients(server.port, frames, 4)
        rss_mb = peak.mb
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()

    def verdict(value, target, higher_better):
        ok = value >= target if higher_better else value <= target
        return "ok" if ok else "MISSED"

    print()
    print(f"{'measure':<38}{'1 client':>12}{'4 clients':>12}   target")
    print(f"{'server time per frame, median (ms)':<38}{one['server_ms_median']:>12.1f}{four['server_ms_median']:>12.1f}"
          f"   < {TARGETS['server_ms_median']:.0f} (1 client: {verdict(one['server_ms_median'], TARGETS['server_ms_median'], False)})")
    for stage in ("decode", "detect", "classify"):
        key = f"{stage}_ms_median"
        print(f"{'  of which ' + stage + ', median (ms)':<38}{one[key]:>12.1f}{four[key]:>12.1f}")
    print(f"{'server time per frame, p95 (ms)':<38}{one['server_ms_p95']:>12.1f}{four['server_ms_p95']:>12.1f}")
    print(f"{'round trip, median (ms)':<38}{one['rtt_ms_median']:>12.1f}{four['rtt_ms_median']:>12.1f}")
    print(f"{'round trip, p95 (ms)':<38}{one['rtt_ms_p95']:>12.1f}{four['rtt_ms_p95']:>12.1f}")
    print(f"{'frames/s, all clients':<38}{one['fps_total']:>12.1f}{four['fps_total']:>12.1f}"
          f"   >= {TARGETS['fps_1_client']:.0f} / >= {TARGETS['fps_4_clients']:.0f} "
          f"({verdict(one['fps_total'], TARGETS['fps_1_client'], True)} / "
          f"{verdict(four['fps_total'], TARGETS['fps_4_clients'], True)})")
    print(f"{'frames with a hand found':<38}{one['hands_found']:>12.0%}{four['hands_found']:>12.0%}")
    print(f"{'server memory, peak RSS (MB)':<38}{one_mb:>12.0f}{rss_mb:>12.0f}   < {TARGETS['rss_mb']:.0f} "
          f"({verdict(rss_mb, TARGETS['rss_mb'], False)}; {idle_mb:.0f} MB idle after start)")

    if not args.no_tutorial:
        tut = tutorial_pipeline(frames)
        print()
        print("tutorial pipeline (in this process, no HTTP: PIL decode + 64x64 resize + Keras model.predict)")
        print(f"{'time per frame, median (ms)':<38}{tut['ms_median']:>12.1f}")
        print(f"{'time per frame, p95 (ms)':<38}{tut['ms_p95']:>12.1f}")
        print(f"{'frames/s':<38}{tut['fps']:>12.1f}")
        print(f"fingerspell server time / tutorial time (medians): {one['server_ms_median'] / tut['ms_median']:.2f}"
              f"  (the server also finds the hand with MediaPipe; the tutorial classifies the whole frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
