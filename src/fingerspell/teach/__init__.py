"""Teach a model one person's hands: their samples in, a personal bundle out, in seconds, no TensorFlow.

``teach(base, records, out)`` fits a personal head (``personal.py``) over the base bundle's model
on the person's labelled hands and writes a normal bundle: the base's export, the head
(``personal.npz``), what it was taught in ``bundle.json`` (``personal``) and its model card.
``load_personal`` reads the head back for a stream. ``profiles.py`` keeps a person's samples on
the server.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .. import bundle as bundle_io
from .. import records as records_io
from .. import recognisers
from ..errors import BundleError, FingerspellError
from ..hands import sha256_file
from ..labels import LETTERS
from ..recognisers import Seen
from ..recognisers.litert import Classifier
from . import personal as head
from .personal import Personal

ANCHORS = bundle_io.ANCHORS

__all__ = ["teach", "load_personal", "Personal", "TeachReport", "ANCHORS", "anchors_of", "label_of"]

log = logging.getLogger(__name__)
ANCHORS_PER_LABEL = 30
# An anchor weighs half a sample of the person's: where their hand and other people's disagree
# (their custom sign is someone's Y), their word wins. 0.25-1 measured the same otherwise.
ANCHOR_WEIGHT = 0.5


@dataclass(frozen=True)
class TeachReport:
    """What ``teach`` learned: samples per label, labels the base never had, the time it took."""

    out: Path
    taught: dict[str, int]  # label -> the person's samples of it
    new_labels: list[str]  # labels the base model did not have (custom signs)
    anchors: int  # other people's hands used for the labels not taught
    skipped: int  # records without a hand or a label
    seconds: float
    base_top1: float | None  # the base model on the person's samples of its labels (None: only new labels)
    taught_top1: float  # the personal model on the same samples (they trained it: not a held-out figure)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"taught": self.taught, "new_labels": self.new_labels, "anchors": self.anchors,
                "skipped": self.skipped, "seconds": round(self.seconds, 3),
                "base_top1": None if self.base_top1 is None else round(self.base_top1, 4),
                "taught_top1": round(self.taught_top1, 4), "notes": self.notes}


def label_of(label: str) -> str:
    """A sample's label as the model names it: a single letter upper-case, anything else as given
    (a custom sign keeps its spelling, which is the text it commits).

    Raises:
        ValueError: not a label (``records.check_label``).
    """
    label = records_io.check_label(label)
    return label.upper() if len(label) == 1 and label.upper() in LETTERS else label


def _inputs(runtime, hands) -> np.ndarray:
    return np.stack([runtime.inputs([Seen(0, h)]) for h in hands])


def anchors_of(hands: list, labels: list[str], groups: list[str], per_label: int = ANCHORS_PER_LABEL,
               seed: int = 0) -> list[records_io.Record]:
    """Up to ``per_label`` hands of each label for a bundle's ``anchors.jsonl``, spread over as many
    groups (photos, frame blocks, people) as there are. Only training hands belong here."""
    rng = np.random.default_rng(seed)
    out = []
    for label in sorted(set(labels)):
        idx = [i for i, lab in enumerate(labels) if lab == label]
        by_group: dict[str, list[int]] = {}
        for i in rng.permutation(idx):
            by_group.setdefault(groups[i], []).append(int(i))
        picked, queues = [], list(by_group.values())
        while len(picked) < per_label and any(queues):  # one from each group in turn
            for q in queues:
                if q and len(picked) < per_label:
                    picked.append(q.pop())
        out += [records_io.Record(hands[i], label=label, group=groups[i]) for i in sorted(picked)]
    return out


def teach(base: str | Path | None, samples: list[records_io.Record], out: str | Path, *, progress=None,
          stop=None) -> TeachReport:
    """Fit a personal model of ``samples`` over the bundle ``base`` and write it as a bundle at ``out``.

    Args:
        base: a landmarks bundle (None: the bundled default). A personal bundle is taught afresh
            from its base model (its own head is replaced, not stacked).
        samples: the person's labelled hands (landmark records); records without a hand or a
            label are skipped. A label the base does not have becomes a new label (a custom sign).
        out: the bundle folder to write (new, empty, or a bundle: ``bundle.check_target``).
        progress: called as ``progress(fraction, message)``.
        stop: a ``threading.Event``; set, the fit ends and nothing is written.
    Raises:
        FingerspellError: no labelled hands, or a bundle whose recogniser reads pixels.
        BundleError: ``base`` is not a loadable bundle. OutputFolderError: ``out`` may not be written.
    """
    started = time.perf_counter()
    say = progress or (lambda fraction, message: None)
    folder = bundle_io.resolve(base)
    meta = bundle_io.load_meta(folder)
    out = bundle_io.check_target(out)
    runtime = recognisers.get(meta.kind, BundleError).Runtime.from_record(meta.preprocessing)
    if runtime.reads_pixels or runtime.frames != 1:
        raise FingerspellError(f"{folder} is a {meta.kind} model; teaching adapts a landmarks model (the default)")
    usable = [r for r in samples if r.hand is not None and r.label is not None]
    if not usable:
        raise FingerspellError("no labelled hands to learn from: record some samples first (each with a label and a hand)")
    names = [label_of(r.label) for r in usable]
    base_labels = list(meta.labels)
    new_labels = [lab for lab in dict.fromkeys(names) if lab not in base_labels]
    labels = base_labels + new_labels
    taught = {lab: names.count(lab) for lab in dict.fromkeys(names)}
    anchors = [r for r in _read_anchors(folder) if r.label in base_labels and r.label not in taught]

    say(0.05, f"reading {len(usable):,} samples of {len(taught)} labels")
    hands = [r.hand for r in usable] + [r.hand for r in anchors]
    y = np.array([labels.index(lab) for lab in names] + [labels.index(r.label) for r in anchors])
    x = _inputs(runtime, hands)
    classifier = Classifier(folder / bundle_io.TFLITE)
    try:
        if classifier.num_outputs != len(base_labels):
            raise BundleError(f"{folder / bundle_io.TFLITE} has {classifier.num_outputs} outputs but bundle.json "
                              f"lists {len(base_labels)} labels")
        base_probs = np.stack([classifier(v) for v in x])
    finally:
        classifier.close()
    if stop is not None and stop.is_set():
        raise FingerspellError("teaching stopped; nothing was written")
    mine = np.arange(len(x)) < len(usable)
    say(0.2, f"fitting the personal model ({len(usable):,} samples, {len(anchors):,} of other people's hands)")
    fitted = head.fit(x, y, base_probs, labels, len(base_labels), weight=np.where(mine, 1.0, ANCHOR_WEIGHT),
                      progress=lambda f: say(0.2 + 0.7 * f, "fitting the personal model"))
    if stop is not None and stop.is_set():
        raise FingerspellError("teaching stopped; nothing was written")
    known = mine & (y < len(base_labels))
    base_top1 = float(np.mean(base_probs[known].argmax(1) == y[known])) if known.any() else None
    taught_top1 = float(np.mean(fitted.adjust(x[mine], base_probs[mine]).argmax(1) == y[mine]))
    notes = []
    if any(n < 5 for n in taught.values()):
        notes.append("labels with fewer than 5 samples: " + " ".join(k for k, n in taught.items() if n < 5)
                     + " (record a few more of each for a steadier model)")
    if not anchors and len(taught) < len(base_labels):
        notes.append(f"{folder} carries no {ANCHORS}: the letters you did not teach may be read as ones you did")
    report = TeachReport(out, taught, new_labels, len(anchors), len(samples) - len(usable),
                         time.perf_counter() - started, base_top1, taught_top1, notes)
    say(0.95, "writing the personal model")
    _write(folder, meta, fitted, report, out)
    report = dataclasses.replace(report, seconds=time.perf_counter() - started)
    log.debug("taught %s: %s in %.1f s", out, ", ".join(f"{k} {n}" for k, n in taught.items()), report.seconds)
    say(1.0, "done")
    return report


def _read_anchors(folder: Path) -> list[records_io.Record]:
    path = folder / ANCHORS
    if not path.is_file():
        return []
    try:
        return [r for r in records_io.read(path) if r.hand is not None and r.label is not None]
    except FingerspellError as exc:
        raise BundleError(f"{path}: {exc}; restore the bundle") from None


def _write(folder: Path, meta: bundle_io.BundleMeta, fitted: Personal, report: TeachReport, out: Path) -> None:
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    section = {"labels": fitted.labels, "taught": report.taught, "new_labels": report.new_labels,
               "samples": sum(report.taught.values()), "anchors": report.anchors, "created": created,
               "base": str(folder), "base_model_sha256": sha256_file(folder / bundle_io.TFLITE),
               "method": "logistic head over the base model's probabilities (teach/personal.py)"}
    taught_meta = bundle_io.BundleMeta(**{**meta.__dict__, "personal": section})
    files: dict = {bundle_io.TFLITE: folder / bundle_io.TFLITE, bundle_io.PERSONAL: fitted.to_bytes(),
                   bundle_io.CARD: _card(meta, section, report)}
    extra = [name for entry in meta.extra for name in bundle_io.extra_names(entry.kind)]  # J and Z from motion go too
    for name in (bundle_io.METRICS, ANCHORS, *extra):
        if (folder / name).is_file():
            files[name] = folder / name
    bundle_io.write_bundle(out, taught_meta, files)


def _card(meta: bundle_io.BundleMeta, section: dict, report: TeachReport) -> str:
    taught = ", ".join(f"{k} {n}" for k, n in report.taught.items())
    lines = ["# fingerspell model card: a personal model", "",
             f"Taught {section['created']} from `{section['base']}` (a {meta.kind} model of {len(meta.labels)} labels, "
             f"export sha256 {section['base_model_sha256'][:12]}...).", "",
             "## What it was taught", "",
             f"- {section['samples']:,} samples of one person's hands: {taught}",
             f"- labels the base model never had: {' '.join(report.new_labels) or 'none'}",
             f"- other people's hands standing in for the labels not taught: {report.anchors:,}",
             f"- the personal model reads {report.taught_top1:.1%} of the samples it learned from"
             + ("" if report.base_top1 is None else f" (the base model {report.base_top1:.1%})")
             + ": not a held-out figure", "",
             "## Limits", "",
             "It is made for the person whose samples taught it: on other people's hands it may read worse than the "
             "base model (docs/teach.md has the measured cost). Teach every letter you use; letters you did not teach "
             "are read as the base model reads them, nudged by the ones you did.", ""]
    lines += [f"Note: {n}." for n in report.notes]
    return "\n".join(lines) + "\n"


def load_personal(folder: str | Path, base_labels: list[str] | None = None, inputs: int | None = None,
                  base_sha256: str | None = None) -> Personal | None:
    """The personal head of the bundle at ``folder``, or None where it has none.

    ``base_labels``, ``inputs`` and ``base_sha256`` (where given) are the serving model's: a head
    taught over another model is refused.

    Raises:
        BundleError: the head is unreadable or was taught over another model.
    """
    folder = Path(folder)
    if not (folder / bundle_io.PERSONAL).is_file():
        return None
    meta = bundle_io.load_meta(folder)
    section = meta.personal or {}
    if base_sha256 is not None and section.get("base_model_sha256") != base_sha256:
        raise BundleError(f"{folder} was taught over another model than the one served; teach it again")
    labels = list(meta.labels) if base_labels is None else list(base_labels)
    return Personal.load(folder / bundle_io.PERSONAL, labels, inputs)
