"""Recognisers run beside a bundle's own (``BundleMeta.extra``): loaded, checked, and folded into its answer.

Numpy and LiteRT only, like the rest of serving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import BundleError
from ..hands import Pool
from ..labels import NOTHING
from .base import Seen
from .litert import Classifier, check_export
from .registry import BESIDE, beside

log = logging.getLogger(__name__)


def load(path: Path, extra: list, size: int) -> list["Beside"]:
    """The recognisers of a bundle's ``extra`` entries that this fingerspell runs. An entry of a
    kind it does not know, or whose inputs it cannot make (a newer version's), is left out with a
    warning: the bundle's own model is served (bundle/meta.py).

    Raises:
        BundleError: an entry's export does not load or does not match its labels and inputs.
    """
    out = []
    for entry in extra:
        if entry.kind not in BESIDE:
            log.warning("%s: the %s recogniser beside the model is not one this fingerspell runs; left out", path,
                        entry.kind)
            continue
        try:
            out.append(Beside(path, entry, size))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: the %s recogniser's inputs are not ones this fingerspell makes (%s); left out", path,
                        entry.kind, exc)
    return out


class Beside:
    """A recogniser carried beside the bundle's own (``BundleMeta.extra``) and run with it: its
    letters' probabilities are folded into the model's (``fuse``). Its module provides
    ``Runtime``, ``agree`` (the model's reading may overrule it), ``notes`` and ``fuse``, and
    may provide ``may_fire`` (False: whatever it read would be overruled, so it is not run)."""

    def __init__(self, path: Path, entry, size: int):
        """``entry``: its ``bundle.ExtraModel``; ``size``: classifiers at most, one per worker."""
        self.module = beside(entry.kind, BundleError)
        self.labels = list(entry.labels)
        self.letters = [k for k in self.labels if k != NOTHING]
        self.runtime = self.module.Runtime.from_record(entry.preprocessing)  # KeyError, TypeError, ValueError
        self.classifiers = Pool(lambda: Classifier(path / entry.file), size)
        with self.classifiers.borrow() as classifier:
            check_export(classifier, len(self.labels), self.runtime, path / entry.file, "bundle.json's extra lists")

    def fuse(self, window: Sequence[Seen], probs: np.ndarray, labels: list[str], notes: dict | None = None) -> np.ndarray:
        """``probs`` over ``labels`` with this recogniser's letters folded in: where it gives a
        letter probability m, that much of the whole goes to it (the rest scaled by 1 - m), unless
        the model's reading of the newest hand overrules it (the module's ``agree``). ``notes``
        (where given) gets the module's ``notes``: the letter read, the path traced."""
        if len(window) < 2:  # a still image, or a stream's first frame: no motion to read
            return probs
        may_fire = getattr(self.module, "may_fire", None)
        if may_fire is not None and not may_fire(window, probs, labels):  # nothing it reads could stand
            return probs
        x = self.runtime.inputs(window)
        if x is None:
            return probs
        with self.classifiers.borrow() as classifier:
            mine = classifier(x)
        # a hand that did not move, or the model's reading of its shape, may overrule it
        mine = self.module.agree(window, mine, self.labels, probs, labels)
        if notes is not None:
            notes.update(self.module.notes(window, mine, self.labels))
        return self.module.fuse(probs, labels, mine, self.labels)
