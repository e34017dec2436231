"""What a user sends a profile: takes recorded in the page and landmark records files, checked
whole before anything is stored; the limits they are held to, and the errors a profile raises.

``teach/profiles.py`` stores what passes; ``server/profiles.py`` turns the errors into status codes.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

from .. import records
from ..errors import DatasetError, FingerspellError
from ..hands import Hand

MAX_SAMPLES = 5000  # samples a profile: ~200 a letter, ten times what teaching needs; ~5 MB of records
MAX_PROFILES = 1000  # profiles a data folder
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # a request body: a file of MAX_SAMPLES records takes ~5 MB
MAX_TAKE = 120  # hands a take: the page records ~1 s at 30 frames/s; 4 s is a generous bound
LIMITS = {"max_samples": MAX_SAMPLES, "max_profiles": MAX_PROFILES, "max_upload_bytes": MAX_UPLOAD_BYTES,
          "max_take": MAX_TAKE, "max_label_chars": records.MAX_LABEL}
SOURCES = ("teach", "learn", "upload")
BATCH = re.compile(r"[A-Za-z0-9_-]{1,64}")


# --------------------------------------------------------------------------- errors


class ProfileError(FingerspellError):
    """A profile request refused; the message says what to do. Nothing was changed."""


class UnknownProfile(ProfileError):
    """No profile has this token (or none was given)."""


class ProfilesFull(ProfileError):
    """The data folder holds ``MAX_PROFILES`` profiles."""


class TooManySamples(ProfileError):
    """The change would leave a profile with more than ``MAX_SAMPLES`` samples."""


class BadSamples(ProfileError):
    """Samples, a take or a records file that are not as the format says."""


class Missing(ProfileError):
    """The take, label or model asked for is not in the profile."""


class NotReady(ProfileError):
    """The profile is not in a state that allows this (no model yet, learning off, a training running)."""


class StorageError(ProfileError):
    """The data folder could not be written or read."""


# --------------------------------------------------------------------------- what comes in


@dataclass(frozen=True)
class Take:
    """Hands of one label recorded together (one POST of the page)."""

    label: str
    hands: list[Hand]


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_batch() -> str:
    return secrets.token_hex(8)


def takes_from_json(doc) -> tuple[str, list[Take]]:
    """``(source, takes)`` of a samples request: ``{"label", "source", "hands"}``, or
    ``{"source", "takes": [{"label", "hands"}, ...]}`` (the letters of a word learnt as signed).

    Raises:
        BadSamples: a field is not as the protocol says; the message names it.
    """
    example = '{"label": "G", "source": "teach", "hands": [HAND, ...]}'
    if not isinstance(doc, dict):
        raise BadSamples(f"expected a JSON object like {example}")
    source = doc.get("source", "teach")
    if source not in ("teach", "learn"):
        raise BadSamples('"source" must be "teach" or "learn"')
    if "takes" not in doc:
        return source, [_take(doc, "")]
    if "label" in doc or "hands" in doc:
        raise BadSamples('give "label" and "hands", or "takes", not both')
    if not isinstance(doc["takes"], list) or not doc["takes"]:
        raise BadSamples('"takes" must be a list of {"label": ..., "hands": [...]} objects')
    return source, [_take(t, f"takes[{i}]: ") for i, t in enumerate(doc["takes"])]


def _take(doc, where: str) -> Take:
    if not isinstance(doc, dict):
        raise BadSamples(f'{where}a take is an object {{"label": ..., "hands": [...]}}')
    try:
        label = records.check_label(doc.get("label"))
    except ValueError as exc:
        raise BadSamples(f"{where}{exc}") from None
    hands = doc.get("hands")
    if not isinstance(hands, list) or not hands:
        raise BadSamples(f'{where}"hands" must be a list of 1 to {MAX_TAKE} hands')
    if len(hands) > MAX_TAKE:
        raise BadSamples(f'{where}"hands" holds {len(hands):,} hands; a take holds at most {MAX_TAKE} (4 s at 30 '
                         "frames/s): send a shorter one")
    out = []
    for j, doc_hand in enumerate(hands):
        try:
            hand = records.hand_from_json(doc_hand)
        except ValueError as exc:
            raise BadSamples(f"{where}hands[{j}]: {exc}") from None
        if hand is None:
            raise BadSamples(f"{where}hands[{j}] is null: a sample needs a hand")
        out.append(hand)
    return Take(label, out)


def records_from_upload(data: bytes) -> list[records.Record]:
    """The samples of an uploaded landmark records file, each with a label and a hand.

    A record keeps its ``batch``, ``source`` and ``added`` (a file downloaded from a profile goes
    back as it was); one without is of a new take, ``source`` "upload".

    Raises:
        BadSamples: the file is not a records file, or a line is not a sample (``upload:LINE: why``).
        TooManySamples: it holds more than ``MAX_SAMPLES``.
    """
    batch, added, line = new_batch(), now(), 0

    def lines():
        nonlocal line
        for line, text in enumerate(data.splitlines(), 1):  # noqa: B007 - read by the loop below
            yield text

    out = []
    try:
        for rec in records.iter_lines(lines(), "upload"):  # a record comes right after its line is read
            if rec.label is None or rec.hand is None:
                raise BadSamples(f'upload:{line}: a sample needs a "label" and a "hand" (not null); nothing was '
                                 "changed")
            if len(out) == MAX_SAMPLES:
                raise TooManySamples(f"the file holds over {MAX_SAMPLES:,} samples, a profile's limit; upload fewer")
            extra = dict(rec.extra)
            if not (isinstance(extra.get("batch"), str) and BATCH.fullmatch(extra["batch"])):
                extra["batch"] = batch
            if extra.get("source") not in SOURCES:
                extra["source"] = "upload"
            if not (isinstance(extra.get("added"), str) and len(extra["added"]) <= 40):
                extra["added"] = added
            out.append(records.Record(rec.hand, rec.t_ms, rec.label, rec.group or extra["batch"], extra))
    except DatasetError as exc:
        raise BadSamples(f"{exc}; nothing was changed") from None
    return out


def summarise(samples: list[records.Record]) -> dict:
    """``labels`` (label -> samples, sorted), ``samples`` (how many) and ``takes`` (one entry a take
    and label, oldest first: ``batch``, ``label``, ``n``, ``source``, ``added``)."""
    takes: dict[tuple, dict] = {}
    for r in samples:
        key = (r.extra.get("batch"), r.label)
        if key not in takes:
            takes[key] = {"batch": key[0], "label": r.label, "n": 0, "source": r.extra.get("source"),
                          "added": r.extra.get("added")}
        takes[key]["n"] += 1
    labels = Counter(r.label for r in samples)
    return {"labels": dict(sorted(labels.items())), "samples": len(samples), "takes": list(takes.values())}
