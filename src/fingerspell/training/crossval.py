"""Group-aware k-fold cross-validation of a training recipe: steadier figures than one split.

One validation split of a small data set moves several points with its seed: which photos are
held out matters as much as the model. Here the groups (frame blocks, signers, source photos)
are dealt into ``folds`` folds, stratified by class (scikit-learn's ``StratifiedGroupKFold``);
the recipe is fitted once per fold on the other folds and scores the held-out one. Every image
is held out exactly once, so the pooled figure covers all of them, and the per-fold figures
show the spread. Hands are detected once (cached) for all folds; no bundle is written.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np

from ..config import ConfigError, TrainParams
from ..dataset import describe_split
from ..errors import FingerspellError
from .metrics import brief
from .train import fit_recipe, held_out_metrics, load, prepare

log = logging.getLogger(__name__)


def fold_sides(groups: list[str], labels: list[str], folds: int, seed: int) -> list[list[int]]:
    """The held-out sample indices of each fold: whole groups, classes spread evenly, seeded."""
    from sklearn.model_selection import StratifiedGroupKFold

    _check_folds(folds)
    if len(set(groups)) < folds:
        raise FingerspellError(f"{folds} folds need at least {folds} groups of images; the data has "
                               f"{len(set(groups))}: use fewer folds or finer --grouping")
    largest = max(Counter(labels).values())
    if largest < folds:
        raise FingerspellError(f"{folds} folds need a class with at least {folds} images; the largest has "
                               f"{largest}: use fewer folds or more images")
    kfold = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [sorted(int(i) for i in held) for _, held in kfold.split(np.zeros(len(labels)), labels, groups)]


def cross_validate(data, params: TrainParams = TrainParams(), folds: int = 5, *, cache=None,
                   progress: bool = True, stop=None) -> dict:
    """Fit the recipe ``params`` once per fold and score each held-out fold.

    Args:
        data: data folders, as for ``train``.
        params: the recipe; ``params.split`` gives the grouping and seed (its fractions are unused).
        folds: number of folds (at least 2).
        cache: cache folder for the hand model and landmarks.
        stop: a ``threading.Event``; once set, the run ends at the next safe point with
            KeyboardInterrupt (see ``train.train``).
    Returns:
        ``{"folds": [metrics per fold], "pooled": metrics over every held-out image,
        "spread": {"all" | source: {"mean", "std", "min", "max", "folds"} of the folds' top-1},
        "split" (grouping, seed, images and groups per fold, a warning if images were not grouped),
        "data", "detection"}``; no hand counts as wrong throughout.
    """
    folders, ds = load(data, params)
    _check_folds(folds)  # before detecting hands, which can take minutes
    prep = prepare(folders, ds, params, cache=cache, progress=progress, stop=stop)
    usable = [i for i in range(len(ds.samples)) if i not in prep.bad]
    held = [[usable[j] for j in fold] for fold in fold_sides(
        [ds.samples[i].group for i in usable], [ds.samples[i].label for i in usable], folds, params.split.seed)]
    per_fold, idx_all, rows_all = [], [], []
    for k, test in enumerate(held):
        train = sorted(set(usable) - set(test))
        log.info("fold %d/%d: training on %s images, holding out %s (%d groups)", k + 1, len(held),
                 f"{len(train):,}", f"{len(test):,}", len({ds.samples[i].group for i in test}))
        _, _, probs = fit_recipe(prep, {"train": train, "val": test, "test": []}, params, progress=progress,
                                 stop=stop)
        m = held_out_metrics(prep, test, probs["val"])
        log.info("fold %d/%d: %s", k + 1, len(held), brief(m))
        per_fold.append(m)
        idx_all += test
        rows_all += list(probs["val"])
    pooled = held_out_metrics(prep, idx_all, rows_all)
    spread = {"all": _spread([m["top1"] for m in per_fold])}
    for src in pooled.get("per_source", {}):
        spread[src] = _spread([_top1_of(m, src) for m, test in zip(per_fold, held)
                               if any(ds.samples[i].source == src for i in test)])
    split = describe_split(ds, {f"fold {k + 1}": test for k, test in enumerate(held)}, params.split)
    return {"folds": per_fold, "pooled": pooled, "spread": spread, "split": split, "data": ds.report(),
            "detection": prep.detection}


def _check_folds(folds: int) -> None:
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")


def _top1_of(m: dict, source: str) -> float:
    """A fold's top-1 on one source (``summarize`` breaks down by source only where there are two)."""
    return m["per_source"][source]["top1"] if "per_source" in m else m["top1"]


def _spread(values: list[float]) -> dict:
    v = np.array(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "folds": len(v)}

