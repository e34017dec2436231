"""Image folders -> samples, group-aware splits, and a report of what was skipped. No Keras.

A data folder is any folder of class folders (``A/``, ``b/``, ``nothing/`` ...), or the Kaggle
"ASL Alphabet" download as it unpacks (``asl_alphabet_train/asl_alphabet_train/A/...``),
which is found automatically. Recorded hands are data too: a landmark records file
(``records.py``) or a folder of landmark arrays (``static/<LABEL>.npy``); their samples carry
their hand and need no detection.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import records
from .config import SplitParams
from .errors import DatasetError
from .hands import Hand
from .images import is_image_name
from .labels import normalize_label, sort_labels

log = logging.getLogger(__name__)

ROBOFLOW = re.compile(r"^(?P<id>.+?)_(?:jpe?g|png)\.rf\.[0-9a-fA-F]+\.\w+$")
SIGNER = re.compile(r"^(?P<id>(?:hand|signer|user|person)\d+)[_-]", re.IGNORECASE)
KAGGLE = re.compile(r"^(?P<prefix>[A-Za-z]+?)(?P<frame>\d+)\.\w+$")
GROUPINGS = ("auto", "kaggle-frames", "signer", "roboflow", "regex", "random")


@dataclass(frozen=True)
class Sample:
    path: str  # the image, or for a recorded hand ``FILE#LINE`` (``FILE#ROW`` of an array)
    label: str
    source: str  # the --data folder or file it came from (its name), for per-source figures
    group: str = ""  # split group; samples of one group always land on one side
    recorded: bool = False  # a hand from landmark records: ``hand`` is it, and there is no image
    hand: Hand | None = None  # the recorded hand (None: a frame recorded without one)


@dataclass
class Dataset:
    samples: list[Sample]
    labels: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    notes: list[str] = field(default_factory=list)
    grouping: dict[str, int] = field(default_factory=dict)  # rule -> how many samples it grouped

    def report(self) -> dict:
        return {
            "images": len(self.samples),
            "labels": self.labels,
            "per_source": dict(Counter(s.source for s in self.samples)),
            "grouping": self.grouping,
            "skipped": len(self.skipped),
            "skipped_files": [{"path": p, "reason": r} for p, r in self.skipped],
            "notes": self.notes,
        }


def resolve_root(path: str | os.PathLike) -> Path:
    """Find the folder of class folders inside ``path``.

    Accepts the folder itself, or a wrapper with one sub-folder (repeatedly), which is how the
    Kaggle archive unpacks (``asl_alphabet_train/asl_alphabet_train/``). Where both a train and a
    test folder sit side by side, the train one is taken.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"--data {root} is a file; give a folder of class folders (A/, B/, ...)")
    for _ in range(4):
        subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if any(_has_images(d) for d in subdirs):
            return root
        train = [d for d in subdirs if "train" in d.name.lower()]
        if len(subdirs) == 1 or len(train) == 1:
            root = train[0] if train else subdirs[0]
            continue
        break
    loose = sum(1 for e in root.iterdir() if e.is_file() and is_image_name(e.name))
    if loose:  # the likeliest mistake: a folder of photos, not sorted by letter yet
        raise DatasetError(
            f"{root} holds {loose:,} image(s) but no class folders: put each letter's images in a folder named "
            f"after it, {root}/A/*.jpg, {root}/B/*.jpg, ..."
        )
    raise DatasetError(
        f"no class folders with images found in {Path(path)}; expected e.g. {Path(path)}/A/*.jpg "
        "(one folder per letter) or the Kaggle asl_alphabet_train layout"
    )


def _has_images(folder: Path) -> bool:
    try:
        return any(is_image_name(e.name) for e in os.scandir(folder))
    except OSError:
        return False


def _walk_files(folder: Path, skipped: list) -> list[Path]:
    """All files below ``folder``, following links but never around a loop or up to a parent."""
    out, seen = [], set()
    # A link to a folder above this one (the data folder, say) would take in every other
    # class's images under this class's label before the loop is noticed.
    above = {str(p) for p in Path(os.path.realpath(folder)).parents}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen or real in above:
            skipped.append((dirpath, "symlink loop: folder already visited" if real in seen
                            else "symlink loop: links to a folder above the class folder"))
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames.sort()
        out.extend(Path(dirpath) / name for name in sorted(filenames))
    return out


def scan(paths, *, limit_per_class: int | None = None, labels: list[str] | None = None) -> Dataset:
    """List the images under each data folder.

    Args:
        paths: data folders (each a folder of class folders, or the Kaggle layout).
        limit_per_class: keep at most this many images per class and folder (evenly spaced).
        labels: keep only these labels (normalised); others are noted and left out.
    Raises:
        DatasetError: a folder is missing or holds no class folders with images.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if not paths:
        raise DatasetError("give at least one --data folder")
    samples, skipped, notes, unknown = [], [], [], []
    wanted = {normalize_label(x) for x in labels} if labels else None
    for given in paths:
        if records.is_records_file(given) or records.is_arrays_folder(given):
            samples += _recorded(given, wanted, notes, limit_per_class)
            continue
        root = resolve_root(given)
        source = Path(given).name or str(given)
        for cls_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = normalize_label(cls_dir.name)
            if wanted is not None and label not in wanted:
                notes.append(f"{cls_dir}: label {label!r} is not in the model's labels; left out")
                unknown.append(cls_dir)
                continue
            files = []
            for f in _walk_files(cls_dir, skipped):
                if not is_image_name(f.name):
                    skipped.append((str(f), "not an image file"))
                    continue
                try:
                    if f.stat().st_size == 0:
                        skipped.append((str(f), "empty file (0 bytes)"))
                        continue
                except OSError as exc:
                    skipped.append((str(f), f"cannot read ({exc.strerror})"))
                    continue
                files.append(f)
            if not files:
                notes.append(f"class folder {cls_dir} has no images; left out")
                continue
            if limit_per_class and len(files) > limit_per_class:
                idx = np.linspace(0, len(files) - 1, limit_per_class).round().astype(int)
                files = [files[i] for i in idx]
            samples += [Sample(str(f), label, source) for f in files]
    if not samples and unknown:  # e.g. photos/*.jpg: one folder of loose images, named for no label
        names = ", ".join(p.name for p in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        where = unknown[0].parent
        raise DatasetError(
            f"no images of the model's labels in {', '.join(map(str, paths))}: the folder(s) {names} are named "
            f"for no label it knows; put each letter's images in a folder named after it, {where}/A/*.jpg, "
            f"{where}/B/*.jpg, ..."
        )
    if not samples:
        raise DatasetError(f"no images or labelled landmark records found in {', '.join(map(str, paths))}")
    for note in notes:
        log.warning(note)
    return Dataset(samples, sort_labels(s.label for s in samples), skipped, notes)


def _recorded(given, wanted: set[str] | None, notes: list[str], limit_per_class: int | None) -> list[Sample]:
    """The labelled samples of a landmark records file or a folder of landmark arrays, grouped
    by the records' ``group`` or else by file."""
    path = Path(given)
    source = path.name or str(given)
    if path.is_dir():
        found = [(f"{path}#{i}", r) for i, r in enumerate(records.read_arrays(path))]
    else:
        found = [(f"{path}#{i + 2}", r) for i, r in enumerate(records.read(path))]  # line numbers: header first
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for where, rec in found:
        if rec.label is None:
            continue
        label = normalize_label(rec.label)
        by_label[label].append(Sample(where, label, source, f"{source}:{rec.group or 'file'}", True, rec.hand))
    out = []
    for label, items in sorted(by_label.items()):
        if wanted is not None and label not in wanted:
            notes.append(f"{path}: label {label!r} is not in the model's labels; its {len(items):,} samples left out")
            continue
        if limit_per_class and len(items) > limit_per_class:
            items = [items[i] for i in np.linspace(0, len(items) - 1, limit_per_class).round().astype(int)]
        out += items
    if not out:
        notes.append(f"{path}: no labelled records" + (" of the model's labels" if wanted is not None else ""))
    return out


def group_of(sample: Sample, params: SplitParams) -> tuple[str, str]:
    """(group id, rule that made it) for one sample, per ``params.grouping``."""
    name = os.path.basename(sample.path)
    mode = params.grouping
    if sample.recorded and mode != "random":
        return sample.group, "landmark records (their group, or else their file)"
    if mode == "random":
        return f"file:{sample.path}", "random"
    if mode == "regex":
        m = re.search(params.group_regex or "", name)
        if m is None:
            return f"file:{sample.path}", "file (regex did not match)"
        return f"{sample.label}:{m.group(1) if m.groups() else m.group(0)}", "regex"
    if mode in ("auto", "roboflow"):
        m = ROBOFLOW.match(name)
        if m:
            return f"{sample.source}:{sample.label}:{m['id']}", "roboflow source photo"
    if mode in ("auto", "signer"):
        m = SIGNER.match(name)
        if m:
            return f"{sample.source}:signer:{m['id'].lower()}", "signer prefix"
    if mode in ("auto", "kaggle-frames"):
        m = KAGGLE.match(name)
        if m:
            block = int(m["frame"]) // params.frame_block
            return f"{sample.source}:{sample.label}:frames{block}", f"kaggle frame blocks of {params.frame_block}"
    return f"file:{sample.path}", "file (no grouping pattern matched)"


def assign_groups(dataset: Dataset, params: SplitParams) -> Dataset:
    """Fill each sample's group and count which rule grouped how many samples."""
    if params.grouping not in GROUPINGS:
        raise DatasetError(f"unknown grouping {params.grouping!r}; choose one of {', '.join(GROUPINGS)}")
    if params.grouping == "regex":
        if not params.group_regex:
            raise DatasetError("grouping 'regex' needs --group-regex, e.g. '^(\\w+?)_' (first capture group = group id)")
        try:
            re.compile(params.group_regex)
        except re.error as exc:
            raise DatasetError(f"--group-regex {params.group_regex!r} is not a valid regex: {exc}") from None
    counts: Counter = Counter()
    out = []
    for s in dataset.samples:
        group, rule = group_of(s, params)
        counts[rule] += 1
        out.append(dataclasses.replace(s, group=group))
    dataset.samples = out
    dataset.grouping = dict(counts)
    return dataset


def split(dataset: Dataset, params: SplitParams) -> dict[str, list[int]]:
    """Seeded, group-aware, class-stratified split into train / val / test sample indices.

    Whole groups are dealt out in a seeded random order; each goes to the side whose per-class
    quota it helps most, so every class gets validation images and no group is on two sides.
    """
    if not dataset.samples[0].group:
        assign_groups(dataset, params)
    for name, frac in (("val_fraction", params.val_fraction), ("test_fraction", params.test_fraction)):
        if not 0 <= frac < 1:
            raise DatasetError(f"{name} must be in [0, 1), got {frac}")
    if params.val_fraction + params.test_fraction >= 1:
        raise DatasetError("val_fraction + test_fraction must leave images for training")
    members: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(dataset.samples):
        members[s.group].append(i)
    per_class = Counter(s.label for s in dataset.samples)
    quota = {
        "val": {c: n * params.val_fraction for c, n in per_class.items()},
        "test": {c: n * params.test_fraction for c, n in per_class.items()},
    }
    taken = {"val": Counter(), "test": Counter()}
    rng = np.random.default_rng(params.seed)
    order = sorted(members)
    rng.shuffle(order)
    sides: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for g in order:
        idx = members[g]
        counts = Counter(dataset.samples[i].label for i in idx)
        best, best_need = "train", 0.0
        for side in ("val", "test"):
            need = sum(min(n, quota[side][c] - taken[side][c]) for c, n in counts.items())
            # a group goes to a held-out side only if at least half of it fits that side's quota
            if need >= 0.5 * len(idx) and need > best_need:
                best, best_need = side, need
        if best != "train":
            taken[best].update(counts)
        sides[best].extend(idx)
    return {k: sorted(v) for k, v in sides.items()}


def describe_split(dataset: Dataset, sides: dict[str, list[int]], params: SplitParams) -> dict:
    """What the report says about a split, including how far to trust it."""
    groups = {k: len({dataset.samples[i].group for i in v}) for k, v in sides.items()}
    desc = {
        "grouping": params.grouping,
        "rules": dataset.grouping,
        "seed": params.seed,
        "images": {k: len(v) for k, v in sides.items()},
        "groups": groups,
    }
    if params.grouping == "random" or any(r.startswith("file") for r in dataset.grouping):
        desc["warning"] = (
            "some images were split one by one, not by group: neighbouring video frames or copies "
            "of one photo may sit on both sides, so validation figures are optimistic"
        )
    return desc
