"""Predictions for many files with a loaded Predictor, and the figures they give. No TensorFlow.

Landmarks come from the same content-hash cache as training, so evaluating a folder twice
re-detects nothing; the classifier is the bundle's LiteRT export, exactly what serving runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tqdm.auto import tqdm

from ..dataset import scan
from ..errors import FrameError
from ..extract import extract
from ..images import read_image
from .metrics import summarize
from ..predictor import Predictor

log = logging.getLogger(__name__)


def predict_files(predictor: Predictor, paths: list[str], *, workers: int = 0, cache=None,
                  progress: bool = True) -> list[dict]:
    """One record per file: {path, letter, confidence, top, no_hand, error}."""
    if not paths:
        return []
    found = extract(paths, predictor.detect_params, workers=workers, cache=cache, progress=progress)
    out = []
    for path, ex in tqdm(list(zip(paths, found)), desc="classifying", unit="img", disable=not progress or not predictor.runtime.reads_pixels):
        rec = {"path": path, "no_hand": ex.hand is None and ex.error is None, "error": ex.error}
        if ex.error is not None:
            rec.update(letter=None, confidence=0.0, top=[])
        else:
            top = predictor.classify(ex.hand, lambda: read_image(path))
            rec.update(letter=top[0][0], confidence=top[0][1], top=top)
        out.append(rec)
    return out


def _recorded(predictor: Predictor, sample) -> dict:
    """A recorded hand's record, as ``predict_files`` gives a file's (no image to read)."""
    try:
        top = predictor.classify(sample.hand)
    except FrameError as exc:  # a model that reads pixels
        return {"path": sample.path, "no_hand": False, "error": str(exc), "letter": None, "confidence": 0.0, "top": []}
    return {"path": sample.path, "no_hand": sample.hand is None, "error": None, "letter": top[0][0],
            "confidence": top[0][1], "top": top}


def evaluate(predictor: Predictor, data, *, workers: int = 0, cache=None, progress: bool = True) -> dict:
    """Figures of a bundle on data folders or landmark records (which may hold a subset of its classes).

    Classes the model does not know are left out and noted, so a letters-only folder can be
    evaluated with a model that also knows ``space``, ``del`` and ``nothing``.
    """
    ds = scan(data, labels=predictor.all_labels)
    photos = iter(predict_files(predictor, [s.path for s in ds.samples if not s.recorded], workers=workers, cache=cache,
                                progress=progress))
    recs = [_recorded(predictor, s) if s.recorded else next(photos) for s in ds.samples]
    ok = [(s, r) for s, r in zip(ds.samples, recs) if r["error"] is None]
    ds.skipped += [(r["path"], r["error"]) for r in recs if r["error"] is not None]
    m = summarize([s.label for s, _ in ok], [r["letter"] for _, r in ok], [r["no_hand"] for _, r in ok],
                  [s.source for s, _ in ok])
    m["data"] = ds.report()
    m["model"] = {"bundle": str(predictor.path), "kind": predictor.kind}
    log.info("evaluated %d samples from %s", len(ok), ", ".join(str(Path(d)) for d in data))
    return m
