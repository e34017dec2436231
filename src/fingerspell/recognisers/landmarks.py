"""The default recogniser: MediaPipe's 21 hand landmarks -> 288 features -> a small MLP ensemble.

Runtime half (TensorFlow-free): ``preprocessing`` and ``Runtime``. Training half: ``build``,
``average``, ``fit_arrays`` (from plain arrays: a few hundred samples refit a model without
images) and ``fit`` (the image pipeline's hands, through ``fit_arrays``); Keras is imported
when called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from .. import features
from ..config import LandmarkParams
from ..errors import FingerspellError
from .base import Samples, newest_hand
from .fitting import epoch_log, raise_if_stopped, tf_keras

log = logging.getLogger("fingerspell.training")
KIND = "landmarks"
USES_FAR_COPIES = True  # learns from far copies of training photos (LandmarkParams.far_copies)


# --------------------------------------------------------------------------- runtime


def preprocessing(params) -> dict:
    """What ``bundle.json`` records about the inputs of ``TrainParams`` ``params``, read back by
    ``Runtime.from_record``."""
    return {"kind": KIND, **features.preprocessing(params.landmarks.depth)}


@dataclass(frozen=True)
class Runtime:
    """A hand -> the classifier's input, as the bundle was trained."""

    depth: bool = True  # use MediaPipe's z (the record says; see features.py)
    version: int = features.VERSION  # the feature version the bundle records
    reads_pixels = False  # only the hand's landmarks are needed, never the image
    frames = 1  # a static kind: the newest frame's hand

    @classmethod
    def from_record(cls, record: dict) -> "Runtime":
        """The runtime a preprocessing record of today's schema asks for (bundle/meta.py upgrades older ones).

        Raises:
            KeyError: a field is missing. ValueError: a field is not understood.
        """
        if not isinstance(record["depth"], bool):
            raise ValueError(f"depth must be true or false, not {record['depth']!r}")
        return cls(depth=record["depth"], version=features.version_of(record))

    def inputs(self, window, pixels=None) -> np.ndarray | None:
        """The feature vector of the newest hand; None where there is no hand (the answer is "nothing")."""
        hand = newest_hand(window)
        return None if hand is None else features.from_hand(hand, self.depth, self.version)

    def input_problem(self, shape: tuple[int, ...]) -> str | None:
        """Why a model with input ``shape`` cannot be served with these inputs, or None."""
        if shape != (features.N_FEATURES,):
            return f"expects input {shape}, not the {features.N_FEATURES} landmark features of this version"
        return None


# --------------------------------------------------------------------------- training


def build(n_classes: int, p: LandmarkParams, name: str = KIND):
    """Small MLP on the 288 landmark features. Normalisation is learnt from the training set."""
    _, keras = tf_keras()
    layers = [keras.Input((features.N_FEATURES,), name="features"), keras.layers.Normalization(name="norm")]
    for units in p.hidden:
        layers += [keras.layers.Dense(units, activation="relu"), keras.layers.BatchNormalization(),
                   keras.layers.Dropout(p.dropout)]
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="probs"))
    return keras.Sequential(layers, name=name)


def average(members: list):
    """One model whose output is the mean of the members' probabilities (one export, one call)."""
    _, keras = tf_keras()
    if len(members) == 1:
        return members[0]
    inp = keras.Input((features.N_FEATURES,), name="features")
    return keras.Model(inp, keras.layers.Average(name="probs")([m(inp) for m in members]), name="ensemble")


def training_views(prep, tr: np.ndarray, lp: LandmarkParams) -> list[Samples]:
    """The estimates of the training hands ``tr`` a fit learns from, as ``Samples``.

    Each training hand once as found; once more as first found before refinement (when
    ``lp.unrefined``): two estimates of one hand teach the model what landmark noise looks like;
    and the hands of the photo's far copies (``prep.far``, ``lp.far_copies``): the same hand as a
    distant webcam sees it, each as found and as first found. Only samples in ``tr`` contribute.
    """
    ext, y = prep.ext, prep.y
    views = [Samples.of_hands([ext[i].hand for i in tr], y[tr])]
    if lp.unrefined:
        first = [i for i in tr if ext[i].hand.unrefined is not None]
        if first:
            views.append(Samples.of_hands([ext[i].hand.unrefined for i in first], y[first]))
    far = [(h, y[i]) for i in tr for h in (prep.far[i] if prep.far else ())]
    if lp.unrefined:
        far += [(h.unrefined, yy) for h, yy in far if h.unrefined is not None]
    if far:
        views.append(Samples.of_hands([h for h, _ in far], [yy for _, yy in far]))
    return views


def features_of(samples: Samples, lp: LandmarkParams) -> np.ndarray:
    """The model's inputs for ``samples``, as serving makes them from a hand."""
    return features.from_points(samples.points, samples.is_left, lp.depth)


def fit_arrays(views: list[Samples], val: Samples | None, n_labels: int, params, *, stop=None,
               what: str | None = None):
    """Train the ensemble from plain arrays: no images, no hand detection.

    Args:
        views: the training hands, in one or more ``Samples`` (the hands as found, other estimates
            of them, far copies); each is augmented ``params.landmarks.augment_copies`` times.
        val: hands scored after each epoch, or None.
        n_labels: the model's outputs; each sample's ``y`` indexes them.
        params: ``TrainParams``; ``params.landmarks`` is this recogniser's, ``params.seed`` seeds it.
        stop: an event that ends the fit after the current step (Ctrl-C).
        what: how the log names the training hands (default: how many, and how many other estimates).
    Returns:
        (Keras model, history averaged over the ensemble's members).
    Raises:
        FingerspellError: there is no training hand.
    """
    _, keras = tf_keras()
    lp = params.landmarks
    if not views or len(views[0]) == 0:
        raise FingerspellError("no hands to train on; check the data (images with a hand, or landmark records)")
    rng = np.random.default_rng(params.seed)
    xs, ys = [], []
    for view in views:
        xs.append(features_of(view, lp))
        ys.append(view.y)
        for _ in range(lp.augment_copies):
            aug = features.augment(view.points, rng, rotate_degrees=lp.rotate_degrees, scale_range=lp.scale_range,
                                   jitter=lp.jitter, tilt_degrees=lp.tilt_degrees, finger_range=lp.finger_range)
            xs.append(features.from_points(aug, view.is_left, lp.depth))
            ys.append(view.y)
    x_train, y_train = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(x_train))
    x_train, y_train = x_train[perm], keras.utils.to_categorical(y_train[perm], n_labels)
    val_data = None
    if val is not None and len(val):
        val_data = (features_of(val, lp), keras.utils.to_categorical(val.y, n_labels))
    members, histories = [], []
    for k in range(max(1, lp.members)):
        log.info("training landmark MLP %d/%d on %s (%d augmented copies each)", k + 1, max(1, lp.members),
                 what or f"{len(views[0]):,} hands and {sum(map(len, views[1:])):,} other estimates of them",
                 lp.augment_copies)
        keras.utils.set_random_seed(params.seed + 1000 * k)
        member = build(n_labels, lp, name=f"{KIND}_{k}")
        member.get_layer("norm").adapt(x_train)
        # The MLP is so small that TensorFlow's per-step overhead dominates: running 32 steps per
        # call (same batches, same updates) trains ~40% faster; XLA made it slower here.
        member.compile(optimizer=keras.optimizers.Adam(lp.learning_rate),
                       loss=keras.losses.CategoricalCrossentropy(label_smoothing=lp.label_smoothing),
                       metrics=["accuracy"], steps_per_execution=32, jit_compile=False)
        histories.append(member.fit(x_train, y_train, epochs=lp.epochs, batch_size=lp.batch_size,
                                    validation_data=val_data, verbose=0,
                                    callbacks=[epoch_log(max(1, lp.epochs // 6), lp.epochs, stop)]).history)
        raise_if_stopped(stop)
        members.append(member)
    # the curves of the members, averaged epoch by epoch
    history = {key: list(np.mean([h[key] for h in histories], axis=0)) for key in histories[0]}
    return average(members), history


def fit(prep, sides: dict[str, list[int]], params, *, stop=None, progress: bool = True):
    """Train the ensemble on the hands of ``sides["train"]`` (``fit_arrays`` over ``training_views``).

    Args:
        prep: ``train.Prepared`` (samples, their hands, labels).
        sides: sample indices per side ("train", "val", "test").
        params: ``TrainParams``; ``params.landmarks`` is this recogniser's.
        stop: an event that ends the fit after the current step (Ctrl-C).
    Returns:
        (Keras model, history, {"val" | "test": class scores per sample, None where no hand}).
    """
    lp, ext, y, found, labels = params.landmarks, prep.ext, prep.y, prep.found, prep.labels
    tr = np.array([i for i in sides["train"] if found[i]], dtype=int)
    if len(tr) == 0:
        raise FingerspellError("no hands were detected in the training images; check the data folders")

    def samples(idx) -> Samples:
        return Samples.of_hands([ext[i].hand for i in idx], y[idx])

    va = np.array([i for i in sides["val"] if found[i]], dtype=int)
    views = training_views(prep, tr, lp)
    unrefined = sum(ext[i].hand.unrefined is not None for i in tr) if lp.unrefined else 0
    what = (f"{len(tr):,} hands and {unrefined:,} unrefined estimates of them, and "
            f"{sum(map(len, views[1:])) - unrefined:,} hands of far copies")
    model, history = fit_arrays(views, samples(va) if len(va) else None, len(labels), params, stop=stop, what=what)
    probs = {}
    for side in ("val", "test"):
        idx = sides[side]
        rows = [None] * len(idx)
        have = [k for k, i in enumerate(idx) if found[i]]
        if have:
            p = model.predict(features_of(samples(np.array([idx[k] for k in have])), lp), verbose=0, batch_size=1024)
            for k, row in zip(have, p):
                rows[k] = row
        probs[side] = rows
    return model, history, probs
