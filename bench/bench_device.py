"""On-device mode's server side: CPU per landmark message, and streams one server process holds.

Two measurements, each with the frame path's figure beside it in the same run:

1. **CPU per message**, in this process, on the same clip of real photos (../shared/data; each
   photo held like a letter, blank frames between): what the server does with one hand message
   (JSON in, ``Stream.push``: features and recognisers, the decoder, JSON out) against what it
   does with one JPEG frame (decode, find the hand, the same recognisers and decoder, JSON out).
   CPU time of the process (``time.process_time``: MediaPipe's own threads included).
2. **Streams held**: the real server (a subprocess, its threads pinned to one core, or two with
   ``--workers 2``) and simulated pages over WebSocket, each sending 30 messages a second with
   one in flight, as the page does. A level holds where the answer time's p95 is under 50 ms
   and 95% of the messages asked for were answered. Levels rise until one does not hold.

    python bench/bench_device.py                  # both (~4 minutes on 2 cores)
    python bench/bench_device.py --skip-streams   # only the CPU per message

The landmarker's own speed in Chromium, and the two modes' agreement, are bench/bench_landmarker.py.
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
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the live-server helpers the browser tests use
sys.path.insert(0, str(ROOT / "src"))

from _live import ServerProcess, blank_frame, letterbox  # noqa: E402

RATE = 30.0  # messages a second a page sends (a camera's frame rate)
P95_MS = 50.0  # the answer time a held level keeps under, at the 95th percentile
TARGETS = {"cpu_ms_p50": 0.3, "streams_one_core": 100}
HOLD, GAP = 8, 4  # frames a photo is held, blank frames between photos
LETTERS = "ABCDEFGHIKLMNOPQRSTUVWXY"  # J and Z move


def clip(data: Path, per_letter: int) -> list[np.ndarray]:
    """640x480 RGB frames: ``per_letter`` photos of each letter, each held, blank frames between."""
    folder = data / "roboflow_letters_train"
    if not folder.is_dir():
        sys.exit(f"no photos under {data}; pass --data ../shared/data")
    wall, frames = blank_frame(), []
    for i in range(per_letter):
        for letter in LETTERS:
            photos = sorted((folder / letter).glob("*.jpg"))
            if i < len(photos):
                frames += [letterbox(photos[i])] * HOLD + [wall] * GAP
    return frames


def jpeg(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=80)  # as the page sends it
    return buf.getvalue()


def percentiles(values) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


# --------------------------------------------------------------------------- 1. CPU per message


def cpu_per_message(frames: list[np.ndarray], model) -> dict:
    """Process CPU ms per frame and per hand message, as the server handles each; and the hands.

    Each goes through the server's own code for it (``server/recognise.py``: the frame's or the
    hand's prediction, the decoder, the answer) and the answer is written as JSON, as it is sent.
    """
    from types import SimpleNamespace

    from fingerspell.decoding import english, make_decoder
    from fingerspell.predictor import Predictor
    from fingerspell.records import hand_to_json
    from fingerspell.server import recognise
    from fingerspell.server.device import parse_hand_message
    from fingerspell.server.settings import resolve

    settings = resolve()
    lexicon = english()
    predictor = Predictor.from_bundle(model)
    sent = [jpeg(f) for f in frames]
    times: dict[str, list[float]] = {"frame": [], "hand": []}
    hands = []
    try:
        for path in ("frame", "hand"):
            decoder = make_decoder(settings.decoding, lexicon, settings.vocab, settings.spelling)
            with predictor.stream() as stream:
                conn = SimpleNamespace(stream=stream, decoder=decoder, personal=None, settings=settings, cid=0,
                                       warmed=True)
                for i, data in enumerate(sent * 2):  # twice round: the first warms
                    t_ms = i * 33
                    if path == "hand":
                        message = json.dumps({"type": "hand", "v": 1, "t_ms": t_ms,
                                              "hand": hand_to_json(hands[i % len(hands)])})
                    started = time.process_time()
                    if path == "frame":
                        pred, answer = recognise.frame(conn, i, data, False, None)
                        answer["spelling"] = recognise.update(conn, pred, t_ms)
                    else:
                        answer = recognise.hand(conn, i, parse_hand_message(json.loads(message)), False, t_ms)
                    json.dumps(answer, allow_nan=False)
                    ms = (time.process_time() - started) * 1e3
                    if i >= len(sent):
                        times[path].append(ms)
                    elif path == "frame":
                        hands.append(pred.hand)
    finally:
        predictor.close()
    return {"times": times, "hands": hands}


# --------------------------------------------------------------------------- 2. streams held


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of ``pid`` and of its children onto ``cores`` (new threads inherit it)."""
    import psutil

    for proc in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        for thread in proc.threads():
            try:
                os.sched_setaffinity(thread.id, cores)
            except OSError:
                pass


async def page(url: str, messages: list, device: bool, until: float, latencies: list, counts: list) -> None:
    """One simulated page: a message every 1/RATE s, one in flight, each answer timed."""
    from websockets.asyncio.client import connect

    async with connect(url, max_size=None, open_timeout=60) as ws:
        if device:
            await ws.send(json.dumps({"type": "config", "mode": "device"}))
            await ws.recv()
        offset = hash(id(ws)) % len(messages)
        await asyncio.sleep((offset % 97) / 97 / RATE)  # pages' cameras tick out of step with one another
        k, start = 0, time.monotonic()
        while time.monotonic() < until:
            due = start + k / RATE
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            message = messages[(offset + k) % len(messages)]
            if device:
                message = message.replace('"t_ms": 0', f'"t_ms": {int((time.monotonic() - start) * 1000)}', 1)
            t = time.monotonic()
            await ws.send(message)
            answer = json.loads(await ws.recv())
            if answer.get("type") == "prediction":
                latencies.append((time.monotonic() - t) * 1e3)
            counts.append(answer.get("type") == "prediction")
            k += 1


async def level(port: int, streams: int, messages: list, device: bool, seconds: float) -> dict:
    latencies, counts = [], []
    until = time.monotonic() + 2.0 + seconds  # 2 s to connect; counted from the whole run
    tasks = [page(f"ws://127.0.0.1:{port}/ws", messages, device, until, latencies, counts) for _ in range(streams)]
    started = time.monotonic()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    failed = [r for r in results if isinstance(r, BaseException)]
    answered = sum(counts)
    p50, p95 = percentiles(latencies) if latencies else (float("inf"), float("inf"))
    rate = answered / elapsed
    held = not failed and p95 < P95_MS and rate >= 0.95 * streams * RATE * seconds / (seconds + 2.0)
    return {"streams": streams, "p50": p50, "p95": p95, "rate": rate, "failed": len(failed), "held": held}


def streams_held(model, workers: int, cores: set[int], messages: list, device: bool, steps, seconds: float):
    env = {"FINGERSPELL_MAX_CONNECTIONS": "2000", "FINGERSPELL_STREAM_IDLE_S": "600"}
    server = ServerProcess(model, env=env, workers=workers)
    rows = []
    try:
        server.start()
        time.sleep(15 if workers > 1 else 0)  # the other process loads its model and lexicon
        pin(server.proc.pid, cores)
        for n in steps:
            row = asyncio.run(level(server.port, n, messages, device, seconds))
            rows.append(row)
            print(f"  {'hands' if device else 'frames'} x{workers} process(es) on {len(cores)} core(s): {n:4d} streams: "
                  f"p50 {row['p50']:.1f} ms, p95 {row['p95']:.1f} ms, {row['rate']:.0f} answers/s"
                  f"{'' if row['held'] else '  (not held)'}", flush=True)
            if not row["held"]:
                break
    except BaseException:
        print(server.logs())
        raise
    finally:
        server.stop()
    held = [r["streams"] for r in rows if r["held"]]
    return max(held) if held else 0, rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="bundle folder (default: the bundled default model)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data", help="real photos")
    parser.add_argument("--per-letter", type=int, default=2, help="photos of each letter in the clip")
    parser.add_argument("--seconds", type=float, default=6.0, help="how long each level of streams runs")
    parser.add_argument("--skip-streams", action="store_true", help="only the CPU per message")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {1})  # the bench's own work on the second core; the server gets the first

    frames = clip(args.data, args.per_letter)
    print(f"{len(frames)} frames (640x480; {args.per_letter} photos a letter, {len(LETTERS)} letters), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}", flush=True)
    cpu = cpu_per_message(frames, args.model)
    frame_cpu, hand_cpu = percentiles(cpu["times"]["frame"]), percentiles(cpu["times"]["hand"])
    found = sum(h is not None for h in cpu["hands"]) / len(cpu["hands"])
    print(f"hands found by the server in {found:.0%} of the clip's frames (blank ones included)", flush=True)

    held = {}
    if not args.skip_streams:
        from fingerspell.records import hand_to_json

        hand_messages = [json.dumps({"type": "hand", "v": 1, "t_ms": 0, "hand": hand_to_json(h)}) for h in cpu["hands"]]
        sent = [jpeg(f) for f in frames]
        steps = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 120, 150, 200)
        held["hands 1"] = streams_held(args.model, 1, {0}, hand_messages, True, steps, args.seconds)
        held["frames 1"] = streams_held(args.model, 1, {0}, sent, False, (1, 2, 3, 4, 6, 8), args.seconds)
        os.sched_setaffinity(0, {0, 1})  # with two processes the server has both cores, and shares them
        held["hands 2"] = streams_held(args.model, 2, {0, 1}, hand_messages, True, steps, args.seconds)
        held["frames 2"] = streams_held(args.model, 2, {0, 1}, sent, False, (1, 2, 3, 4, 6, 8), args.seconds)

    print()
    print(f"{'measure':<58}{'landmarks':>12}{'frames':>12}   target")
    print(f"{'server CPU per message, p50 (ms)':<58}{hand_cpu[0]:>12.3f}{frame_cpu[0]:>12.2f}   landmarks <= "
          f"{TARGETS['cpu_ms_p50']} ({'ok' if hand_cpu[0] <= TARGETS['cpu_ms_p50'] else 'MISSED'})")
    print(f"{'server CPU per message, p95 (ms)':<58}{hand_cpu[1]:>12.3f}{frame_cpu[1]:>12.2f}")
    if held:
        one, two = (held["hands 1"][0], held["frames 1"][0]), (held["hands 2"][0], held["frames 2"][0])
        print(f"{'streams held at 30/s, p95 < 50 ms: 1 process, 1 core':<58}{one[0]:>12d}{one[1]:>12d}   landmarks >= "
              f"{TARGETS['streams_one_core']} ({'ok' if one[0] >= TARGETS['streams_one_core'] else 'MISSED'})")
        print(f"{'streams held at 30/s, p95 < 50 ms: --workers 2, 2 cores*':<58}{two[0]:>12d}{two[1]:>12d}")
        print("* the simulated pages run on the same 2 cores as the two server processes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
