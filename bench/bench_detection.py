"""No-hand rate per source, before and after each detection measure.

Runs the hand detector over the hand images (not `nothing`) of each data folder with a ladder
of settings, from MediaPipe's defaults to the project's defaults, and prints one table. Results
land in the landmark cache, so a rerun is quick.

    python bench/bench_detection.py                 # 600 images per source, evenly spaced
    python bench/bench_detection.py --per-source 0  # every image
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from fingerspell.config import DetectParams
from fingerspell.dataset import scan
from fingerspell.extract import extract
from fingerspell.labels import NOTHING

_PALM = DetectParams().retries[:4]  # the retries that re-run the palm detector
# Refinement moves landmarks but finds no new hand, so the rungs before the last skip it.
LADDER = [
    ("MediaPipe defaults (0.5 / 0.5), one try", DetectParams(min_detection_confidence=0.5, min_presence_confidence=0.5,
                                                              retries=(), refine=0)),
    ("thresholds 0.3 / 0.3, one try", DetectParams(retries=(), refine=0)),
    ("+ retry with a 30% black border", DetectParams(retries=_PALM[:1], refine=0)),
    ("+ retry with a 100% black border", DetectParams(retries=_PALM[:2], refine=0)),
    ("+ retry with a 30% edge-repeat border", DetectParams(retries=_PALM[:3], refine=0)),
    ("+ retry contrast-equalised", DetectParams(retries=_PALM, refine=0)),
    ("+ landmark network on the centre (default)", DetectParams()),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    root = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    ap.add_argument("--data", action="append", help="data folders (default: both sets in ../shared/data)")
    ap.add_argument("--per-source", type=int, default=600, help="images per source, 0 = all (default: %(default)s)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    folders = args.data or [str(root / "asl_alphabet_sample"), str(root / "roboflow_letters_train")]
    rows = []
    for folder in folders:
        samples = [s for s in scan([folder]).samples if s.label != NOTHING]
        if args.per_source and len(samples) > args.per_source:
            step = len(samples) / args.per_source
            samples = [samples[int(i * step)] for i in range(args.per_source)]
        paths = [s.path for s in samples]
        for name, params in LADDER:
            res = extract(paths, params, progress=False)
            ok = [r for r in res if r.error is None]
            miss = sum(r.hand is None for r in ok)
            rows.append((Path(folder).name, name, len(ok), miss / max(len(ok), 1)))
            print(f"  {Path(folder).name}: {name}: {miss / max(len(ok), 1):.1%}", flush=True)
    print()
    print(f"| {'source':<24} | {'detection settings':<44} | {'images':>6} | {'no hand':>7} |")
    print(f"|{'-' * 26}|{'-' * 46}|{'-' * 8}|{'-' * 9}|")
    for src, name, n, rate in rows:
        print(f"| {src:<24} | {name:<44} | {n:>6} | {rate:>7.1%} |")


if __name__ == "__main__":
    main()
