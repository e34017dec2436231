"""Personal models for the profile routes and the stream: training them, and switching streams to them.

``Trainer`` runs one training at a time a server, however many processes serve its data folder
(``fingerspell.teach.teach`` in a worker thread, so streams and requests go on meanwhile; a file
lock across processes); the others wait their turn. A personal model is loaded again when
another process has trained it since (its folder's stamp). ``GET /profile`` reads its
progress (``state``). When a training ends, the bundle it wrote is swapped in as the profile's
model (``Profile.install_model``: a failed training leaves the previous one) and the profile's
open streams switch to it. ``profile_command`` is the stream's ``{"type": "profile"}`` command.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread

from .. import teach
from ..errors import FingerspellError
from ..teach import model_folder
from ..teach.locks import FileLock
from ..teach.profiles import (LOCKS, USES, BadSamples, NotReady, Profile, ProfileError, Profiles, UnknownProfile,
                              now)

log = logging.getLogger(__name__)

CACHED_MODELS = 32  # personal models kept loaded (each stream of a profile shares its profile's)
NO_MODEL = "no personal model yet: teach it some signs, then train (POST /profile/train)"


class Stop(threading.Event):
    """Set to ask a training to stop (its profile was deleted, or the server is stopping);
    ``teach`` may call it or ask ``is_set()``."""

    def __call__(self) -> bool:
        return self.is_set()


@dataclass
class Job:
    """A training asked for: waiting its turn or running ("training"), or "failed" (and why)."""

    state: str = "training"
    progress: float = 0.0
    message: str = ""
    stop: Stop = field(default_factory=Stop)


def default_model(predictor) -> tuple[object, list[str]]:
    """What a stream that uses no profile's model reads with: the served bundle's own personal head
    (a personal bundle served with ``--model``), or None; and the labels it answers."""
    personal = getattr(predictor, "personal", None)
    return personal, list(personal.labels if personal is not None else predictor.labels)


class Trainer:
    """The server's trainings, one at a time, and the personal models the streams use.

    Args:
        profiles: the data folder's profiles.
        predictor: the served model: a training adapts its bundle (``path``), and a personal model
            is loaded only if it was taught over it (``load_personal``).
        tasks: where trainings run (the app's lifespan's task group).
    """

    def __init__(self, profiles: Profiles, predictor, tasks: anyio.abc.TaskGroup):
        self.profiles = profiles
        self.predictor = predictor
        self.base: Path | None = getattr(predictor, "path", None)  # None: a test's fake
        self.jobs: dict[str, Job] = {}
        self._tasks = tasks
        self._turn = anyio.Lock()  # one training at a time; the others wait, first come first served
        self._models: OrderedDict[str, tuple] = OrderedDict()  # profile -> (its model folder's stamp, model)
        self._exclusive = FileLock(profiles.root / LOCKS / "training")  # one training across processes
        self._streams: dict[str, weakref.WeakSet] = {}

    def state(self, pid: str, summary: dict) -> dict:
        """The profile's ``model``: ``state``, ``progress``, ``message`` and ``card``."""
        job = self.jobs.get(pid)
        card = summary["card"] if summary["has_model"] else None
        if job is not None:
            return {"state": job.state, "progress": round(job.progress, 3), "message": job.message, "card": card}
        if summary["has_model"]:
            return {"state": "ready", "progress": 1.0, "message": "trained", "card": card}
        return {"state": "none", "progress": 0.0, "message": NO_MODEL, "card": None}

    def start(self, profile: Profile) -> None:
        """Train ``profile``'s model when its turn comes.

        Raises:
            NotReady: one is already being trained for it.
        """
        job = self.jobs.get(profile.id)
        if job is not None and job.state == "training":
            raise NotReady("a model is being trained for this profile already: GET /profile shows its progress")
        waiting = "waiting for another profile's training to end" if self._turn.locked() else "starting"
        self.jobs[profile.id] = job = Job(message=waiting)
        self._tasks.start_soon(self._run, profile, job)

    async def _run(self, profile: Profile, job: Job) -> None:
        try:
            async with self._turn:
                if job.stop.is_set():
                    return
                job.message = "training"
                personal = await anyio.to_thread.run_sync(self._train, profile, job)
        except UnknownProfile:  # deleted while it trained: nothing to report to
            return
        except FingerspellError as exc:
            return self._failed(profile, job, str(exc))
        except Exception:  # noqa: BLE001 - a training's fault must not end the server's task group
            log.exception("training the personal model of profile %s failed", profile.id[:8])
            return self._failed(profile, job, "a server fault (the server's log has the details)")
        if self.jobs.get(profile.id) is job:
            del self.jobs[profile.id]
        log.info("profile %s: personal model trained", profile.id[:8])
        self._remember(profile.id, personal, model_folder.stamp(profile.folder))
        await self._switch(profile.id, personal, "personal")

    def _failed(self, profile: Profile, job: Job, why: str) -> None:
        log.info("profile %s: training failed: %s", profile.id[:8], why)
        job.state, job.message = "failed", f"training failed: {why}; the profile's model was not changed"

    def _load(self, folder: Path):
        """The personal model in ``folder``, checked against the served model where it can be."""
        load = getattr(self.predictor, "load_personal", None) or teach.load_personal
        personal = load(folder)
        if personal is None:
            raise NotReady("the profile's model holds no personal model; train it again")
        return personal

    def _train(self, profile: Profile, job: Job):
        """Train and install ``profile``'s model (in a worker thread); the model, loaded."""
        samples = profile.samples()
        if not samples:
            raise BadSamples("this profile has no samples: teach it some signs first")
        started = time.perf_counter()

        def progress(fraction, message=None) -> None:
            job.progress = min(max(float(fraction), 0.0), 1.0)
            if message:
                job.message = str(message)[:200]

        def waiting() -> bool:
            job.message = "waiting for another profile's training to end"
            return not job.stop.is_set()

        if not self._exclusive.acquire(wait=waiting):
            raise ProfileError("stopped: the profile was deleted or the server is stopping")
        job.message = "training"
        try:
            return self._teach(profile, job, samples, started, progress)
        finally:
            self._exclusive.release()

    def _teach(self, profile: Profile, job: Job, samples, started: float, progress):
        with profile.training_folder() as out:
            report = teach.teach(self.base, list(samples), out, progress=progress, stop=job.stop)
            if job.stop.is_set():
                raise ProfileError("stopped: the profile was deleted or the server is stopping")
            card = {"samples": len(samples), "labels": dict(sorted(Counter(r.label for r in samples).items())),
                    "trained": now(), "base": self.base.name if self.base is not None else None,
                    **report.to_json(), "seconds": round(time.perf_counter() - started, 2)}
            return profile.install_model(self._load, card)

    # ------------------------------------------------------------------ the models streams use

    def _remember(self, pid: str, personal, stamp=None) -> None:
        self._models[pid] = (stamp, personal)
        self._models.move_to_end(pid)
        while len(self._models) > CACHED_MODELS:
            self._models.popitem(last=False)

    async def personal(self, profile: Profile):
        """``profile``'s personal model, loaded (once: streams of a profile share it).

        Raises:
            NotReady: it has none yet.
        """
        stamp = model_folder.stamp(profile.folder)
        if self._models.get(profile.id, (None,))[0] != stamp or stamp is None:
            try:
                loaded = await anyio.to_thread.run_sync(profile.load_model, self._load)
            except ProfileError:
                raise
            except FingerspellError as exc:
                log.warning("profile %s: its personal model cannot be loaded: %s", profile.id[:8], exc)
                raise NotReady(f"the personal model cannot be loaded ({exc}); train it again") from None
            self._remember(profile.id, loaded, stamp)
        self._models.move_to_end(profile.id)
        return self._models[profile.id][1]

    def follow(self, pid: str, conn) -> None:
        """``conn`` (a stream) uses profile ``pid``'s model: it is switched when that changes."""
        if conn.profile not in (None, pid) and conn.profile in self._streams:
            self._streams[conn.profile].discard(conn)
        conn.profile = pid
        self._streams.setdefault(pid, weakref.WeakSet()).add(conn)

    async def use(self, profile: Profile, use: str) -> None:
        """The profile's streams switch to its personal model or back to the default."""
        await self._switch(profile.id, await self.personal(profile) if use == "personal" else None, use)

    async def forget(self, pid: str) -> None:
        """The profile was deleted: stop its training, drop its model, switch its streams to the default."""
        job = self.jobs.pop(pid, None)
        if job is not None:
            job.stop.set()
        self._models.pop(pid, None)
        await self._switch(pid, None, "default")
        self._streams.pop(pid, None)

    async def _switch(self, pid: str, personal, use: str) -> None:
        """The profile's streams read with ``personal`` (None: the default model), and are told."""
        personal, labels = (personal, personal.labels) if personal is not None else default_model(self.predictor)
        streams = [c for c in self._streams.get(pid, ()) if not c.closed]
        async with anyio.create_task_group() as tg:  # a stream slow to read does not hold up the others
            for conn in streams:
                conn.personal = personal
                tg.start_soon(conn.send, {"type": "profile", "use": use, "labels": list(labels)})

    def close(self) -> None:
        """Ask every training to stop (the server is stopping)."""
        for job in self.jobs.values():
            job.stop.set()


async def profile_command(conn, doc: dict) -> dict:
    """``{"type": "profile", "token": ..., "use": "personal" | "default"}``: the stream ``conn``
    uses the profile's personal model (``use`` left out: the profile's choice) or the default.

    Returns:
        ``{"type": "profile", "use", "labels"}``, or ``{"type": "error", ...}`` (a bad token, no model yet).
    """
    state = conn.ws.app.state
    use = doc.get("use")
    if use is not None and use not in USES:
        return {"type": "error", "error": 'profile "use" must be "personal" or "default"'}
    try:
        profile = await anyio.to_thread.run_sync(state.profiles.open, doc.get("token"))
        if use is None:
            use = (await anyio.to_thread.run_sync(profile.settings))["use"]
        personal = await state.trainer.personal(profile) if use == "personal" else None
    except ProfileError as exc:
        return {"type": "error", "error": f"profile: {exc}"}
    personal, labels = (personal, personal.labels) if personal is not None else default_model(conn.predictor)
    conn.personal = personal
    state.trainer.follow(profile.id, conn)
    return {"type": "profile", "use": use, "labels": list(labels)}
