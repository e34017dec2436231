"""Landmarks for many image files: worker processes, a progress bar, and a content-hash cache.

The cache key is the file's sha256 plus the detection settings and the hand model's sha256, so
a second training run re-detects nothing, a renamed file is still a hit, and changing a
detection setting can never return stale landmarks. Unreadable images are returned as errors,
never raised.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
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
from .images import hand_box, read_image

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
    # Ctrl-C reaches the whole process group. A worker killed by it mid-task would leave the
    # parent waiting for a result forever; the parent decides and terminates the pool instead.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # one worker per core: the landmark network (refinement, centre retries) gets one thread each
    _worker_detector = HandDetector(model_path, params=DetectParams(**params), track_threads=1)


def _detect_file(task) -> tuple[bytes | None, str | None]:
    """A worker's job: ``path``, or ``(path, box, copy)`` for a far copy of the photo (``far_frame``)."""
    path, far = (task, None) if isinstance(task, str) else (task[0], task[1:])
    try:
        rgb = read_image(path)
    except FrameError as exc:
        return None, str(exc)
    if far is not None:
        rgb = far_frame(rgb, *far)
    return _encode(_worker_detector.detect(rgb)), None


#: DetectParams fields only a stream reads, left out of the cache key (a photo's hand does not
#: depend on them, and caches made before they existed stay valid)
STREAM_ONLY = ("stream_retries", "near_ms")


def settings_key(params: DetectParams, model_sha: str) -> str:
    detect = {k: v for k, v in asdict(params).items() if k not in STREAM_ONLY}
    blob = json.dumps({"detect": detect, "model": model_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _shorter_ladders(params: DetectParams, model_sha: str) -> list[str]:
    """Settings keys of the same settings with fewer retries, the longest first.

    The ladder stops at the first attempt that finds a hand, so a hand found with the first k
    retries is the hand the longer ladder finds too: adding retries re-detects only the images
    no shorter ladder found a hand in.
    """
    return [settings_key(dataclasses.replace(params, retries=params.retries[:k]), model_sha)
            for k in range(len(params.retries) - 1, -1, -1)]


def _detect_many(jobs: list[tuple[int, str, object]], results: list, params: DetectParams, model: Path,
                 store: "LandmarkCache", workers: int, progress: bool, desc: str, stop=None) -> None:
    """Run ``(index, key, task)`` jobs in worker processes; ``results[index]`` gets each outcome, the
    cache each hand (or no hand). Once ``stop`` is set: KeyboardInterrupt after the current job."""
    n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    ctx = mp.get_context("spawn")  # MediaPipe's graph threads do not survive fork
    fresh: list[tuple[str, bytes]] = []
    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress, smoothing=0.1,
               mininterval=0.5 if sys.stderr.isatty() else 15)  # a log file gets a line every 15 s
    try:
        with ctx.Pool(n, initializer=_init_worker, initargs=(str(model), asdict(params))) as pool:
            for (i, key, _), (blob, err) in zip(jobs, pool.imap(_detect_file, [j[2] for j in jobs], chunksize=8)):
                if err is not None:
                    results[i] = Extracted(None, err)
                else:
                    results[i] = Extracted(_decode(blob))
                    fresh.append((key, blob))
                bar.update()
                if stop is not None and stop.is_set():
                    raise KeyboardInterrupt
                if len(fresh) >= 256:
                    store.put_many(fresh)
                    fresh = []
    finally:
        bar.close()
        store.put_many(fresh)  # keep what was done, even when interrupted


def _cached(store: "LandmarkCache", file_sha: str, suffix: str, skey: str, shorter: list[str]) -> bytes | None:
    """The cached record for these settings, or a hand a shorter ladder found (stored under these settings too)."""
    blob = store.get(f"{file_sha}:{skey}{suffix}")
    if blob is not None:
        return blob
    for k in shorter:
        old = store.get(f"{file_sha}:{k}{suffix}")
        if old is not None:
            if old == b"none":
                return None  # the new retries may find it: detect again
            store.put_many([(f"{file_sha}:{skey}{suffix}", old)])
            return old
    return None


def extract(paths: list[str], params: DetectParams = DetectParams(), *, workers: int = 0,
            cache: str | os.PathLike | None = None, use_cache: bool = True,
            progress: bool = True, stop=None) -> list[Extracted]:
    """Detect the hand in every file, in worker processes, using and filling the cache.

    Args:
        paths: image files.
        params: detection settings (part of the cache key).
        workers: processes; 0 means one per CPU core.
        cache: cache folder (default: the user cache dir or $FINGERSPELL_CACHE_DIR).
        use_cache: False re-detects everything and stores nothing.
        stop: a ``threading.Event``; once set, KeyboardInterrupt after the current image (what
            was detected so far is cached).
    Returns:
        One Extracted per path, in order.
    """
    model = ensure_hand_model(cache)
    model_sha = sha256_file(model)
    skey, shorter = settings_key(params, model_sha), _shorter_ladders(params, model_sha)
    store = LandmarkCache(cache_dir(cache) if use_cache else None)
    results: list[Extracted | None] = [None] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        try:
            sha = sha256_file(p)
        except OSError as exc:
            results[i] = Extracted(None, f"{p}: cannot read ({exc.strerror})")
            continue
        blob = _cached(store, sha, "", skey, shorter) if use_cache else None
        if blob is not None:
            results[i] = Extracted(_decode(blob), cached=True)
        else:
            todo.append((i, f"{sha}:{skey}", p))
    log.info("landmarks: %d of %d images cached, %d to detect", len(paths) - len(todo) - sum(r is not None and r.error is not None for r in results), len(paths), len(todo))
    if todo:
        _detect_many(todo, results, params, model, store, workers, progress, "detecting hands", stop)
    store.close()
    return results  # type: ignore[return-value]


def extract_far(paths: list[str], hands: list[Hand | None], params: DetectParams = DetectParams(), *,
                copies: int = 1, sizes: tuple[int, int] = (80, 216), workers: int = 0,
                cache: str | os.PathLike | None = None, use_cache: bool = True,
                progress: bool = True, stop=None) -> list[list[Hand]]:
    """The hands found in far copies of each photo (``far_frame``): what a distant hand's landmarks look like.

    Args:
        paths: image files; ``hands``: the hand found in each (``extract``), which sets the size
            of its copies; a photo without one gets none.
        copies: far copies per photo, each at its own seeded size and conditions.
        sizes: (smallest, largest) long side of the hand in the 640x480 frame, in pixels.
        params, workers, cache, use_cache, progress: as for ``extract``; the cache key adds the
            copy's number and ``sizes``.
    Returns:
        Per path, the hands found in its copies (copies where none was found are left out).
    """
    model = ensure_hand_model(cache)
    model_sha = sha256_file(model)
    skey, shorter = settings_key(params, model_sha), _shorter_ladders(params, model_sha)
    store = LandmarkCache(cache_dir(cache) if use_cache else None)
    jobs, out = [], [[] for _ in paths]
    results: list[Extracted | None] = []
    for i, (p, hand) in enumerate(zip(paths, hands)):
        if hand is None or copies <= 0:
            continue
        try:
            sha = sha256_file(p)
        except OSError:
            continue
        box = hand_box(hand)
        for k in range(copies):
            copy = far_copy(sha, k, sizes)
            suffix = f":far{FAR_VERSION}:{sizes[0]}-{sizes[1]}:{k}"
            blob = _cached(store, sha, suffix, skey, shorter) if use_cache else None
            results.append(Extracted(_decode(blob), cached=True) if blob is not None else None)
            if blob is None:
                jobs.append((len(results) - 1, f"{sha}:{skey}{suffix}", (p, box, copy)))
            out[i].append(len(results) - 1)
    log.info("far copies: %d of %d cached, %d to detect", len(results) - len(jobs), len(results), len(jobs))
    if jobs:
        _detect_many(jobs, results, params, model, store, workers, progress, "detecting far hands", stop)
    store.close()
    return [[results[r].hand for r in rows if results[r] is not None and results[r].hand is not None] for rows in out]


# --------------------------------------------------------------------------- a hand far away

FRAME = (640, 480)  # the webcam frame the page sends (width, height)
SURROUND = 128  # grey around a photo placed on a frame


def place_on_frame(rgb: np.ndarray, box, side: float, where=(0.5, 0.5), frame=FRAME) -> np.ndarray:
    """``rgb`` scaled so that the hand ``box`` has a long side of ``side`` px, on a grey frame.

    Args:
        rgb: the photo.
        box: (x0, y0, x1, y1), the hand in ``rgb``'s pixels (``images.hand_box``).
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


FAR_VERSION = 1  # of far_copy and far_frame: part of the cache key, so change it when they change


def far_copy(file_sha: str, k: int, sizes: tuple[int, int]) -> dict:
    """The seeded size, place and webcam conditions of far copy ``k`` of a photo (``far_frame``)."""
    rng = np.random.default_rng([int(file_sha[:12], 16), k])
    return {"side": float(rng.uniform(*sizes)), "where": (float(rng.uniform()), float(rng.uniform())),
            "blur": float(rng.uniform(0, 1.2)), "dim": float(rng.uniform(0.4, 1.0)),
            "noise": float(rng.uniform(0, 8)), "jpeg": int(rng.integers(60, 91)), "seed": int(rng.integers(2**31))}


def far_frame(rgb: np.ndarray, box, copy: dict) -> np.ndarray:
    """A photo as a webcam would see it at arm's length: shrunk onto a 640x480 frame so the hand
    ``box`` is ``copy["side"]`` px, then blurred, dimmed, noised and JPEG-compressed as ``copy`` says."""
    frame = place_on_frame(rgb, box, copy["side"], copy["where"])
    return degrade(frame, blur=copy["blur"], dim=copy["dim"], noise=copy["noise"], jpeg=copy["jpeg"],
                   seed=copy["seed"])
