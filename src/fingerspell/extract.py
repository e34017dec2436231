"""Landmarks for many image files: worker processes, a progress bar, and a content-hash cache.

The cache key is the file's sha256 plus the detection settings and the hand model's sha256, so
a second training run re-detects nothing, a renamed file is still a hit, and changing a
detection setting can never return stale landmarks. Unreadable images are returned as errors,
never raised.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import DetectParams
from .errors import FrameError
from .hands import Hand, HandDetector
from .hand_model import cache_dir, ensure_hand_model, sha256_file
from .images import read_image

log = logging.getLogger(__name__)


@dataclass
class Extracted:
    """One file's outcome: a hand, no hand (hand None, error None), or an error."""

    hand: Hand | None
    error: str | None = None
    cached: bool = False


class LandmarkCache:
    """sqlite key -> landmark record. Falls back to memory where the folder is read-only."""

    def __init__(self, folder: Path | None):
        self.path = None
        self._db = None
        self._mem: dict[str, bytes] = {}
        if folder is None:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(folder / "landmarks.sqlite", timeout=30)
            db.execute("CREATE TABLE IF NOT EXISTS hands (key TEXT PRIMARY KEY, value BLOB)")
            db.commit()
            self._db, self.path = db, folder / "landmarks.sqlite"
        except (OSError, sqlite3.Error) as exc:
            log.warning("landmark cache in %s is not writable (%s); landmarks are kept in memory for this run", folder, exc)

    def get(self, key: str) -> bytes | None:
        if self._db is None:
            return self._mem.get(key)
        row = self._db.execute("SELECT value FROM hands WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put_many(self, items: list[tuple[str, bytes]]) -> None:
        if self._db is None:
            self._mem.update(items)
            return
        try:
            self._db.executemany("INSERT OR REPLACE INTO hands VALUES (?, ?)", items)
            self._db.commit()
        except sqlite3.Error as exc:
            log.warning("could not write the landmark cache (%s); keeping landmarks in memory", exc)
            self._db = None
            self._mem.update(items)

    def close(self):
        if self._db is not None:
            self._db.close()


def _encode(hand: Hand | None) -> bytes:
    if hand is None:
        return b"none"
    return hand.attempt.encode() + b"|" + hand.to_array().tobytes()


def _decode(blob: bytes) -> Hand | None:
    if blob == b"none":
        return None
    attempt, _, arr = blob.partition(b"|")
    return Hand.from_array(np.frombuffer(arr, dtype=np.float32), attempt.decode())


_worker_detector: HandDetector | None = None


def _init_worker(model_path: str, params: dict) -> None:
    global _worker_detector
    os.environ.setdefault("GLOG_minloglevel", "2")
    # one worker per core: the landmark network (refinement, centre retries) gets one thread each
    _worker_detector = HandDetector(model_path, params=DetectParams(**params), track_threads=1)


def _detect_file(path: str) -> tuple[bytes | None, str | None]:
    try:
        rgb = read_image(path)
    except FrameError as exc:
        return None, str(exc)
    return _encode(_worker_detector.detect(rgb)), None


def settings_key(params: DetectParams, model_sha: str) -> str:
    blob = json.dumps({"detect": asdict(params), "model": model_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def extract(paths: list[str], params: DetectParams = DetectParams(), *, workers: int = 0,
            cache: str | os.PathLike | None = None, use_cache: bool = True,
            progress: bool = True) -> list[Extracted]:
    """Detect the hand in every file, in worker processes, using and filling the cache.

    Args:
        paths: image files.
        params: detection settings (part of the cache key).
        workers: processes; 0 means one per CPU core.
        cache: cache folder (default: the user cache dir or $FINGERSPELL_CACHE_DIR).
        use_cache: False re-detects everything and stores nothing.
    Returns:
        One Extracted per path, in order.
    """
    model = ensure_hand_model(cache)
    skey = settings_key(params, sha256_file(model))
    store = LandmarkCache(cache_dir(cache) if use_cache else None)
    results: list[Extracted | None] = [None] * len(paths)
    keys: list[str | None] = [None] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        try:
            keys[i] = f"{sha256_file(p)}:{skey}"
        except OSError as exc:
            results[i] = Extracted(None, f"{p}: cannot read ({exc.strerror})")
            continue
        blob = store.get(keys[i]) if use_cache else None
        if blob is not None:
            results[i] = Extracted(_decode(blob), cached=True)
        else:
            todo.append(i)
    log.info("landmarks: %d of %d images cached, %d to detect", len(paths) - len(todo) - sum(r is not None and r.error is not None for r in results), len(paths), len(todo))
    if todo:
        n = workers or os.cpu_count() or 1
        n = max(1, min(n, len(todo)))
        ctx = mp.get_context("spawn")  # MediaPipe's graph threads do not survive fork
        fresh: list[tuple[str, bytes]] = []
        bar = tqdm(total=len(todo), desc="detecting hands", unit="img", disable=not progress, smoothing=0.1,
                   mininterval=0.5 if sys.stderr.isatty() else 15)  # a log file gets a line every 15 s
        try:
            with ctx.Pool(n, initializer=_init_worker, initargs=(str(model), asdict(params))) as pool:
                for i, (blob, err) in zip(todo, pool.imap(_detect_file, [paths[i] for i in todo], chunksize=8)):
                    if err is not None:
                        results[i] = Extracted(None, err)
                    else:
                        results[i] = Extracted(_decode(blob))
                        fresh.append((keys[i], blob))
                    bar.update()
                    if len(fresh) >= 256:
                        store.put_many(fresh)
                        fresh = []
        finally:
            bar.close()
            store.put_many(fresh)  # keep what was done, even when interrupted
    store.close()
    return results  # type: ignore[return-value]


# --------------------------------------------------------------------------- a hand far away

FRAME = (640, 480)  # the webcam frame the page sends (width, height)
SURROUND = 128  # grey around a photo placed on a frame


def hand_box(hand: Hand) -> tuple[float, float, float, float]:
    """The landmarks' bounding box (x0, y0, x1, y1) in the pixels of the image they were found in."""
    pts = hand.pixel_points()[:, :2]
    (x0, y0), (x1, y1) = pts.min(axis=0), pts.max(axis=0)
    return float(x0), float(y0), float(x1), float(y1)


def place_on_frame(rgb: np.ndarray, box, side: float, where=(0.5, 0.5), frame=FRAME) -> np.ndarray:
    """``rgb`` scaled so that the hand ``box`` has a long side of ``side`` px, on a grey frame.

    Args:
        rgb: the photo.
        box: (x0, y0, x1, y1), the hand in ``rgb``'s pixels (``hand_box``).
        side: the hand's long side in the frame, in pixels.
        where: the hand's centre as fractions of the room the frame leaves it (0..1 each way), so
            the hand is always wholly inside the frame.
        frame: (width, height).
    Returns:
        The (height, width, 3) uint8 frame; the photo beyond the frame's edges is cut off.
    """
    import cv2

    x0, y0, x1, y1 = box
    s = side / max(x1 - x0, y1 - y0, 1.0)
    h, w = rgb.shape[:2]
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    scaled = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    fw, fh = frame
    bw, bh = (x1 - x0) * s, (y1 - y0) * s
    cx = bw / 2 + where[0] * max(fw - bw, 0)  # where the box's centre lands in the frame
    cy = bh / 2 + where[1] * max(fh - bh, 0)
    ox, oy = round(cx - (x0 + x1) / 2 * s), round(cy - (y0 + y1) / 2 * s)  # the photo's origin in the frame
    out = np.full((fh, fw, 3), SURROUND, np.uint8)
    fx0, fy0, fx1, fy1 = max(ox, 0), max(oy, 0), min(ox + sw, fw), min(oy + sh, fh)
    if fx1 > fx0 and fy1 > fy0:
        out[fy0:fy1, fx0:fx1] = scaled[fy0 - oy:fy1 - oy, fx0 - ox:fx1 - ox]
    return out


def degrade(rgb: np.ndarray, *, blur: float = 0.0, dim: float = 1.0, noise: float = 0.0,
            jpeg: int | None = None, seed: int = 0) -> np.ndarray:
    """What a webcam does to a frame, in the order it happens: optics, light, sensor, encoder.

    Args:
        blur: Gaussian sigma in pixels (0: none).
        dim: brightness factor (1: unchanged).
        noise: sensor noise, Gaussian sigma in 0-255 units (0: none).
        jpeg: JPEG quality 1-100 to recompress at (None: not compressed).
        seed: for the noise.
    """
    import cv2

    out = rgb
    if blur > 0:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if dim != 1 or noise > 0:
        f = out.astype(np.float32) * dim
        if noise > 0:
            f += np.random.default_rng(seed).normal(0, noise, f.shape).astype(np.float32)
        out = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    if jpeg is not None:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(jpeg)])
        out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return out
