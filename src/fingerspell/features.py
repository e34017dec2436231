"""Hand -> float32 feature vector. numpy only, so the server and a browser port stay light.

The vector has three parts, all wrist-centred and scale-normalised, with left hands mirrored
to right ones:

* ``coords``: the 21 points (x, y, z) divided by the hand's size - keeps orientation, which
  tells H from U, G from Q and K from P;
* ``distances``: the 210 pairwise 3D distances divided by the hand's size - invariant to
  in-plane rotation;
* ``angles``: the cosine of the bend at each of the 15 finger joints - invariant to rotation
  and scale.

MediaPipe's z (depth) from one photo is noisy, and a hand photographed from the signer's own
side has its depth order reversed; ``depth=False`` ignores z entirely: the hand's size is
measured in the image plane and z is set to 0, so distances and angles are 2D and the z inputs
constant. Bundles say which they were trained with.

Versions: ``fingerspell.features.v2`` (this one). ``v1`` measured the hand's size in 3D even
with ``depth=False``, so z still moved every feature through the scale; bundles that record v1
are served with v1 (``version=1``). On new people the two score within a point of each other.
"""

from __future__ import annotations

import numpy as np

N_POINTS = 21
WRIST = 0
PALM = (5, 9, 13, 17)  # finger bases: their mean distance to the wrist is the hand's size
FINGERS = ((0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20))
_I, _J = np.triu_indices(N_POINTS, k=1)
# the 15 joints as (before, joint, after) index triples, finger by finger
_A, _B, _C = (np.array(ix) for ix in zip(*[t for ch in FINGERS for t in zip(ch, ch[1:], ch[2:])]))
N_COORDS = N_POINTS * 3
N_DISTANCES = len(_I)
N_ANGLES = 15
N_FEATURES = N_COORDS + N_DISTANCES + N_ANGLES  # 288
#: names of the preprocessing steps, written into bundles so a reader knows what a model expects
PREPROCESSING = {
    "features": "fingerspell.features.v2",
    "depth": True,
    "points": "image landmarks in pixel units (x*w, y*h, z*w)",
    "mirror": "left hands mirrored to right (x -> -x)",
    "centre": "wrist",
    "scale": "mean wrist-to-finger-base distance",
    "parts": {"coords": N_COORDS, "distances": N_DISTANCES, "angles": N_ANGLES},
}


VERSION = 2
VERSIONS = {"fingerspell.features.v1": 1, PREPROCESSING["features"]: VERSION}  # the names bundles record


def version_of(record: dict) -> int:
    """The feature version a bundle's preprocessing record names (1 for ``...features.v1``).

    Raises:
        KeyError: the record names none. ValueError: it names one this version does not know.
    """
    name = record["features"]
    if name not in VERSIONS:
        raise ValueError(f"features {name!r} are not a version this fingerspell computes ({', '.join(VERSIONS)})")
    return VERSIONS[name]


def canonical(points: np.ndarray, is_left: np.ndarray | bool, planar_size: bool = False) -> np.ndarray:
    """Mirror left hands, centre on the wrist and divide by the hand's size.

    Args:
        points: (N, 21, 3) or (21, 3) points in pixel units.
        is_left: (N,) or scalar.
        planar_size: measure the size from x and y alone (z then changes nothing but z).
    Returns:
        Array of the same shape, float32.
    """
    pts = np.asarray(points, dtype=np.float64)
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    left = np.broadcast_to(np.asarray(is_left, dtype=bool), (pts.shape[0],))
    pts = pts - pts[:, WRIST : WRIST + 1]
    pts[left, :, 0] *= -1.0
    size = np.linalg.norm(pts[:, PALM, :2] if planar_size else pts[:, PALM], axis=-1).mean(axis=1)
    pts = pts / np.maximum(size, 1e-6)[:, None, None]
    return (pts[0] if single else pts).astype(np.float32)


def preprocessing(depth: bool) -> dict:
    """What a bundle records about its features."""
    return {**PREPROCESSING, "depth": bool(depth)}


def from_points(points: np.ndarray, is_left: np.ndarray | bool, depth: bool = True,
                version: int = VERSION) -> np.ndarray:
    """Feature vectors of hands given as pixel-unit points; (N, 21, 3) -> (N, 288).

    ``depth=False``: z is ignored (see the module docstring); ``version=1`` as bundles that
    record ``fingerspell.features.v1`` were trained.
    """
    pts = canonical(points, is_left, planar_size=not depth and version >= 2).astype(np.float64)
    if not depth:
        pts[..., 2] = 0.0
    single = pts.ndim == 2
    if single:
        pts = pts[None]
    n = pts.shape[0]
    coords = pts.reshape(n, -1)
    dist = np.linalg.norm(pts[:, _I] - pts[:, _J], axis=-1)
    u = pts[:, _A] - pts[:, _B]
    v = pts[:, _C] - pts[:, _B]
    norms = np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
    angles = (u * v).sum(-1) / np.maximum(norms, 1e-9)
    out = np.concatenate([coords, dist, angles], axis=1).astype(np.float32)
    return out[0] if single else out


def from_hand(hand, depth: bool = True, version: int = VERSION) -> np.ndarray:
    """Feature vector (288,) of one ``hands.Hand``."""
    return one_hand(hand.pixel_points(), hand.handedness == "Left", depth, version)


_PALM = np.array(PALM)


def one_hand(points: np.ndarray, is_left: bool, depth: bool = True, version: int = VERSION) -> np.ndarray:
    """``from_points`` of one (21, 3) hand, in about half its time and to the same bits.

    A stream's every frame comes here (~25 us, against ~45 for the batch path's broadcasting
    over one hand): the same operations in the same order, on one hand's arrays.
    """
    pts = np.array(points, dtype=np.float64)
    pts -= pts[WRIST]
    if is_left:
        pts[:, 0] *= -1.0
    palm = pts[_PALM, :2] if (not depth and version >= 2) else pts[_PALM]
    size = np.add.reduce(np.sqrt(np.add.reduce(palm * palm, axis=-1))) / len(PALM)  # .mean(), as bits, sooner
    pts = (pts / max(size, 1e-6)).astype(np.float32).astype(np.float64)
    if not depth:
        pts[:, 2] = 0.0
    d = pts[_I] - pts[_J]
    dist = np.sqrt(np.add.reduce(d * d, axis=-1))
    u = pts[_A] - pts[_B]
    v = pts[_C] - pts[_B]
    norms = np.sqrt(np.add.reduce(u * u, axis=-1)) * np.sqrt(np.add.reduce(v * v, axis=-1))
    angles = (u * v).sum(-1) / np.maximum(norms, 1e-9)
    return np.concatenate([pts.reshape(-1), dist, angles]).astype(np.float32)


def augment(points: np.ndarray, rng: np.random.Generator, *, rotate_degrees: float,
            scale_range: float, jitter: float, tilt_degrees: float = 0.0, finger_range: float = 0.0) -> np.ndarray:
    """Random in-plane rotation about the wrist, anisotropic scale and per-point jitter; and, where
    asked, a turn of the hand out of the image plane and fingers of other lengths.

    Args:
        points: (N, 21, 3) pixel-unit points.
        tilt_degrees: turn each hand about the image's x and y axes by up to this much (MediaPipe's
            z gives the points' depth), then look at it along z again: the same handshape seen
            from another camera angle.
        finger_range: scale each finger's bones by a factor in 1 +- this, the palm unchanged:
            another person's hand proportions.
    Returns:
        New (N, 21, 3) array; the input is not changed.
    """
    pts = np.array(points, dtype=np.float64)
    n = pts.shape[0]
    wrist = pts[:, WRIST : WRIST + 1].copy()
    pts -= wrist
    if finger_range > 0:
        for chain in FINGERS:
            k = rng.uniform(1 - finger_range, 1 + finger_range, (n, 1))
            base = chain[1]
            bones = np.diff(pts[:, chain[1:]], axis=1) * k[:, :, None]
            pts[:, chain[2:]] = pts[:, base : base + 1] + np.cumsum(bones, axis=1)
    if tilt_degrees > 0:
        a, b = (np.deg2rad(rng.uniform(-tilt_degrees, tilt_degrees, n)) for _ in range(2))
        ca, sa, cb, sb = np.cos(a)[:, None], np.sin(a)[:, None], np.cos(b)[:, None], np.sin(b)[:, None]
        x, y, z = pts[..., 0].copy(), pts[..., 1].copy(), pts[..., 2].copy()
        y, z = ca * y - sa * z, sa * y + ca * z  # about the x axis
        x, z = cb * x + sb * z, -sb * x + cb * z  # about the y axis
        pts[..., 0], pts[..., 1], pts[..., 2] = x, y, z
    theta = np.deg2rad(rng.uniform(-rotate_degrees, rotate_degrees, n))
    c, s = np.cos(theta), np.sin(theta)
    x, y = pts[..., 0].copy(), pts[..., 1].copy()
    pts[..., 0] = c[:, None] * x - s[:, None] * y
    pts[..., 1] = s[:, None] * x + c[:, None] * y
    pts[..., :2] *= rng.uniform(1 - scale_range, 1 + scale_range, (n, 1, 2))
    size = np.linalg.norm(pts[:, PALM], axis=-1).mean(axis=1)
    pts += rng.normal(0.0, 1.0, pts.shape) * (jitter * size)[:, None, None]
    return (pts + wrist).astype(np.float32)
