"""The stream's text messages: the commands that edit the server's text, and the notices about
the next frame (``region``). The protocol is in ``docs/protocol.md``.

Each command takes the connection (``stream._Connection``: its ``decoder``, ``mirror`` and
``region``) and the message's JSON object, and returns an error message or None; it runs in the
connection's decoder thread, one at a time. A notice is not answered by itself: what is wrong
with one is the next frame's error.
"""

from __future__ import annotations

from collections.abc import Callable

from ..hands import Region
from .device import MODES

MAX_VOCAB = 1000  # words one vocab command may carry (a stream keeps at most MAX_USER_WORDS, 64 letters each)

# Each takes the connection and the command's JSON object; it returns an error message or None.


def _backspace(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.backspace()


def _space(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.space()


def _clear(conn: "_Connection", doc: dict) -> str | None:
    conn.decoder.clear()


def _set_text(conn: "_Connection", doc: dict) -> str | None:
    if not isinstance(doc.get("text"), str):
        return 'set_text needs "text": a string'
    conn.decoder.set_text(doc["text"])


def _pick(conn: "_Connection", doc: dict) -> str | None:
    if not isinstance(doc.get("option"), str) or not conn.decoder.pick(doc["option"]):
        return 'pick needs "option": one of spelling.choice.options'


def _vocab(conn: "_Connection", doc: dict) -> str | None:
    words = doc.get("words")
    if not isinstance(words, list) or len(words) > MAX_VOCAB or not all(isinstance(w, str) for w in words):
        return f'vocab needs "words": a list of at most {MAX_VOCAB} strings'
    error = conn.decoder.check_words(words)  # all or nothing: a refused command adds no word
    if error is not None:
        return f"vocab: {error}"
    conn.decoder.add_words(words)


def _config(conn: "_Connection", doc: dict) -> str | None:
    if "mirror" in doc:
        if not isinstance(doc["mirror"], bool):
            return 'config "mirror" must be true or false'
        conn.mirror = doc["mirror"]
    if "mode" in doc:  # where hands are found; the text and the stream's history carry over
        if doc["mode"] not in MODES:
            return 'config "mode" must be "server" (frames) or "device" (hand messages)'
        conn.mode = doc["mode"]


COMMANDS: dict[str, Callable[["_Connection", dict], str | None]] = {
    "backspace": _backspace, "space": _space, "clear": _clear, "set_text": _set_text, "pick": _pick,
    "vocab": _vocab, "config": _config,
}

# Messages about the next frame: not answered by themselves; what is wrong with one is that
# frame's error. Each takes the connection and the message's JSON object.

REGION_FIELDS = ("x", "y", "w", "h", "frame_w", "frame_h")


def _region(conn: "_Connection", doc: dict) -> None:
    """The next frame is the region's part of the camera frame (or, if it is not valid, an error)."""
    missing = [k for k in REGION_FIELDS if k not in doc]
    if missing:
        conn.region = f"missing {', '.join(missing)}: a region message has {', '.join(REGION_FIELDS)} (camera pixels)"
        return
    try:
        conn.region = Region(*(doc[k] for k in REGION_FIELDS))
    except ValueError as exc:
        conn.region = str(exc)


NOTICES: dict[str, Callable[["_Connection", dict], None]] = {"region": _region}


