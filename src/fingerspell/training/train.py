"""Fit, measure, plot and write a bundle. The only importer of TensorFlow at train time.

Data flow: folders -> samples -> group-aware split -> landmarks (cached) -> features or hand
crops -> Keras model -> validation figures (no hand counted as "nothing") -> LiteRT export
checked against Keras -> bundle written atomically.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import platform
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

import numpy as np

from .. import __version__, bundle, recognisers, records
from ..config import TrainParams, to_dict
from ..dataset import Dataset, assign_groups, describe_split, scan, split
from ..errors import FingerspellError
from ..extract import Extracted, extract, extract_far
from ..hands import ensure_hand_model, sha256_file
from ..images import read_image
from ..labels import NOTHING
from ..teach import anchors_of
from .metrics import brief, summarize
from ..recognisers.fitting import raise_if_stopped, tf_keras

log = logging.getLogger(__name__)


def export_tflite(model) -> bytes:
    """Convert a Keras model to a LiteRT flatbuffer (float32, runs without TensorFlow)."""
    tf, _ = tf_keras()
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
    # per sample, the hands found in its far copies (``extract.extract_far``; LandmarkParams.far_copies);
    # a fit uses only those of its training side
    far: list | None = None


def load(data, params: TrainParams) -> tuple[list[str], Dataset]:
    """The data folders as given, and their samples scanned and grouped (``dataset.Dataset``)."""
    recognisers.get(params.kind)  # an unknown kind is refused before any image is read
    folders = [str(d) for d in ([data] if isinstance(data, (str, os.PathLike)) else data)]
    ds = assign_groups(scan(folders, limit_per_class=params.limit_per_class), params.split)
    log.info("loaded %s images from %d folder(s), %d skipped, %d labels; grouped by %s",
             f"{len(ds.samples):,}", len(folders), len(ds.skipped), len(ds.labels),
             ", ".join(f"{k} ({v:,})" for k, v in ds.grouping.items()))
    return folders, ds


def prepare(folders: list[str], ds: Dataset, params: TrainParams, *, cache=None, progress: bool = True,
            stop: threading.Event | None = None) -> Prepared:
    """Detect hands in every image of ``ds`` (cached) and report the no-hand rates."""
    hand_model = ensure_hand_model(cache)
    rec = recognisers.get(params.kind)
    recorded = [i for i, s in enumerate(ds.samples) if s.recorded]
    if recorded and rec.Runtime.reads_pixels:
        raise FingerspellError(f"a {params.kind} model learns from images, and {ds.samples[recorded[0]].path} is a "
                               "recorded hand without one: train --kind landmarks on landmark records")
    # Recorded hands come with their hand; images have theirs detected (cached).
    ext: list[Extracted] = [Extracted(s.hand) for s in ds.samples]
    images = [i for i, s in enumerate(ds.samples) if not s.recorded]
    found = extract([ds.samples[i].path for i in images], params.detect, workers=params.workers, cache=cache,
                    progress=progress, stop=stop) if images else []
    for i, e in zip(images, found):
        ext[i] = e
    bad = {i for i, e in enumerate(ext) if e.error is not None}
    ds.skipped += [(ds.samples[i].path, ext[i].error) for i in sorted(bad)]
    index = {c: i for i, c in enumerate(ds.labels)}
    detection = _detection_report(ds, ext, bad)
    for src, d in detection.items():
        log.info("%s: no hand in %.1f%% of hand images (plain detection alone: %.1f%%)", src,
                 100 * d["no_hand_rate"], 100 * d["no_hand_rate_plain_only"])
    far = None
    lp = params.landmarks
    if rec.USES_FAR_COPIES and lp.far_copies > 0 and images:
        chosen = far_photos(ds, lp.far_per_class) - set(recorded)  # far copies are of photos
        far = extract_far([s.path for s in ds.samples], [e.hand if i in chosen else None for i, e in enumerate(ext)],
                          params.detect, copies=lp.far_copies,
                          sizes=lp.far_sizes, workers=params.workers, cache=cache, progress=progress, stop=stop)
        log.info("far copies: a hand in %s of %s copies of hand photos (hand %d-%d px in a 640x480 frame)",
                 f"{sum(map(len, far)):,}", f"{lp.far_copies * sum(ext[i].hand is not None for i in chosen):,}",
                 *lp.far_sizes)
    return Prepared(folders, ds, ext, bad, np.array([index[s.label] for s in ds.samples]),
                    np.array([e.hand is not None for e in ext]), ds.labels, detection, hand_model, far)


def far_photos(ds: Dataset, per_class: int | None) -> set[int]:
    """The samples that get far copies: at most ``per_class`` per class and folder, evenly spaced."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(ds.samples):
        groups.setdefault((s.source, s.label), []).append(i)
    chosen = set()
    for idx in groups.values():
        if per_class is not None and len(idx) > per_class:
            idx = [idx[int(k * len(idx) / per_class)] for k in range(per_class)]
        chosen.update(idx)
    return chosen


def fit_recipe(prep: Prepared, sides: dict[str, list[int]], params: TrainParams, *, progress: bool = True,
               stop: threading.Event | None = None):
    """Fit the recipe on ``sides["train"]``; the model, its history, and class scores for the
    images of ``sides["val"]`` and ``sides["test"]`` (None where no hand was found).

    ``stop``: once set, the fit ends after the current step and KeyboardInterrupt is raised.
    """
    _, keras = tf_keras()
    keras.utils.set_random_seed(params.seed)
    result = recognisers.get(params.kind).fit(prep, sides, params, stop=stop, progress=progress)
    raise_if_stopped(stop)
    return result


def held_out_metrics(prep: Prepared, idx: list[int], rows: list) -> dict:
    """``metrics.summarize`` of class scores ``rows`` for samples ``idx``; no hand counts as ``nothing``."""
    pred = [prep.labels[int(np.argmax(row))] if row is not None else NOTHING for row in rows]
    samples = prep.ds.samples
    return summarize([samples[i].label for i in idx], pred, [not prep.found[i] for i in idx],
                     [samples[i].source for i in idx])


def train(data, out, params: TrainParams = TrainParams(), *, cache=None, progress: bool = True,
          stop: threading.Event | None = None) -> dict:
    """Train a recogniser on image folders and write its bundle to ``out``.

    Args:
        data: data folders (``--data``), each a folder of class folders or the Kaggle layout.
        out: bundle folder to write: new, empty, or a bundle to replace (atomically).
        params: resolved settings, written into the bundle.
        cache: cache folder for the hand model and landmarks.
        stop: an event that ends the run at the next safe point (after a training step, a
            detected image, a stage) with KeyboardInterrupt, leaving any previous bundle as it
            was. The CLI sets it on Ctrl-C; the library never touches signal handlers.
    Returns:
        The metrics dict written to ``metrics.json``.
    Raises:
        DatasetError: unusable data folders; FingerspellError: nothing to train on;
        OutputFolderError: ``out`` is a folder of other files (checked before any work).
    """
    bundle.check_target(out)
    folders, ds = load(data, params)
    sides = split(ds, params.split)
    prep = prepare(folders, ds, params, cache=cache, progress=progress, stop=stop)
    sides = {k: [i for i in v if i not in prep.bad] for k, v in sides.items()}
    if not sides["train"]:
        raise FingerspellError("no training images left after the split; add data or lower --val-fraction")
    model, history, probs = fit_recipe(prep, sides, params, progress=progress, stop=stop)
    tf, keras = tf_keras()

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
        if not recognisers.get(params.kind).Runtime.reads_pixels:
            files[bundle.ANCHORS] = anchors_file(prep, sides["train"])
        meta = bundle.BundleMeta(
            kind=params.kind,
            labels=list(prep.labels),
            preprocessing=recognisers.get(params.kind).preprocessing(params),
            hand_model_sha256=sha256_file(prep.hand_model),
            config=to_dict(params),
            metrics={side: {k: metrics[side][k] for k in ("n", "top1", "macro_f1", "no_hand_rate")}
                     for side in ("val", "test") if side in metrics},
            split=metrics["split"],
            data={"folders": [str(Path(d).resolve()) for d in folders], "images": len(ds.samples),
                  "per_source": metrics["data"]["per_source"], "skipped": len(ds.skipped)},
            source_commit=_source_commit(),
            created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            versions={"fingerspell": __version__, "tensorflow": tf.__version__, "keras": keras.__version__,
                      "python": platform.python_version()},
        )
        files[bundle.CARD] = meta.model_card(metrics)
        raise_if_stopped(stop)
        path = bundle.write_bundle(out, meta, files)
    log.info("bundle written to %s", path)
    return metrics


def anchors_file(prep: Prepared, train: list[int]) -> str:
    """``anchors.jsonl``: a few training hands of each label, spread over groups, which teaching
    keeps for the labels a person does not teach (teach/). Training hands only: never a held-out one."""
    idx = [i for i in train if prep.ext[i].hand is not None]
    samples = prep.ds.samples
    return records.dumps(anchors_of([prep.ext[i].hand for i in idx], [prep.labels[prep.y[i]] for i in idx],
                                    [samples[i].group or samples[i].path for i in idx]))


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


def _check_export(tflite: bytes, model, ds, ext, sides, params) -> None:
    """The LiteRT export must agree with Keras on inputs made as serving makes them (the runtime
    half, from the record written into the bundle); a silent conversion bug would ship a bad model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=tflite)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
    rec = recognisers.get(params.kind)
    runtime = rec.Runtime.from_record(rec.preprocessing(params))
    idx = [i for i in sides["train"] if ext[i].hand is not None][:8]
    x = np.stack([runtime.inputs([recognisers.Seen(0, ext[i].hand)],
                                 lambda i=i: (read_image(ds.samples[i].path), ext[i].hand)) for i in idx])
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
