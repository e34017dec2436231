"""Fit, measure, plot and write a bundle. The only importer of TensorFlow at train time.

Data flow: folders -> samples -> group-aware split -> landmarks (cached) -> features or hand
crops -> Keras model -> validation figures (no hand counted as "nothing") -> LiteRT export
checked against Keras -> bundle written atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import platform
import signal
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import __version__, bundle, features
from .config import TrainParams, to_dict
from .dataset import Dataset, assign_groups, describe_split, scan, split
from .errors import FingerspellError
from .extract import Extracted, extract
from .hands import sha256_file, ensure_hand_model
from .images import crop_resize, read_image
from .labels import NOTHING
from .metrics import brief, summarize

log = logging.getLogger(__name__)


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    return tf, keras


def export_tflite(model) -> bytes:
    """Convert a Keras model to a LiteRT flatbuffer (float32, runs without TensorFlow)."""
    tf, _ = _tf()
    with tempfile.TemporaryDirectory() as tmp:
        # Exporting a SavedModel first is the path that works for Keras 3 models.
        model.export(tmp, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        return converter.convert()


def _source_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class _EpochLog:
    """Keras callback: one log line every ``every`` epochs (no print in the library), and a stop
    after the current step once ``stop`` is set (see ``ctrl_c_stops_fitting``)."""

    def __new__(cls, every: int, total: int, stop: threading.Event | None = None):
        _, keras = _tf()

        class CB(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if stop is not None and stop.is_set():
                    self.model.stop_training = True

            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % every == 0 or epoch + 1 == total:
                    logs = logs or {}
                    log.info("epoch %d/%d: loss %.3f acc %.3f val_acc %s", epoch + 1, total, logs.get("loss", 0),
                             logs.get("accuracy", 0), f"{logs['val_accuracy']:.3f}" if "val_accuracy" in logs else "-")

        return CB()


@contextlib.contextmanager
def ctrl_c_stops_fitting():
    """While fitting, Ctrl-C stops Keras after the step it lands in, then raises KeyboardInterrupt.

    A KeyboardInterrupt raised by the signal handler lands wherever Python happens to be. Inside
    TensorFlow's graph tracing it surfaces as another error. Inside a finaliser it is swallowed
    ("Exception ignored in ..."), and training runs on. So within this block the handler only sets
    the event it yields; ``_EpochLog(..., stop=event)`` reads it after every step, and the fit
    returns. Check ``raise_if_stopped(event)`` after each fit. A second Ctrl-C goes to the previous
    handler at once. Where Ctrl-C is ignored (SIG_IGN), or off the main thread, nothing changes.
    """
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum, frame):
        if stop.is_set():
            previous(signum, frame)
        stop.set()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
    raise_if_stopped(stop)


def raise_if_stopped(stop: threading.Event) -> None:
    if stop.is_set():
        raise KeyboardInterrupt


@dataclasses.dataclass
class Prepared:
    """Data scanned and grouped, hands detected (cached): what every fit of a recipe starts from."""

    folders: list[str]
    ds: Dataset
    ext: list[Extracted]  # per sample
    bad: set[int]  # samples that could not be read
    y: np.ndarray  # label index per sample
    found: np.ndarray  # whether a hand was found, per sample
    labels: list[str]
    detection: dict
    hand_model: Path


def load(data, params: TrainParams) -> tuple[list[str], Dataset]:
    """The data folders as given, and their samples scanned and grouped (``dataset.Dataset``)."""
    if params.kind not in bundle.KINDS:
        raise FingerspellError(f"unknown model kind {params.kind!r}; choose one of {', '.join(bundle.KINDS)}")
    folders = [str(d) for d in ([data] if isinstance(data, (str, os.PathLike)) else data)]
    ds = assign_groups(scan(folders, limit_per_class=params.limit_per_class), params.split)
    log.info("loaded %s images from %d folder(s), %d skipped, %d labels; grouped by %s",
             f"{len(ds.samples):,}", len(folders), len(ds.skipped), len(ds.labels),
             ", ".join(f"{k} ({v:,})" for k, v in ds.grouping.items()))
    return folders, ds


def prepare(folders: list[str], ds: Dataset, params: TrainParams, *, cache=None, progress: bool = True) -> Prepared:
    """Detect hands in every image of ``ds`` (cached) and report the no-hand rates."""
    hand_model = ensure_hand_model(cache)
    ext = extract([s.path for s in ds.samples], params.detect, workers=params.workers, cache=cache, progress=progress)
    bad = {i for i, e in enumerate(ext) if e.error is not None}
    ds.skipped += [(ds.samples[i].path, ext[i].error) for i in sorted(bad)]
    index = {c: i for i, c in enumerate(ds.labels)}
    detection = _detection_report(ds, ext, bad)
    for src, d in detection.items():
        log.info("%s: no hand in %.1f%% of hand images (plain detection alone: %.1f%%)", src,
                 100 * d["no_hand_rate"], 100 * d["no_hand_rate_plain_only"])
    return Prepared(folders, ds, ext, bad, np.array([index[s.label] for s in ds.samples]),
                    np.array([e.hand is not None for e in ext]), ds.labels, detection, hand_model)


def fit_recipe(prep: Prepared, sides: dict[str, list[int]], params: TrainParams, *, progress: bool = True):
    """Fit the recipe on ``sides["train"]``; the model, its history, and class scores for the
    images of ``sides["val"]`` and ``sides["test"]`` (None where no hand was found)."""
    tf, keras = _tf()
    keras.utils.set_random_seed(params.seed)
    with ctrl_c_stops_fitting() as stop:
        if params.kind == "landmarks":
            return _fit_landmarks(prep.ds, prep.ext, prep.y, prep.found, sides, prep.labels, params, keras, stop)
        return _fit_cnn(prep.ds, prep.ext, prep.y, sides, prep.labels, params, tf, keras, progress, stop)


def held_out_metrics(prep: Prepared, idx: list[int], rows: list) -> dict:
    """``metrics.summarize`` of class scores ``rows`` for samples ``idx``; no hand counts as ``nothing``."""
    pred = [prep.labels[int(np.argmax(row))] if row is not None else NOTHING for row in rows]
    samples = prep.ds.samples
    return summarize([samples[i].label for i in idx], pred, [not prep.found[i] for i in idx],
                     [samples[i].source for i in idx])


def train(data, out, params: TrainParams = TrainParams(), *, cache=None, progress: bool = True) -> dict:
    """Train a recogniser on image folders and write its bundle to ``out``.

    Args:
        data: data folders (``--data``), each a folder of class folders or the Kaggle layout.
        out: bundle folder to write: new, empty, or a bundle to replace (atomically).
        params: resolved settings, written into the bundle.
        cache: cache folder for the hand model and landmarks.
    Returns:
        The metrics dict written to ``metrics.json``.
    Raises:
        DatasetError: unusable data folders; FingerspellError: nothing to train on;
        BundleError: ``out`` is a folder of other files (checked before any work).
    """
    bundle.check_target(out)
    folders, ds = load(data, params)
    sides = split(ds, params.split)
    prep = prepare(folders, ds, params, cache=cache, progress=progress)
    sides = {k: [i for i in v if i not in prep.bad] for k, v in sides.items()}
    if not sides["train"]:
        raise FingerspellError("no training images left after the split; add data or lower --val-fraction")
    model, history, probs = fit_recipe(prep, sides, params, progress=progress)
    tf, keras = _tf()

    tflite = export_tflite(model)
    metrics = {"data": ds.report(), "split": describe_split(ds, sides, params.split), "detection": prep.detection}
    for side in ("val", "test"):
        idx = sides[side]
        if not idx:
            continue
        metrics[side] = held_out_metrics(prep, idx, probs[side])
        log.info("%s (%s): %s", side, metrics["split"]["grouping"], brief(metrics[side]))
    _check_export(tflite, model, ds, prep.ext, sides, params)
    metrics["history"] = {k: [round(float(v), 5) for v in vals] for k, vals in history.items()}

    with tempfile.TemporaryDirectory() as tmp:
        files = _artefacts(Path(tmp), model, tflite, metrics, prep.labels, params)
        meta = {
            "kind": params.kind,
            "labels": prep.labels,
            "num_outputs": len(prep.labels),
            "preprocessing": _preprocessing(params),
            "hand_model_sha256": sha256_file(prep.hand_model),
            "config": to_dict(params),
            "metrics": {side: {k: metrics[side][k] for k in ("n", "top1", "macro_f1", "no_hand_rate")}
                        for side in ("val", "test") if side in metrics},
            "split": metrics["split"],
            "data": {"folders": [str(Path(d).resolve()) for d in folders], "images": len(ds.samples),
                     "per_source": metrics["data"]["per_source"], "skipped": len(ds.skipped)},
            "source_commit": _source_commit(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "versions": {"fingerspell": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                         "python": platform.python_version()},
        }
        files[bundle.CARD] = model_card(meta, metrics)
        path = bundle.write_bundle(out, meta, files)
    log.info("bundle written to %s", path)
    return metrics


def _preprocessing(params: TrainParams) -> dict:
    if params.kind == "landmarks":
        return {"kind": "landmarks", **features.preprocessing(params.landmarks.depth)}
    return {"kind": "cnn", "image_size": params.cnn.image_size, "input": "RGB 0-255 float32",
            "crop_to_hand": params.cnn.crop_to_hand, "crop_margin": params.cnn.crop_margin}


def _detection_report(ds, ext, bad) -> dict:
    """Per source: no-hand rate over hand images, and how each detection attempt contributed."""
    out = {}
    for src in sorted({s.source for s in ds.samples}):
        idx = [i for i, s in enumerate(ds.samples) if s.source == src and s.label != NOTHING and i not in bad]
        if not idx:
            continue
        attempts = Counter((ext[i].hand.attempt if ext[i].hand is not None else "none") for i in idx)
        plain = attempts.get("plain", 0)  # cached records keep the attempt that found them
        out[src] = {
            "hand_images": len(idx),
            "found_by": dict(attempts),
            "no_hand_rate": attempts.get("none", 0) / len(idx),
            "no_hand_rate_plain_only": 1 - plain / len(idx),
        }
    return out


def _fit_landmarks(ds, ext, y, found, sides, labels, params, keras, stop):
    lp = params.landmarks
    n = len(ds.samples)
    pts = np.zeros((n, 21, 3), np.float32)
    left = np.zeros(n, bool)
    for i, e in enumerate(ext):
        if e.hand is not None:
            pts[i], left[i] = e.hand.pixel_points(), e.hand.handedness == "Left"
    tr = np.array([i for i in sides["train"] if found[i]])
    if len(tr) == 0:
        raise FingerspellError("no hands were detected in the training images; check the data folders")
    rng = np.random.default_rng(params.seed)

    def feats(p, lf):
        return features.from_points(p, lf, lp.depth)

    # Each training hand once as found, and once more as first found before refinement (when
    # lp.unrefined): two estimates of one hand teach the model what landmark noise looks like.
    views = [(pts[tr], left[tr], y[tr])]
    if lp.unrefined:
        first = [i for i in tr if ext[i].hand.unrefined is not None]
        if first:
            views.append((np.stack([ext[i].hand.unrefined.pixel_points() for i in first]),
                          np.array([ext[i].hand.unrefined.handedness == "Left" for i in first]), y[first]))
    xs, ys = [], []
    for p, lf, yy in views:
        xs.append(feats(p, lf))
        ys.append(yy)
        for _ in range(lp.augment_copies):
            aug = features.augment(p, rng, rotate_degrees=lp.rotate_degrees, scale_range=lp.scale_range,
                                   jitter=lp.jitter)
            xs.append(feats(aug, lf))
            ys.append(yy)
    x_train, y_train = np.concatenate(xs), np.concatenate(ys)
    perm = rng.permutation(len(x_train))
    x_train, y_train = x_train[perm], keras.utils.to_categorical(y_train[perm], len(labels))
    from .models import average, build

    va = np.array([i for i in sides["val"] if found[i]])
    val_data = None
    if len(va):
        val_data = (feats(pts[va], left[va]), keras.utils.to_categorical(y[va], len(labels)))
    members, histories = [], []
    for k in range(max(1, lp.members)):
        log.info("training landmark MLP %d/%d on %s hands and %s unrefined estimates of them "
                 "(%d augmented copies each)", k + 1, max(1, lp.members), f"{len(tr):,}",
                 f"{sum(len(v[2]) for v in views[1:]):,}", lp.augment_copies)
        keras.utils.set_random_seed(params.seed + 1000 * k)
        member = build("landmarks", len(labels), lp, name=f"landmarks_{k}")
        member.get_layer("norm").adapt(x_train)
        # The MLP is so small that TensorFlow's per-step overhead dominates: running 32 steps per
        # call (same batches, same updates) trains ~40% faster; XLA made it slower here.
        member.compile(optimizer=keras.optimizers.Adam(lp.learning_rate),
                       loss=keras.losses.CategoricalCrossentropy(label_smoothing=lp.label_smoothing),
                       metrics=["accuracy"], steps_per_execution=32, jit_compile=False)
        histories.append(member.fit(x_train, y_train, epochs=lp.epochs, batch_size=lp.batch_size,
                                    validation_data=val_data, verbose=0,
                                    callbacks=[_EpochLog(max(1, lp.epochs // 6), lp.epochs, stop)]).history)
        raise_if_stopped(stop)
        members.append(member)
    model = average(members)
    # the curves of the members, averaged epoch by epoch
    history = {key: list(np.mean([h[key] for h in histories], axis=0)) for key in histories[0]}
    probs = {}
    for side in ("val", "test"):
        idx = sides[side]
        rows = [None] * len(idx)
        have = [k for k, i in enumerate(idx) if found[i]]
        if have:
            sel = np.array([idx[k] for k in have])
            p = model.predict(feats(pts[sel], left[sel]), verbose=0, batch_size=1024)
            for k, row in zip(have, p):
                rows[k] = row
        probs[side] = rows
    return model, history, probs


def _crops(ds, ext, idx, cp, progress):
    out = np.zeros((len(idx), cp.image_size, cp.image_size, 3), np.uint8)
    for k, i in enumerate(tqdm(idx, desc="cropping", unit="img", disable=not progress)):
        hand = ext[i].hand if cp.crop_to_hand else None
        out[k] = crop_resize(read_image(ds.samples[i].path), cp.image_size, hand, cp.crop_margin)
    return out


def _fit_cnn(ds, ext, y, sides, labels, params, tf, keras, progress, stop):
    cp = params.cnn
    from .models import build

    x_tr = _crops(ds, ext, sides["train"], cp, progress)
    y_tr = keras.utils.to_categorical(y[sides["train"]], len(labels))
    model = build("cnn", len(labels), cp)
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
        val = (_crops(ds, ext, sides["val"], cp, progress).astype("float32"),
               keras.utils.to_categorical(y[sides["val"]], len(labels)))
    log.info("training the CNN on %s images", f"{len(x_tr):,}")
    hist = model.fit(train_ds.prefetch(tf.data.AUTOTUNE), epochs=cp.epochs, validation_data=val, verbose=0,
                     callbacks=[_EpochLog(1, cp.epochs, stop)])
    raise_if_stopped(stop)
    probs = {"val": list(model.predict(val[0], verbose=0)) if val else []}
    if sides["test"]:
        probs["test"] = list(model.predict(_crops(ds, ext, sides["test"], cp, progress).astype("float32"), verbose=0))
    return model, hist.history, probs


def _check_export(tflite: bytes, model, ds, ext, sides, params) -> None:
    """The LiteRT export must agree with Keras; a silent conversion bug would ship a bad model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    idx = [i for i in sides["train"] if ext[i].hand is not None][:8]
    if params.kind == "landmarks":
        x = np.stack([features.from_hand(ext[i].hand, params.landmarks.depth) for i in idx])
    else:
        x = _crops(ds, ext, idx, params.cnn, False).astype(np.float32)
    ref = model.predict(x, verbose=0)
    for k in range(len(x)):
        interp.set_tensor(inp, x[k : k + 1])
        interp.invoke()
        got = interp.get_tensor(outp)[0]
        if np.abs(got - ref[k]).max() > 1e-3:
            raise FingerspellError(f"the LiteRT export disagrees with Keras (max diff {np.abs(got - ref[k]).max():.2g})")


def _artefacts(tmp: Path, model, tflite, metrics, labels, params) -> dict:
    import json

    from .plots import confusion_png, curves_png

    keras_path = tmp / bundle.KERAS
    model.save(keras_path)
    files = {bundle.KERAS: keras_path, bundle.TFLITE: tflite,
             bundle.METRICS: json.dumps(metrics, indent=1) + "\n"}
    files[f"{bundle.PLOTS}/training_curves.png"] = curves_png(metrics["history"], tmp / "curves.png")
    for side in ("val", "test"):
        if metrics.get(side, {}).get("n"):
            files[f"{bundle.PLOTS}/confusion_{side}.png"] = confusion_png(
                metrics[side], tmp / f"confusion_{side}.png", f"{params.kind}: {side} split ({metrics['split']['grouping']} grouping)")
    return files


def model_card(meta: dict, metrics: dict) -> str:
    """A short human-readable account of the model: data, split, figures, limits."""
    lines = [f"# fingerspell model card: {meta['kind']}", "",
             f"Created {meta['created']} from commit {meta.get('source_commit') or 'unknown'} "
             f"with fingerspell {meta['versions']['fingerspell']}.", "",
             "## Data", ""]
    for src, n in metrics["data"]["per_source"].items():
        lines.append(f"- `{src}`: {n:,} images")
    lines += [f"- skipped files: {metrics['data']['skipped']}", f"- labels ({len(meta['labels'])}): {' '.join(meta['labels'])}",
              "", "## Split", "",
              f"Grouping `{metrics['split']['grouping']}` ({', '.join(f'{k}: {v:,}' for k, v in metrics['split']['rules'].items())}), "
              f"seed {metrics['split']['seed']}; images per side {metrics['split']['images']}, groups per side {metrics['split']['groups']}."]
    if "warning" in metrics["split"]:
        lines += ["", f"**Warning:** {metrics['split']['warning']}."]
    lines += ["", "## Figures (no hand counted as a prediction of `nothing`)", ""]
    for side in ("val", "test"):
        if side in metrics:
            lines.append(f"- {side}: {brief(metrics[side])}")
            for src, m in metrics[side].get("per_source", {}).items():
                lines.append(f"  - {src}: {m['top1']:.1%} top-1, no hand {m['no_hand_rate']:.1%} (n={m['n']:,})")
    lines += ["", "Held-out splits share people and rooms with training (same sources): they measure new "
              "images of familiar settings. For people the model has never seen, see the "
              "leave-one-source-out figures in the project README.", "", "## Detection", ""]
    for src, d in metrics["detection"].items():
        lines.append(f"- {src}: no hand in {d['no_hand_rate']:.1%} of {d['hand_images']:,} hand images; found by {d['found_by']}")
    lines += ["", "## Limits", "", "Static handshapes only: J and Z are motion letters and are recognised from a "
              "single frame only as well as their still frames allow. `space` and `del` are hand shapes of the "
              "Kaggle dataset, not ASL letters.", ""]
    return "\n".join(lines)
