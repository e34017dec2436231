"""J and Z from motion: the acceptance figures of issue 23 in one run.

All from one person's landmarks (``landmarks_tresajoby``), held-out part only: recordings and
static rows 80-99 of each file (the bundled motion recogniser learnt from rows 0-79).

1. Held-out recordings, each J, Z and word sign played between two static letters, and streams
   of static letters with synthesised moves, holds and slides: J and Z recall and precision,
   false alarms on word signs and per 200 moves between letters; at 30, 15 and 60 frames/s.
   The bundle's ``motion.tflite`` through LiteRT, on the windows serving makes.
2. Words (JAZZ, PIZZA, JUMP, JOKE, ZERO, QUIZ, ...) built from held-out static hands and J/Z
   recordings at 0.3-0.6 s a letter with moves between letters, decoded by the stream path that
   ``fingerspell predict rec.jsonl`` runs (``video.spell_records``, default words decoder), with
   the motion recogniser and without it (the same bundle, its ``extra`` left out); at 30, 15
   and 60 frames/s. One recording of each word is written to ``--out`` for ``fingerspell predict``.
3. This person's held-out static letters held still: top-1 per frame with and without motion.
4. The cost per frame of the motion recogniser (window -> vector -> LiteRT), and of a whole push.

    python bench/bench_motion.py                       # the bundled model, ~5 minutes
    python bench/bench_motion.py --model runs/motion --per-word 5
    python bench/bench_motion.py --teach              # the bundled model taught this person's training rows
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from fingerspell import bundle as bundle_io, records
from fingerspell.decoding import english
from fingerspell.predictor import Predictor
from fingerspell.recognisers import Seen, motion as runtime
from fingerspell.recognisers.litert import Classifier
from fingerspell.training import motion, streams
from fingerspell.training.motion_bundle import brief, read
from fingerspell.video import spell_records

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "landmarks_tresajoby"
WORDS = ("JAZZ", "PIZZA", "JUMP", "JOKE", "ZERO", "QUIZ", "JAR", "ZOO", "JOB", "ZIP")
RATES = (30, 15, 60)


def word_clip(word: str, rng, statics, recs) -> streams.Clip:
    """``word`` spelled at 0.3-0.6 s a letter (the pace varying +-20% within it), moves of a third
    of a letter between letters, a double letter slid or bounced, no hand before and after (as
    bench_words.py spells words: a hand moved away with one shape would be a slide)."""
    clip, pace = streams.Clip(rng), rng.uniform(300, 600)
    pools = {k: [r for r in recs if r.label == k] for k in motion.MOTION_LETTERS}
    clip.gap(300)
    for i, ch in enumerate(word):
        ms = pace * rng.uniform(0.8, 1.2)
        move = ms * rng.uniform(0.25, 0.4)
        if ch in pools:
            rec = pools[ch][rng.integers(len(pools[ch]))]
            length = rec.t_ms[-1] - rec.t_ms[0]
            # the movement whole (this signer's takes ~0.35 s, after a hold): at least 0.45 s of the recording
            clip.recorded(rec, move, trim_ms=length - max(ms, 450.0), pace=rng.uniform(0.9, 1.15))
        elif i and ch == word[i - 1]:
            # the same hand slid or bounced, then held where it went (as the motion recogniser's
            # streams do): a new hand placed afresh would move again, a second slide
            start, slide = clip.now, rng.uniform(120, 200)
            clip.slide(slide).hold(max(ms - slide, 30.0))
            clip.letters.append((ch, start, clip.now))
        else:
            clip.letter(ch, statics[ch][rng.integers(len(statics[ch]))], ms, move if i else 30.0)
    return clip.gap(800)


def bare(path: Path, out: Path) -> Path:
    """A copy of the bundle at ``path`` without its extra recognisers (the model alone)."""
    meta = bundle_io.load_meta(path)
    files = {p.name: p for p in path.iterdir() if p.is_file() and p.name != bundle_io.META
             and p.name not in {n for e in meta.extra for n in bundle_io.extra_names(e.kind)}}
    return bundle_io.write_bundle(out, dataclasses.replace(meta, extra=[]), files)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="bundle with a motion recogniser (default: the bundled model)")
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--per-word", type=int, default=10, help="recordings of each word at each frame rate")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_motion"), help="folder for the word recordings")
    ap.add_argument("--teach", action="store_true",
                    help="teach the model this person's static hands outside the held-out rows (fingerspell "
                         "teach) and measure the taught model instead")
    args = ap.parse_args(argv)
    if not Path(args.data).is_dir():
        print(f"no data at {args.data}", file=sys.stderr)
        return 2
    path = bundle_io.resolve(args.model)
    meta = bundle_io.load_meta(path)
    entry = next((e for e in meta.extra if e.kind == runtime.KIND), None)
    if entry is None:
        print(f"{path} carries no motion recogniser", file=sys.stderr)
        return 2
    recs, statics = read([args.data])
    split = motion.Split(*meta_split(path))
    if args.teach:
        from fingerspell.teach import teach

        samples = training_statics(args.data, split)
        report = teach(path, samples, Path(args.out) / "taught")
        print(f"taught {sum(report.taught.values())} of this person's static hands ({len(report.taught)} letters, "
              f"rows outside {split.lo}-{split.hi - 1} of each) over {path}, written to {report.out}; "
              "the figures below are the taught model's")
        path = Path(report.out)
    held_recs, held_statics = split.recordings(recs, True), split.statics(statics, True)
    print(f"model {path}; held out: recordings and static rows {split.lo}-{split.hi - 1} of each file "
          f"({len(held_recs)} recordings, {sum(map(len, held_statics.values()))} static hands)")

    print("\n1. held-out recordings (motion.tflite through LiteRT)")
    clf = Classifier(path / entry.file)
    predict = lambda x: np.stack([clf(row) for row in x])  # noqa: E731
    for fps in RATES:
        print(f"  {fps} frames/s: {brief(motion.scored(np.random.default_rng(args.seed + fps), held_statics, held_recs, predict, fps))}")

    lexicon = english()  # what `fingerspell predict` decodes with
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    without = bare(path, out / "without-motion")
    print(f"\n2. words through the stream path (video.spell_records, as `fingerspell predict rec.jsonl`), "
          f"{args.per_word} of each of {len(WORDS)} words per frame rate")
    rng = np.random.default_rng(args.seed)
    clips = {fps: [(w, word_clip(w, rng, held_statics, held_recs)) for w in WORDS for _ in range(args.per_word)]
             for fps in RATES}
    # Sampled once: a clip's frames (their jitter and timing) are drawn as it is sampled, and
    # the model with motion and without it must read the same recordings.
    recordings = {fps: [(w, streams.to_records(*clip.sample(fps, 0.8))) for w, clip in clips[fps]] for fps in RATES}
    for fps in (30,):
        for k, (word, recording) in enumerate(recordings[fps]):
            if k % args.per_word == 0:
                records.write(out / f"{word.lower()}.jsonl", recording)
    for name, bundle_path in (("with motion", path), ("without", without)):
        predictor = Predictor.from_bundle(bundle_path)
        try:
            for fps in RATES:
                right, wrong, per_word, moved = 0, [], {w: 0 for w in WORDS}, 0
                for word, recording in recordings[fps]:
                    text, _ = spell_records(predictor, recording, lexicon=lexicon)
                    right += text.strip() == word
                    per_word[word] += text.strip() == word
                    if text.strip() != word:
                        wrong.append(f"{word}->{text.strip() or '-'}")
                        moved += motion_letters(text) != motion_letters(word)
                print(f"  {name:12s} {fps} frames/s: {right}/{len(recordings[fps])} words right "
                      f"({right / len(recordings[fps]):.0%}); of the {len(wrong)} wrong, {moved} with their J and Z "
                      f"wrong (the others: only other letters); per word: "
                      f"{' '.join(f'{w} {n}' for w, n in per_word.items())}; "
                      f"wrong: {', '.join(wrong[:12])}{' ...' if len(wrong) > 12 else ''}")
            statics_and_cost(predictor, held_statics, np.random.default_rng(args.seed), cost=name == "with motion")
        finally:
            predictor.close()
    print(f"\nword recordings written to {out} (e.g. fingerspell predict {out / 'jazz.jsonl'})")
    return 0


def training_statics(data: str, split: motion.Split) -> list[records.Record]:
    """This person's static hands outside the held-out rows of each letter (what teaching may see)."""
    out, rows = [], Counter()
    for rec in records.read_arrays(data):
        if rec.t_ms is None and rec.label is not None:
            if not split.held(rows[rec.group]):
                out.append(rec)
            rows[rec.group] += 1
    return out


def motion_letters(text: str) -> str:
    """The J and Z of ``text`` in order: a word whose are right failed on other letters only."""
    return "".join(ch for ch in text.strip() if ch in motion.MOTION_LETTERS)


def meta_split(path: Path) -> tuple[int, int]:
    held = bundle_io.read_json(path, bundle_io.METRICS).get("motion", {}).get("split", {}).get("held_out", [80, 99])
    return held[0], held[1] + 1


def statics_and_cost(predictor: Predictor, statics, rng, cost: bool = True) -> None:
    """3. held-out static letters held 0.5 s at 30 frames/s: top-1 per frame; 4. cost per frame."""
    right = total = 0
    read_as: dict[str, Counter] = {}
    for label, hands in sorted(statics.items()):
        read_as[label] = Counter()
        for pts in hands[::4]:
            clip = streams.Clip(rng).letter(label, pts, 500, 30.0)
            times, frames = clip.sample(30, 0.8)
            with predictor.stream() as stream:
                for t, hand in zip(times, streams.to_records(times, frames)):
                    pred = stream.push(hand.hand, int(t))
                    right += pred.letter == label
                    total += 1
                    read_as[label][pred.letter] += 1
    poor = [f"{k} {c[k] / c.total():.0%} ({', '.join(f'{j} {n}' for j, n in c.most_common(3) if j != k)})"
            for k, c in read_as.items() if c[k] < 0.9 * c.total()]
    print(f"\n3. held-out static letters held still, {'with' if cost else 'without'} motion: "
          f"{right / total:.1%} of {total} frames read right; under 90%: {'; '.join(poor) or 'none'}")
    if cost and predictor.beside:
        beside = predictor.beside[0]
        for fps in (30, 60):
            window = [Seen(int(t), r.hand) for t, r in zip(*_still(statics, rng, fps))]
            ms = []
            for k in range(30, len(window)):
                t0 = time.perf_counter()
                beside.fuse(window[: k + 1], np.full(len(predictor.labels), 1 / len(predictor.labels)), predictor.labels)
                ms.append((time.perf_counter() - t0) * 1e3)
            print(f"4. motion recogniser per frame at {fps} frames/s (1 s window, {len(window) // 2} frames): "
                  f"median {statistics.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms")


def _still(statics, rng, fps):
    label = sorted(statics)[0]
    clip = streams.Clip(rng).letter(label, statics[label][0], 2000, 30.0)
    times, frames = clip.sample(fps, 0.8)
    return times, streams.to_records(times, frames)


if __name__ == "__main__":
    sys.exit(main())
