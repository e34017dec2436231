"""``fingerspell train --motion``: learn J and Z from recorded motion and carry it beside a bundle's model.

Reads recordings (landmark arrays in the ``dynamic/`` layout beside ``static/`` ones, or landmark
records files: records with ``t_ms`` are recordings, those without static hands), holds out the
recordings and static rows of ``Split``, fits ``motion.fit`` on the rest, checks the LiteRT export
against Keras, measures the held-out figures (``motion.scored``, at 30, 15 and 60 frames/s) and
writes a copy of the base bundle with the motion recogniser as its ``extra`` entry ``motion``
(replacing any there), its figures in ``metrics.json`` and a section of the model card.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .. import bundle, records
from ..errors import FingerspellError
from ..recognisers import motion as runtime
from . import motion, streams

log = logging.getLogger(__name__)
RATES = (30, 15, 60)


def read(data) -> tuple[list[streams.Recording], dict[str, np.ndarray]]:
    """The recordings and static hands of ``data`` (folders of landmark arrays or records files).

    Raises:
        FingerspellError: no J or Z recording, or no static hand to build streams from.
    """
    found: list[records.Record] = []
    for source in [data] if isinstance(data, (str, Path)) else data:
        found += records.read_arrays(source) if records.is_arrays_folder(source) else records.read(source)
    recs, statics = streams.recordings(found), streams.static_hands(found)
    if not any(r.label in motion.MOTION_LETTERS for r in recs):
        raise FingerspellError("no J or Z recordings in the data: give recordings (dynamic/J.npy, dynamic/Z.npy, or "
                               "landmark records with t_ms) to learn motion from")
    if not statics:
        raise FingerspellError("no static hands in the data: the motion recogniser learns the moves between "
                               "letters from them (static/<LETTER>.npy, or records without t_ms)")
    return recs, statics


def train_motion(data, out, base=None, *, split: motion.Split = motion.Split(), clips: int = 3000,
                 epochs: int = 30, seed: int = 1, stop=None) -> dict:
    """Fit the motion recogniser and write ``base`` (None: the bundled model) with it to ``out``.

    Returns:
        The motion figures written into ``metrics.json`` (``"motion"``).
    Raises:
        FingerspellError: the data lack recordings or static hands; BundleError: ``base`` does
        not load; OutputFolderError: ``out`` is not a place for a bundle.
    """
    from ai_edge_litert.interpreter import Interpreter

    from .train import _source_commit, export_tflite

    bundle.check_target(out)
    base = bundle.resolve(base)
    meta = bundle.load_meta(base)
    recs, statics = read(data)
    train_recs, train_statics = split.recordings(recs, False), split.statics(statics, False)
    held_recs, held_statics = split.recordings(recs, True), split.statics(statics, True)
    log.info("motion: %d recordings (%d held out), %d static letters; split by %s", len(recs), len(held_recs),
             len(statics), split.to_json()["by"])
    rng = np.random.default_rng(seed)
    x, y = motion.dataset(rng, train_statics, train_recs, clips, runtime.Runtime())
    log.info("motion: %s windows from %d synthesised streams (%s)", f"{len(x):,}", clips,
             ", ".join(f"{k} {n:,}" for k, n in zip(runtime.LABELS, np.bincount(y, minlength=3))))
    model = motion.fit(x, y, seed, epochs, stop=stop)
    tflite = export_tflite(model)
    interp = Interpreter(model_content=tflite)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

    def predict(batch: np.ndarray) -> np.ndarray:  # the export, as serving runs it
        rows = []
        for row in batch:
            interp.set_tensor(inp, row[None].astype(np.float32))
            interp.invoke()
            rows.append(interp.get_tensor(outp)[0].copy())
        return np.stack(rows)

    probe = x[:: max(1, len(x) // 16)][:16]
    if np.abs(predict(probe) - model.predict(probe, verbose=0)).max() > 1e-3:
        raise FingerspellError("the motion recogniser's LiteRT export disagrees with Keras")
    figures = {"split": split.to_json(), "windows": int(len(x)), "clips": clips, "seed": seed,
               "held_out": {}}
    if held_recs and held_statics:
        for fps in RATES:
            figures["held_out"][str(fps)] = motion.scored(np.random.default_rng(seed + fps), held_statics,
                                                          held_recs, predict, fps)
            log.info("motion at %d frames/s: %s", fps, brief(figures["held_out"][str(fps)]))
    entry = bundle.ExtraModel(kind=runtime.KIND, labels=list(runtime.LABELS), preprocessing=runtime.preprocessing(),
                              file=f"{runtime.KIND}.tflite", metrics=summary(figures))
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / f"{runtime.KIND}.keras"
        model.save(keras_path)
        files: dict = {p.relative_to(base).as_posix(): p for p in base.rglob("*") if p.is_file()
                       and p.relative_to(base).as_posix() not in (bundle.META, entry.file, keras_path.name)}
        files[entry.file] = tflite
        files[keras_path.name] = keras_path
        metrics = bundle.read_json(base, bundle.METRICS)
        metrics["motion"] = {**figures, "source_commit": _source_commit(),
                             "data": [str(Path(d).resolve()) for d in ([data] if isinstance(data, (str, Path)) else data)]}
        files[bundle.METRICS] = json.dumps(metrics, indent=1) + "\n"
        card = (base / bundle.CARD).read_text(encoding="utf-8") if (base / bundle.CARD).is_file() else ""
        files[bundle.CARD] = card.split("\n## Motion recogniser")[0].rstrip("\n") + "\n\n" + card_section(figures)
        extra = [e for e in meta.extra if e.kind != runtime.KIND] + [entry]
        bundle.write_bundle(out, dataclasses.replace(meta, extra=extra), files)
    return figures


def brief(fig: dict) -> str:
    """One line of held-out figures at one frame rate."""
    parts = [f"{k} recall {fig[k]['recall']:.0%} precision "
             f"{'-' if fig[k]['precision'] is None else format(fig[k]['precision'], '.0%')} (n={fig[k]['n']})"
             for k in motion.MOTION_LETTERS]
    jumps = (f", {fig['jumps']['per_200']:.2f} per 200 jumps between letters (n={fig['jumps']['n']})"
             if "jumps" in fig else "")
    return (", ".join(parts) + f"; false alarms: {fig['signs']['false_alarms']} in {fig['signs']['n']} word signs, "
            f"{fig['transitions']['per_200']:.2f} per 200 moves between letters (n={fig['transitions']['n']}){jumps}")


def summary(figures: dict) -> dict:
    """bundle.json's summary: recall, precision and false alarms per frame rate."""
    return {fps: {"recall": {k: round(f[k]["recall"], 4) for k in motion.MOTION_LETTERS},
                  "precision": {k: None if f[k]["precision"] is None else round(f[k]["precision"], 4)
                                for k in motion.MOTION_LETTERS},
                  "word_sign_false_alarm_rate": round(f["signs"]["rate"], 4),
                  "false_alarms_per_200_transitions": round(f["transitions"]["per_200"], 3),
                  **({"false_alarms_per_200_jumps": round(f["jumps"]["per_200"], 3)} if "jumps" in f else {})}
            for fps, f in figures["held_out"].items()}


def card_section(figures: dict) -> str:
    """The model card's section on the motion recogniser."""
    lo, hi = figures["split"]["held_out"]
    lines = ["## Motion recogniser (J and Z)", "",
             "`motion.tflite` reads the last second of the stream's hands (fingertip paths relative to the newest "
             "wrist, in palm sizes, resampled by time: any frame rate) and answers J, Z or nothing for the frame just "
             "after a J or Z movement ends; its probability is folded into the model's where the model reads the "
             "hand as one of that letter's handshapes (see docs/motion.md).", "",
             f"Trained on one person's recordings (landmarks_tresajoby: J, Z and ten word signs, 30 frames at ~30 "
             f"frames/s) and static letters, recordings {lo}-{hi} of each file and static rows {lo}-{hi} held out; "
             f"{figures['windows']:,} windows of {figures['clips']:,} synthesised streams (letters, moves and jumps "
             "between them, holds, slides, hands coming and going, the signs).", "",
             "Held-out figures (the motion recogniser alone):", ""]
    for fps, f in figures["held_out"].items():
        lines.append(f"- {fps} frames/s: {brief(f)}")
    lines += ["", "Limits: one person's motion, recorded on cue; the moves between letters are synthesised, not "
              "recorded. Other people's J and Z are unmeasured.", ""]
    return "\n".join(lines)
