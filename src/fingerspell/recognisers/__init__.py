"""Recogniser kinds: what a hand (and its image) becomes before the classifier, and how it is trained.

Each kind is one module with a TensorFlow-free runtime half (``preprocessing``, ``Runtime``: a
window of a stream's recent hands -> the classifier's input) and a training half (``build``,
``fit``; ``fit_arrays`` for kinds that learn from landmarks alone) that imports Keras only when
called; ``base`` declares that surface. ``registry`` is the only place the kinds are listed.
"""

from .base import Pixels, Runtime, Samples, Seen
from .registry import BESIDE, DEFAULT, KINDS, beside, get

__all__ = ["BESIDE", "DEFAULT", "KINDS", "beside", "Pixels", "Runtime", "Samples", "Seen", "get"]
