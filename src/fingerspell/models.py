"""Registry of recogniser kinds. Each builds a Keras model; imported only at train time."""

from __future__ import annotations

from .config import CnnParams, LandmarkParams
from .features import N_FEATURES


def build_landmarks(n_classes: int, p: LandmarkParams, name: str = "landmarks"):
    """Small MLP on the 288 landmark features. Normalisation is learnt from the training set."""
    import keras

    layers = [keras.Input((N_FEATURES,), name="features"), keras.layers.Normalization(name="norm")]
    for units in p.hidden:
        layers += [keras.layers.Dense(units, activation="relu"), keras.layers.BatchNormalization(),
                   keras.layers.Dropout(p.dropout)]
    layers.append(keras.layers.Dense(n_classes, activation="softmax", name="probs"))
    return keras.Sequential(layers, name=name)


def average(members: list):
    """One model whose output is the mean of the members' probabilities (one export, one call)."""
    import keras

    if len(members) == 1:
        return members[0]
    inp = keras.Input((N_FEATURES,), name="features")
    return keras.Model(inp, keras.layers.Average(name="probs")([m(inp) for m in members]), name="ensemble")


def build_cnn(n_classes: int, p: CnnParams):
    """The tutorial's 64x64 CNN (three conv blocks). Input is raw 0-255 RGB.

    No batch norm: with the tutorial's small data set and few steps an epoch, BatchNormalization's
    moving statistics lagged the weights, so inference (validation, export) ran on mismatched
    statistics and scored near chance while training accuracy climbed.
    """
    import keras
    from keras import layers as L

    return keras.Sequential([
        keras.Input((p.image_size, p.image_size, 3), name="image"),
        L.Rescaling(1 / 255.0),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(128, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.5),
        L.Dense(n_classes, activation="softmax", name="probs"),
    ], name="cnn")


REGISTRY = {"landmarks": build_landmarks, "cnn": build_cnn}


def build(kind: str, n_classes: int, params, **kwargs):
    try:
        builder = REGISTRY[kind]
    except KeyError:
        from .errors import FingerspellError

        raise FingerspellError(f"unknown model kind {kind!r}; choose one of {', '.join(REGISTRY)}") from None
    return builder(n_classes, params, **kwargs)
