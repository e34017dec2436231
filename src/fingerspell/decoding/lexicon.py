"""Word lists: the English lexicon (symspellpy's 82,765-word frequency list, shipped in its wheel,
so this works offline), loaded once a process and shared, and each stream's own words (names,
places) with their limits, both searchable within edit distance 2 by an index (symspellpy), so
a word's end costs lookups rather than an edit distance against every word. How the candidates
are weighed is ``channel.py``.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from importlib import resources

from ..config import ConfigError

log = logging.getLogger(__name__)

ENGLISH = "frequency_dictionary_en_82_765.txt"
MAX_EDIT = 2
PREFIX = 7  # symspellpy's prefix length: deletes of a word's first 7 letters are indexed, not of the whole word
MAX_USER_WORDS = 1000  # a stream's own words, its --vocab file's included
MAX_WORD_LETTERS = 64  # a user word is a name or a place, not an essay: longer ones are refused
ORDER = 3  # letters of context + 1 in the spelling model of words not in the list
SMOOTH = 0.1  # add-k smoothing of that model over 26 letters and the word's end
SPELLING_WORDS = 1000  # a list this long or longer says how words are spelled; a few words say nothing


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


