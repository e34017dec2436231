"""The label set. ``nothing`` is a real class: no hand, or a hand that signs no letter."""

from __future__ import annotations

import string

LETTERS = tuple(string.ascii_uppercase)
NOTHING = "nothing"
SPACE = "space"
DELETE = "del"
SPECIAL = (DELETE, NOTHING, SPACE)
#: The Kaggle "ASL Alphabet" classes in the order its folders sort.
DEFAULT_LABELS = LETTERS + SPECIAL

_ALIASES = {"delete": DELETE, "none": NOTHING, "blank": NOTHING, "no_hand": NOTHING}


def normalize_label(name: str) -> str:
    """Map a class-folder name to its canonical label.

    Single letters become upper case (``a`` and ``A`` are one class); the special classes
    become lower case (``Nothing`` -> ``nothing``, ``DELETE`` -> ``del``). Other names are kept,
    stripped, so a user may train on classes of their own.
    """
    clean = name.strip()
    if len(clean) == 1 and clean.isalpha():
        return clean.upper()
    low = clean.lower()
    if low in SPECIAL:
        return low
    return _ALIASES.get(low, clean)


def sort_labels(labels) -> list[str]:
    """Letters first, alphabetically, then everything else alphabetically (Kaggle order)."""
    return sorted(set(labels), key=lambda s: (not (len(s) == 1 and s.isalpha()), s))
