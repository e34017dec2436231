"""Landmark records (JSON Lines): one format for samples, recordings and the browser's hands.

A file's first line is the header ``{"format": "fingerspell-landmarks", "version": 1}``; every
line after it is one object::

    {"t_ms": 1234, "label": "A", "group": "me-2026-12-06",
     "hand": null | {"landmarks": [[x, y, z], ... 21 points], "handedness": "Left" | "Right",
                     "image_size": [w, h]}}

``t_ms`` (whole milliseconds, optional for unordered samples), ``label`` and ``group`` (which
samples must stay on one side of a split; by default the file) are optional. ``hand`` is the
``Hand`` convention: x and y as fractions of the image's width and height, z MediaPipe's
relative depth on the scale of x; ``null`` is a frame where no hand was found. Other keys may be
added (``score``, ``world``, anything of a caller's): readers keep them in ``Record.extra`` and
these keys keep their meaning. Numpy only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .hands import Hand
from .outputs import replace_file

FORMAT = "fingerspell-landmarks"
VERSION = 1
HEADER = {"format": FORMAT, "version": VERSION}
SUFFIX = ".jsonl"
POINTS = 21
MAX_SIDE = 16384  # an image side no camera has
MAX_LABEL = 64  # characters in a label: a letter, a word or a name sign
COORD_RANGE = 4.0  # |x|, |y|, |z| at most this: a hand may reach past the image's edge, not a mile
MAX_LINE_BYTES = 64 * 1024  # one record: 21 points take ~1 KB; more is not a hand
KNOWN = ("t_ms", "label", "group", "hand")


@dataclass(frozen=True)
class Record:
    """One line of a landmark records file: what was seen at ``t_ms``, and what it is.

    Attributes:
        hand: the hand, or None where no hand was found.
        t_ms: when, in milliseconds (None: an unordered sample).
        label: what it shows ("A", a word, a custom sign), or None where unknown.
        group: samples that must stay on one side of a split (None: the file's).
        extra: any other keys of the line, kept as they were.
    """

    hand: Hand | None
    t_ms: int | None = None
    label: str | None = None
    group: str | None = None
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        doc = dict(self.extra)
        if self.t_ms is not None:
            doc["t_ms"] = self.t_ms
        if self.label is not None:
            doc["label"] = self.label
        if self.group is not None:
            doc["group"] = self.group
        doc["hand"] = hand_to_json(self.hand)
        return doc


# --------------------------------------------------------------------------- one hand


def hand_to_json(hand: Hand | None) -> dict | None:
    """The record's ``hand`` object (None for no hand)."""
    if hand is None:
        return None
    # Nine significant digits give every float32 back exactly: a recording read back is
    # recognised as the hands were when they were found, to the last bit.
    points = [[float(f"{v:.9g}") for v in p] for p in np.asarray(hand.landmarks, dtype=np.float32).tolist()]
    return {"landmarks": points, "handedness": hand.handedness,
            "image_size": [int(hand.image_size[0]), int(hand.image_size[1])]}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def hand_from_json(doc) -> Hand | None:
    """A record's ``hand`` object as a ``Hand`` (None for ``null``).

    Raises:
        ValueError: the object is not a hand in the format; the message says which field.
    """
    if doc is None:
        return None
    if not isinstance(doc, dict):
        raise ValueError('"hand" must be null or an object with landmarks, handedness and image_size')
    points = doc.get("landmarks")
    if not (isinstance(points, list) and len(points) == POINTS
            and all(isinstance(p, list) and len(p) == 3 for p in points)):
        raise ValueError(f'"hand.landmarks" must be {POINTS} points [x, y, z]')
    flat = [v for p in points for v in p]
    # Checked as an array (a hand message a frame, 30 a second a stream: ~20 us, not ~60 in a
    # loop); the types first (no bools, no strings), then an integer too large for a float.
    try:
        values = np.array(flat, dtype=np.float64) if all(type(v) in (float, int) for v in flat) else None
    except OverflowError:
        values = None
    if values is None or not (np.abs(values) <= COORD_RANGE).all():  # NaN fails the comparison too
        raise ValueError(f'"hand.landmarks" must be finite numbers between -{COORD_RANGE:g} and {COORD_RANGE:g} '
                         "(x and y as fractions of the image)")
    handedness = doc.get("handedness")
    if handedness not in ("Left", "Right"):
        raise ValueError('"hand.handedness" must be "Left" or "Right"')
    size = doc.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 and 1 <= v <= MAX_SIDE for v in size)):
        raise ValueError(f'"hand.image_size" must be [width, height], whole numbers from 1 to {MAX_SIDE}')
    score = doc.get("score", 1.0)
    if not (_number(score) and 0.0 <= score <= 1.0):
        raise ValueError('"hand.score", where given, must be a number from 0 to 1')
    landmarks = values.astype(np.float32).reshape(POINTS, 3)
    return Hand(landmarks, np.zeros((POINTS, 3), np.float32), handedness, float(score), (size[0], size[1]), "record")


# --------------------------------------------------------------------------- one line


def record_from_json(doc) -> Record:
    """A parsed line as a ``Record``.

    Raises:
        ValueError: a field is not as the format says; the message names it.
    """
    if not isinstance(doc, dict):
        raise ValueError("each line after the header must be a JSON object")
    if "hand" not in doc:
        raise ValueError('a record needs "hand": null or a hand object')
    t_ms = doc.get("t_ms")
    if t_ms is not None and not (isinstance(t_ms, int) and not isinstance(t_ms, bool) and 0 <= t_ms < 2**53):
        raise ValueError('"t_ms" must be a whole number of milliseconds, 0 or more')
    label = doc.get("label")
    if label is not None:
        label = check_label(label)
    group = doc.get("group")
    if group is not None and not (isinstance(group, str) and 0 < len(group) <= 256):
        raise ValueError('"group" must be a string of 1 to 256 characters')
    extra = {k: v for k, v in doc.items() if k not in KNOWN}
    return Record(hand_from_json(doc["hand"]), t_ms, label, group, extra)


def check_label(label) -> str:
    """``label`` if it may name a sign: 1 to 64 printable characters, no path separators.

    Raises:
        ValueError: it may not; the message says why.
    """
    if not isinstance(label, str) or not 0 < len(label.strip()) <= MAX_LABEL:
        raise ValueError(f'"label" must be a string of 1 to {MAX_LABEL} characters')
    label = label.strip()
    if not label.isprintable() or any(c in label for c in "/\\") or label in (".", ".."):
        raise ValueError(f'"label" {json.dumps(label)[:40]} may hold no control characters, slashes or dot names')
    return label


def is_header(doc) -> bool:
    return isinstance(doc, dict) and doc.get("format") == FORMAT


def check_header(doc) -> None:
    """Raises ValueError unless ``doc`` is a header of a version this code reads."""
    if not is_header(doc):
        raise ValueError(f'the first line must be {json.dumps(HEADER)}: this is not a landmark records file')
    if doc.get("version") != VERSION:
        raise ValueError(f"version {doc.get('version')!r} of the format; this fingerspell reads version {VERSION}")


# --------------------------------------------------------------------------- files


def iter_lines(lines: Iterable[str | bytes], where: str = "records") -> Iterator[Record]:
    """The records of a file's lines (header first).

    Raises:
        DatasetError: a line is not as the format says: ``where:line: what is wrong``.
    """
    header_seen = False
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_BYTES:
            raise DatasetError(f"{where}:{number}: a line of {len(line):,} bytes; a record takes at most "
                               f"{MAX_LINE_BYTES:,}")
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            if not header_seen:
                check_header(doc)
                header_seen = True
                continue
            yield record_from_json(doc)
        except (ValueError, RecursionError) as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc) or type(exc).__name__
            raise DatasetError(f"{where}:{number}: {reason}") from None
    if not header_seen:
        raise DatasetError(f"{where}: empty; a landmark records file starts with {json.dumps(HEADER)}")


def read(path: str | os.PathLike) -> list[Record]:
    """Every record of a landmark records file.

    Raises:
        DatasetError: the file cannot be read, or a line is not as the format says (the message
            names the file and the line).
    """
    try:
        with open(path, "rb") as f:
            return list(iter_lines(f, str(path)))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from None


def is_records_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file whose first line is a landmark records header."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        with open(path, "rb") as f:
            first = f.readline(MAX_LINE_BYTES)
        return is_header(json.loads(first))
    except (OSError, ValueError, RecursionError):
        return False


def dumps(records: Iterable[Record]) -> str:
    """A whole file's text: the header, then one line per record."""
    lines = [json.dumps(HEADER)] + [json.dumps(r.to_json(), allow_nan=False, separators=(",", ":")) for r in records]
    return "\n".join(lines) + "\n"


def write(path: str | os.PathLike, records: Iterable[Record]) -> Path:
    """Write ``records`` to ``path`` atomically: a crash leaves the old file (or none), never half of one.

    The caller decides whether ``path`` may be written (a command never replaces a file it did not
    write: see ``outputs.py``).
    """
    return replace_file(path, dumps(records))


# --------------------------------------------------------------------------- arrays


def from_points(points: np.ndarray, *, label: str | None = None, group: str | None = None,
                image_size: tuple[int, int] = (640, 480), handedness: str = "Right",
                t0_ms: int | None = None, fps: float = 30.0) -> list[Record]:
    """Records of an (N, 21, 3) or (N, 63) array of landmarks (x, y as fractions of the image).

    A row of zeros is a frame with no hand (as the legacy recorders wrote it). With ``t0_ms``
    the rows are consecutive frames at ``fps``, timed from it; without, unordered samples.
    """
    rows = np.asarray(points, dtype=np.float32).reshape(-1, POINTS, 3)
    out = []
    for i, row in enumerate(rows):
        hand = None
        if np.any(row):
            hand = Hand(row.copy(), np.zeros((POINTS, 3), np.float32), handedness, 1.0,
                        (int(image_size[0]), int(image_size[1])), "record")
        t_ms = None if t0_ms is None else int(t0_ms + round(i * 1000.0 / fps))
        out.append(Record(hand, t_ms, label, group))
    return out


def is_arrays_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder of recorded landmark arrays: ``<LABEL>.npy`` files, or
    ``static/`` and ``dynamic/`` folders of them (the legacy recorders' layout)."""
    path = Path(path)
    return path.is_dir() and (any(path.glob("*.npy")) or any((path / d).is_dir() and any((path / d).glob("*.npy"))
                                                             for d in ("static", "dynamic")))


def read_arrays(folder: str | os.PathLike, *, image_size: tuple[int, int] = (640, 480),
                fps: float = 30.0) -> list[Record]:
    """The records of a folder of recorded landmark arrays, each file one group.

    ``<LABEL>.npy`` of shape (N, 63) or (N, 21, 3) is N unordered samples of LABEL; of shape
    (N, T, 63) N recordings of T frames at ``fps`` (each frame's ``t_ms`` from its recording's
    start, the recording's index in ``extra["recording"]``). x and y are fractions of a frame of
    ``image_size``; a row of zeros is a frame without a hand. Handedness is not recorded: the
    hands are taken as right hands.

    Raises:
        DatasetError: a file cannot be read as such an array.
    """
    folder = Path(folder)
    files = sorted(folder.glob("*.npy")) + sorted(folder.glob("static/*.npy")) + sorted(folder.glob("dynamic/*.npy"))
    out: list[Record] = []
    for f in files:
        try:
            label = check_label(f.stem)
            arr = np.load(f, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{f}: not a landmark array ({exc})") from None
        group = str(f.relative_to(folder).with_suffix(""))
        if arr.ndim == 2 and arr.shape[1] == 63 or arr.ndim == 3 and arr.shape[1:] == (21, 3):
            out += from_points(arr, label=label, group=group, image_size=image_size)
        elif arr.ndim == 3 and arr.shape[2] == 63:
            for k, recording in enumerate(arr):
                out += [Record(r.hand, r.t_ms, r.label, r.group, {"recording": k})
                        for r in from_points(recording, label=label, group=group, image_size=image_size, t0_ms=0,
                                             fps=fps)]
        else:
            raise DatasetError(f"{f}: an array of shape {arr.shape}; expected (N, 63), (N, 21, 3) or (N, frames, 63)")
        if not np.isfinite(arr).all() or np.abs(arr).max(initial=0) > COORD_RANGE:
            raise DatasetError(f"{f}: values must be finite landmarks (x and y as fractions of the frame)")
    if not out:
        raise DatasetError(f"{folder}: no <LABEL>.npy landmark arrays found")
    return out
