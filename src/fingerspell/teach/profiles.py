"""Profiles: a user's samples and personal model, kept under the data folder, found by a token.

``DIR/profiles/<id>/``, where ``<id>`` is the first 32 hex digits of sha256(token): the folder's
name does not give the token away, and a token is looked up by its hash, never compared. In it:

* ``samples.jsonl``: the samples, a landmark records file (``fingerspell.records``), each with a
  ``label``, a hand, ``group`` = the take it came from, and ``extra`` =
  ``{"batch": take, "source": "teach" | "learn" | "upload", "added": ISO time}``;
* ``profile.json``: ``{"created", "learn", "use", "card"}``;
* ``model/``: the personal bundle the last training wrote (``model_folder.py``).

Every change is a read-modify-replace under the profile's lock (``locks.FileLock``: held across
the server processes of ``--workers`` too), each file written whole or not at all: a refusal, a
failed write or a crash leaves what was saved before. The limits, the
errors and the checking of what comes in are ``samples.py``'s. No web framework here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from .. import records
from ..errors import DatasetError
from ..outputs import replace_file
from . import model_folder
from .locks import FileLock
from .samples import (LIMITS, MAX_PROFILES, MAX_SAMPLES, MAX_TAKE, MAX_UPLOAD_BYTES, BadSamples, Missing,  # noqa: F401
                      NotReady, ProfileError, ProfilesFull, StorageError, Take, TooManySamples, UnknownProfile,
                      new_batch, now, records_from_upload, summarise, takes_from_json)

log = logging.getLogger(__name__)

USES = ("default", "personal")
ID_CHARS = 32  # hex digits of sha256(token) that name the folder: 128 bits
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")  # what secrets.token_urlsafe makes; anything else is no token
SAMPLES, SETTINGS, LOCKS = "samples.jsonl", "profile.json", "locks"  # LOCKS: DIR/locks, the lock files
CACHED = 16  # profiles whose parsed samples are kept in memory (5,000 samples take ~0.5 s to parse)
NO_MODEL = "this profile has no personal model yet: train one first (POST /profile/train)"

T = TypeVar("T")


# --------------------------------------------------------------------------- the data folder


def profile_id(token) -> str | None:
    """The folder name of ``token``'s profile; None for what cannot be a token."""
    if not (isinstance(token, str) and TOKEN.fullmatch(token)):
        return None
    return hashlib.sha256(token.encode("ascii")).hexdigest()[:ID_CHARS]


def _private_dir(path: Path) -> None:
    """Make ``path`` (0o700: only this user) where it is missing; an existing folder keeps its mode."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _storage_error(exc: Exception, doing: str) -> StorageError:
    log.warning("profiles: could not %s: %s", doing, exc)
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return StorageError(f"the server could not {doing} ({reason}); nothing was changed: its log says where")


class Profiles:
    """The profiles of one data folder (``DIR/profiles``). Thread- and process-safe: one lock a profile.

    Nothing is written until the first profile is made; the folders are then made 0o700.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.folder = self.root / "profiles"
        self._guard = FileLock(self.root / LOCKS / "create")  # profiles made one at a time: the count holds
        self._shared = threading.Lock()  # the locks' and the cache's dicts
        self._locks: dict[str, FileLock] = {}
        self._cache: OrderedDict[str, tuple[tuple, list[records.Record]]] = OrderedDict()

    def count(self) -> int:
        """How many profiles the data folder holds."""
        if not self.folder.is_dir():
            return 0
        return sum(1 for p in self.folder.iterdir() if len(p.name) == ID_CHARS and p.is_dir())

    def create(self) -> tuple[str, "Profile"]:
        """A new, empty profile and its token (the only key to it: it is not stored).

        Raises:
            ProfilesFull: the data folder holds ``MAX_PROFILES`` profiles.
            StorageError: the data folder cannot be written.
        """
        with self._guard:
            if self.count() >= MAX_PROFILES:
                raise ProfilesFull(f"this server holds {MAX_PROFILES:,} profiles, its limit: delete one you no longer "
                                   "use (DELETE /profile), or ask the server's operator")
            token = secrets.token_urlsafe(32)
            profile = self._profile(profile_id(token))
            try:
                _private_dir(self.root)
                _private_dir(self.folder)
                profile.folder.mkdir(mode=0o700)
            except OSError as exc:
                raise _storage_error(exc, "make a profile in its data folder") from None
            try:
                profile._write_settings({"created": now(), "learn": False, "use": "default", "card": None})
            except StorageError:
                shutil.rmtree(profile.folder, ignore_errors=True)  # made just now, empty but for the failed write
                raise
        return token, profile

    def open(self, token) -> "Profile":
        """The profile of ``token``.

        Raises:
            UnknownProfile: no profile has this token.
        """
        pid = profile_id(token)
        if pid is None or not (self.folder / pid / SETTINGS).is_file():
            raise UnknownProfile("no profile has this token: send the token POST /profiles gave (a deleted "
                                 "profile's token opens nothing)")
        return self._profile(pid)

    def _profile(self, pid: str) -> "Profile":
        with self._shared:
            lock = self._locks.setdefault(pid, FileLock(self.root / LOCKS / pid))
        return Profile(self, pid, lock)

    def _cached(self, pid: str, stamp: tuple) -> list[records.Record] | None:
        with self._shared:
            hit = self._cache.get(pid)
            if hit is None or hit[0] != stamp:
                return None
            self._cache.move_to_end(pid)
            return hit[1]

    def _remember(self, pid: str, stamp: tuple | None, samples: list[records.Record]) -> None:
        with self._shared:
            self._cache.pop(pid, None)
            if stamp is not None:
                self._cache[pid] = (stamp, samples)
                while len(self._cache) > CACHED:
                    self._cache.popitem(last=False)


def _stamp(path: Path) -> tuple | None:
    """What changes whenever ``path`` is replaced: a cached parse is good while this is the same."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class Profile:
    """One profile's folder. Every method holds the profile's lock, and raises ``UnknownProfile``
    once the profile is deleted (a request that opened it just before)."""

    def __init__(self, store: Profiles, pid: str, lock: FileLock):
        self.id = pid
        self.folder = store.folder / pid
        self.lock = lock
        self._store = store

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self.lock:
            if not (self.folder / SETTINGS).is_file():
                raise UnknownProfile("this profile was deleted")
            yield

    def _settings(self) -> dict:
        try:
            doc = json.loads((self.folder / SETTINGS).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:  # only a hand outside fingerspell could have broken it
            raise _storage_error(exc, "read a profile's settings") from None
        doc = doc if isinstance(doc, dict) else {}
        return {"created": doc.get("created"), "learn": doc.get("learn") is True,
                "use": doc.get("use") if doc.get("use") in USES else "default", "card": doc.get("card")}

    def _samples(self) -> list[records.Record]:
        path = self.folder / SAMPLES
        stamp = _stamp(path)
        if stamp is None:
            return []
        samples = self._store._cached(self.id, stamp)
        if samples is None:
            try:
                samples = records.read(path)
            except DatasetError as exc:  # only a hand outside fingerspell could have broken it
                log.warning("profiles: %s", exc)
                raise StorageError("this profile's samples file cannot be read: the server's log says why") from None
            self._store._remember(self.id, stamp, samples)
        return samples

    def samples(self) -> list[records.Record]:
        """The profile's samples, oldest first (do not change the list: it is shared)."""
        with self._locked():
            return self._samples()

    def samples_file(self) -> bytes:
        """The samples as a landmark records file, as stored."""
        with self._locked():
            try:
                return (self.folder / SAMPLES).read_bytes()
            except FileNotFoundError:
                return records.dumps([]).encode()
            except OSError as exc:
                raise _storage_error(exc, "read a profile's samples") from None

    def settings(self) -> dict:
        """``{"created", "learn", "use", "card"}``."""
        with self._locked():
            return self._settings()

    def summary(self) -> dict:
        """What the profile holds: ``labels`` (label -> samples), ``samples``, ``takes`` (one entry
        a take and label: ``batch``, ``label``, ``n``, ``source``, ``added``), ``learn``, ``use``,
        ``card`` (what the model was taught) and ``has_model``."""
        with self._locked():
            samples, settings, has_model = self._samples(), self._settings(), self._has_model()
        return {**summarise(samples), "learn": settings["learn"], "use": settings["use"], "card": settings["card"],
                "has_model": has_model}

    def _write_settings(self, settings: dict) -> None:
        try:
            replace_file(self.folder / SETTINGS, json.dumps(settings, indent=1) + "\n")
        except OSError as exc:
            raise _storage_error(exc, "save a profile's settings") from None

    def _save(self, samples: list[records.Record]) -> None:
        if len(samples) > MAX_SAMPLES:
            raise TooManySamples(f"the profile would hold {len(samples):,} samples, over its limit of "
                                 f"{MAX_SAMPLES:,}: discard some takes or labels first (DELETE /profile/samples)")
        path = self.folder / SAMPLES
        try:
            records.write(path, samples)
        except OSError as exc:
            raise _storage_error(exc, "save the samples") from None
        self._store._remember(self.id, _stamp(path), samples)

    def add(self, takes: Sequence[Take], source: str) -> tuple[str, int]:
        """Append ``takes`` as one batch; ``(batch, samples added)``.

        Raises:
            NotReady: ``source`` is "learn" and learning as the user signs is off.
            TooManySamples, StorageError: nothing was added.
        """
        batch, added = new_batch(), now()
        extra = {"batch": batch, "source": source, "added": added}
        new = [records.Record(hand, None, take.label, batch, dict(extra)) for take in takes for hand in take.hands]
        with self._locked():
            if source == "learn" and not self._settings()["learn"]:
                raise NotReady('learning as you sign is off for this profile: turn it on with PATCH /profile '
                               '{"learn": true}')
            self._save(self._samples() + new)
        return batch, len(new)

    def append(self, samples: list[records.Record]) -> int:
        """Add uploaded samples (``records_from_upload``) after the profile's own."""
        with self._locked():
            self._save(self._samples() + samples)
        return len(samples)

    def replace(self, samples: list[records.Record]) -> None:
        """The profile's samples become ``samples``."""
        with self._locked():
            self._save(list(samples))

    def remove(self, batch: str | None = None, label: str | None = None) -> int:
        """Discard one take (``batch``) or every sample of ``label``; how many went.

        Raises:
            Missing: the profile has no such take or label.
        """
        if (batch is None) == (label is None):
            raise BadSamples("give batch=ID (one take) or label=NAME (every sample of it)")
        with self._locked():
            samples = self._samples()
            kept = [r for r in samples if (r.extra.get("batch") != batch if batch is not None else r.label != label)]
            if len(kept) == len(samples):
                what = f"take {batch}" if batch is not None else f"sample labelled {label}"
                raise Missing(f"this profile has no {json.dumps(what)[1:-1][:90]}: GET /profile lists its takes")
            self._save(kept)
        return len(samples) - len(kept)

    def update(self, learn: bool | None = None, use: str | None = None) -> None:
        """Turn learning as the user signs on or off; choose the model the profile's streams use.

        Raises:
            NotReady: ``use`` is "personal" and no model has been trained.
        """
        with self._locked():
            settings = self._settings()
            if use == "personal" and not self._has_model():
                raise NotReady(NO_MODEL)
            settings.update({k: v for k, v in (("learn", learn), ("use", use)) if v is not None})
            self._write_settings(settings)

    def delete(self) -> None:
        """Remove the profile, its samples and its model."""
        with self._locked():
            gone = self.folder.with_name(f".deleted-{self.id}-{secrets.token_hex(4)}")
            try:
                os.replace(self.folder, gone)  # at once: no request finds half a profile
            except OSError as exc:
                raise _storage_error(exc, "delete a profile") from None
            self._store._remember(self.id, None, [])
        shutil.rmtree(gone, ignore_errors=True)

    def _has_model(self) -> bool:
        return model_folder.has_model(self.folder)

    @contextmanager
    def training_folder(self) -> Iterator[Path]:
        """A new, empty folder for a training to write its bundle into (``install_model`` takes it)."""
        try:
            with model_folder.training_folder(self.folder, self.lock) as new:
                yield new
        finally:
            with self.lock:  # deleted meanwhile: what the training wrote must not bring the folder back
                if not (self.folder / SETTINGS).is_file():
                    shutil.rmtree(self.folder, ignore_errors=True)

    def install_model(self, load: Callable[[Path], T], card: dict) -> T:
        """The bundle the training wrote becomes the profile's model, and its choice (``use``).

        The previous model stays until the new one has loaded (``load``, whose value is returned)
        and ``profile.json`` says so; if either fails, it is put back.
        """
        with self._locked():
            return model_folder.install(self.folder, load,
                                        lambda: self._write_settings({**self._settings(), "use": "personal",
                                                                      "card": card}))

    def load_model(self, load: Callable[[Path], T]) -> T:
        """``load(model folder)``. Raises NotReady where no model has been trained."""
        with self._locked():
            if not self._has_model():
                raise NotReady(NO_MODEL)
            return load(self.folder / model_folder.MODEL)

    def model_zip(self) -> bytes:
        """The personal bundle as a zip. Raises Missing where no model has been trained."""
        with self._locked():
            if not self._has_model():
                raise Missing(NO_MODEL)
            return model_folder.zip_model(self.folder)
