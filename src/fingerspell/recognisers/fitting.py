"""What the training halves share: Keras on demand, the epoch log, and stopping on Ctrl-C."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("fingerspell.training")


def tf_keras():
    """TensorFlow and Keras, imported on first use (never by serving code)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    return tf, keras


def raise_if_stopped(stop: threading.Event | None) -> None:
    """KeyboardInterrupt, from plain Python, once ``stop`` is set (see ``cli.training.ctrl_c_asks_to_stop``)."""
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt


def epoch_log(every: int, total: int, stop: threading.Event | None = None):
    """Keras callback: one log line every ``every`` epochs (no print in the library), and a stop
    after the current step once ``stop`` is set."""
    _, keras = tf_keras()

    class EpochLog(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if stop is not None and stop.is_set():
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % every == 0 or epoch + 1 == total:
                logs = logs or {}
                log.info("epoch %d/%d: loss %.3f acc %.3f val_acc %s", epoch + 1, total, logs.get("loss", 0),
                         logs.get("accuracy", 0), f"{logs['val_accuracy']:.3f}" if "val_accuracy" in logs else "-")

    return EpochLog()
