"""Recognition at arm's length: held-out photos shrunk onto 640x480 frames, today's pipeline and a new one.

Photos: the Roboflow photos that the default recipe holds out for validation (source-grouped
split, the seed and fractions recorded in the bundle; the counts are checked against its
metrics). Each photo's hand box comes from the detector on the full photo; the photo is scaled
so the box's long side is 300 ... 80 px and placed at a seeded place on a grey 640x480 frame,
then a webcam's conditions are added (JPEG quality, blur, dim light, sensor noise).

Two protocols, each with today's pipeline and the new one:
  * roboflow-val: the default recipe's model (trained on Kaggle + the other Roboflow photos),
    scored on its held-out photos: new photos of familiar settings.
  * kaggle->roboflow: a model trained on the Kaggle sample only (leave-one-source-out), scored on
    the same photos: people and rooms it has never seen.

A pipeline is its detector settings plus its two bundles. Today's: the bundles given by --base
with the detector settings they record (--base-detect overrides some: a setting the bundles
predate otherwise takes this code's default). The new one: the bundles given by --new, with the
detector settings of this code (``DetectParams()``), or --new-detect. Detections are cached
(per photo, frame and detector settings), so only a changed pipeline costs detector time.

    python bench/bench_distance.py --limit 60         # a quick look, 60 photos
    python bench/bench_distance.py                    # every held-out photo
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing as mp
import os
import sqlite3
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from fingerspell import bundle, recognisers
from fingerspell.config import DetectParams, from_dict, train_params_from_dict
from fingerspell.dataset import assign_groups, scan, split
from fingerspell.extract import decode_hand, encode_hand, extract, settings_key
from fingerspell.extract.far import degrade, place_on_frame
from fingerspell.hands.model import cache_dir, ensure_hand_model, sha256_file
from fingerspell.hands import HandDetector
from fingerspell.images import hand_box, read_image
from fingerspell.labels import NOTHING
from fingerspell.recognisers.litert import Classifier

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEBCAM = dict(blur=0.8, noise=4.0, jpeg=80)  # the page's JPEG quality (0.8), a soft lens, a little noise
# (name, hand's long side in the frame or None for the photo as it is, conditions)
FRAMES = [
    ("photo as it is", None, {}),
    ("300 px", 300, {}),
    ("216 px", 216, {}),
    ("144 px", 144, {}),
    ("100 px", 100, {}),
    ("80 px", 80, {}),
    ("144 px, JPEG 90", 144, dict(jpeg=90)),
    ("144 px, JPEG 60", 144, dict(jpeg=60)),
    ("144 px, blur 1.2", 144, dict(blur=1.2)),
    ("144 px, dim x0.4", 144, dict(dim=0.4)),
    ("144 px, noise 8", 144, dict(noise=8.0)),
    ("144 px, webcam", 144, WEBCAM),
    ("100 px, webcam", 100, WEBCAM),
    ("100 px, dim x0.4 + webcam", 100, dict(dim=0.4, **WEBCAM)),
]
VERSION = "1"  # of the frames made here: change it when place_on_frame or degrade change


def _where(path: str) -> tuple[float, float]:
    """A seeded place for the hand in the frame, the same for every size and condition of a photo."""
    d = hashlib.sha256(Path(path).name.encode()).digest()
    return d[0] / 255, d[1] / 255


def make_frame(path: str, box, side, cond: dict) -> np.ndarray:
    rgb = read_image(path)
    if side is None:
        return rgb
    frame = place_on_frame(rgb, box, side, _where(path))
    seed = int.from_bytes(hashlib.sha256(f"{Path(path).name}{side}".encode()).digest()[:4], "little")
    return degrade(frame, seed=seed, **cond)


_det: HandDetector | None = None


def _init(model: str, params: dict) -> None:
    global _det
    os.environ.setdefault("GLOG_minloglevel", "2")
    _det = HandDetector(model, params=from_dict(DetectParams, params), track_threads=1)


def _job(task):
    path, box, side, cond = task
    t = time.perf_counter()
    hand = _det.detect(make_frame(path, box, side, cond))
    return encode_hand(hand), time.perf_counter() - t


class FrameCache:
    """sqlite: (photo, frame, detector settings) -> the hand found, and what finding it cost."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS frames (key TEXT PRIMARY KEY, hand BLOB, seconds REAL)")

    def get(self, key):
        return self.db.execute("SELECT hand, seconds FROM frames WHERE key = ?", (key,)).fetchone()

    def put(self, rows):
        self.db.executemany("INSERT OR REPLACE INTO frames VALUES (?, ?, ?)", rows)
        self.db.commit()


def detect_all(photos, boxes, params: DetectParams, model: Path, cache: FrameCache, workers: int, what: str):
    """{frame name: [Hand | None per photo]} and {frame name: [seconds per photo]} for one detector."""
    skey = settings_key(params, sha256_file(model))
    hands, secs, todo = {}, {}, []
    for name, side, cond in FRAMES:
        hands[name], secs[name] = [None] * len(photos), [0.0] * len(photos)
        for i, (p, b) in enumerate(zip(photos, boxes)):
            key = f"{sha256_file(p)}:{VERSION}:{name}:{skey}"
            row = cache.get(key)
            if row is not None:
                hands[name][i], secs[name][i] = decode_hand(row[0]), row[1]
            else:
                todo.append((key, name, i, (p, b, side, cond)))
    if todo:
        print(f"  {what}: detecting {len(todo):,} frames ({len(photos) * len(FRAMES) - len(todo):,} cached) "
              f"with {workers} worker(s)", file=sys.stderr, flush=True)
        ctx = mp.get_context("spawn")
        rows, t0 = [], time.time()
        with ctx.Pool(workers, initializer=_init, initargs=(str(model), asdict(params))) as pool:
            for n, ((key, name, i, _), (blob, s)) in enumerate(zip(todo, pool.imap(_job, [t[3] for t in todo], chunksize=4))):
                hands[name][i], secs[name][i] = decode_hand(blob), s
                rows.append((key, blob, s))
                if len(rows) >= 200:
                    cache.put(rows)
                    rows = []
                    print(f"    {n + 1:,}/{len(todo):,} frames, {time.time() - t0:.0f} s", file=sys.stderr, flush=True)
        cache.put(rows)
    return hands, secs


class Model:
    def __init__(self, folder: str):
        self.path = bundle.resolve(folder)
        self.meta = bundle.load_meta(self.path)
        self.labels = list(self.meta.labels)
        self.runtime = recognisers.get(self.meta.kind).Runtime.from_record(self.meta.preprocessing)
        self.clf = Classifier(self.path / bundle.TFLITE)

    def detect_params(self) -> DetectParams:
        return self.meta.detect  # as Predictor.from_bundle reads a bundle

    def label(self, hand) -> str:
        x = self.runtime.inputs([recognisers.Seen(0, hand)], None)
        return NOTHING if x is None else self.labels[int(np.argmax(self.clf(x)))]


def held_out_photos(model: Model, roboflow: Path, kaggle: Path) -> list:
    """The Roboflow samples of the validation side of ``model``'s recorded split, counts checked."""
    cfg = train_params_from_dict(model.meta.config)
    folders = [str(Path(f)) for f in (model.meta.data or {}).get("folders", [])]
    names = [Path(f).name for f in folders]
    if sorted(names) != sorted([kaggle.name, roboflow.name]):
        sys.exit(f"{model.path} was trained on {names}; give the default recipe's bundle (Kaggle + Roboflow)")
    ds = assign_groups(scan([str(kaggle) if n == kaggle.name else str(roboflow) for n in names],
                            limit_per_class=cfg.limit_per_class), cfg.split)
    sides = split(ds, cfg.split)
    recorded = (model.meta.split or {}).get("images", {})
    got = {k: len(v) for k, v in sides.items()}
    if recorded and any(recorded.get(k) != got[k] for k in got):
        sys.exit(f"re-splitting gives {got}, but {model.path} records {recorded}: the data or the split code changed")
    return [ds.samples[i] for i in sides["val"] if ds.samples[i].source == roboflow.name]


def costs(pipelines, photos, boxes, model: Path, rounds: int) -> None:
    """Milliseconds a frame, median over ``rounds`` runs, today's and the new detector interleaved
    so that a busy machine slows both alike: a stream's tracked frame (a held 144 px hand), the
    frame a stream finds it in, a stream frame without a hand just after one and 2 s later (a grey
    frame: plain detection, the look near the last hand, ``video_retries`` rungs of the stream's retries),
    an IMAGE-mode (``/predict``) frame without a hand (every retry), and one with a 144 px hand."""
    frames = [place_on_frame(read_image(p), b, 144, _where(p)) for p, b in zip(photos[:8], boxes[:8])]
    grey = np.full((480, 640, 3), 128, np.uint8)
    dets = {name: (HandDetector(model, video=True, params=params), HandDetector(model, params=params))
            for name, _, params in pipelines}
    times = {(name, what): [] for name in dets for what in ("tracked", "afresh", "lost", "idle", "image", "found")}
    ts = 0
    for r in range(rounds):
        for name, (video, image) in dets.items():
            frame = frames[r % len(frames)]
            video.forget()
            ts += 40
            t = time.perf_counter()
            if video.detect(frame, ts) is not None:  # found: the next frames follow it
                times[name, "afresh"].append(time.perf_counter() - t)
                for _ in range(3):
                    ts += 40
                    t = time.perf_counter()
                    hand = video.detect(frame, ts)
                    if hand is not None and hand.attempt == "tracked":
                        times[name, "tracked"].append(time.perf_counter() - t)
            video.forget()
            ts += 40
            t = time.perf_counter()
            video.detect(grey, ts)
            times[name, "lost"].append(time.perf_counter() - t)
            ts += 2000  # no hand for two seconds: nothing seen near enough to look at
            t = time.perf_counter()
            video.detect(grey, ts)
            times[name, "idle"].append(time.perf_counter() - t)
            if r % 4 == 0:
                t = time.perf_counter()
                image.detect(grey)
                times[name, "image"].append(time.perf_counter() - t)
                t = time.perf_counter()
                if image.detect(frame) is not None:
                    times[name, "found"].append(time.perf_counter() - t)
    for video, image in dets.values():
        video.close()
        image.close()
    print()
    print(f"detection cost, ms a frame, median (p90) over {rounds} rounds, today and new interleaved:")
    print("| frame | today | new |")
    print("|---|---|---|")
    for what, label in [("tracked", "stream, hand followed (144 px)"), ("afresh", "stream, hand found afresh (144 px)"),
                        ("lost", "stream, hand just lost (grey frame 40 ms after a hand)"),
                        ("idle", "stream, no hand for 2 s (grey frame)"),
                        ("image", "IMAGE mode (/predict), no hand: every retry"),
                        ("found", "IMAGE mode (/predict), a 144 px hand")]:
        cells = [f"{1e3 * np.median(times[n, what]):.1f} ({1e3 * np.percentile(times[n, what], 90):.1f})"
                 if times[n, what] else "-" for n in dets]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", nargs=2, metavar=("DEFAULT", "KAGGLE"),
                    default=[str(ROOT / "src/fingerspell/models/default"), str(ROOT / "runs/lm-kaggle")],
                    help="today's bundles: the default recipe's and the Kaggle-only one (default: %(default)s)")
    ap.add_argument("--new", nargs=2, metavar=("DEFAULT", "KAGGLE"),
                    help="the new pipeline's bundles (default: the same as --base)")
    ap.add_argument("--base-detect", help="JSON of DetectParams fields for today's pipeline, over those its bundle "
                                          "records (e.g. '{\"reframe\": []}', a setting the bundle predates; "
                                          "'{\"near_ms\": 0, \"stream_retries\": [\"pad:0.3\"]}', the older stream path)")
    ap.add_argument("--new-detect", help="JSON of DetectParams fields for the new pipeline (default: this code's defaults)")
    ap.add_argument("--roboflow", default=str(DATA / "roboflow_letters_train"))
    ap.add_argument("--kaggle", default=str(DATA / "asl_alphabet_sample"))
    ap.add_argument("--limit", type=int, default=0, help="at most this many photos, evenly spaced (0: all)")
    ap.add_argument("--frames", help="only the frames of these names, separated by ';' (e.g. '144 px;100 px, webcam')")
    ap.add_argument("--costs", type=int, default=60, metavar="ROUNDS",
                    help="rounds of the stream and no-hand cost timing (0: skip it; default: %(default)s)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--cache", default=str(cache_dir() / "distance.sqlite"), help="detections cache (default: %(default)s)")
    args = ap.parse_args()
    if args.frames:
        FRAMES[:] = [f for f in FRAMES if f[0] in {k.strip() for k in args.frames.split(";")}]
    logging.basicConfig(level=logging.WARNING)
    roboflow, kaggle = Path(args.roboflow), Path(args.kaggle)
    for d in (roboflow, kaggle):
        if not d.is_dir():
            sys.exit(f"{d} is missing: the benchmark reads ../shared/data (or give --roboflow / --kaggle)")
    base = [Model(p) for p in args.base]
    new = [Model(p) for p in (args.new or args.base)]
    new_detect = from_dict(DetectParams, json.loads(args.new_detect)) if args.new_detect else DetectParams()
    base_detect = base[0].detect_params()
    if args.base_detect:
        base_detect = from_dict(DetectParams, {**asdict(base_detect), **json.loads(args.base_detect)})
    pipelines = [("today", base, base_detect), ("new", new, new_detect)]
    for _, models, _ in pipelines:
        if (models[1].meta.data or {}).get("per_source", {}).keys() != {kaggle.name}:
            sys.exit(f"{models[1].path} must be trained on {kaggle.name} only (leave-one-source-out)")

    samples = held_out_photos(base[0], roboflow, kaggle)
    for m in new[:1]:
        if held_out_photos(m, roboflow, kaggle) != samples:
            sys.exit(f"{m.path} holds out other photos than {base[0].path}: train it with the same split")
    if args.limit and len(samples) > args.limit:
        step = len(samples) / args.limit
        samples = [samples[int(i * step)] for i in range(args.limit)]
    photos = [s.path for s in samples]
    truth = [s.label for s in samples]
    model = ensure_hand_model()
    # The hand box on the full photo, from today's detector (the landmark cache has them).
    full = extract(photos, pipelines[0][2], progress=False)
    keep = [i for i, e in enumerate(full) if e.hand is not None]
    print(f"{len(photos)} held-out Roboflow photos ({len(samples and photos) - len(keep)} without a hand on the "
          f"full photo, left out of every row); detection settings: today {settings_key(pipelines[0][2], '')[:8]}, "
          f"new {settings_key(new_detect, '')[:8]}", flush=True)
    photos, truth = [photos[i] for i in keep], [truth[i] for i in keep]
    boxes = [hand_box(full[i].hand) for i in keep]
    sides = np.array([max(b[2] - b[0], b[3] - b[1]) for b in boxes])
    print(f"hand's long side in the photos: median {np.median(sides):.0f} px (10-90%: "
          f"{np.percentile(sides, 10):.0f}-{np.percentile(sides, 90):.0f})", flush=True)

    cache = FrameCache(Path(args.cache))
    results = {}
    for name, models, params in pipelines[::-1]:  # the new one first: today's is usually cached already
        results[name] = detect_all(photos, boxes, params, model, cache, args.workers, name)

    n = len(photos)
    cols = [(proto, pipe) for proto in ("roboflow-val", "kaggle->roboflow") for pipe in ("today", "new")]
    print()
    print(f"top-1 / no hand on {n} held-out Roboflow photos. roboflow-val: the default recipe's model "
          f"(same-source: new photos of familiar settings); kaggle->roboflow: trained on the Kaggle sample only "
          f"(leave-one-source-out: people never seen). Detection ms: median per frame, today / new.")
    head = "| frame | " + " | ".join(f"{proto} {pipe}" for proto, pipe in cols) + " | detect ms |"
    print(head)
    print("|" + "---|" * (len(cols) + 2))
    for fname, _, _ in FRAMES:
        cells = []
        for proto, pipe in cols:
            models = dict((p, m) for p, m, _ in pipelines)[pipe]
            clf = models[0] if proto == "roboflow-val" else models[1]
            hands = results[pipe][0][fname]
            pred = [clf.label(h) for h in hands]
            top1 = np.mean([p == t for p, t in zip(pred, truth)])
            miss = np.mean([h is None for h in hands])
            cells.append(f"{top1:6.1%}, {miss:5.1%}")
        ms = " / ".join(f"{1e3 * np.median(results[p][1][fname]):.0f}" for p in ("today", "new"))
        print(f"| {fname} | " + " | ".join(cells) + f" | {ms} |", flush=True)
    if args.costs:
        costs(pipelines, photos, boxes, model, args.costs)


if __name__ == "__main__":
    main()
