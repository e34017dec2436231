"""Landmark recipes on people a model has not seen: one table, one run, the same cached hands.

Each recipe (``LandmarkParams`` fields over the defaults) is trained on the hands of one
protocol's training photos (cached landmarks: a warm run detects nothing) and scored, top-1:

* ``loso``: trained on the Kaggle sample (one person), scored on every Roboflow photo;
* ``val``: trained on both sets with the default source-grouped split, scored on its Roboflow
  validation photos;

and on the third person's recorded hands (``landmarks_tresajoby/static``, 24 letters x 100,
taken as right hands as the data README does): a person in neither image set.

    python bench/bench_recipe.py                                    # today's default against no tilt
    python bench/bench_recipe.py --protocol val --members 1 \\
        --recipes '{"no tilt": {"tilt_degrees": 0, "jitter": 0.01}, "tilt 60": {"tilt_degrees": 60}}'
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from fingerspell import features
from fingerspell.training import train
from fingerspell.config import TrainParams

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RECIPES = {"no tilt (jitter 0.01)": {"tilt_degrees": 0.0, "jitter": 0.01}, "default": {}}
FRAME = np.array([640.0, 480.0, 640.0])  # the recorded hands' webcam frame: x*w, y*h, z*w


def third_person(folder: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Features and label indices of the recorded static letters, or None where they are absent."""
    files = sorted(folder.glob("*.npy"))
    if not files:
        return None
    xs, ys = [], []
    for f in files:
        pts = np.load(f).reshape(-1, 21, 3).astype(np.float64) * FRAME
        xs.append(features.from_points(pts, False, depth=False))
        ys += [labels.index(f.stem)] * len(pts)
    return np.concatenate(xs), np.array(ys)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--protocol", choices=("loso", "val"), default="loso")
    ap.add_argument("--recipes", help="JSON: name -> LandmarkParams fields (default: no tilt against the default)")
    ap.add_argument("--members", type=int, default=TrainParams().landmarks.members)
    ap.add_argument("--seeds", default="1234", help="training seeds, comma-separated (the split stays seed 1234)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    recipes = json.loads(args.recipes) if args.recipes else RECIPES
    kaggle, roboflow = args.data / "asl_alphabet_sample", args.data / "roboflow_letters_train"
    if not kaggle.is_dir() or not roboflow.is_dir():
        raise SystemExit(f"needs {kaggle} and {roboflow} (see ../shared/data/README.md)")
    base = TrainParams()
    folders, ds = train.load([kaggle, roboflow], base)
    prep = train.prepare(folders, ds, base, progress=False)
    if args.protocol == "loso":
        tr = [i for i, s in enumerate(ds.samples) if s.source == kaggle.name]
        te = [i for i, s in enumerate(ds.samples) if s.source == roboflow.name]
    else:
        sides = train.split(ds, base.split)
        tr, te = sides["train"], [i for i in sides["val"] if ds.samples[i].source == roboflow.name]
    tr = [i for i in tr if i not in prep.bad]
    third = third_person(args.data / "landmarks_tresajoby" / "static", prep.labels)
    print(f"{args.protocol}: trained on {len(tr):,} photos, scored on {len(te):,} Roboflow photos"
          f"{' and 2,400 hands of a third person' if third is not None else ' (no third-person hands here)'};"
          f" {args.members} member(s)")
    print(f"{'recipe':32} {'seed':>6} {'Roboflow':>9} {'third':>7} {'train s':>8}")
    for name, fields in recipes.items():
        for seed in (int(s) for s in args.seeds.split(",")):
            params = dataclasses.replace(base, seed=seed, landmarks=dataclasses.replace(
                base.landmarks, members=args.members, **fields))
            t = time.perf_counter()
            model, _, probs = train.fit_recipe(prep, {"train": tr, "val": [], "test": te}, params, progress=False)
            right = sum(r is not None and int(np.argmax(r)) == prep.y[i] for i, r in zip(te, probs["test"]))
            other = "-"
            if third is not None:
                p = model.predict(third[0], verbose=0, batch_size=1024)
                other = f"{np.mean(p.argmax(1) == third[1]):.1%}"
            print(f"{name:32} {seed:>6} {right / len(te):>9.1%} {other:>7} {time.perf_counter() - t:>8.0f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
