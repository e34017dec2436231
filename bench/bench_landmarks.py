"""Landmark pipeline speed on this machine: extraction, the classifier alone, and predict per frame.

Prints one table:

* landmark extraction, images/s: cold (a fresh cache folder) with 1 worker and with one per core,
  then cached (the same images again). Wall clock, including starting the worker processes;
* the classifier alone (the bundle's LiteRT export on the features of real hands): p50 / p95 per
  call in microseconds - the target is under 1 ms at p50;
* ``predict`` per 640x480 frame (real photos letterboxed to 640x480): ``Predictor.predict``
  (IMAGE mode, with detection retries) and ``Stream.predict`` (VIDEO mode, tracking), median and
  p95 in milliseconds.

    python bench/bench_landmarks.py                     # 200 images, the bundled default model
    python bench/bench_landmarks.py --n 500 --model runs/landmarks
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fingerspell import features
from fingerspell.bundle import DEFAULT_BUNDLE, TFLITE
from fingerspell.config import DetectParams
from fingerspell.dataset import scan
from fingerspell.extract import extract
from fingerspell.hands.model import TASK_NAME, ensure_hand_model
from fingerspell.images import read_image
from fingerspell.recognisers.litert import Classifier
from fingerspell.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
FRAME = (640, 480)


def pick(folders: list[Path], n: int) -> list[str]:
    """``n`` images spread evenly over every class of every folder."""
    samples = scan([str(f) for f in folders]).samples
    if n >= len(samples):
        return [s.path for s in samples]
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i].path for i in idx]


def letterbox(rgb: np.ndarray, size=FRAME) -> np.ndarray:
    """Fit inside ``size`` keeping the aspect ratio, with black bars: a webcam-sized frame."""
    w, h = size
    s = min(w / rgb.shape[1], h / rgb.shape[0])
    nw, nh = max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s))
    out = np.zeros((h, w, 3), np.uint8)
    x, y = (w - nw) // 2, (h - nh) // 2
    out[y : y + nh, x : x + nw] = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    return out


def percentiles(values: list[float]) -> tuple[float, float]:
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


def timed_extract(paths, cache: Path, workers: int) -> tuple[float, list]:
    t = time.perf_counter()
    res = extract(paths, DetectParams(), workers=workers, cache=cache, progress=False)
    return time.perf_counter() - t, res


def fresh_cache(hand_model: Path, parent: Path, name: str) -> Path:
    """An empty cache folder holding only the hand model (copied: nothing is downloaded)."""
    folder = parent / name
    folder.mkdir()
    shutil.copyfile(hand_model, folder / TASK_NAME)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder holding asl_alphabet_sample/ and roboflow_letters_train/, or one folder of "
                         "class folders (default: %(default)s)")
    ap.add_argument("--n", type=int, default=200, help="images to extract and predict (default: %(default)s)")
    ap.add_argument("--model", type=Path, help="bundle folder (default: the bundled model, src/fingerspell/models/default)")
    ap.add_argument("--calls", type=int, default=5000, help="classifier-only calls (default: %(default)s)")
    ap.add_argument("--frames", type=int, default=100, help="frames for the predict timings (default: %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    data = args.data.expanduser()
    sets = [data / "asl_alphabet_sample", data / "roboflow_letters_train"]
    folders = [f for f in sets if f.is_dir()] or [data]
    paths = pick(folders, args.n)
    cores = os.cpu_count() or 1
    hand_model = ensure_hand_model()
    rows: list[tuple[str, str, str]] = []
    print(f"{len(paths)} images from {', '.join(f.name for f in folders)}; {cores} CPU cores")

    with tempfile.TemporaryDirectory(prefix="bench-landmarks-") as tmp:
        tmp = Path(tmp)
        for workers in dict.fromkeys((1, cores)):  # once where there is one core
            cache = fresh_cache(hand_model, tmp, f"cold-{workers}")
            secs, res = timed_extract(paths, cache, workers)
            rows.append((f"extract, cold, {workers} worker{'s' if workers > 1 else ''}",
                         f"{len(paths) / secs:,.1f} images/s", f"{secs:.1f} s incl. worker start-up"))
        secs, res = timed_extract(paths, cache, cores)
        assert all(r.cached or r.error for r in res), "the second run was expected to be all cache hits"
        rows.append(("extract, cached", f"{len(paths) / secs:,.0f} images/s", f"{secs * 1e3:.0f} ms"))
        found = [r.hand for r in res if r.hand is not None]
        rows.append(("hands found", f"{len(found)} of {len(paths)}",
                     f"{sum(r.error is not None for r in res)} unreadable"))

    bundle = args.model.expanduser() if args.model else DEFAULT_BUNDLE
    if not (bundle / TFLITE).is_file():
        print(f"\nno model bundle at {bundle}: give --model to time the classifier and predict")
        return _table(rows)

    predictor = Predictor.from_bundle(bundle, hand_model=hand_model)
    if predictor.kind == "landmarks" and found:
        clf = Classifier(bundle / TFLITE)
        x = features.from_points(np.stack([h.pixel_points() for h in found]),
                                 np.array([h.handedness == "Left" for h in found]))
        for row in x[:50]:  # warm-up
            clf(row)
        times = []
        for k in range(args.calls):
            t = time.perf_counter()
            clf(x[k % len(x)])
            times.append((time.perf_counter() - t) * 1e6)
        p50, p95 = percentiles(times)
        rows.append(("classifier only (LiteRT)", f"p50 {p50:,.1f} us, p95 {p95:,.1f} us",
                     f"{args.calls:,} calls; target p50 < 1,000 us: {'met' if p50 < 1000 else 'MISSED'}"))
        features_us = []
        for h in found[:200]:
            t = time.perf_counter()
            features.from_hand(h)
            features_us.append((time.perf_counter() - t) * 1e6)
        f50, f95 = percentiles(features_us)
        rows.append(("features from a hand (numpy)", f"p50 {f50:,.1f} us, p95 {f95:,.1f} us", ""))

    frames = [letterbox(read_image(p)) for p in paths[: args.frames]]
    predictor.predict(frames[0])  # warm-up
    image_ms, image_hands = [], 0
    for f in frames:
        pred = predictor.predict(f)
        image_ms.append(pred.timings["total"])
        image_hands += pred.hand is not None
    m, p95 = statistics.median(image_ms), float(np.percentile(image_ms, 95))
    rows.append((f"predict, IMAGE mode, {FRAME[0]}x{FRAME[1]}", f"median {m:.1f} ms, p95 {p95:.1f} ms",
                 f"{len(frames)} frames, hand in {image_hands}"))

    # VIDEO mode: each photo held for a few frames at 30 frames/s, as a webcam would show it
    video_ms, video_hands, ts = [], 0, 0
    with predictor.stream() as stream:
        stream.predict(frames[0], ts)  # warm-up
        for f in frames:
            for _ in range(3):
                ts += 33
                pred = stream.predict(f, ts)
                video_ms.append(pred.timings["total"])
                video_hands += pred.hand is not None
    m, p95 = statistics.median(video_ms), float(np.percentile(video_ms, 95))
    rows.append((f"predict, VIDEO mode, {FRAME[0]}x{FRAME[1]}", f"median {m:.1f} ms, p95 {p95:.1f} ms",
                 f"{len(video_ms)} frames (each photo 3 frames), hand in {video_hands}"))
    predictor.close()
    _table(rows)


def _table(rows) -> None:
    widths = [max(len(r[i]) for r in rows + [("what", "speed", "notes")]) for i in range(3)]
    print()
    for r in [("what", "speed", "notes"), tuple("-" * w for w in widths)] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


if __name__ == "__main__":
    main()
