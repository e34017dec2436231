"""Landmarks for many image files: worker processes, a progress bar, and the landmark cache.

Every hand found is cached (``cache``), so a second training run re-detects nothing. Unreadable
images are returned as errors, never raised.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..config import DetectParams
from ..errors import FrameError
from ..hands import Hand, HandDetector, cache_dir, ensure_hand_model, sha256_file
from ..images import read_image
from .cache import LandmarkCache, decode_hand, encode_hand, record_key, settings_key, shorter_ladders

log = logging.getLogger(__name__)

@dataclass
class Extracted:
    """One file's outcome: a hand, no hand (hand None, error None), or an error."""

    hand: Hand | None
    error: str | None = None
    cached: bool = False


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
    """A worker's job: the hand's cache record, or the error reading the file.

    ``task`` is a path, or ``(path, frame)`` where ``frame`` turns the photo into the image to
    detect in (``far.far_frame`` with a copy's settings): a module-level function or a partial
    of one, since it is pickled to the worker.
    """
    path, frame = (task, None) if isinstance(task, str) else task
    try:
        rgb = read_image(path)
    except FrameError as exc:
        return None, str(exc)
    if frame is not None:
        rgb = frame(rgb)
    return encode_hand(_worker_detector.detect(rgb)), None


def detect_many(jobs: list[tuple[int, str, object]], results: list, params: DetectParams, model: Path,
                store: LandmarkCache, workers: int, progress: bool, desc: str, stop=None) -> None:
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
                    results[i] = Extracted(decode_hand(blob))
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
    skey, shorter = settings_key(params, model_sha), shorter_ladders(params, model_sha)
    store = LandmarkCache(cache_dir(cache) if use_cache else None)
    results: list[Extracted | None] = [None] * len(paths)
    todo = []
    for i, p in enumerate(paths):
        try:
            sha = sha256_file(p)
        except OSError as exc:
            results[i] = Extracted(None, f"{p}: cannot read ({exc.strerror})")
            continue
        blob = store.lookup(sha, skey, shorter) if use_cache else None
        if blob is not None:
            results[i] = Extracted(decode_hand(blob), cached=True)
        else:
            todo.append((i, record_key(sha, skey), p))
    log.info("landmarks: %d of %d images cached, %d to detect", len(paths) - len(todo) - sum(r is not None and r.error is not None for r in results), len(paths), len(todo))
    if todo:
        detect_many(todo, results, params, model, store, workers, progress, "detecting hands", stop)
    store.close()
    return results  # type: ignore[return-value]
