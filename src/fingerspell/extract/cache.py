"""The landmark cache: sqlite, record key -> the hand found (or that none was).

A record's key is ``<file sha256>:<settings key><suffix>``: the file's content, not its name, so
a renamed file is still a hit; the detection settings and the hand model's sha256, so changing
either can never return stale landmarks; and a suffix naming a variant of the photo (a far copy,
``far.far_suffix``), empty for the photo as it is. Caches on users' disks hold these keys and
``encode_hand``'s bytes: change either only with a way to read the old ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import sqlite3
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..config import DetectParams
from ..hands import Hand

log = logging.getLogger(__name__)

NO_HAND = b"none"  # the record of an image in which no hand was found

#: DetectParams fields only a stream reads, left out of the cache key (a photo's hand does not
#: depend on them, and caches made before they existed stay valid)
STREAM_ONLY = ("stream_retries", "near_ms")


def encode_hand(hand: Hand | None) -> bytes:
    """A hand's cache record: ``<attempt>|<Hand.to_array() bytes>``, or ``b"none"`` for no hand."""
    if hand is None:
        return NO_HAND
    return hand.attempt.encode() + b"|" + hand.to_array().tobytes()


def decode_hand(blob: bytes) -> Hand | None:
    """The hand (or None) that ``encode_hand`` wrote."""
    if blob == NO_HAND:
        return None
    attempt, _, arr = blob.partition(b"|")
    return Hand.from_array(np.frombuffer(arr, dtype=np.float32), attempt.decode())


def settings_key(params: DetectParams, model_sha: str) -> str:
    """16 hex digits naming the detection settings (less ``STREAM_ONLY``) and the hand model."""
    detect = {k: v for k, v in asdict(params).items() if k not in STREAM_ONLY}
    blob = json.dumps({"detect": detect, "model": model_sha}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_key(file_sha: str, skey: str, suffix: str = "") -> str:
    """The key of a file's record under settings ``skey``; ``suffix`` names a variant of the photo."""
    return f"{file_sha}:{skey}{suffix}"


def shorter_ladders(params: DetectParams, model_sha: str) -> list[str]:
    """Settings keys of the same settings with fewer retries, the longest first.

    The ladder stops at the first attempt that finds a hand, so a hand found with the first k
    retries is the hand the longer ladder finds too: adding retries re-detects only the images
    no shorter ladder found a hand in.
    """
    return [settings_key(dataclasses.replace(params, retries=params.retries[:k]), model_sha)
            for k in range(len(params.retries) - 1, -1, -1)]


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

    def lookup(self, file_sha: str, skey: str, shorter: list[str], suffix: str = "") -> bytes | None:
        """The record for settings ``skey``, or a hand a ``shorter`` ladder found (then stored
        under ``skey`` too); None where the image must be detected."""
        blob = self.get(record_key(file_sha, skey, suffix))
        if blob is not None:
            return blob
        for k in shorter:
            old = self.get(record_key(file_sha, k, suffix))
            if old is not None:
                if old == NO_HAND:
                    return None  # the new retries may find it: detect again
                self.put_many([(record_key(file_sha, skey, suffix), old)])
                return old
        return None

    def close(self):
        if self._db is not None:
            self._db.close()
