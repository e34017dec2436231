"""Model bundles: what loading refuses, and that a failed or interrupted save keeps the old one."""

from __future__ import annotations

import contextlib
import json
import os
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import fake_extract
from fingerspell import bundle, features
from fingerspell.cli.training import ctrl_c_asks_to_stop
from fingerspell.config import DetectParams, LandmarkParams, SplitParams, TrainParams
from fingerspell.errors import BundleError, OutputFolderError
from fingerspell.extract import Extracted
from fingerspell.hands.model import TASK_SHA256
from fingerspell.labels import DEFAULT_LABELS
from fingerspell.predictor import Predictor
from test_predictor import FakeFinder


@pytest.fixture
def copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle that a test may break."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


# What a landmark bundle.json says about its model, besides the labels.
LANDMARKS = {"kind": "landmarks", "preprocessing": {"kind": "landmarks", **features.PREPROCESSING}}


def edit_meta(folder: Path, **changes) -> Path:
    meta = json.loads((folder / bundle.META).read_text())
    meta.update(changes)
    (folder / bundle.META).write_text(json.dumps(meta))
    return folder


def leftovers(parent: Path) -> list[str]:
    """Temporary or old folders a save may have left beside the bundle."""
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


# -- round trip -----------------------------------------------------------------------------------


def test_a_tiny_bundle_loads_into_a_predictor_with_its_labels(tiny_bundle, hand_model):
    meta = bundle.load_meta(tiny_bundle)
    assert isinstance(meta, bundle.BundleMeta) and meta.to_json()["format_version"] == bundle.FORMAT_VERSION
    assert meta.labels == list(DEFAULT_LABELS) and meta.num_outputs == 29
    predictor = Predictor.from_bundle(tiny_bundle, hand_model=hand_model)
    try:
        assert predictor.kind == "landmarks"
        assert predictor.labels == list(DEFAULT_LABELS)
        info = predictor.info()
        assert info["bundle"] == str(tiny_bundle) and info["hand_model_sha256"] == TASK_SHA256
        assert info["metrics"] == {"note": "untrained test fixture"}
    finally:
        predictor.close()


def test_write_bundle_sets_the_format_version_and_writes_text_bytes_and_copies(tmp_path, tiny_bundle):
    src = tmp_path / "curve.png"
    src.write_bytes(b"\x89PNG fake")
    tflite = (tiny_bundle / bundle.TFLITE).read_bytes()
    meta = {**LANDMARKS, "labels": ["A", "B", "C"], "num_outputs": 3}
    out = bundle.write_bundle(tmp_path / "new", meta, {bundle.TFLITE: tflite, bundle.CARD: "# card\n",
                                                       f"{bundle.PLOTS}/curve.png": src})
    assert out == (tmp_path / "new").resolve()
    assert json.loads((out / bundle.META).read_text())["format_version"] == bundle.FORMAT_VERSION
    assert (out / bundle.CARD).read_text() == "# card\n"
    assert (out / bundle.PLOTS / "curve.png").read_bytes() == b"\x89PNG fake"
    assert (out / bundle.TFLITE).read_bytes() == tflite


def test_read_json_returns_an_empty_dict_for_an_absent_file(copy):
    assert bundle.read_json(copy, bundle.METRICS) == {}
    (copy / bundle.METRICS).write_text('{"val": {"top1": 0.5}}')
    assert bundle.read_json(copy, bundle.METRICS) == {"val": {"top1": 0.5}}


# -- what loading refuses -------------------------------------------------------------------------


def test_a_missing_bundle_folder_says_what_to_give(tmp_path):
    with pytest.raises(BundleError, match=r"model bundle .*nowhere does not exist \(give --model a folder written by `fingerspell train`\)"):
        bundle.load_meta(tmp_path / "nowhere")


def test_a_folder_without_bundle_json_is_not_a_bundle(copy):
    (copy / bundle.META).unlink()
    with pytest.raises(BundleError, match=r"bundle\.json is missing: .* is not a model bundle"):
        bundle.load_meta(copy)


@pytest.mark.parametrize("content", [b'{"kind": "landmarks", ', b"\xff\xfe\x00garbage", b"[1, 2, 3]"])
def test_a_corrupt_bundle_json_is_reported_as_corrupt(copy, content):
    (copy / bundle.META).write_bytes(content)
    with pytest.raises(BundleError, match=r"bundle\.json is corrupt"):
        bundle.load_meta(copy)


def test_another_format_version_names_the_file_and_both_versions(copy):
    edit_meta(copy, format_version=2)
    with pytest.raises(BundleError) as info:
        bundle.load_meta(copy)
    message = str(info.value)
    assert str(copy / bundle.META) in message
    assert "format version 2; this fingerspell reads version 1" in message
    assert "Retrain" in message


@pytest.mark.parametrize("changes, message", [
    ({"kind": "svm"}, r"unknown model kind 'svm' \(known: landmarks, cnn\)"),
    ({"labels": "ABC"}, r"'labels' must be a non-empty list of names"),
    ({"labels": []}, r"'labels' must be a non-empty list of names"),
    ({"labels": ["A", "A"], "num_outputs": 2}, r"'labels' has duplicates"),
    ({"num_outputs": 30}, r"29 labels but the model has 30 outputs"),
    ({"labels": list("ABC")}, r"3 labels but the model has 29 outputs"),
])
def test_bad_bundle_json_fields_are_refused(copy, changes, message):
    edit_meta(copy, **changes)
    with pytest.raises(BundleError, match=message):
        bundle.load_meta(copy)


def test_a_bundle_without_its_serving_export_is_refused(copy):
    (copy / bundle.TFLITE).unlink()
    with pytest.raises(BundleError, match=r"model\.tflite is missing: the bundle has no serving export"):
        bundle.load_meta(copy)


class StubWorkers:
    """Stands in for the MediaPipe networks (``hands.Workers``) where a test is about the bundle, not about hands."""

    made: list["StubWorkers"] = []

    def __init__(self, *args, **kwargs):
        self.closed = False
        StubWorkers.made.append(self)

    def warm(self, *args, **kwargs):
        pass

    def close(self):
        self.closed = True


@pytest.fixture
def stub_workers(monkeypatch):
    from fingerspell import predictor as predictor_mod

    StubWorkers.made = []
    monkeypatch.setattr(predictor_mod, "Workers", StubWorkers)
    return StubWorkers.made


def test_a_corrupt_serving_export_is_refused_when_loading_the_predictor(copy, hand_model, stub_workers):
    (copy / bundle.TFLITE).write_bytes(b"not a flatbuffer" * 8)
    with pytest.raises(BundleError, match=r"model\.tflite is not a loadable LiteRT model .*retrain or restore"):
        Predictor.from_bundle(copy, hand_model=hand_model)


def test_labels_that_disagree_with_the_exported_model_are_refused(copy, hand_model, stub_workers):
    # bundle.json is self-consistent, but the LiteRT model has 29 outputs
    edit_meta(copy, labels=list("ABC"), num_outputs=3)
    with pytest.raises(BundleError, match=r"model\.tflite has 29 outputs but bundle\.json lists 3 labels"):
        Predictor.from_bundle(copy, hand_model=hand_model)


def test_a_landmark_bundle_with_an_image_model_is_refused(tmp_path, hand_model, stub_workers):
    from conftest import make_tiny_bundle

    cnn = make_tiny_bundle(tmp_path / "cnn", kind="cnn")
    edit_meta(cnn, **LANDMARKS)  # bundle.json says landmarks throughout; only the export is a CNN
    with pytest.raises(BundleError, match=r"expects input \(16, 16, 3\), not the 288 landmark features"):
        Predictor.from_bundle(cnn, hand_model=hand_model)


@pytest.mark.parametrize("damage", ["corrupt export", "labels disagree"])
def test_a_refused_bundle_leaves_no_hand_detector_open(copy, hand_model, stub_workers, damage):
    if damage == "corrupt export":
        (copy / bundle.TFLITE).write_bytes(b"not a flatbuffer" * 8)
    else:
        edit_meta(copy, labels=list("ABC"), num_outputs=3)
    with pytest.raises(BundleError):
        Predictor.from_bundle(copy, hand_model=hand_model)
    assert all(d.closed for d in stub_workers), "a detector of the refused bundle was left open"


def test_detect_settings_from_a_newer_version_are_refused(copy, hand_model):
    edit_meta(copy, config={"detect": {"min_detection_confidence": 0.3, "use_gpu": True}})
    with pytest.raises(BundleError, match=r"detect settings not understood .*use_gpu"):
        Predictor.from_bundle(copy, hand_model=hand_model)


# -- atomic writes --------------------------------------------------------------------------------


def test_a_failure_while_writing_files_keeps_the_old_bundle_and_leaves_no_temp_folder(copy, tmp_path):
    before = (copy / bundle.META).read_bytes()
    tflite = (copy / bundle.TFLITE).read_bytes()
    files = {bundle.TFLITE: tflite, bundle.CARD: "# new card\n",
             bundle.KERAS: tmp_path / "vanished.keras"}  # a file to copy that is gone: FileNotFoundError
    with pytest.raises(FileNotFoundError):
        bundle.write_bundle(copy, {**LANDMARKS, "labels": list(DEFAULT_LABELS), "num_outputs": 29}, files)
    assert (copy / bundle.META).read_bytes() == before
    assert not (copy / bundle.CARD).exists()
    bundle.load_meta(copy)
    assert leftovers(copy.parent) == []


def test_a_new_bundle_that_would_not_load_is_never_moved_into_place(copy):
    before = (copy / bundle.META).read_bytes()
    tflite = (copy / bundle.TFLITE).read_bytes()
    with pytest.raises(BundleError, match="3 labels but the model has 4 outputs"):
        bundle.write_bundle(copy, {**LANDMARKS, "labels": list("ABC"), "num_outputs": 4}, {bundle.TFLITE: tflite})
    assert (copy / bundle.META).read_bytes() == before
    assert leftovers(copy.parent) == []


def test_an_interrupt_during_the_save_keeps_the_old_bundle(copy, monkeypatch):
    before = (copy / bundle.META).read_bytes()
    tflite = (copy / bundle.TFLITE).read_bytes()

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle, "load_meta", interrupted)  # the check that runs just before the swap
    with pytest.raises(KeyboardInterrupt):
        bundle.write_bundle(copy, {**LANDMARKS, "labels": list(DEFAULT_LABELS), "num_outputs": 29},
                            {bundle.TFLITE: tflite, bundle.CARD: "# new\n"})
    monkeypatch.undo()
    assert (copy / bundle.META).read_bytes() == before
    bundle.load_meta(copy)
    assert leftovers(copy.parent) == []


def test_a_bundle_left_aside_by_a_killed_save_is_put_back_when_loading(copy):
    """SIGKILL between write_bundle's two renames leaves the old bundle at .NAME.old-PID."""
    import subprocess
    import sys

    before = (copy / bundle.META).read_bytes()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    aside = copy.with_name(f".{copy.name}.old-{int(dead.stdout)}")
    copy.rename(aside)
    busy = copy.with_name(f".{copy.name}.old-{os.getpid()}")  # a save still at work: left alone
    shutil.copytree(aside, busy)
    try:
        assert bundle.load_meta(copy).kind == "landmarks"
        assert (copy / bundle.META).read_bytes() == before
        assert not aside.exists() and busy.exists()
    finally:
        shutil.rmtree(busy)


def test_a_successful_save_replaces_the_old_bundle_whole(copy):
    # The old bundle's own files that the new one does not have are gone with it...
    (copy / bundle.KERAS).write_bytes(b"old keras model")
    (copy / bundle.PLOTS).mkdir(exist_ok=True)
    (copy / bundle.PLOTS / "old-curves.png").write_bytes(b"\x89PNG old")
    tflite = (copy / bundle.TFLITE).read_bytes()
    bundle.write_bundle(copy, {**LANDMARKS, "labels": list(DEFAULT_LABELS), "num_outputs": 29,
                               "metrics": {"marker": 2}}, {bundle.TFLITE: tflite})
    assert bundle.load_meta(copy).metrics == {"marker": 2}
    assert not (copy / bundle.KERAS).exists() and not (copy / bundle.PLOTS).exists()
    assert leftovers(copy.parent) == []


def test_a_bundle_holding_a_file_it_never_had_is_not_replaced(copy):
    # ...but a file someone put in the folder is never deleted: the save is refused instead.
    (copy / "stale.txt").write_text("put here by hand")
    tflite = (copy / bundle.TFLITE).read_bytes()
    with pytest.raises(OutputFolderError, match=r"stale\.txt, which fingerspell did not write"):
        bundle.write_bundle(copy, {**LANDMARKS, "labels": list(DEFAULT_LABELS), "num_outputs": 29},
                            {bundle.TFLITE: tflite})
    assert (copy / "stale.txt").read_text() == "put here by hand"
    assert bundle.load_meta(copy).metrics == {"note": "untrained test fixture"}
    assert leftovers(copy.parent) == []


# -- bundles written by train ---------------------------------------------------------------------


QUICK = TrainParams(split=SplitParams(grouping="random", val_fraction=0.25), workers=1,
                    landmarks=LandmarkParams(hidden=(16,), epochs=2, augment_copies=1))


@pytest.mark.slow  # a Keras fit
def test_a_trained_bundle_holds_no_pickle(fake_hands, synthetic_data, tmp_path, tiny_bundle):
    out = tmp_path / "trained"
    fake_hands.train([synthetic_data], out, QUICK, progress=False)
    meta = bundle.load_meta(out)
    assert meta.labels == ["A", "B", "C"] and meta.config["landmarks"]["hidden"] == [16]
    for folder in (out, tiny_bundle):
        for f in folder.rglob("*"):
            if f.is_file():
                assert_no_pickle(f.name, f.read_bytes())
                if zipfile.is_zipfile(f):  # model.keras is a zip of JSON and HDF5
                    with zipfile.ZipFile(f) as z:
                        for name in z.namelist():
                            assert_no_pickle(f"{f.name}:{name}", z.read(name))


@pytest.mark.parametrize("use_unrefined", [True, False])
@pytest.mark.slow  # a Keras fit
def test_training_learns_from_the_unrefined_estimate_of_each_hand_too(fake_hands, synthetic_data, tmp_path,
                                                                       monkeypatch, caplog, use_unrefined):
    import dataclasses
    import logging

    def refined_extract(paths, params=None, **kwargs):
        out = fake_extract(paths, params)
        for k, e in enumerate(out[::2]):  # every other hand was refined; the rest were not
            first = dataclasses.replace(e.hand, landmarks=e.hand.landmarks + np.float32(0.001))
            out[2 * k] = Extracted(dataclasses.replace(e.hand, unrefined=first))
        return out

    monkeypatch.setattr(fake_hands, "extract", refined_extract)
    params = dataclasses.replace(QUICK, landmarks=dataclasses.replace(QUICK.landmarks, members=1,
                                                                      unrefined=use_unrefined))
    with caplog.at_level(logging.INFO, logger="fingerspell.training"):
        fake_hands.train([synthetic_data], tmp_path / "b", params, progress=False)
    line = next(r.getMessage() for r in caplog.records if "training landmark MLP" in r.getMessage())
    hands, unrefined = [int(n.replace(",", "")) for n in
                        (line.split(" on ")[1].split(" hands")[0], line.split(" and ")[1].split(" unrefined")[0])]
    assert hands == 18  # 24 images, a quarter held out
    if use_unrefined:
        assert 0 < unrefined <= 12  # only the refined hands (every other one) that are in training
    else:
        assert unrefined == 0


def assert_no_pickle(name: str, data: bytes) -> None:
    assert not name.endswith((".pkl", ".pickle", ".joblib", ".npy")), f"{name}: pickle-like file"
    if data[:1] == b"\x80" and 2 <= data[1:2][0] <= 5:
        try:
            ops = list(pickletools.genops(data))
        except Exception:  # noqa: BLE001 - not a pickle after all
            return
        pytest.fail(f"{name} is a pickle ({len(ops)} opcodes)")


@pytest.mark.parametrize("where", ["export", "swap"])
@pytest.mark.slow  # a Keras fit
def test_an_interrupted_training_run_keeps_the_previous_bundle(fake_hands, synthetic_data, copy, monkeypatch, where):
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "export":
        monkeypatch.setattr(fake_hands, "export_tflite", interrupt)
    else:
        monkeypatch.setattr(bundle, "load_meta", interrupt)  # inside write_bundle, after every file is written
    with pytest.raises(KeyboardInterrupt):
        fake_hands.train([synthetic_data], copy, QUICK, progress=False)
    monkeypatch.undo()
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before
    bundle.load_meta(copy)
    assert leftovers(copy.parent) == []


@pytest.mark.slow  # a Keras fit
def test_ctrl_c_while_fitting_stops_the_fit_then_interrupts_and_keeps_the_previous_bundle(
        fake_hands, synthetic_data, copy, caplog):
    import dataclasses
    import logging
    import signal
    import threading

    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    handler = signal.getsignal(signal.SIGINT)

    class CtrlCOnceFitting(logging.Handler):
        def emit(self, record):
            if "training landmark MLP" in record.getMessage():
                threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()

    hook = CtrlCOnceFitting()
    logging.getLogger("fingerspell.training").addHandler(hook)
    endless = dataclasses.replace(QUICK, landmarks=dataclasses.replace(QUICK.landmarks, epochs=10**7))
    try:
        with caplog.at_level(logging.INFO, logger="fingerspell.training"), pytest.raises(KeyboardInterrupt) as caught:
            with ctrl_c_asks_to_stop() as stop:  # what `fingerspell train` runs the library inside
                fake_hands.train([synthetic_data], copy, endless, progress=False, stop=stop)
    finally:
        logging.getLogger("fingerspell.training").removeHandler(hook)
    # Raised by the library once Keras had stopped, not by the signal handler inside TensorFlow.
    assert caught.traceback[-1].name == "raise_if_stopped"
    assert signal.getsignal(signal.SIGINT) is handler
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before and leftovers(copy.parent) == []


def test_a_second_ctrl_c_while_fitting_goes_through_at_once():
    import signal
    import time

    # Python's own handler, whatever an in-process CLI test installed before this one.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            with ctrl_c_asks_to_stop() as stop:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)
                assert stop.is_set()  # the first only asks the fit to stop
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
                pytest.fail("a second Ctrl-C did not interrupt")
        assert caught.traceback[-1].name != "raise_if_stopped"
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_bundle_meta_is_the_schema_written_and_read_back(tmp_path, tiny_bundle):
    meta = bundle.BundleMeta(kind="landmarks", labels=["A", "B"], preprocessing=LANDMARK_RECORD,
                             metrics={"val": {"n": 2, "top1": 0.5, "macro_f1": 0.5, "no_hand_rate": 0.0}})
    written = meta.to_json()
    assert written["format_version"] == bundle.FORMAT_VERSION and written["num_outputs"] == 2
    assert "split" not in written and "extra" not in written  # unset fields are left out, not written as null
    assert list(written)[:4] == ["format_version", "kind", "labels", "num_outputs"]
    out = bundle.write_bundle(tmp_path / "m", meta, {bundle.TFLITE: (tiny_bundle / bundle.TFLITE).read_bytes()})
    assert json.loads((out / bundle.META).read_text()) == written
    assert bundle.load_meta(out) == meta


# -- the schema, typed both ways ------------------------------------------------------------------


LANDMARK_RECORD = {"kind": "landmarks", **features.preprocessing(depth=False)}
MOTION = {"kind": "motion", "labels": ["J", "Z", "nothing"], "file": "motion.tflite",
          "preprocessing": {"kind": "motion", "frames": 30, "features": "wrist and fingertip tracks"},
          "metrics": {"val": {"n": 40, "top1": 0.8}}}


def full_meta(**changes) -> bundle.BundleMeta:
    """A BundleMeta with every field set, as train writes one, and a motion recogniser beside it."""
    fields = dict(kind="landmarks", labels=list("ABC"), preprocessing=LANDMARK_RECORD, hand_model_sha256=TASK_SHA256,
                  config={"kind": "landmarks", "detect": {"refine": 2, "retries": ["pad:0.3"]}, "seed": 7},
                  metrics={"val": {"n": 9, "top1": 0.75}}, split={"grouping": "random", "seed": 7},
                  data={"folders": ["/data/x"], "images": 12}, source_commit="abc1234",
                  created="2026-12-01T00:00:00+00:00", versions={"fingerspell": "0.1.0"},
                  extra=[bundle.ExtraModel(**MOTION)])
    return bundle.BundleMeta(**{**fields, **changes})


def test_bundle_meta_round_trips_through_json_with_a_second_recogniser():
    meta = full_meta()
    text = json.dumps(meta.to_json())
    back = bundle.BundleMeta.from_json(json.loads(text), "bundle.json")
    assert back == meta
    assert back.extra[0].kind == "motion" and back.extra[0].labels == ["J", "Z", "nothing"]
    assert back.detect.refine == 2 and back.detect.retries == ("pad:0.3",)
    assert json.dumps(back.to_json()) == text


def test_the_bundled_default_model_is_read_in_todays_schema_unchanged():
    raw = json.loads((bundle.DEFAULT_BUNDLE / bundle.META).read_text())
    meta = bundle.load_meta(None)
    assert meta.to_json() == raw  # nothing to upgrade, nothing lost
    assert meta.kind == "landmarks" and meta.num_outputs == 29 and [e.kind for e in meta.extra] == ["motion"]
    assert meta.preprocessing["features"] == "fingerspell.features.v1" and meta.preprocessing["depth"] is False


def old_bundle_json(labels: list[str]) -> dict:
    """bundle.json as fingerspell wrote it before the depth option and refinement (late November
    2026, commits d940af7..d85c389): preprocessing without depth (the model read z), detection
    settings without refine, reframe, stream_retries and near_ms, the landmark recipe of then."""
    return {
        "format_version": 1, "kind": "landmarks", "labels": labels, "num_outputs": len(labels),
        "preprocessing": {"kind": "landmarks", "features": "fingerspell.features.v1",
                          "points": "image landmarks in pixel units (x*w, y*h, z*w)",
                          "mirror": "left hands mirrored to right (x -> -x)", "centre": "wrist",
                          "scale": "mean wrist-to-finger-base distance",
                          "parts": {"coords": 63, "distances": 210, "angles": 15}},
        "hand_model_sha256": TASK_SHA256,
        "config": {"kind": "landmarks",
                   "split": {"val_fraction": 0.2, "test_fraction": 0.0, "seed": 1234, "grouping": "auto",
                             "group_regex": None, "frame_block": 300},
                   "detect": {"min_detection_confidence": 0.3, "min_presence_confidence": 0.3,
                              "min_tracking_confidence": 0.3,
                              "retries": ["pad:0.3", "pad:1.0", "edge:0.3", "equalize:0.3"],
                              "video_retries": 1, "max_side": 640},
                   "landmarks": {"hidden": [256, 128], "dropout": 0.3, "epochs": 60, "batch_size": 128,
                                 "learning_rate": 0.002, "label_smoothing": 0.05, "rotate_degrees": 15.0,
                                 "scale_range": 0.15, "jitter": 0.01, "augment_copies": 4},
                   "seed": 1234, "workers": 0, "limit_per_class": None},
        "metrics": {"val": {"n": 10, "top1": 0.9, "macro_f1": 0.9, "no_hand_rate": 0.0}},
        "split": {"grouping": "auto", "seed": 1234}, "data": {"folders": ["/data"], "images": 50},
        "source_commit": "3f6a242", "created": "2026-11-28T18:00:00+00:00",
        "versions": {"fingerspell": "0.1.0", "tensorflow": "2.21.0", "keras": "3.15.1", "python": "3.11.7"},
    }


def test_a_bundle_of_the_old_format_is_upgraded_when_loading_and_predicts_as_it_was_trained(
        tmp_path, tiny_bundle, hand_model, stub_workers):
    from conftest import TEMPLATE
    from fingerspell.hands import Hand
    from fingerspell.recognisers.litert import Classifier

    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copyfile(tiny_bundle / bundle.TFLITE, folder / bundle.TFLITE)
    raw = json.dumps(old_bundle_json(list(DEFAULT_LABELS)))
    (folder / bundle.META).write_text(raw)

    meta = bundle.load_meta(folder)
    assert meta.preprocessing["depth"] is True  # the old model read MediaPipe's z
    assert meta.preprocessing["features"] == "fingerspell.features.v1"
    assert meta.config["detect"]["refine"] == 0 and meta.detect.refine == 0  # found without refinement
    assert meta.detect.retries == ("pad:0.3", "pad:1.0", "edge:0.3", "equalize:0.3")
    assert meta.detect.near_ms == DetectParams().near_ms  # how serving looks for a hand: today's
    assert (folder / bundle.META).read_text() == raw  # upgraded when read; the file is left as it was

    tilted = TEMPLATE + np.random.default_rng(5).normal(0, 15, (21, 3)) + [320, 300, 0]
    lm = (tilted / [640, 480, 640]).astype(np.float32)
    hand = Hand(lm, lm, "Left", 0.9, (640, 480))
    with contextlib.closing(Predictor.from_bundle(folder, hand_model=hand_model)) as p:
        assert (p.runtime.depth, p.runtime.version) == (True, 1)
        assert p.detect_params.refine == 0
        p.finder = FakeFinder(hand)  # the seam: detection is not what this test is about
        pred = p.predict(np.zeros((480, 640, 3), np.uint8))
    model = Classifier(folder / bundle.TFLITE)
    as_trained = model(features.from_hand(hand, depth=True, version=1))
    assert pred.letter == DEFAULT_LABELS[int(np.argmax(as_trained))]
    assert pred.score == pytest.approx(float(as_trained.max()), abs=1e-6)
    # and the upgrade decided it: today's features give this (random) model other scores
    assert not np.allclose(as_trained, model(features.from_hand(hand, depth=False, version=2)))


def test_an_old_cnn_record_without_crop_to_hand_is_read_as_cropping():
    doc = bundle.BundleMeta(kind="cnn", labels=["A"], preprocessing={"kind": "cnn", "image_size": 64,
                                                                     "crop_margin": 0.25}).to_json()
    meta = bundle.BundleMeta.from_json(doc, "bundle.json")
    assert meta.preprocessing["crop_to_hand"] is True
    assert "crop_to_hand" not in doc["preprocessing"]  # the caller's document is not changed


def broken(path: str, value) -> dict:
    """The JSON of ``full_meta()`` with the field at dotted ``path`` set to ``value`` (DELETE: removed)."""
    doc = full_meta().to_json()
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        last = int(last)
        if last == len(node):
            node.append(None)  # one entry more
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


@pytest.mark.parametrize("path, value, message", [
    ("colour", "blue", r"unknown field\(s\) colour \(known: .*\); written by a newer fingerspell\?"),
    ("kind", "svm", r"unknown model kind 'svm' \(known: landmarks, cnn\)"),
    ("labels", ["A", 3, "C"], r"'labels' must be a non-empty list of names"),
    ("num_outputs", DELETE, r"3 labels but the model has None outputs"),
    ("preprocessing", DELETE, r"'preprocessing' is missing"),
    ("preprocessing", "features v2", r"'preprocessing' must be an object, not str"),
    ("preprocessing.kind", "cnn", r"'preprocessing.kind' is 'cnn' but the model kind is 'landmarks'"),
    ("preprocessing.features", DELETE, r"'preprocessing.features' is missing"),
    ("preprocessing.features", "fingerspell.features.v3",
     r"'preprocessing' not understood by the landmarks recogniser \(features 'fingerspell.features.v3' are not a version"),
    ("preprocessing.depth", "yes", r"not understood by the landmarks recogniser \(depth must be true or false"),
    ("config", ["kind"], r"'config' must be an object, not list"),
    ("config.detect", 0.3, r"'config.detect' must be an object of detection settings"),
    ("config.detect.use_gpu", True, r"config.detect settings not understood \(unknown DetectParams setting\(s\): use_gpu"),
    ("metrics", [0.9], r"'metrics' must be an object, not list"),
    ("created", 2026, r"'created' must be a string, not int"),
    ("extra", {"motion": MOTION}, r"'extra' must be a list, not dict"),
    ("extra.0", "motion", r"extra\[0\] must be an object with kind, labels, preprocessing and file"),
    ("extra.0.kind", "Motion!", r"extra\[0\].kind must be a lower-case name other than 'model'"),
    ("extra.0.kind", "model", r"extra\[0\].kind must be a lower-case name other than 'model'"),
    ("extra.0.file", "../motion.tflite", r"extra\[0\].file must be 'motion.tflite' .*not '../motion.tflite'"),
    ("extra.0.labels", [], r"extra\[0\].labels must be a non-empty list of names"),
    ("extra.0.labels", ["J", "J"], r"extra\[0\].labels has duplicates"),
    ("extra.0.preprocessing", DELETE, r"extra\[0\]: 'preprocessing' is missing"),
    ("extra.0.preprocessing.kind", "landmarks", r"extra\[0\].preprocessing.kind is 'landmarks'; it must be .*'motion'"),
    ("extra.0.weights", "motion.h5", r"extra\[0\]: unknown field\(s\) weights"),
    ("extra.1", MOTION, r"'extra' lists kind 'motion' twice"),
])
def test_a_bad_field_is_refused_in_one_line_naming_the_file_and_the_field(path, value, message):
    with pytest.raises(BundleError, match=message) as info:
        bundle.BundleMeta.from_json(broken(path, value), "m/bundle.json")
    assert str(info.value).startswith("m/bundle.json") and "\n" not in str(info.value)


def test_a_cnn_record_the_cnn_cannot_read_is_refused_naming_the_field():
    doc = bundle.BundleMeta(kind="cnn", labels=["A"], preprocessing={"kind": "cnn", "crop_margin": 0.25}).to_json()
    with pytest.raises(BundleError, match=r"m/bundle.json: 'preprocessing.image_size' is missing"):
        bundle.BundleMeta.from_json(doc, "m/bundle.json")


def with_motion(folder: Path, tiny_bundle: Path) -> dict:
    """Files for a bundle that carries a motion recogniser beside its own."""
    tflite = (tiny_bundle / bundle.TFLITE).read_bytes()
    return {bundle.TFLITE: tflite, "motion.tflite": tflite, "motion.keras": b"retraining copy"}


def test_a_bundle_carrying_a_second_recogniser_is_written_loaded_and_served_by_its_own_model(
        tmp_path, tiny_bundle, hand_model, stub_workers):
    meta = full_meta(labels=list(DEFAULT_LABELS))
    out = bundle.write_bundle(tmp_path / "two", meta, with_motion(tmp_path, tiny_bundle))
    assert bundle.load_meta(out) == meta
    with contextlib.closing(Predictor.from_bundle(out, hand_model=hand_model)) as p:
        assert p.labels == list(DEFAULT_LABELS) and p.info()["labels"] == list(DEFAULT_LABELS)
    (out / "motion.tflite").unlink()
    with pytest.raises(BundleError, match=r"motion\.tflite is missing: .*bundle\.json extra\[0\] names it"):
        bundle.load_meta(out)


def test_a_bundle_with_a_second_recogniser_is_replaced_whole_but_its_files_are_its_own(tmp_path, tiny_bundle):
    out = bundle.write_bundle(tmp_path / "two", full_meta(labels=list(DEFAULT_LABELS)),
                              with_motion(tmp_path, tiny_bundle))
    assert bundle.check_target(out) == out  # motion.* are files this bundle names
    plain = bundle.BundleMeta(kind="landmarks", labels=list(DEFAULT_LABELS), preprocessing=LANDMARK_RECORD)
    bundle.write_bundle(out, plain, {bundle.TFLITE: (tiny_bundle / bundle.TFLITE).read_bytes()})
    assert sorted(p.name for p in out.iterdir()) == [bundle.META, bundle.TFLITE]
    assert leftovers(tmp_path) == []
    # a bundle that names no motion recogniser: a motion file in it was put there by someone else
    (out / "motion.tflite").write_bytes(b"someone's model")
    with pytest.raises(OutputFolderError, match=r"motion\.tflite, which fingerspell did not write"):
        bundle.check_target(out)


def test_info_keeps_its_json_shape(copy, hand_model, stub_workers):
    with contextlib.closing(Predictor.from_bundle(copy, hand_model=hand_model)) as p:
        info = p.info()
    assert list(info) == ["kind", "labels", "bundle", "hand_model_sha256", "metrics"]
    json.dumps(info)  # plain JSON, as /health sends it
    assert info["metrics"] == {"note": "untrained test fixture"} and isinstance(info["labels"], list)
