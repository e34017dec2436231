"""The retry ladder: what detection tries when the palm detector sees no hand, and the passes that
follow or refine a hand with the landmark network alone.

Each step takes the (downscaled) image and the ``Workers`` to borrow networks from, and returns a
``Hand`` (landmarks normalised to that image) or None. ``HandFinder`` (``hands.py``) decides which
steps a frame runs.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..config import DetectParams
from .hand import Hand
from .tracking import Roi, roi_from_landmarks
from .workers import Workers

#: pad/edge/equalize re-run the palm detector on a changed image; centre skips it; zoom runs it on
#: parts of the image; scan runs the landmark network alone on squares across it.
RETRY_KINDS = ("pad", "edge", "equalize", "centre", "zoom", "scan")

Size = tuple[int, int]  # (width, height) of the image the steps look at


def parse_retry(spec: str) -> tuple[str, float]:
    """``"pad:0.3"`` -> ("pad", 0.3); raises ValueError for anything else."""
    how, _, frac = spec.partition(":")
    if how not in RETRY_KINDS:
        raise ValueError(f"unknown detection retry {spec!r}; use pad:F, edge:F, equalize:F, centre:F, zoom:F or scan:F")
    value = float(frac or {"centre": 1.0, "zoom": 0.5, "scan": 0.5}.get(how, 0.3))
    if how in ("zoom", "scan") and not 0.2 <= value < 1:
        raise ValueError(f"detection retry {spec!r}: a tile's side must be at least 0.2 and under 1 times the image's")
    if how == "centre" and not 0 < value <= 3:
        raise ValueError(f"detection retry {spec!r}: the square's side must be above 0 and at most 3 times the image's")
    if not 0 <= value <= 3:
        raise ValueError(f"detection retry {spec!r}: the border must be between 0 and 3 times the side")
    return how, value


def check_params(params: DetectParams) -> None:
    """Raises ValueError for a retry or a refinement count detection cannot run."""
    for spec in (*params.retries, *params.stream_retries):
        parse_retry(spec)
    if params.video_retries < 0 or params.near_ms < 0:
        raise ValueError(f"video_retries and near_ms must be 0 or more, not {params.video_retries} and {params.near_ms}")
    if not 0 <= params.refine <= 5:
        raise ValueError(f"refine must be between 0 and 5 passes, not {params.refine}")
    if len(params.reframe) > 8 or not all(0.25 <= f <= 4 for f in params.reframe):
        raise ValueError(f"reframe must be at most 8 scales, each between 0.25 and 4, not {params.reframe}")
    if not params.reframe_below >= 0:
        raise ValueError(f"reframe_below must be 0 or more, not {params.reframe_below}")


def fit(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` downscaled so that its long side is at most ``max_side`` (itself where it already is)."""
    h, w = rgb.shape[:2]
    if max(h, w) <= max_side:
        return rgb
    import cv2

    s = max_side / max(h, w)
    return cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _pad(rgb: np.ndarray, frac: float, mode: str = "constant") -> tuple[np.ndarray, int, int]:
    h, w = rgb.shape[:2]
    py, px = int(round(h * frac)), int(round(w * frac))
    padded = np.pad(rgb, ((py, py), (px, px), (0, 0)), mode=mode)
    return padded, px, py


def _equalize(rgb: np.ndarray) -> np.ndarray:
    import cv2

    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(lab[..., 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def zoom_tiles(width: int, height: int, frac: float, square: bool = False) -> list[tuple[int, int, int, int]]:
    """The tiles (x0, y0, x1, y1) a ``zoom:frac`` (or, ``square``, a ``scan:frac``) retry looks at, the centre first.

    Each is ``frac`` of the image's width and height (``square``: squares ``frac`` of the short
    side); neighbours overlap by half a tile, so a hand up to half a tile across lies wholly
    inside one of them.
    """
    if square:
        tw = th = max(1, round(min(width, height) * frac))
    else:
        tw, th = max(1, round(width * frac)), max(1, round(height * frac))

    def starts(size, tile):
        steps = max(1, math.ceil((size - tile) / (tile / 2)))
        return sorted({round(k * (size - tile) / steps) for k in range(steps + 1)})

    tiles = [(x, y, x + tw, y + th) for y in starts(height, th) for x in starts(width, tw)]
    cx, cy = width / 2, height / 2
    return sorted(tiles, key=lambda t: ((t[0] + t[2]) / 2 - cx) ** 2 + ((t[1] + t[3]) / 2 - cy) ** 2)


def retry_image(rgb: np.ndarray, spec: str) -> tuple[np.ndarray, int, int]:
    """The image a palm-detector retry (pad, edge, equalize) runs on, and the border (px, py) added on each side."""
    how, frac = parse_retry(spec)
    if how in ("centre", "zoom", "scan"):
        raise ValueError(f"detection retry {spec!r} runs no palm detector on the whole image, so it has no retry image")
    if how == "edge":
        return _pad(rgb, frac, "edge")
    padded, px, py = _pad(rgb, frac)
    return (_equalize(padded) if how == "equalize" else padded), px, py


# --------------------------------------------------------------------------- the steps


def palm(workers: Workers, image: np.ndarray, size: Size, attempt: str, shift=None) -> Hand | None:
    """The palm detector then the landmark network on ``image``.

    Args:
        shift: ((image width, height), (x, y) offset of the original in ``image``, original size)
            where ``image`` is a padded copy or a tile of the original; None where it is the original.
    """
    with workers.landmarkers.borrow() as landmarker:
        found = landmarker.detect(image)
    if found is None:
        return None
    lm, world, handedness, score = found
    if shift is not None:  # landmarks of a padded image or a tile -> those of the original
        (pw, ph), (px, py), (w, h) = shift
        lm[:, 0] = (lm[:, 0] * pw - px) / w
        lm[:, 1] = (lm[:, 1] * ph - py) / h
        lm[:, 2] = lm[:, 2] * pw / w
    return Hand(lm, world, handedness, score, size, attempt)


def network(workers: Workers, small: np.ndarray, size: Size, roi: Roi, attempt: str) -> Hand | None:
    """The landmark network alone on ``roi`` (None when its presence score is too low)."""
    with workers.trackers.borrow() as tracker:
        found = tracker.run(small, roi)
    if found is None:
        return None
    landmarks, world, handedness, score, _ = found
    return Hand(landmarks, world, handedness, score, size, attempt)


def track(workers: Workers, small: np.ndarray, size: Size, previous: Hand) -> Hand | None:
    """The hand of the previous frame, followed to this one: the network on the region its landmarks give."""
    return network(workers, small, size, roi_from_landmarks(previous.landmarks, *size), "tracked")


def refine(workers: Workers, small: np.ndarray, size: Size, hand: Hand, passes: int) -> Hand:
    """Run the landmark network again on the region the hand's own landmarks give.

    The palm detector's region is coarse; the region from the landmarks is the one tracking
    uses, and one more pass there gives steadier landmarks (``bench/bench_detection.py``).
    A pass that loses the hand keeps the landmarks found so far.
    """
    first = hand
    for _ in range(passes):
        found = network(workers, small, size, roi_from_landmarks(hand.landmarks, *size), hand.attempt)
        if found is None:
            break
        hand = dataclasses.replace(found, unrefined=first)
    return hand


def near(workers: Workers, small: np.ndarray, size: Size, last: Hand, scale: float = 1.5) -> Hand | None:
    """The landmark network alone on an upright square ``scale`` times the tracking region of
    ``last``, the hand last seen: a hand lost for a moment is most likely still near there."""
    roi = roi_from_landmarks(last.landmarks, *size)
    w, h = size
    side = min(max(roi.width * w, roi.height * h) * scale, max(w, h) * 1.5)
    return network(workers, small, size, Roi(roi.x, roi.y, side / w, side / h, 0.0), "near")


def reframe(workers: Workers, small: np.ndarray, size: Size, hand: Hand, params: DetectParams) -> Hand | None:
    """A small hand looked at again from regions around the one it was found in, then refined;
    None for a hand that is not small (or that no pass finds): ``refine`` it as found.

    Its first region scaled by each of ``params.reframe``; the landmark network's pass with the
    highest presence score is kept and refined (``params.refine`` passes). A hand is small where
    that region is under ``params.reframe_below`` times the image's short side.

    Args:
        hand: a hand just found in ``small``, not yet refined.
    """
    roi = roi_from_landmarks(hand.landmarks, *size)
    if not params.reframe or roi.width * size[0] >= params.reframe_below * min(size):
        return None
    best = None
    with workers.trackers.borrow() as tracker:
        for f in params.reframe:
            found = tracker.run(small, dataclasses.replace(roi, width=roi.width * f, height=roi.height * f))
            if found is not None and (best is None or found[4] > best[4]):
                best = found
    if best is None:
        return None
    landmarks, world, handedness, score, _ = best
    again = refine(workers, small, size, Hand(landmarks, world, handedness, score, size, hand.attempt), params.refine)
    return dataclasses.replace(again, unrefined=hand)  # the first estimate stays the one found first


def retry(workers: Workers, small: np.ndarray, size: Size, spec: str, tile: int | None = None) -> Hand | None:
    """One rung of the ladder. ``tile``: a zoom or scan retry looks at that tile only (None: at all of them)."""
    how, frac = parse_retry(spec)
    if how == "centre":
        return _centre(workers, small, size, frac, spec)
    if how == "zoom":
        return _zoom(workers, small, size, frac, spec, tile)
    if how == "scan":
        return _scan(workers, small, size, frac, spec, tile)
    image, px, py = retry_image(small, spec)
    return palm(workers, image, size, spec, ((image.shape[1], image.shape[0]), (px, py), size))


def _centre(workers: Workers, small: np.ndarray, size: Size, frac: float, spec: str) -> Hand | None:
    """The landmark network alone on the centred square ``frac`` times the image's long side.

    For hands the palm detector does not find at all (a hand filling a photo, odd light):
    no palm region to start from, so the network looks at the middle of the picture, and
    its own presence score says whether a hand is there.
    """
    w, h = size
    side = max(w, h) * frac
    return network(workers, small, size, Roi(0.5, 0.5, side / w, side / h, 0.0), spec)


def _zoom(workers: Workers, small: np.ndarray, size: Size, frac: float, spec: str, tile: int | None) -> Hand | None:
    """The palm detector on zoomed tiles of the image, the centre first, until one holds a hand.

    The palm detector sees the whole image at 192x192, so a hand a fifth of a 640x480 frame
    across is ~40 px to it and often missed; in a tile half the frame's size it is twice that.
    A video frame looks at one tile, the next frame at the next: a frame without a hand stays
    cheap, and a few frames cover the whole picture.
    """
    w, h = size
    tiles = zoom_tiles(w, h, frac)
    if tile is not None:
        tiles = [tiles[tile % len(tiles)]]
    for x0, y0, x1, y1 in tiles:
        hand = palm(workers, small[y0:y1, x0:x1], size, spec, ((x1 - x0, y1 - y0), (-x0, -y0), size))
        if hand is not None:
            return hand
    return None


def _scan(workers: Workers, small: np.ndarray, size: Size, frac: float, spec: str, tile: int | None) -> Hand | None:
    """The landmark network alone on squares ``frac`` of the short side across the image; the
    hand with the highest presence score, if any square's is above the threshold.

    For small hands the palm detector does not find even when zoomed (odd angles, dim light:
    the hands ``centre`` finds in a photo they fill): ~7 ms a square, 15 squares for 0.5. A video
    frame looks at square ``tile`` only.
    """
    w, h = size
    squares = zoom_tiles(w, h, frac, square=True)
    if tile is not None:
        squares = [squares[tile % len(squares)]]
    best, best_presence = None, -1.0
    with workers.trackers.borrow() as tracker:
        for x0, y0, x1, y1 in squares:
            roi = Roi((x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h, 0.0)
            found = tracker.run(small, roi)
            if found is not None and found[4] > best_presence:
                best, best_presence = found, found[4]
    if best is None:
        return None
    landmarks, world, handedness, score, _ = best
    return Hand(landmarks, world, handedness, score, size, spec)
