"""Teach it your hand: how far a minute of one person's samples moves a model, and what it costs.

Every figure is top-1 over held-out hands of the person taught (never a hand that taught it),
a hand not found counting as wrong; the base model's figure on the same hands is beside it.

* ``third``: the third person's recorded static letters (``landmarks_tresajoby/static``, 24
  letters, 100 hands each in one sitting), the bundled default model, taught with the first N
  hands of each letter and scored on the last 50.
* ``kaggle``: the Kaggle signer, a model trained on the Roboflow photos only (``--roboflow-model``,
  made by ``fingerspell train --data ../shared/data/roboflow_letters_train --out DIR``), taught with
  the N first frames (by frame index) of each of the 26 letters that show a hand, scored on every
  frame at least 1,000 frames after the last frame taught.
* ``cost``: each taught model on other people's photos it never trained on: the bundled model's
  validation side (Kaggle and Roboflow photos; its recorded split) for ``third``, the Roboflow
  model's validation side (Roboflow source photos) for ``kaggle``.
* ``sign``: a custom sign the base never had: the third person's ``hello`` recordings (a word
  sign), the middle frame of recordings 0-19 taught as ``HELLO`` beside the 24 letters (first N
  hands each), scored on the middle frames of recordings 50-99; and how often that person's
  held-out letters are read as ``HELLO``.
* ``partial``: only the base model's five worst letters of the third person taught (G M P Q T):
  those letters, and the other 19.

    python bench/bench_teach.py --roboflow-model runs/lm-roboflow
"""

from __future__ import annotations

import argparse
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from fingerspell import records
from fingerspell.bundle import load_meta
from fingerspell.predictor import Predictor
from fingerspell.teach import teach

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def top1(predictor: Predictor, recs) -> float:
    return float(np.mean([r.hand is not None and predictor.classify(r.hand)[0][0] == r.label for r in recs]))


def by_label(recs) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in recs:
        out.setdefault(r.label, []).append(r)
    return out


def val_side(bundle: Path) -> list[records.Record]:
    """The bundle's validation photos (its recorded split, checked against its counts) as records."""
    from fingerspell.config import train_params_from_dict
    from fingerspell.dataset import scan
    from fingerspell.training import train as T

    meta = load_meta(bundle)
    params = train_params_from_dict(meta.config)
    ds = scan(meta.data["folders"])
    prep = T.prepare(meta.data["folders"], ds, params, progress=False)
    sides = {k: [i for i in v if i not in prep.bad] for k, v in T.split(ds, params.split).items()}
    if {k: len(v) for k, v in sides.items()} != meta.split["images"]:
        sys.exit(f"{bundle}: the split recovered differs from the one recorded; cannot score its validation side")
    return [records.Record(prep.ext[i].hand, None, ds.samples[i].label) for i in sides["val"]]


def kaggle_blocks(n: int):
    """(taught, held out): the Kaggle signer's first n frames with a hand of each letter, and the
    frames at least 1,000 frames after the last of them."""
    from fingerspell.config import SplitParams
    from fingerspell.dataset import assign_groups, scan
    from fingerspell.extract import extract
    from fingerspell.config import DetectParams

    ds = assign_groups(scan([str(DATA / "asl_alphabet_sample")]), SplitParams())
    found = extract([s.path for s in ds.samples], DetectParams(), progress=False)
    taught, held = [], []
    for label in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        rows = sorted((int(re.search(r"(\d+)\.\w+$", s.path).group(1)), e.hand) for s, e in zip(ds.samples, found)
                      if s.label == label and e.error is None)
        first = [(f, h) for f, h in rows if h is not None][:n]
        taught += [records.Record(h, None, label) for _, h in first]
        held += [records.Record(h, None, label) for f, h in rows if f >= first[-1][0] + 1000]
    return taught, held


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--roboflow-model", help="a model trained on the Roboflow photos only (for the kaggle rows)")
    ap.add_argument("--samples", type=int, nargs="+", default=[20, 5], help="samples a letter to teach")
    ap.add_argument("--no-cost", action="store_true", help="skip the figures on other people's photos")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-teach-"))
    rows = []
    try:
        base = Predictor.from_bundle(None)
        static = by_label(records.read_arrays(DATA / "landmarks_tresajoby" / "static"))
        held = [r for rs in static.values() for r in rs[-50:]]
        hello = [r for r in records.read_arrays(DATA / "landmarks_tresajoby" / "dynamic")
                 if r.label == "hello" and r.t_ms == 500 and r.hand is not None]  # the middle (16th) frame
        hello_taught = [records.Record(r.hand, None, "HELLO") for r in hello if r.extra["recording"] < 20]
        hello_held = [records.Record(r.hand, None, "HELLO") for r in hello if r.extra["recording"] >= 50]
        cost_third = val_side(Path(base.path)) if not args.no_cost else None
        for n in args.samples:
            taught = [r for rs in static.values() for r in rs[:n]]
            report = teach(None, taught, work / f"third-{n}")
            mine = Predictor.from_bundle(work / f"third-{n}")
            rows.append(("third person, 24 letters", n, "last 50 of each", top1(base, held), top1(mine, held),
                         report.seconds))
            if cost_third is not None:
                rows.append(("  cost: default's validation photos", n, "Kaggle + Roboflow", top1(base, cost_third),
                             top1(mine, cost_third), None))
            mine.close()
            report = teach(None, taught + hello_taught, work / f"sign-{n}")
            mine = Predictor.from_bundle(work / f"sign-{n}")
            false = float(np.mean([mine.classify(r.hand)[0][0] == "HELLO" for r in held]))
            rows.append(("  custom sign HELLO (20 taught)", n, "recordings 50-99", 0.0, top1(mine, hello_held),
                         report.seconds))
            rows.append(("  letters read as HELLO", n, "last 50 of each", 0.0, false, None))
            mine.close()
            bad = [r for r in taught if r.label in "GMPQT"]
            teach(None, bad, work / f"partial-{n}")
            mine = Predictor.from_bundle(work / f"partial-{n}")
            for what, recs in (("G M P Q T", [r for r in held if r.label in "GMPQT"]),
                               ("the other 19", [r for r in held if r.label not in "GMPQT"])):
                rows.append((f"  only G M P Q T taught: {what}", n, "last 50 of each", top1(base, recs),
                             top1(mine, recs), None))
            mine.close()
        if args.roboflow_model:
            rf = Predictor.from_bundle(args.roboflow_model)
            cost_rf = val_side(Path(args.roboflow_model)) if not args.no_cost else None
            for n in args.samples:
                taught, held_k = kaggle_blocks(n)
                report = teach(args.roboflow_model, taught, work / f"kaggle-{n}")
                mine = Predictor.from_bundle(work / f"kaggle-{n}")
                rows.append(("Kaggle signer, Roboflow-only model", n, "frames >= 1,000 away", top1(rf, held_k),
                             top1(mine, held_k), report.seconds))
                if cost_rf is not None:
                    rows.append(("  cost: Roboflow validation photos", n, "Roboflow", top1(rf, cost_rf),
                                 top1(mine, cost_rf), None))
                mine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'who':44} {'n/letter':>8}  {'scored on':22} {'base':>6} {'taught':>7} {'teach s':>8}")
    for who, n, on, before, after, seconds in rows:
        print(f"{who:44} {n:>8}  {on:22} {before:6.1%} {after:7.1%} {'' if seconds is None else f'{seconds:8.2f}'}")


if __name__ == "__main__":
    main()
