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
they have an index of their own (``UserWords``), as the list has, so a word's end costs lookups
rather than an edit distance against each of them.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from dataclasses import dataclass
from importlib import resources

from ..config import ConfigError, DecoderParams

log = logging.getLogger(__name__)

ENGLISH = "frequency_dictionary_en_82_765.txt"
MAX_EDIT = 2
PREFIX = 7  # symspellpy's prefix length: deletes of a word's first 7 letters are indexed, not of the whole word
MAX_USER_WORDS = 1000  # a stream's own words, its --vocab file's included
MAX_WORD_LETTERS = 64  # a user word is a name or a place, not an essay: longer ones are refused
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
ORDER = 3  # letters of context + 1 in the spelling model of words not in the list
SMOOTH = 0.1  # add-k smoothing of that model over 26 letters and the word's end
SPELLING_WORDS = 1000  # a list this long or longer says how words are spelled; a few words say nothing
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


def read_words(path) -> list[str]:
    """Words from a text file, one a line (anything after the first space or tab is ignored;
    blank lines and lines starting with # are skipped), within a stream's limits.

    Raises:
        ConfigError: the file cannot be read as UTF-8 text, a word is over ``MAX_WORD_LETTERS``
            characters, or there are more than ``MAX_USER_WORDS`` words; the message names the line.
    """
    try:
        text = open(path, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--vocab {path}: cannot read it as a UTF-8 word list ({exc})") from None
    words, kept = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            word = line.split()[0]
            if len(word) > MAX_WORD_LETTERS:
                raise ConfigError(f"--vocab {path}, line {number}: a word of {len(word):,} characters; "
                                  f"user words (names, places) are at most {MAX_WORD_LETTERS} letters")
            clean = user_word(word)
            if clean is not None and clean not in kept:
                kept.add(clean)
                if len(kept) > MAX_USER_WORDS:
                    raise ConfigError(f"--vocab {path}, line {number}: more than {MAX_USER_WORDS:,} words; "
                                      f"a stream keeps at most {MAX_USER_WORDS:,} user words")
            words.append(word)
    return words


def _clean(word: str) -> str | None:
    word = str(word).strip().upper()
    return word if word.isalpha() and word.isascii() else None


def user_word(word: str) -> str | None:
    """``word`` as a stream keeps it (upper case), or None where it is no word of at most
    ``MAX_WORD_LETTERS`` letters A-Z (O'NEIL, X1 and the empty word are not kept)."""
    word = str(word).strip()
    return _clean(word) if len(word) <= MAX_WORD_LETTERS else None


def check_user_words(words, have=()) -> str | None:
    """Why ``words`` cannot join the user words ``have`` of a stream (None: they can).

    A word longer than ``MAX_WORD_LETTERS`` characters, or more new words than there is room for
    under ``MAX_USER_WORDS``, refuses the lot; words that are not letters are skipped, as
    ``user_word`` skips them, and refuse nothing.
    """
    new = set()
    for i, word in enumerate(words):
        size = len(str(word).strip())
        if size > MAX_WORD_LETTERS:
            return (f"word {i + 1} is {size:,} characters long; send names and places of at most "
                    f"{MAX_WORD_LETTERS} letters")
        clean = user_word(word)
        if clean is not None and clean not in have:
            new.add(clean)
    if len(have) + len(new) > MAX_USER_WORDS:
        room = MAX_USER_WORDS - len(have)
        return (f"{len(new):,} new words would pass the limit of {MAX_USER_WORDS:,} a stream keeps "
                f"(it has {len(have):,}); send at most {room:,} new words")
    return None


class Lexicon:
    """A word list with counts, searchable within edit distance 2. Read-only once built, so
    one is shared by every stream; each decoder adds its user's words on top."""

    def __init__(self, counts: dict[str, int]) -> None:
        from symspellpy import SymSpell

        self._sym = SymSpell(max_dictionary_edit_distance=MAX_EDIT, prefix_length=PREFIX)
        self.counts: dict[str, int] = {}
        for word, count in counts.items():
            clean = _clean(word)
            if clean and count > 0:
                self.counts[clean] = self.counts.get(clean, 0) + int(count)
        for word, count in self.counts.items():
            self._sym.create_dictionary_entry(word.lower(), count)
        self.top = max(self.counts.values(), default=1)

    @functools.cached_property
    def _spelling(self) -> tuple[dict[str, int], dict[str, int]] | None:
        """The letter trigram counts and their contexts, built on first use (0.24 s for the
        English list): the spelling model is off by default, so a server start does not pay it.
        Two threads asking at once may both build it; the result is the same."""
        if len(self.counts) < SPELLING_WORDS:
            return None
        grams: dict[str, int] = {}
        contexts: dict[str, int] = {}
        for word in self.counts:
            for gram in _trigrams(word):
                grams[gram] = grams.get(gram, 0) + 1
                contexts[gram[:-1]] = contexts.get(gram[:-1], 0) + 1
        return grams, contexts

    def surprisal(self, word: str) -> float | None:
        """Nats the list's spelling (a letter trigram model over its words, each counted once)
        gives ``word``: low for a plausible name like LUPITA, high for TNXT or KXAST. None for a
        list under ``SPELLING_WORDS`` words, which says nothing about spelling."""
        if self._spelling is None:
            return None
        grams, contexts = self._spelling
        return -sum(math.log((grams.get(g, 0) + SMOOTH) / (contexts.get(g[:-1], 0) + 27 * SMOOTH))
                    for g in _trigrams(word))

    @classmethod
    def english(cls) -> "Lexicon":
        """symspellpy's English frequency list (82,765 words, MIT), loaded in ~5 s."""
        t = time.perf_counter()
        path = resources.files("symspellpy") / ENGLISH
        counts = {}
        with path.open(encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[1].isdigit():
                    counts[parts[0]] = int(parts[1])
        lexicon = cls(counts)
        log.info("lexicon: %d English words in %.1f s", len(lexicon.counts), time.perf_counter() - t)
        return lexicon

    def lookup(self, signed: str) -> dict[str, int]:
        """Words within edit distance 2 of ``signed``, with their counts."""
        from symspellpy import Verbosity

        found = self._sym.lookup(signed.lower(), Verbosity.ALL, max_edit_distance=MAX_EDIT)
        return {item.term.upper(): item.count for item in found}


def _trigrams(word: str):
    """The letter trigrams of ``word`` with its start (^^) and end ($) marked."""
    padded = "^" * (ORDER - 1) + word + "$"
    return (padded[i - ORDER + 1:i + 1] for i in range(ORDER - 1, len(padded)))


@functools.lru_cache(maxsize=1)
def english() -> Lexicon:
    """The English lexicon, loaded once a process and shared (it is never changed once built)."""
    return Lexicon.english()


class Loading:
    """The English lexicon loading in a thread, so that other start-up work runs meanwhile
    (``get`` is None until it is ready; ``wait`` for it)."""

    def __init__(self) -> None:
        self._lexicon: Lexicon | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, name="lexicon", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self._lexicon = english()
        except BaseException as exc:  # noqa: BLE001 - raised again by wait(), in the caller's thread
            self._error = exc

    def get(self) -> Lexicon | None:
        return self._lexicon

    def wait(self, timeout: float | None = None) -> Lexicon | None:
        """The lexicon once loaded (None if ``timeout`` ran out first); a failed load raises its error here."""
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        return self._lexicon


class UserWords:
    """A stream's own words (names, places), upper case, searchable within edit distance 2 by an
    index of their own (symspellpy, as ``Lexicon``): a word's end looks each query up instead of
    measuring the distance to every user word, which for 1,000 near-duplicate words and a
    38-letter word took over a second. Iterates, counts and tests membership as a set does."""

    def __init__(self, words=()) -> None:
        from symspellpy import SymSpell

        self._sym = SymSpell(max_dictionary_edit_distance=MAX_EDIT, prefix_length=PREFIX)
        self._words: set[str] = set()
        for word in words:
            self.add(word)

    def add(self, word: str) -> bool:
        """Add ``word`` (already upper case letters, as ``user_word`` gives it); False if known."""
        if word in self._words:
            return False
        self._words.add(word)
        self._sym.create_dictionary_entry(word.lower(), 1)
        return True

    def lookup(self, query: str) -> dict[str, int]:
        """The user words within edit distance 2 of ``query``, with their distances (the optimal
        string alignment distance, as ``_distance`` measures it)."""
        from symspellpy import Verbosity

        if not self._words:
            return {}
        found = self._sym.lookup(query.lower(), Verbosity.ALL, max_edit_distance=MAX_EDIT)
        # symspellpy gives words that share no letter with a query of at most 2 letters the
        # longer one's length (A for AA: 2, not 1): measured here, at 2 letters it costs nothing.
        return {item.term.upper(): _distance(item.term, query.lower()) if len(query) <= MAX_EDIT else item.distance
                for item in found}

    def __len__(self) -> int:
        return len(self._words)

    def __iter__(self):
        return iter(self._words)

    def __contains__(self, word) -> bool:
        return word in self._words


def _distance(a: str, b: str) -> int:
    """Edit distance with adjacent transpositions (the optimal string alignment distance): the
    user words' index finds the words this puts within 2 (tests and bench/bench_vocab.py check)."""
    prev2, prev = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if prev2 is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


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
