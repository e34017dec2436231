"""The tutorial's 64x64 CNN on the hand crop (or the whole image), kept as an option and a baseline.

Runtime half (TensorFlow-free): ``preprocessing`` and ``Runtime``. Training half: ``build``,
``fit`` (Keras, imported when called). Training crops its images with the same ``Runtime`` that
serving builds from the bundle, so the two cannot disagree about ``crop_to_hand``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from ..config import CnnParams
from ..errors import FrameError
from ..images import crop_resize, read_image
from .fitting import epoch_log, raise_if_stopped, tf_keras

log = logging.getLogger("fingerspell.training")
KIND = "cnn"
USES_FAR_COPIES = False  # crops pixels; far copies are landmark training data


# --------------------------------------------------------------------------- runtime


def preprocessing(params) -> dict:
    """What ``bundle.json`` records about the inputs of ``TrainParams`` ``params``."""
    cp = params.cnn
    return {"kind": KIND, "image_size": cp.image_size, "input": "RGB 0-255 float32",
            "crop_to_hand": cp.crop_to_hand, "crop_margin": cp.crop_margin}


@dataclass(frozen=True)
class Runtime:
    """A hand and its image -> the classifier's input, as the bundle was trained."""

    image_size: int = 64
    crop_to_hand: bool = True  # crop to the hand where one is found (else the whole image)
    crop_margin: float = 0.25
    reads_pixels = True  # every image is read and cropped, hand or not
    frames = 1  # a static kind: the newest frame

    @classmethod
    def from_record(cls, record: dict) -> "Runtime":
        """The runtime a preprocessing record of today's schema asks for (bundle/meta.py upgrades older ones).

        Raises:
            KeyError: a field is missing. ValueError, TypeError: a field is not understood.
        """
        size, crop, margin = record["image_size"], record["crop_to_hand"], float(record["crop_margin"])
        if not (isinstance(size, int) and size > 0 and isinstance(crop, bool) and margin >= 0):
            raise ValueError(f"image_size must be a positive whole number, crop_to_hand true or false and "
                             f"crop_margin 0 or more, not {size!r}, {crop!r}, {margin!r}")
        return cls(image_size=size, crop_to_hand=crop, crop_margin=margin)

    def crop(self, hand, image) -> np.ndarray:
        """The uint8 (size, size, 3) picture the CNN sees; ``image`` is a callable giving the RGB image."""
        return crop_resize(image(), self.image_size, hand if self.crop_to_hand else None, self.crop_margin)

    def inputs(self, window, pixels) -> np.ndarray:
        """The CNN's input from the newest frame's pixels; with no hand the whole image (the CNN
        has learnt "nothing").

        Raises:
            FrameError: there are no pixels (a hand found in the browser, or a recording).
        """
        if pixels is None:
            raise FrameError("a cnn model reads the image itself: send frames, not landmarks (or use a landmarks model)")
        rgb, hand = pixels()
        return self.crop(hand, lambda: rgb).astype(np.float32)

    def input_problem(self, shape: tuple[int, ...]) -> str | None:
        if shape != (self.image_size, self.image_size, 3):
            return f"expects input {shape}, but bundle.json says {self.image_size}x{self.image_size} RGB"
        return None


# --------------------------------------------------------------------------- training


def build(n_classes: int, p: CnnParams):
    """The tutorial's 64x64 CNN (three conv blocks). Input is raw 0-255 RGB.

    No batch norm: with the tutorial's small data set and few steps an epoch, BatchNormalization's
    moving statistics lagged the weights, so inference (validation, export) ran on mismatched
    statistics and scored near chance while training accuracy climbed.
    """
    _, keras = tf_keras()
    L = keras.layers
    return keras.Sequential([
        keras.Input((p.image_size, p.image_size, 3), name="image"),
        L.Rescaling(1 / 255.0),
        L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Conv2D(128, 3, padding="same", activation="relu"), L.MaxPooling2D(),
        L.Flatten(), L.Dense(128, activation="relu"), L.Dropout(0.5),
        L.Dense(n_classes, activation="softmax", name="probs"),
    ], name=KIND)


def _crops(prep, idx, runtime: Runtime, progress: bool) -> np.ndarray:
    out = np.zeros((len(idx), runtime.image_size, runtime.image_size, 3), np.uint8)
    samples = prep.ds.samples
    for k, i in enumerate(tqdm(idx, desc="cropping", unit="img", disable=not progress)):
        out[k] = runtime.crop(prep.ext[i].hand, lambda: read_image(samples[i].path))
    return out


def fit(prep, sides: dict[str, list[int]], params, *, stop=None, progress: bool = True):
    """Train the CNN on ``sides["train"]``; returns (model, history, class scores per held-out side)."""
    tf, keras = tf_keras()
    cp, y, labels = params.cnn, prep.y, prep.labels
    runtime = Runtime.from_record(preprocessing(params))
    x_tr = _crops(prep, sides["train"], runtime, progress)
    y_tr = keras.utils.to_categorical(y[sides["train"]], len(labels))
    model = build(len(labels), cp)
    model.compile(optimizer=keras.optimizers.Adam(cp.learning_rate), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    L = keras.layers
    # Mild, on raw 0-255 pixels. No flips: a mirrored hand is a different hand to the model, and the
    # crops are already tight around the hand, so small shifts and zooms are enough.
    aug = keras.Sequential([L.RandomRotation(0.04), L.RandomZoom(0.1), L.RandomTranslation(0.05, 0.05),
                            L.RandomBrightness(0.15, value_range=(0, 255)),
                            L.RandomContrast(0.15, value_range=(0, 255))]) if cp.augment else None
    train_ds = tf.data.Dataset.from_tensor_slices((x_tr.astype("float32"), y_tr)).shuffle(len(x_tr), seed=params.seed)
    train_ds = train_ds.batch(cp.batch_size)
    if aug is not None:
        train_ds = train_ds.map(lambda a, b: (aug(a, training=True), b), num_parallel_calls=tf.data.AUTOTUNE)
    val = None
    if sides["val"]:
        val = (_crops(prep, sides["val"], runtime, progress).astype("float32"),
               keras.utils.to_categorical(y[sides["val"]], len(labels)))
    log.info("training the CNN on %s images", f"{len(x_tr):,}")
    hist = model.fit(train_ds.prefetch(tf.data.AUTOTUNE), epochs=cp.epochs, validation_data=val, verbose=0,
                     callbacks=[epoch_log(1, cp.epochs, stop)])
    raise_if_stopped(stop)
    probs = {"val": list(model.predict(val[0], verbose=0)) if val else []}
    if sides["test"]:
        probs["test"] = list(model.predict(_crops(prep, sides["test"], runtime, progress).astype("float32"),
                                           verbose=0))
    return model, hist.history, probs
