"""Per-frame predictions -> text: decoders behind one interface, and the lexicon.

``make_decoder(params, lexicon, vocab)`` builds the decoder that ``params.kind`` names:
``words`` (segments over the whole distribution, then words from a lexicon; the default) or
``letters`` (the hold-and-release rules of ``rules.py``; the baseline). ``KINDS`` is the only
list of kinds: the settings, the CLI and the server take it from here. The text's rules that
every decoder keeps (one cap, never two spaces) are in ``base.py``.
"""

from __future__ import annotations

from ..config import DecoderParams
from .base import MAX_TEXT, Decoder, Position, frame_top
from .letters import LetterDecoder
from .channel import Choice
from .lexicon import Lexicon, Loading, english, read_words
from .rules import SpellingParams
from .words import WordDecoder

__all__ = ["KINDS", "MAX_TEXT", "Choice", "Decoder", "DecoderParams", "LetterDecoder", "Lexicon", "Loading",
           "Position", "SpellingParams", "WordDecoder", "english", "frame_top", "make_decoder", "read_words",
           "wants_lexicon"]


def _words(params: DecoderParams, lexicon, vocab, spelling) -> Decoder:
    return WordDecoder(params, lexicon if params.lexicon else None, vocab)


def _letters(params: DecoderParams, lexicon, vocab, spelling) -> Decoder:
    return LetterDecoder(spelling)


# The decoder kinds: each builds one stream's decoder, and says whether it reads the shared word list.
_BUILDERS = {"words": (_words, True), "letters": (_letters, False)}
KINDS = tuple(_BUILDERS)  # the first is the default


def wants_lexicon(params: DecoderParams | None = None) -> bool:
    """Whether the decoder these settings name reads the English word list (load it once, shared)."""
    params = params or DecoderParams()
    return _BUILDERS[params.kind][1] and params.lexicon


def make_decoder(params: DecoderParams | None = None, lexicon: Lexicon | None = None, vocab=(),
                 spelling=None) -> Decoder:
    """A new per-stream decoder of the kind ``params.kind`` names.

    Args:
        params: the decoder settings (default: the words decoder).
        lexicon: the shared word list for the words decoder (None: letters as signed).
        vocab: user words for the words decoder.
        spelling: ``SpellingParams`` for the letters decoder.
    """
    params = params or DecoderParams()
    return _BUILDERS[params.kind][0](params, lexicon, vocab, spelling)
