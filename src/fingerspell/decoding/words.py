"""The default decoder: letter segments (``segment.py``) -> words (``channel.py`` over ``lexicon.py``).

The word being signed shows its letters as they come; when it ends (a pause, the space sign or
the page's Space) the lexicon chooses the word and the text gets it and one space. Only the
word being signed changes by itself, with one exception: a word that a short pause ended (up to
``join_letters`` letter lengths, the time a letter the camera lost takes) may be joined with the
next word when that one ends, if the lexicon explains the two as one word clearly better (IN
and IA, with the D lost, become INDIA). The last chosen word can be switched by ``pick`` to the
letters as signed or another candidate until the text is edited; an edit also stops a join.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

from ..config import DecoderParams
from .base import MAX_TEXT, Decoder, Position, capped, frame_top, is_sign, needs_space, with_sign
from .channel import Choice, Evidence, choose
from .lexicon import MAX_USER_WORDS, Lexicon, UserWords, check_user_words, user_word
from .segment import Segment, Segmenter, is_start

LENGTHS = 12  # letter durations kept for the signer's typical letter length


@dataclass(frozen=True)
class _Ended:
    """A word ended by a pause: the word after it may still join it (a letter the camera lost)."""

    evidence: list
    choice: Choice
    at: int  # where its chosen word starts in the text


class WordDecoder(Decoder):
    """Segments over the whole distribution, and words from a lexicon (names as signed)."""

    def __init__(self, params: DecoderParams | None = None, lexicon: Lexicon | None = None,
                 vocab=()) -> None:
        """Start with empty text.

        Args:
            params: segmentation and lexicon settings.
            lexicon: the shared word list (loaded: the server waits for it before it listens);
                None: letters as signed, unless there are user words.
            vocab: the user's own words (names, places): at most ``MAX_USER_WORDS`` are kept.
        """
        self.params = params or DecoderParams()
        self.lexicon = lexicon
        self.vocab = UserWords()
        self.add_words(vocab)
        self.seg = Segmenter(self.params)
        self._text = ""
        self.word: list[Segment] = []  # the word being signed: its written letter segments
        self.choice: Choice | None = None
        self._choice_at: int | None = None  # where the chosen word starts in the text
        self._lengths: deque[float] = deque(maxlen=LENGTHS)
        self._last: list[dict] = []
        self._t = 0.0  # the latest frame's time: the page's Space ends a word then
        self._paused: _Ended | None = None  # the last word, if a pause ended it
        self._changed: deque[bool] = deque(maxlen=max(1, self.params.adapt_words))  # did the lexicon change each word

    # -- frames ------------------------------------------------------------------------------

    def update(self, pred, t_ms: float, position: Position | None = None) -> list[dict]:
        events = []
        for what, seg in self.seg.push(frame_top(pred), t_ms, position, getattr(pred, "motion", None)):
            if what == "letter" and is_sign(seg.label):  # a custom sign: the word ends, the sign is a word
                events.extend(self._end_word(seg.written_at))
                self._set(with_sign(self._text, seg.label))
                self._paused = None
                events.append({"kind": "sign", "text": seg.label, "t_ms": seg.written_at})
            elif what == "letter":
                if len(self.word) >= self.params.max_word:
                    self._end_word(seg.written_at)
                while seg.replaces is not None and self.word and is_start(self.word[-1], seg):
                    self.word.pop()  # only the starting shape of this J or Z (slid as it moved: two)
                self._close_last()
                self.word.append(seg)
                events.append({"kind": "letter", "text": seg.label, "t_ms": seg.written_at,
                               "double": seg.slide})
            elif what == "delete":
                removed = self.backspace()
                if removed:
                    events.append({"kind": "delete", "text": removed, "t_ms": seg.written_at})
            else:  # the space sign or a pause
                events.extend(self._end_word(t_ms, space=what == "space", pause=what == "word_end"))
        self._t = self.seg.now
        self._last = events
        return events

    def finish(self, t_ms: float) -> list[dict]:
        return self._end_word(t_ms)

    # -- what the page shows -------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self._text

    def visible(self) -> str:
        return self._text + "".join(s.label for s in self.word)

    def letter_ms(self) -> float:
        """The signer's typical letter length: the median of the last letters' durations."""
        if not self._lengths:
            return self.params.letter_ms
        return min(1200.0, max(200.0, statistics.median(self._lengths)))

    def trust(self) -> float:
        """How far this signer's letters are trusted, as a share of ``letter_trust``: 1 until
        the lexicon has changed more than ``adapt_from`` of the last words, ``trust_floor`` from
        ``adapt_to``. Half the window must be seen first."""
        p = self.params
        if p.adapt_words <= 0 or len(self._changed) < max(1, p.adapt_words // 2):
            return 1.0
        share = sum(self._changed) / len(self._changed)
        over = (share - p.adapt_from) / max(p.adapt_to - p.adapt_from, 1e-9)
        return 1.0 - (1.0 - p.trust_floor) * min(1.0, max(0.0, over))

    def state(self) -> dict:
        pending = self.seg.pending
        word = None
        if self.word:
            word = {"letters": [s.label for s in self.word],
                    "alternatives": [s.best(3) for s in self.word]}
        return {
            "text": self._text,
            "pending": pending[0] if pending is not None else None,
            "progress": pending[1] if pending is not None else 0.0,
            "word": word,
            "choice": self.choice.to_json() if self.choice is not None else None,
            "committed": self._last,
        }

    # -- edits ---------------------------------------------------------------------------------

    def backspace(self) -> str:
        if self.word:
            return self.word.pop().label
        removed = self._text[-1:]
        self._set("" if not self._text else self._text[:-1])
        return removed

    def space(self) -> None:
        if self.word:
            self._end_word(self._t, space=True)
        elif needs_space(self._text):
            self._set(self._text + " ")

    def set_text(self, text: str) -> None:
        self.word = []
        self._set(str(text))

    def pick(self, option: str) -> bool:
        choice, at = self.choice, self._choice_at
        if choice is None or at is None or option not in choice.options:
            return False
        end = at + len(choice.chosen)
        self._text = self._text[:at] + option + self._text[end:]
        self.choice = Choice(choice.signed, option, choice.options)
        if self._changed:
            self._changed[-1] = option != choice.signed  # reverted: the letters were right
        return True

    def add_words(self, words) -> int:
        """Add user words; what is not a word of at most ``MAX_WORD_LETTERS`` letters is skipped,
        and words past ``MAX_USER_WORDS`` are dropped (``check_words`` says so first)."""
        new = 0
        for word in words:
            if len(self.vocab) >= MAX_USER_WORDS:
                break
            clean = user_word(word)
            if clean is not None and self.vocab.add(clean):
                new += 1
        return new

    def check_words(self, words) -> str | None:
        return check_user_words(words, self.vocab)

    # -- internals -----------------------------------------------------------------------------

    def _set(self, text: str) -> None:
        """The user edited the text: the last choice can no longer be switched."""
        self._text = capped(text)
        self.choice, self._choice_at = None, None

    def _close_last(self) -> None:
        if self.word:
            self._lengths.append(self.word[-1].duration)

    def _end_word(self, t_ms, space: bool = False, pause: bool = False) -> list[dict]:
        if not self.word:
            if space and needs_space(self._text):
                self._set(self._text + " ")
                return [{"kind": "space", "text": " ", "t_ms": t_ms}]
            return []
        self._close_last()
        evidence = [Evidence(s.label, s.probs(), s.duration, s.t_start, s.t_end) for s in self.word]
        self.word = []
        choice = self._choose(evidence)
        joined = self._join(evidence, choice)
        if joined is not None:
            evidence, choice, at = joined
            text = self._text[:at]
        else:
            text = self._text
            if needs_space(text):
                text += " "
            at = len(text)
        self._set(text + choice.chosen + " ")
        if self.params.lexicon and (self.lexicon is not None or self.vocab):
            self._changed.append(choice.chosen != choice.signed)
        self._paused = None
        if len(text) + len(choice.chosen) + 1 <= MAX_TEXT:
            self.choice, self._choice_at = choice, at
            if pause:
                self._paused = _Ended(evidence, choice, at)
        event = {"kind": "word", "text": choice.chosen, "signed": choice.signed, "t_ms": t_ms}
        if joined is not None:
            event["joined"] = True
        return [event]

    def _choose(self, evidence: list[Evidence]) -> Choice:
        return choose(evidence, self.letter_ms(), self.lexicon, self.params, self.vocab, self.trust())

    def _join(self, evidence: list[Evidence], choice: Choice) -> tuple[list[Evidence], Choice, int] | None:
        """The previous word and this one as one word, where a short pause split them and the
        lexicon explains them clearly better together (INDIA signed with the D lost to the camera
        is not IN and IA). None: they stay two words."""
        prev = self._paused
        if prev is None or self.choice is not prev.choice or self._choice_at != prev.at:
            return None  # the text was edited since, or the word was not ended by a pause
        gap = evidence[0].start - prev.evidence[-1].end
        letters = gap / max(self.letter_ms(), 1.0)
        if letters > self.params.join_letters:
            return None
        both = prev.evidence + evidence
        if len(both) > self.params.max_word:
            return None
        together = self._choose(both)
        if together.chosen == together.signed:
            return None  # only a word the lexicon knows joins two pieces: two names stay two
        if together.cost + self.params.join_cost * letters >= prev.choice.cost + choice.cost:
            return None
        return both, together, prev.at
