"""The motion recogniser's recipe: recordings and static hands -> synthesised streams -> windows -> an MLP.

Positives are real J and Z recordings played inside streams of fingerspelling (a letter
before, one after, a hand coming in or going out), labelled J or Z for the frames from just
before to 200 ms after the movement ends, the frames around that left out of the loss, and
every other frame ``nothing``. Negatives are real motion that is not J or Z: the word signs
played the same way, and streams of static letters with the moves between them synthesised at
fingerspelling speed (``streams.Clip``), some of them jumps to a hand of another size a little
way off (``CUTS``), holds, double-letter slides and bounces. Each stream is sampled at a frame
rate drawn from 10 to 60 frames/s.

Recordings are split by their index in their file (``held_out``: a range of indices, never
frames of one recording on both sides), static hands by their row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..features import WRIST
from ..recognisers import motion
from .streams import Clip, Recording

log = logging.getLogger(__name__)

MOTION_LETTERS = ("J", "Z")
FIRE_BEFORE_MS, FIRE_AFTER_MS = 60.0, 150.0  # a J or Z is answered from just before its end to this after...
BLUR_BEFORE_MS, BLUR_AFTER_MS = 200.0, 70.0  # ...either answer will do this close around that (left out of the loss);
# after it, "nothing": the next letter's frames are the next letter's
FIRE_P = motion.FIRE_P  # a J or Z is offered to the decoder where its probability reaches this (0.7: chosen on held-out streams)...
EVIDENCE_MS = 80.0  # ...for this much evidence (DecoderParams.min_letter_ms: what writes a letter)
FPS = (10, 15, 20, 24, 30, 30, 45, 60)
CUTS = 0.3  # of the changes of letter in training streams, jumps: not a J or Z (photos spelled one after another)


@dataclass(frozen=True)
class Split:
    """Which recordings and static hands are held out: indices ``lo`` to ``hi - 1`` of each file."""

    lo: int = 80
    hi: int = 100

    def held(self, index: int) -> bool:
        return self.lo <= index < self.hi

    def recordings(self, recs: list[Recording], held: bool) -> list[Recording]:
        return [r for r in recs if self.held(r.index) == held]

    def statics(self, statics: dict[str, np.ndarray], held: bool) -> dict[str, np.ndarray]:
        return {k: v[[self.held(i) == held for i in range(len(v))]] for k, v in statics.items()}

    def to_json(self) -> dict:
        return {"by": "recording index within its file (static hands: row)", "held_out": [self.lo, self.hi - 1]}


def clip_of(rng: np.random.Generator, statics: dict[str, np.ndarray], recs: list[Recording], what: str,
            pace: float | None = None, cuts: float = 0.0) -> Clip:
    """One synthesised stream: ``what`` is "motion" (a J or Z recording between letters), "sign"
    (a word sign between letters) or "spell" (static letters only: moves, holds, slides).
    ``cuts``: the share of the changes of letter made as jumps (``letter_or_cut``), not moves."""
    clip = Clip(rng)
    letters = sorted(statics)
    pace = pace or rng.uniform(300, 650)  # ms a letter

    def some_letter():
        label = letters[rng.integers(len(letters))]
        return label, statics[label][rng.integers(len(statics[label]))]

    def move_ms():
        return rng.uniform(0.25, 0.45) * pace

    def next_letter(label, pts, ms):
        if rng.random() < cuts:
            return letter_or_cut(rng, clip, label, pts, ms)
        return clip.letter(label, pts, ms, move_ms())

    label, pts = some_letter()
    if rng.random() < 0.3:
        clip.gap(rng.uniform(100, 400)).enter(rng.uniform(150, 400), clip.place(pts))
    clip.letter(label, pts, pace * rng.uniform(0.6, 1.6), 30.0)
    if what == "spell":
        for _ in range(rng.integers(3, 8)):
            label, pts = some_letter()
            next_letter(label, pts, pace * rng.uniform(0.7, 1.3))
            if rng.random() < 0.25:
                clip.slide(rng.uniform(100, 220)).hold(pace * rng.uniform(0.5, 1.0))
            if rng.random() < 0.1:
                clip.hold(rng.uniform(500, 1500))
    else:
        labels = MOTION_LETTERS if what == "motion" else sorted({r.label for r in recs} - set(MOTION_LETTERS))
        pool = [r for r in recs if r.label == labels[rng.integers(len(labels))]]
        rec = pool[rng.integers(len(pool))]
        clip.recorded(rec, move_ms(), trim_ms=rng.uniform(0, 650), pace=rng.uniform(0.8, 1.25))
        if rng.random() < 0.2:  # the same motion letter again: JAZZ's ZZ
            clip.recorded(pool[rng.integers(len(pool))], move_ms(), trim_ms=rng.uniform(350, 650))
    if rng.random() < 0.3:
        clip.leave(rng.uniform(150, 400)).gap(rng.uniform(100, 300))
    else:
        for _ in range(rng.integers(1, 3)):
            label, pts = some_letter()
            next_letter(label, pts, pace * rng.uniform(0.7, 1.3))
    return clip


def letter_or_cut(rng: np.random.Generator, clip: Clip, label: str, points: np.ndarray, ms: float) -> Clip:
    """A static letter reached by a jump (``Clip.cut``, up to 100 ms), not a move: the new hand
    0.65-1.5 times the size and up to about a palm away, as photos of other people spelled one
    after another, a fast change of letter at a low frame rate, or the hand tracker's jumps look."""
    start = clip.now
    target = clip.place(points, wobble=0.6)
    wrist = target[WRIST]
    target = (target - wrist) * rng.uniform(0.65, 1.5) + wrist
    clip.cut(target, rng.uniform(1.0, 100.0)).hold(max(ms - 50.0, 30.0))
    clip.letters.append((label, start, clip.now))
    return clip


def targets(times: np.ndarray, motions: list) -> np.ndarray:
    """Per frame: the index in ``motion.LABELS`` it should be answered with, -1 where either will do."""
    y = np.full(len(times), motion.LABELS.index("nothing"))
    for label, end in motions:
        if label not in MOTION_LETTERS:
            continue
        near = (times >= end - FIRE_BEFORE_MS - BLUR_BEFORE_MS) & (times <= end + FIRE_AFTER_MS + BLUR_AFTER_MS)
        y[near & (y == motion.LABELS.index("nothing"))] = -1
    for label, end in motions:
        if label in MOTION_LETTERS:
            y[(times >= end - FIRE_BEFORE_MS) & (times <= end + FIRE_AFTER_MS)] = motion.LABELS.index(label)
    return y


def windows(times: np.ndarray, frames: list, runtime: motion.Runtime) -> tuple[np.ndarray, np.ndarray]:
    """The input vector of every frame with a hand (as ``Runtime.inputs`` makes it), and those frames' indices."""
    have = np.array([f is not None for f in frames])
    idx = np.flatnonzero(have)
    if not len(idx):
        return np.zeros((0, motion.size_of(runtime.steps)), np.float32), idx
    t = times[idx].astype(float)
    pts = np.stack([frames[i][:, :2] for i in idx])
    out = []
    for k in range(len(idx)):
        lo = int(np.searchsorted(t, t[k] - runtime.span_ms - 100))
        out.append(motion.vectors(t[lo : k + 1], pts[lo : k + 1], runtime.span_ms, runtime.steps))
    return np.stack(out), idx


def dataset(rng, statics, recs, n_clips: int, runtime: motion.Runtime,
            cuts: float = CUTS) -> tuple[np.ndarray, np.ndarray]:
    """Windows and targets of ``n_clips`` synthesised streams: 35% motion letters, 30% word signs,
    35% spelling; ``cuts`` of the changes of letter jumps, not moves."""
    xs, ys = [], []
    for k in range(n_clips):
        what = ("motion", "sign", "spell")[int(np.searchsorted([0.35, 0.65], rng.random(), side="right"))]
        clip = clip_of(rng, statics, recs, what, cuts=cuts)
        times, frames = clip.sample(FPS[rng.integers(len(FPS))], rng.uniform(0.3, 1.5))
        x, idx = windows(times, frames, runtime)
        xs.append(x)
        ys.append(targets(times, clip.motions)[idx])
    x, y = np.concatenate(xs), np.concatenate(ys)
    keep = y >= 0
    return x[keep], y[keep]


def fit(x: np.ndarray, y: np.ndarray, seed: int = 1, epochs: int = 30, *, stop=None):
    """A small MLP over the motion vectors (Keras, imported here); classes weighted to balance."""
    from ..recognisers.fitting import epoch_log, tf_keras

    _, keras = tf_keras()
    keras.utils.set_random_seed(seed)
    counts = np.bincount(y, minlength=len(motion.LABELS)).astype(float)
    weights = {k: float(len(y) / (len(counts) * max(c, 1.0))) for k, c in enumerate(counts)}
    model = keras.Sequential([keras.Input((x.shape[1],), name="motion"), keras.layers.Normalization(name="norm"),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dropout(0.2),
                              keras.layers.Dense(len(motion.LABELS), activation="softmax", name="probs")],
                             name=motion.KIND)
    model.get_layer("norm").adapt(x)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], steps_per_execution=32)
    model.fit(x, y, epochs=epochs, batch_size=256, class_weight=weights, verbose=0,
              callbacks=[epoch_log(max(1, epochs // 5), epochs, stop)])
    return model


def fires(times: np.ndarray, probs: np.ndarray, have: np.ndarray) -> list[tuple[str, float]]:
    """(label, time) of each J or Z the decoder would be offered: a run of frames where it has
    probability ``FIRE_P`` or more and at least ``EVIDENCE_MS`` of evidence (frame time x
    probability, as the segmenter counts it), timed at its first frame."""
    out, run, last = [], None, None
    for t, p in zip(times[have], probs):
        dt = 33.0 if last is None else min(float(t - last), 100.0)
        last = t
        best = int(np.argmax(p[:2]))
        if p[best] < FIRE_P or (run is not None and run[0] != best):
            run = None
        if p[best] >= FIRE_P:
            run = run or [best, float(t), 0.0, False]
            run[2] += dt * float(p[best])
            if run[2] >= EVIDENCE_MS and not run[3]:
                run[3] = True
                out.append((motion.LABELS[best], run[1]))
    return out


def scored(rng, statics, recs, predict, fps: float) -> dict:
    """The held-out figures at ``fps``, from ``predict`` (windows -> probabilities over ``motion.LABELS``).

    Each J and Z recording is played between two static letters (a hit: its letter fired within
    400 ms of its end); each word sign likewise (any J or Z fired is a false alarm); and 200
    streams of static letters, moves, holds and slides (false alarms per 200 moves between letters),
    and as many whose changes of letter are all jumps (``letter_or_cut``).
    """
    def run(clip):
        times, frames = clip.sample(fps, 0.8)
        x, idx = windows(times, frames, motion.Runtime())
        have = np.array([f is not None for f in frames])
        return fires(times, predict(x), have) if len(x) else []

    letters = sorted(statics)

    def around(clip, rec):
        a, b = (letters[i] for i in rng.integers(len(letters), size=2))
        clip.letter(a, statics[a][rng.integers(len(statics[a]))], rng.uniform(300, 600), 30.0)
        clip.recorded(rec, rng.uniform(100, 200), trim_ms=rng.uniform(0, 650))
        return clip.letter(b, statics[b][rng.integers(len(statics[b]))], rng.uniform(300, 600), rng.uniform(100, 200))

    out = {k: {"n": 0, "hits": 0, "fired": 0, "right": 0} for k in MOTION_LETTERS}
    signs = {"n": 0, "false_alarms": 0}
    for rec in recs:
        clip = around(Clip(rng), rec)
        fired = run(clip)
        if rec.label in MOTION_LETTERS:
            end = clip.motions[0][1]
            hit = any(k == rec.label and end - 400 <= t <= end + 400 for k, t in fired)
            out[rec.label]["n"] += 1
            out[rec.label]["hits"] += int(hit)
            for k, t in fired:
                out[k]["fired"] += 1
                out[k]["right"] += bool(k == rec.label and end - 400 <= t <= end + 400)
        else:
            signs["n"] += 1
            signs["false_alarms"] += len(fired)
            for k, _ in fired:
                out[k]["fired"] += 1

    def alarms_per_200(cuts: float) -> dict:
        moves = alarms = 0
        while moves < 1000:
            clip = clip_of(rng, statics, recs, "spell", cuts=cuts)
            moves += len(clip.letters) - 1
            alarms += len(run(clip))
        return {"n": moves, "false_alarms": alarms, "per_200": 200 * alarms / max(moves, 1)}

    transitions = alarms_per_200(0.0)
    jumps = alarms_per_200(1.0)  # every change of letter a jump (as bench_words' photos change)
    for k, m in out.items():
        m["recall"] = m["hits"] / max(m["n"], 1)
        m["precision"] = m["right"] / m["fired"] if m["fired"] else None
    return {**out, "signs": {**signs, "rate": signs["false_alarms"] / max(signs["n"], 1)},
            "transitions": transitions, "jumps": jumps}
