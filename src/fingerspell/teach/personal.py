"""A personal model: the base model's probabilities, corrected for one person's hands. Numpy only.

The base model stays as it is (its LiteRT export is not touched). On top of it a small head
learns, from the person's samples, how their hands differ::

    logits = log(p_base + FLOOR) + ((x - mean) / scale) @ W + b      ->  softmax

``x`` are the base recogniser's inputs (the 288 landmark features), ``p_base`` its
probabilities (a label the base never had, such as a custom sign, gets ``FLOOR``). With ``W``
and ``b`` at zero the personal model *is* the base model; the fit (multinomial logistic
regression with the base as a fixed offset, L2 on ``W``) moves them only as far as the
samples ask. Samples of other people's hands carried by the base bundle (its anchors) stand in
for the labels the person did not teach, so teaching G alone does not turn their other letters
into G. docs/teach.md has the measurements that chose this over a nearest-neighbour blend.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BundleError

FLOOR = 1e-4  # what the base is taken to give a label it never had; also keeps log() finite
L2 = 1e-3  # weight decay on W: 1e-3 was best of 1e-4..1e-2 on both the third person and the Kaggle signer (docs/teach.md)
STEPS = 300  # full-batch Adam steps; a few hundred samples fit in well under a second
LEARNING_RATE = 0.05
SCALE_FLOOR = 0.1  # added to each feature's spread, so a feature constant in few samples is not blown up


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def extend(probs: np.ndarray, n_labels: int) -> np.ndarray:
    """Base probabilities (..., n_base) padded with ``FLOOR`` for the labels the base never had."""
    probs = np.asarray(probs, dtype=np.float64)
    pad = n_labels - probs.shape[-1]
    if pad <= 0:
        return probs
    return np.concatenate([probs, np.full(probs.shape[:-1] + (pad,), FLOOR)], axis=-1)


@dataclass(frozen=True)
class Personal:
    """The head: ``labels`` are the base model's outputs, then the labels it never had."""

    labels: list[str]
    n_base: int  # the first n_base labels are the base model's outputs, in its order
    mean: np.ndarray  # (d,)
    scale: np.ndarray  # (d,)
    weights: np.ndarray  # (d, len(labels))
    bias: np.ndarray  # (len(labels),)

    def adjust(self, x: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """Probabilities over ``labels`` for inputs ``x`` ((d,) or (N, d)) and the base's ``probs``."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return softmax(np.log(extend(probs, len(self.labels)) + FLOOR) + z @ self.weights + self.bias)

    def to_bytes(self) -> bytes:
        """The ``personal.npz`` file's bytes (a bundle writes them)."""
        buf = io.BytesIO()
        np.savez(buf, labels=np.array(self.labels, dtype=str), n_base=np.array(self.n_base), mean=self.mean,
                 scale=self.scale, weights=self.weights, bias=self.bias)
        return buf.getvalue()

    @classmethod
    def load(cls, path: Path, base_labels: list[str], inputs: int | None = None) -> "Personal":
        """Read ``personal.npz``, checked against the base model it adjusts (its labels, and its
        number of inputs where given).

        Raises:
            BundleError: the file is not such a head, or not one for this base model.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                labels = [str(v) for v in z["labels"]]
                head = cls(labels, int(z["n_base"]), z["mean"].astype(np.float64), z["scale"].astype(np.float64),
                           z["weights"].astype(np.float64), z["bias"].astype(np.float64))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise BundleError(f"{path} is not a personal model ({exc}); teach it again") from None
        k = len(labels)
        inputs = head.mean.shape[0] if inputs is None else inputs
        if (labels[:head.n_base] != list(base_labels) or head.n_base != len(base_labels)
                or head.mean.shape != (inputs,) or head.scale.shape != (inputs,)
                or head.weights.shape != (inputs, k) or head.bias.shape != (k,) or len(set(labels)) != k
                or not all(np.isfinite(a).all() for a in (head.mean, head.scale, head.weights, head.bias))
                or (head.scale <= 0).any()):
            raise BundleError(f"{path} does not fit this bundle's model (labels or sizes differ); teach it again")
        return head


def fit(x: np.ndarray, y: np.ndarray, base_probs: np.ndarray, labels: list[str], n_base: int, *,
        weight: np.ndarray | None = None, l2: float = L2, steps: int = STEPS, progress=None) -> Personal:
    """Fit the head on inputs ``x`` (N, d) of labels ``y`` (N,) indexing ``labels``.

    Args:
        base_probs: (N, n_base) the base model's probabilities for ``x``.
        weight: (N,) each sample's weight in the loss (None: all 1).
        progress: called with the fraction done now and then.
    """
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    k = len(labels)
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    weight = weight / weight.sum()
    mean = x.mean(axis=0)
    scale = x.std(axis=0) + SCALE_FLOOR
    z = (x - mean) / scale
    offset = np.log(extend(base_probs, k) + FLOOR)
    target = np.eye(k)[np.asarray(y, dtype=int)]
    params = [np.zeros((d, k)), np.zeros(k)]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    for t in range(1, steps + 1):
        grad = (softmax(offset + z @ params[0] + params[1]) - target) * weight[:, None]
        grads = (z.T @ grad + l2 * params[0], grad.sum(axis=0))
        for p, g, (m, v) in zip(params, grads, moments):  # Adam
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= LEARNING_RATE * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        if progress is not None and t % 50 == 0:
            progress(t / steps)
    return Personal(list(labels), n_base, mean, scale, params[0], params[1])
