"""A hand far from the camera, for training: each photo shrunk onto a webcam frame (``far_frame``)
at a seeded size and webcam conditions (``far_copy``), and the hands found in those copies
(``extract_far``), cached like the photos' own."""

from __future__ import annotations

import logging
import os
from functools import partial

import numpy as np

from ..config import DetectParams
from ..hands import Hand, cache_dir, ensure_hand_model, sha256_file
from ..images import hand_box
from .cache import LandmarkCache, decode_hand, record_key, settings_key, shorter_ladders
from .pool import Extracted, detect_many

log = logging.getLogger(__name__)

FRAME = (640, 480)  # the webcam frame the page sends (width, height)
SURROUND = 128  # grey around a photo placed on a frame
FAR_VERSION = 1  # of far_copy and far_frame: part of the cache key, so change it when they change


def far_suffix(k: int, sizes: tuple[int, int]) -> str:
    """The cache key's suffix (``cache.record_key``) of far copy ``k`` of a photo in ``sizes``."""
    return f":far{FAR_VERSION}:{sizes[0]}-{sizes[1]}:{k}"


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
    skey, shorter = settings_key(params, model_sha), shorter_ladders(params, model_sha)
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
            suffix = far_suffix(k, sizes)
            blob = store.lookup(sha, skey, shorter, suffix) if use_cache else None
            results.append(Extracted(decode_hand(blob), cached=True) if blob is not None else None)
            if blob is None:
                frame = partial(far_frame, box=box, copy=far_copy(sha, k, sizes))
                jobs.append((len(results) - 1, record_key(sha, skey, suffix), (p, frame)))
            out[i].append(len(results) - 1)
    log.info("far copies: %d of %d cached, %d to detect", len(results) - len(jobs), len(results), len(jobs))
    if jobs:
        detect_many(jobs, results, params, model, store, workers, progress, "detecting far hands", stop)
    store.close()
    return [[results[r].hand for r in rows if results[r] is not None and results[r].hand is not None] for rows in out]


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
