"""Words, not letters: how much of the text comes out right, old decoder against new, in one run.

Clips are built from photos of people a model has not seen, spelled into words the way a webcam
sees them, and run through the server's stream path (``Predictor.stream()``):

* two protocols: ``loso`` (leave one source out: a model trained on the Kaggle sample only,
  spelling words from every Roboflow photo) and ``val`` (the bundled model, trained on both
  sets with a source-grouped split, spelling words from its Roboflow validation photos, which
  are recovered from the split recorded in its bundle.json and checked against its counts);
* each letter one of the pool's photos of it on a 640x480 frame with a few pixels of jitter;
  ~100 ms between two letters where the hand changes shape (the two photos blended and
  motion-blurred); pace varying by +-30% within a word around 0.6, 0.45 or 0.3 s a letter;
  0.6-1.5 s without a hand between words; a double letter slides sideways (same photo, moved);
* words: a few hundred common words drawn evenly from three bands of symspellpy's frequency
  list (ranks 50-1,000, 1,000-5,000, 5,000-20,000), words with double letters, and names that
  are in no dictionary.

Printed: words right, character error rate (CER) and the median delay from a letter's end to
its first appearance on the page, for today's decoder (``letters``), the new one (``words``)
and the new one without its lexicon (``no-lexicon``), per protocol, pace and kind of word. The
words decoders are scored on the final text, aligned word by word with the words signed (what
the user copies or hears; a word rewritten later counts as it ended up); the letters decoder,
which writes no space of its own, on the text each clip added.

MediaPipe is the slow part on a laptop, so a frame (a photo at one jitter offset, one step of
one transition, the empty frame) goes through the hand finder once per distinct frame before it
(``--memo pair``: the stream sees the frame before, then follows the hand into this one, as a
live stream does) and the hand it finds is cached in ``--cache`` (JSON, keyed by the hand model,
the detection settings and the rendering, not by the recognisers, which are not cached). Each
session's hands are then pushed in order, at their times, through one stream
(``Stream.push``), so the recognisers read the real window of recent hands: the motion
recogniser (J and Z) its last second, not the memo's two frames. ``--memo frame`` finds the
hand of each distinct frame once, after whatever frame first came before it: a third of the
work, but a frame first met just after a transition keeps the landmarks followed from the
blend wherever it comes again.

``--beside with,without`` (the default) runs each model with the recognisers carried beside it
(``bundle.json`` ``extra``: J and Z from motion) and without them, on the same hands: the rows
side by side show what the motion recogniser costs the other letters. A model that carries no
motion recogniser (the Kaggle-only one) is given the bundled model's (``--motion-from``) for
the ``with`` rows; the copies are written under ``--cache``.

    python bench/bench_words.py --kaggle-model runs/lm-kaggle            # both protocols
    python bench/bench_words.py --kaggle-model runs/lm-kaggle --quick    # 40 words, a minute or two
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import difflib
import hashlib
import json
import logging
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from PIL import Image

from fingerspell import bundle as bundle_io
from fingerspell.config import DecoderParams, train_params_from_dict
from fingerspell.dataset import assign_groups, scan, split
from fingerspell.decoding import LetterDecoder, Lexicon, WordDecoder
from fingerspell.hands import Hand
from fingerspell.predictor import Predictor

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
FRAME = (640, 480)
PHOTO = 480  # photos fill the frame's height, as a hand near a webcam does (and as the other benches letterbox)
BACKGROUND = 96
FPS = 20  # what the page gets through with one frame in flight
STEP_MS = 1000 // FPS
TRANSITION_MS = 100
ALPHAS = (0.25, 0.5, 0.75)  # transition frames, quantised so that they can be cached
JITTER = ((0, 0), (3, -2), (-2, 3), (-3, -3))  # px
SLIDE_PX = 100  # a double letter's slide: about half a hand
PACES = (0.6, 0.45, 0.3)
BANDS = ((50, 1000), (1000, 5000), (5000, 20000))
NAMES = ("ELIF", "LUPITA", "HARUKI", "OKSANA", "TOMASZ", "SIOBHAN", "KWAME", "NGOZI", "DMITRI", "FATOUMATA",
         "BOGDAN", "XIOMARA", "TEODORA", "YUSUF", "ANJALI", "MAREK")


# --------------------------------------------------------------------------- words


def word_lists(seed: int, n_words: int, n_doubles: int, lexicon: Lexicon) -> dict[str, list[str]]:
    """Common words (evenly from the frequency bands), double-letter words, and names in no dictionary."""
    path = resources.files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    ranked = [line.split()[0].upper() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def usable(w: str) -> bool:
        return w.isalpha() and w.isascii() and 3 <= len(w) <= 8 and any(v in w for v in "AEIOUY")

    rng = random.Random(seed)
    plain, doubles = [], []
    for lo, hi in BANDS:
        band = [w for w in ranked[lo:hi] if usable(w)]
        single = [w for w in band if not any(a == b for a, b in zip(w, w[1:]))]
        double = [w for w in band if any(a == b for a, b in zip(w, w[1:]))]
        plain += rng.sample(single, min(len(single), n_words // len(BANDS)))
        doubles += rng.sample(double, min(len(double), n_doubles // len(BANDS)))
    names = [n for n in NAMES if n not in lexicon.counts]
    return {"words": plain, "doubles": doubles, "names": names}


# --------------------------------------------------------------------------- photos and frames


def pools(protocol: str, data: Path, both_model: Path) -> tuple[dict[str, list[str]], str]:
    """Photos per letter for a protocol, and a line saying where they come from."""
    robo = data / "roboflow_letters_train"
    if protocol == "loso":
        samples = scan([str(robo)]).samples
        out = defaultdict(list)
        for s in samples:
            out[s.label].append(s.path)
        return dict(out), f"every Roboflow photo ({len(samples)}), unseen by a model trained on the Kaggle sample only"
    meta = bundle_io.load_meta(both_model)
    params = train_params_from_dict(meta.config)
    ds = assign_groups(scan(meta.data["folders"]), params.split)
    sides = split(ds, params.split)
    counts = {k: len(v) for k, v in sides.items()}
    if counts != meta.split["images"]:
        sys.exit(f"the split of {both_model} cannot be recovered ({counts} != {meta.split['images']}); retrain it")
    out = defaultdict(list)
    for i in sides["val"]:
        s = ds.samples[i]
        if s.source == "roboflow_letters_train":
            out[s.label].append(s.path)
    n = sum(len(v) for v in out.values())
    return dict(out), f"the {n} Roboflow validation photos of {both_model.name} (split recovered and checked)"


class Renderer:
    """Frame descriptors -> 640x480 RGB frames."""

    def __init__(self):
        self._photos: dict[str, np.ndarray] = {}

    def photo(self, path: str) -> np.ndarray:
        if path not in self._photos:
            img = Image.open(path).convert("RGB").resize((PHOTO, PHOTO), Image.BILINEAR)
            self._photos[path] = np.asarray(img, dtype=np.float32)
        return self._photos[path]

    def _place(self, photo: np.ndarray, dx: float, dy: float) -> np.ndarray:
        canvas = np.full((FRAME[1], FRAME[0], 3), BACKGROUND, np.float32)
        x = int(round((FRAME[0] - PHOTO) / 2 + dx))
        y = int(round((FRAME[1] - PHOTO) / 2 + dy))
        # The part of the photo that falls inside the frame (jitter may push it past an edge).
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(FRAME[0], x + PHOTO), min(FRAME[1], y + PHOTO)
        canvas[y0:y1, x0:x1] = photo[y0 - y:y1 - y, x0 - x:x1 - x]
        return canvas

    def frame(self, desc: tuple) -> np.ndarray:
        kind = desc[0]
        if kind == "blank":
            out = np.full((FRAME[1], FRAME[0], 3), BACKGROUND, np.float32)
        elif kind == "hold":
            _, path, jitter, shift = desc
            jx, jy = JITTER[jitter]
            out = self._place(self.photo(path), shift + jx, jy)
        else:  # a hand changing shape: the two photos blended, moving, motion-blurred
            _, a, b, alpha, shift_a, shift_b = desc
            shift = shift_a + (shift_b - shift_a) * alpha
            out = (1 - alpha) * self._place(self.photo(a), shift, 0) + alpha * self._place(self.photo(b), shift, 0)
            blur = 6 + int(abs(shift_b - shift_a) * 0.15)
            out = np.mean([np.roll(out, d, axis=1) for d in range(-blur, blur + 1, 2)], axis=0)
        return np.clip(out, 0, 255).astype(np.uint8)


@dataclass
class Clip:
    """One word: frames (time, descriptor), and each letter's end time."""

    word: str
    frames: list = field(default_factory=list)
    letter_ends: list = field(default_factory=list)
    start: int = 0  # index of the first frame of the word (after its leading pause)


def build_clip(word: str, pace: float, pool: dict[str, list[str]], rng_photos: random.Random,
               rng_time: random.Random, t0: int, double_slide: bool) -> tuple[Clip, int]:
    """A pause, then the word, from ``t0`` ms; returns the clip and the time after it."""
    clip = Clip(word)
    t = t0
    pause_end = t + int(rng_time.uniform(600, 1500))
    while t < pause_end:
        clip.frames.append((t, ("blank",)))
        t += STEP_MS
    clip.start = len(clip.frames)
    # Photos are drawn by their own generator, so that a word has the same photos at every pace.
    photos, shifts = [], []
    for i, ch in enumerate(word):
        if i and ch == word[i - 1] and double_slide:
            photos.append(photos[-1])
            shifts.append(shifts[-1] + (SLIDE_PX if shifts[-1] <= 0 else -SLIDE_PX))
        else:
            photos.append(rng_photos.choice(pool[ch]))
            shifts.append(-SLIDE_PX // 2 if ch in word[i + 1:i + 2] else 0)
    start = t
    for i, ch in enumerate(word):
        end = start + pace * 1000 * rng_time.uniform(0.7, 1.3)
        while t < end:
            if i and t < start + TRANSITION_MS:
                step = min(len(ALPHAS) - 1, int((t - start) / TRANSITION_MS * len(ALPHAS)))
                desc = ("move", photos[i - 1], photos[i], ALPHAS[step], shifts[i - 1], shifts[i])
            else:
                desc = ("hold", photos[i], rng_time.randrange(len(JITTER)), shifts[i])
            clip.frames.append((t, desc))
            t += STEP_MS
        clip.letter_ends.append(t)
        start = t
    return clip, t


def build_sessions(lists: dict[str, list[str]], paces, pool, seed: int, protocol: str) -> dict:
    """One session (a run of clips, decoded as one stream) per kind of word and pace."""
    sessions = {}
    for kind, words in lists.items():
        for pace in paces:
            rng_photos = random.Random(f"{seed}-{protocol}-{kind}")
            rng_time = random.Random(f"{seed}-{protocol}-{kind}-{pace}")
            clips, t = [], 0
            for w in words:
                clip, t = build_clip(w, pace, pool, rng_photos, rng_time, t, double_slide=kind == "doubles")
                clips.append(clip)
            tail = Clip("")  # a last pause, so the last word ends as the others do
            tail.frames = [(t + k * STEP_MS, ("blank",)) for k in range(1500 // STEP_MS)]
            tail.start = len(tail.frames)
            sessions[kind, pace] = clips + [tail]
    return sessions


# --------------------------------------------------------------------------- predictions


_NOTHING_YET = object()


class Hands:
    """The hand the stream finds in each frame, cached in a JSON file.

    A stream's hand depends on the frame before (the hand it follows), so with ``memo="pair"``
    a frame is seen once per distinct frame before it: the stream sees the frame before afresh,
    then this one, followed from it (the empty frame before is no frame: nothing is followed).
    ``memo="frame"`` sees each distinct frame once, in the stream in the order first met,
    whatever came before it (cheaper, and what this benchmark did first).

    Only the hands are cached: what the recognisers make of them is worked out afresh by
    ``replay``, over the real window of each session, for every model that reads them.
    """

    def __init__(self, model: Path, cache: Path, memo: str = "pair"):
        self.predictor = Predictor.from_bundle(model)
        self.memo = memo
        # The hand model and the detector's settings (a stream that looks harder finds other hands)...
        detect = hashlib.sha256(repr((self.predictor.hand_model_sha256, self.predictor.finder.params)).encode())
        # ... and the rendering: a cached hand is only good for the same frames.
        render = hashlib.sha256(repr((FRAME, PHOTO, BACKGROUND, JITTER, ALPHAS)).encode()).hexdigest()[:8]
        suffix = "" if memo == "frame" else f"-{memo}"
        self.file = cache / f"hands-{detect.hexdigest()[:12]}-{render}{suffix}.json"
        self.table: dict[str, str | None] = json.loads(self.file.read_text()) if self.file.is_file() else {}
        self.renderer = Renderer()
        self.fresh = 0
        self._ts = 0

    def key(self, desc: tuple, before: tuple | None) -> str:
        if self.memo == "frame":
            return json.dumps(desc)
        return json.dumps([None if before is None or before[0] == "blank" else before, desc])

    def run(self, sessions: list[list[Clip]]) -> None:
        """Find the hand of every frame of ``sessions`` not yet in the cache."""
        todo: dict[str, tuple] = {}
        for clips in sessions:
            before = None
            for clip in clips:
                for _, desc in clip.frames:
                    desc = json.loads(json.dumps(desc))  # as the cache holds it (lists)
                    key = self.key(desc, before)
                    if key not in self.table:
                        todo.setdefault(key, (before, desc))
                    before = desc
        if not todo:
            return
        t = time.perf_counter()
        # Grouped by the frame before: the stream sees it once, and each frame after starts from there.
        order = sorted(todo.items(), key=lambda kv: json.dumps(kv[1][0]) if self.memo == "pair" else "")
        with self.predictor.stream() as stream:
            seen_before = _NOTHING_YET
            for i, (key, (before, desc)) in enumerate(order):
                if self.memo == "pair":
                    if before != seen_before:
                        stream.close()
                        stream.seen.clear()
                        if before is not None and before[0] != "blank":
                            self._ts += STEP_MS
                            stream.predict(self.renderer.frame(tuple(before)), self._ts)
                        start, history, seen_before = stream.following, list(stream.seen), before
                    stream.following = start
                    stream.seen.clear()
                    stream.seen.extend(history)
                self._ts += STEP_MS
                hand = stream.predict(self.renderer.frame(tuple(desc)), self._ts).hand
                # what a recogniser reads of it (the estimate before refinement is for training)
                record = None if hand is None else dataclasses.replace(hand, unrefined=None).to_array()
                self.table[key] = None if hand is None else [hand.attempt, base64.b64encode(record.tobytes()).decode()]
                if (i + 1) % 1000 == 0:
                    logging.info("%d of %d frames through the stream (%.0f frames/s)", i + 1, len(todo),
                                 (i + 1) / (time.perf_counter() - t))
                    if (i + 1) % 10000 == 0:  # a long first run keeps what it has found if stopped
                        self.file.write_text(json.dumps(self.table))
        self.fresh += len(todo)
        self.file.write_text(json.dumps(self.table))

    def get(self, desc: tuple, before: tuple | None = None) -> Hand | None:
        found = self.table[self.key(desc, before)]
        if found is None:
            return None
        attempt, blob = found
        return Hand.from_array(np.frombuffer(base64.b64decode(blob), dtype=np.float32), attempt)

    def close(self):
        self.predictor.close()


def replay(predictor, clips: list[Clip], hands: Hands) -> list[list[SimpleNamespace]]:
    """One session's hands pushed in order, at their times, through one stream of ``predictor``:
    per clip, per frame, what the decoder is given (``top``, ``motion``) and where the hand was."""
    out, before = [], None
    with predictor.stream() as stream:
        for clip in clips:
            answers = []
            for t, desc in clip.frames:
                pred = stream.push(hands.get(desc, before), t)
                answers.append(SimpleNamespace(top=pred.top, motion=pred.motion, position=stream.position))
                before = desc
            out.append(answers)
    return out


def variants(model: Path, beside: list[str], motion_from: Path, folder: Path) -> dict[str, Path]:
    """The bundles to run for ``model``: ``with`` the recognisers carried beside a model (the
    motion recogniser of ``motion_from`` given to a model that carries none), ``without`` them."""
    meta = bundle_io.load_meta(model)
    extra_files = {n for e in meta.extra for n in bundle_io.extra_names(e.kind)}
    own = {p.name: p for p in model.iterdir() if p.is_file() and p.name != bundle_io.META}
    tag = hashlib.sha256(str(model.resolve()).encode()).hexdigest()[:8]
    out = {}
    for name in beside:
        if name == "with" and meta.extra:
            out[name] = model
        elif name == "with":
            donor = bundle_io.load_meta(motion_from)
            files = {**own, **{n: motion_from / n for e in donor.extra for n in bundle_io.extra_names(e.kind)
                               if (motion_from / n).is_file()}}
            out[name] = bundle_io.write_bundle(folder / f"{model.name}-{tag}-with-motion",
                                               dataclasses.replace(meta, extra=list(donor.extra)), files)
        elif meta.extra:
            files = {n: p for n, p in own.items() if n not in extra_files}
            out[name] = bundle_io.write_bundle(folder / f"{model.name}-{tag}-without",
                                               dataclasses.replace(meta, extra=[]), files)
        else:
            out[name] = model
    return out


# --------------------------------------------------------------------------- scoring


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def decode(clips: list[Clip], answers: list[list[SimpleNamespace]], decoder,
           final: bool = True) -> tuple[list[str], list[float]]:
    """Run one session of clips through a decoder: what each word became, and the letter delays.

    ``answers``: per clip, per frame, what the stream made of it (``replay``). With ``final``,
    a word is what it became in the final text (a later join counts as it ended up). Without,
    it is the text added while its clip and the pause after it played: for the letters decoder,
    which writes no space of its own (the old page added them), so its words are cut at the
    clip boundaries for it.
    """
    outputs, delays = [], []
    for n, clip in enumerate(clips):
        before = decoder.visible()
        base = len(before)
        appeared: dict[int, float] = {}
        last_t = 0.0
        following = list(zip(clips[n + 1].frames[:clips[n + 1].start], answers[n + 1])) if n + 1 < len(clips) else []
        for i, ((t, _), answer) in enumerate(list(zip(clip.frames, answers[n]))[clip.start:] + following):
            decoder.update(answer, t, answer.position)
            shown = len(decoder.visible()) - base
            for k in range(len(appeared), min(shown, len(clip.word))):
                appeared[k] = t
            last_t = t
        if n + 1 == len(clips):
            decoder.finish(last_t)
        after = decoder.visible()
        outputs.append(after[base:].strip() if after.startswith(before) else after.strip())
        delays += [appeared[k] - clip.letter_ends[k] for k in appeared]
    if not final:
        return outputs, delays
    # The final text is what the user copies or hears.
    return attribute([c.word for c in clips if c.word], decoder.visible().split()) + [""], delays


def attribute(words: list[str], written: list[str]) -> list[str]:
    """The written text word by word against the words signed: what each signed word became
    ('' where nothing was written for it; two words where one was split)."""
    out, extra = [""] * len(words), []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=words, b=written, autojunk=False).get_opcodes():
        parts = written[j1:j2]
        if tag == "equal":
            out[i1:i2] = parts
        elif tag == "replace":  # in order; what is left over goes to the last of them
            for k in range(i1, i2):
                out[k] = " ".join(parts[k - i1:] if k == i2 - 1 else parts[k - i1:k - i1 + 1])
        elif tag == "insert" and words:  # words written for nothing signed spoil a word beside them
            extra.append((max(0, i1 - 1), parts))
    for k, parts in extra:
        out[k] = " ".join(filter(None, [out[k], *parts]))
    return out


def score(words: list[str], outputs: list[str], delays: list[float]) -> dict:
    right = sum(o == w for o, w in zip(outputs, words))
    errors = sum(edit_distance(o, w) for o, w in zip(outputs, words))
    return {"n": len(words), "right": right, "words": right / max(1, len(words)),
            "cer": errors / max(1, sum(len(w) for w in words)),
            "delay": statistics.median(delays) if delays else float("nan"), "appeared": len(delays),
            "examples": [f"{w}->{o or '(nothing)'}" for w, o in zip(words, outputs) if o != w][:4]}


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--kaggle-model", type=Path, help="bundle trained on the Kaggle sample only (loso protocol)")
    ap.add_argument("--both-model", type=Path, default=bundle_io.DEFAULT_BUNDLE,
                    help="bundle trained on both sets with a source-grouped split (val protocol; default: bundled)")
    ap.add_argument("--protocols", default="val,loso")
    ap.add_argument("--words", type=int, default=240, help="common words (default: %(default)s)")
    ap.add_argument("--doubles", type=int, default=60, help="words with double letters (default: %(default)s)")
    ap.add_argument("--paces", default=",".join(map(str, PACES)), help="seconds a letter (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="words, photos and timing (use another to tune)")
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench-words",
                    help="folder of the hands cache and the model copies")
    ap.add_argument("--quick", action="store_true", help="30 words, 9 double-letter words")
    ap.add_argument("--json", type=Path, help="write every figure to this JSON file")
    ap.add_argument("--memo", choices=("pair", "frame"), default="pair",
                    help="find a frame's hand once per frame before it (pair: the stream follows the hand from "
                         "it), or once (frame: whatever came before it the first time); default: %(default)s")
    ap.add_argument("--params", help="JSON of DecoderParams fields for the new decoder (tuning)")
    ap.add_argument("--beside", default="with,without",
                    help="run each model with the recognisers carried beside it (J and Z from motion), without "
                         "them, or both on the same hands (default: %(default)s)")
    ap.add_argument("--motion-from", type=Path, default=bundle_io.DEFAULT_BUNDLE,
                    help="the bundle whose motion recogniser a model without one gets for the 'with' rows "
                         "(default: the bundled model)")
    args = ap.parse_args(argv)
    beside = args.beside.split(",")
    if not beside or any(b not in ("with", "without") for b in beside):
        ap.error(f"--beside: with, without or both (with,without), not {args.beside!r}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for name in ("fingerspell", "absl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.quick:
        args.words, args.doubles = 30, 9
    args.cache.mkdir(parents=True, exist_ok=True)
    params = DecoderParams(**json.loads(args.params)) if args.params else DecoderParams()
    lexicon = Lexicon.english()
    lists = word_lists(args.seed, args.words, args.doubles, lexicon)
    paces = [float(p) for p in args.paces.split(",")]
    print(f"words: {len(lists['words'])} common (ranks {BANDS[0][0]}-{BANDS[-1][1]}), "
          f"{len(lists['doubles'])} with double letters, {len(lists['names'])} names ({', '.join(lists['names'])})")
    results, runs = {}, []
    decoders = {
        "letters": lambda: LetterDecoder(),
        "words": lambda: WordDecoder(params, lexicon),
        "no-lexicon": lambda: WordDecoder(params, None),
    }
    for protocol in args.protocols.split(","):
        model = args.kaggle_model if protocol == "loso" else args.both_model
        if model is None:
            sys.exit("the loso protocol needs --kaggle-model (fingerspell train --data .../asl_alphabet_sample "
                     "--val-fraction 0 --out runs/lm-kaggle)")
        pool, where = pools(protocol, args.data, model)
        print(f"\n[{protocol}] model {model}; photos: {where}")
        hands = Hands(model, args.cache, args.memo)
        sessions = build_sessions(lists, paces, pool, args.seed, protocol)
        t0 = time.perf_counter()
        hands.run(list(sessions.values()))
        print(f"  {hands.fresh} distinct frames through the hand finder in {time.perf_counter() - t0:.0f} s "
              f"({len(hands.table)} cached)")
        hands.predictor.close()
        for variant, bundle_path in variants(model, beside, args.motion_from, args.cache).items():
            run = f"{protocol}/{variant}"
            predictor = Predictor.from_bundle(bundle_path)
            t0 = time.perf_counter()
            answers = {key: replay(predictor, clips, hands) for key, clips in sessions.items()}
            predictor.close()
            hold_right = hold_n = fired = frames_n = 0
            for key, clips in sessions.items():
                last = None
                for clip, seen in zip(clips, answers[key]):
                    for (_, d), answer in zip(clip.frames, seen):
                        if d[0] == "hold":
                            hold_n += 1
                            hold_right += answer.top[0][0] == Path(d[1]).parent.name
                        fired += answer.motion is not None and answer.motion != last
                        last = answer.motion
                        frames_n += 1
            extra = ", ".join(e.kind for e in bundle_io.load_meta(bundle_path).extra) or "none"
            print(f"\n  [{run}] {bundle_path} (beside the model: {extra}); {frames_n} frames pushed through "
                  f"Stream.push in {time.perf_counter() - t0:.0f} s")
            print(f"  letters right frame by frame (held frames): {hold_right / max(1, hold_n):.1%} of {hold_n}; "
                  f"a J or Z read from motion {fired} times")
            results[f"{run}/frames"] = {"held": hold_n, "right": hold_right, "motion_fired": fired}
            print(f"  {'words':8} {'pace':>5} |" + "|".join(f" {name:^27} " for name in decoders))
            print(f"  {'':8} {'s':>5} |" + "|".join(f" {'right':>9} {'CER':>6} {'delay':>8} " for _ in decoders))
            for (kind, pace), clips in sessions.items():
                words = [c.word for c in clips[:-1]]
                row = {}
                t = time.perf_counter()
                for name, make in decoders.items():
                    outputs, delays = decode(clips, answers[kind, pace], make(), final=name != "letters")
                    row[name] = score(words, outputs[:-1], delays)
                cells = "|".join(f" {r['words']:>8.0%} {r['cer']:>6.1%} {r['delay']:>6.0f}ms " for r in row.values())
                print(f"  {kind:8} {pace:>5} |{cells}   ({time.perf_counter() - t:.0f} s)")
                results[f"{run}/{kind}/{pace}"] = row
            for kind in lists:
                for name in decoders:
                    ex = results[f"{run}/{kind}/{paces[-1]}"][name]["examples"]
                    print(f"    e.g. {kind} at {paces[-1]} s, {name}: {', '.join(ex) or '-'}")
            runs.append(run)
    for run in runs:
        rows = [v for k, v in results.items() if k.startswith(run + "/") and "/names/" not in k and "/frames" not in k]
        for name in ("letters", "words"):
            n = sum(r[name]["n"] for r in rows)
            right = sum(r[name]["right"] for r in rows)
            results[f"{run}/wer/{name}"] = 1 - right / max(1, n)
        old, new = results[f"{run}/wer/letters"], results[f"{run}/wer/words"]
        print(f"[{run}] word error rate over dictionary words, all paces: letters {old:.1%}, words {new:.1%}"
              f" ({old / new if new else float('inf'):.1f}x fewer errors)")
        delays = [r["words"]["delay"] for k, r in results.items()
                  if k.startswith(run + "/") and isinstance(r, dict) and "words" in r]
        print(f"[{run}] median letter delay of the words decoder per condition: "
              f"{', '.join(f'{d:.0f}' for d in delays)} ms")
    if len(beside) > 1:
        compare(results, args.protocols.split(","), beside, sessions.keys())
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def compare(results: dict, protocols: list[str], beside: list[str], conditions) -> None:
    """Words right (words decoder) and letters right frame by frame, the variants side by side."""
    print(f"\nwords decoder, words right: {' / '.join(beside)}")
    for protocol in protocols:
        held = [results[f"{protocol}/{v}/frames"] for v in beside]
        frames = " / ".join(f"{h['right'] / max(1, h['held']):.1%}" for h in held)
        print(f"  [{protocol}] letters right frame by frame: {frames}; word error rate: "
              f"{' / '.join(format(results[f'{protocol}/{v}/wer/words'], '.1%') for v in beside)}")
        for kind, pace in conditions:
            rows = [results[f"{protocol}/{v}/{kind}/{pace}"]["words"] for v in beside]
            print(f"    {kind:8} {pace:>5}: {' / '.join(str(r['right']) for r in rows)} of {rows[0]['n']}")


if __name__ == "__main__":
    sys.exit(main())
