"""Words from a lexicon, names as signed: a noisy channel over the letters' probabilities.

When a word ends, its letter segments (each a mean distribution over letters and a duration)
are explained by candidate words within edit distance 2 of what was signed (symspellpy; its
wheel ships an 82,765-word English frequency list, so this works offline). A candidate's cost,
in nats, is the channel's plus its rarity:

* a segment read as a letter costs how much less likely that letter was than the top one;
* a segment may stand for one to three equal letters (the double letter that looks like one
  long letter), priced by its duration against the signer's typical letter length;
* a segment the word does not explain costs more the longer and clearer it was (a name's
  clearly signed letter is not a transition blip); a letter of the word that no segment shows
  costs little where the timing has room for it (time without a hand, or a segment longer than
  the signer's letters) and a lot where it has none (so a clean ``A`` does not become ``AS``);
* rarity is ``frequency_weight`` x ln(count of the most common word / count of this word).

The letters as signed are one more candidate, at a fixed ``keep_signed`` cost when they are
not a word: a dictionary word replaces them only when it explains the evidence clearly better,
so names and rare words survive. User words (names, places) count as the most common words;
they have an index of their own (``lexicon.UserWords``), as the list has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import DecoderParams
from .lexicon import MAX_EDIT, Lexicon, UserWords

USER_CANDIDATES = 32  # user words within edit distance 2 explained by the channel, nearest first: each costs
# a dynamic programme over the word's letters (0.5 ms at 38 letters), so 1,000 near-duplicates cost no more than 32
DELETE_ROOMY = 1.0  # a letter of the word that no segment shows, where the timing has room for one...
DELETE_TIGHT = 3.0  # ...plus this much where the letters around it left no time for it
TRANSITION_MS = 150.0  # time between two segments that is only the hand changing shape
INSERT_BASE = 1.5  # a segment the word does not explain: a blip...
INSERT_CLEAR = 3.0  # ...plus this much for a full-length segment at probability 1
INSERT_FULL = 0.7  # letter lengths from which a segment counts as full length: a letter held short but clearly (MAREK's E at 0.6) is no blip
SURE_P = 0.8  # a segment read at least this surely...
SURE = 4.0  # ...is another letter at no less than this cost (nats), over keep_signed: a clean stream is
# written as signed (AA is not AS) and a name's K read at 0.88 stays MAREK, not MARES
FIST = "AEMNOST"  # closed-hand letters, told apart by the thumb and fingertips: the model's usual confusions...
FIST_COST = 2.0  # ...cost at most this (nats) as one another where not read surely: EVNRYONE is EVERYONE
DOUBLE_COST = 0.5  # a segment read as two or three equal letters: rarer than one
DURATION_SIGMA = 0.5  # spread of ln(duration / (k x letter length)) for k equal letters
ALTERNATIVES = 3  # least certain segments whose second-best letter is also looked up
BLIP = 0.6  # a segment shorter than this many letter lengths may be a transition: also looked up without it
BLIPS = 3  # at most this many such segments, shortest first
OPTIONS = 2  # candidates offered after the chosen word and the letters as signed
TYPICAL = 3.1  # nats a letter (and the end) that names not in the list cost in that model (ELIF 3.0, HARUKI 3.4)


@dataclass(frozen=True)
class Evidence:
    """What the lexicon needs of one letter segment."""

    label: str
    probs: dict  # letter -> mean probability over the segment's frames
    duration: float  # ms
    start: float = 0.0  # ms, its first frame
    end: float = 0.0  # ms, its last frame


@dataclass(frozen=True)
class Choice:
    """A word ended: what was signed, what was chosen, and the options the page offers."""

    signed: str
    chosen: str
    options: tuple[str, ...]  # the chosen word first, then the letters as signed, then candidates
    cost: float = 0.0  # nats: how well the chosen word explains the evidence (lower is better)

    def to_json(self) -> dict:
        return {"signed": self.signed, "chosen": self.chosen, "options": list(self.options)}


class _Costs:
    """One segment's costs, computed once per word."""

    __slots__ = ("sub", "floor", "dur", "insert", "fist", "fist_cost")

    def __init__(self, ev: Evidence, letter_ms: float, trust: float = 1.0, scale: float = 1.0) -> None:
        probs = {k.upper(): v for k, v in ev.probs.items() if len(k) == 1}
        best = max(probs.values(), default=1.0) or 1.0
        # Letters outside the top-k share what the top-k left, as evenly as we know.
        rest = max(0.0, 1.0 - sum(probs.values()))
        self.floor = -trust * math.log(max(rest / 23.0, 3e-3) / best)
        self.sub = {k: -trust * math.log(max(v, 1e-6) / best) for k, v in probs.items()}
        sure = best >= SURE_P and SURE > 0
        if sure:  # a letter read this surely is another only for a common word
            self.floor = max(self.floor, SURE * scale)
            self.sub = {k: max(v, SURE * scale) if k != ev.label.upper() else v for k, v in self.sub.items()}
        self.fist_cost = FIST_COST * scale
        self.fist = ev.label.upper() in FIST and not sure
        ratio = max(ev.duration, 1.0) / max(letter_ms, 1.0)
        self.dur = [0.0] + [math.log(ratio / k) ** 2 / (2 * DURATION_SIGMA**2) + DOUBLE_COST * (k > 1)
                            for k in (1, 2, 3)]
        clear = probs.get(ev.label.upper(), best)
        self.insert = INSERT_BASE + INSERT_CLEAR * min(1.0, ratio / INSERT_FULL) * clear


def _deletions(evidence: list[Evidence], letter_ms: float) -> list[float]:
    """The cost of a letter that no segment shows, before each segment and after the last."""
    length = max(letter_ms, 1.0)
    out = []
    for i in range(len(evidence) + 1):
        room = 0.0
        if 0 < i < len(evidence):
            room += max(0.0, evidence[i].start - evidence[i - 1].end - TRANSITION_MS) / length
        for j in (i - 1, i):  # a segment much longer than a letter may hide one
            if 0 <= j < len(evidence):
                room += 0.5 * max(0.0, evidence[j].duration / length - 1.5)
        out.append(DELETE_ROOMY + DELETE_TIGHT * max(0.0, 1.0 - room))
    return out


def _channel(word: str, costs: list[_Costs], deletions: list[float]) -> float:
    """The least cost of explaining the segments by ``word`` (dynamic programming)."""
    n, m = len(costs), len(word)
    inf = math.inf
    table = [[inf] * (m + 1) for _ in range(n + 1)]
    table[0][0] = 0.0
    for i in range(n + 1):
        row = table[i]
        for j in range(m + 1):
            c = row[j]
            if c == inf:
                continue
            if j < m and c + deletions[i] < row[j + 1]:
                row[j + 1] = c + deletions[i]
            if i == n:
                continue
            seg, nxt = costs[i], table[i + 1]
            if c + seg.insert < nxt[j]:
                nxt[j] = c + seg.insert
            if j == m:
                continue
            ch = word[j]
            sub = seg.sub.get(ch, seg.floor)
            if seg.fist and ch in FIST:
                sub = min(sub, seg.fist_cost)
            sub += c
            for k in (1, 2, 3):
                if j + k > m or word[j + k - 1] != ch:
                    break
                cost = sub + seg.dur[k]
                if cost < nxt[j + k]:
                    nxt[j + k] = cost
    return table[n][m]


def choose(evidence: list[Evidence], letter_ms: float, lexicon: Lexicon | None, params: DecoderParams,
           vocab: UserWords | None = None, trust: float = 1.0) -> Choice:
    """The word that best explains a word's letter segments, or the letters as signed.

    Args:
        evidence: the word's letter segments, in order.
        letter_ms: the signer's typical letter length.
        lexicon: the shared word list; None (or ``params.lexicon`` False) keeps what was signed.
        params: ``keep_signed``, ``frequency_weight``, ``max_word``.
        vocab: the user's own words, each as common as the list's most common word: of those
            within edit distance 2 of what was signed, the ``USER_CANDIDATES`` nearest are weighed.
        trust: how far this signer's letters are trusted, as a share of ``params.letter_trust``
            (``WordDecoder`` lowers it where the lexicon keeps changing words).

    Returns:
        The choice; ``chosen == signed`` when no word explains the letters clearly better.
    """
    signed = "".join(ev.label for ev in evidence)
    words_on = params.lexicon and (lexicon is not None or vocab)
    if not words_on or not signed or len(signed) > params.max_word or not all(len(ev.label) == 1 and
                                                                               ev.label.isalpha() for ev in evidence):
        return Choice(signed, signed, (signed,))
    costs = [_Costs(ev, letter_ms, params.letter_trust * trust, trust) for ev in evidence]
    deletions = _deletions(evidence, letter_ms)
    # User words count as the most common words: a name in the vocabulary wins.
    top = lexicon.top if lexicon is not None else 1

    def rarity(count: int) -> float:
        return params.frequency_weight * math.log(top / max(count, 1))

    queries = _queries(evidence, signed, letter_ms)
    candidates: dict[str, int] = {}
    if lexicon is not None:
        for q in queries:
            candidates.update(lexicon.lookup(q))
    if vocab:
        near: dict[str, int] = {}
        for q in queries:
            for word, distance in vocab.lookup(q).items():
                near[word] = min(distance, near.get(word, MAX_EDIT))
        for word in sorted(near, key=lambda w: (near[w], w))[:USER_CANDIDATES]:
            candidates[word] = top

    signed_channel = sum(c.dur[1] for c in costs)
    # Keeping what was signed costs more where it is spelled unlike any word or name (TNXT, KXAST):
    # what a misread letter makes, not what a person is called.
    unlikely = 0.0
    nats = lexicon.surprisal(signed) if lexicon is not None and params.spelling_weight else None
    if nats is not None:
        unlikely = params.spelling_weight * max(0.0, nats - TYPICAL * (len(signed) + 1))
    scored = {signed: signed_channel + params.keep_signed + unlikely}
    for word, count in candidates.items():
        prior = rarity(count)
        scored[word] = min(scored.get(word, math.inf), _channel(word, costs, deletions) + prior)
    ranked = sorted(scored, key=lambda w: (scored[w], w))
    chosen = ranked[0]
    options = [chosen] + ([signed] if signed != chosen else [])
    options += [w for w in ranked if w not in options][:OPTIONS]
    return Choice(signed, chosen, tuple(options), scored[chosen])


def _queries(evidence: list[Evidence], signed: str, letter_ms: float) -> set[str]:
    """What to look up (each within edit distance 2): the letters as signed; with each of the
    least certain segments read as its second-best letter; and without the short segments that
    may be the hand between two shapes (a word read as SINMNMCE is SINCE three blips away)."""
    queries = {signed}
    order = sorted(range(len(evidence)), key=lambda i: max(evidence[i].probs.values(), default=0.0))
    for i in order[:ALTERNATIVES]:
        ranked = sorted(evidence[i].probs.items(), key=lambda kv: -kv[1])
        if len(ranked) > 1 and len(ranked[1][0]) == 1 and ranked[1][0].isalpha():
            queries.add(signed[:i] + ranked[1][0].upper() + signed[i + 1:])
    short = sorted((ev.duration, i) for i, ev in enumerate(evidence) if ev.duration < BLIP * letter_ms)
    short = sorted(i for _, i in short[:BLIPS])
    if short and len(short) < len(evidence):
        queries.add("".join(ch for i, ch in enumerate(signed) if i not in short))
        if len(short) > 1:
            for i in short:
                queries.add(signed[:i] + signed[i + 1:])
    return queries
