"""Recogniser kinds: what a hand (and its image) becomes before the classifier, and how it is trained.

Each kind is one module with a TensorFlow-free runtime half (``preprocessing``, ``Runtime``) and
a training half (``build``, ``fit``) that imports Keras only when called. ``registry`` is the
only place the kinds are listed.
"""

from .registry import DEFAULT, KINDS, get

__all__ = ["DEFAULT", "KINDS", "get"]
