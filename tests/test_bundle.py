"""Model bundles: what loading refuses, and that a failed or interrupted save keeps the old one."""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import fake_extract
from fingerspell import bundle
from fingerspell.cli_train import ctrl_c_asks_to_stop
from fingerspell.config import LandmarkParams, SplitParams, TrainParams
from fingerspell.errors import BundleError
from fingerspell.extract import Extracted
from fingerspell.hands.model import TASK_SHA256
from fingerspell.labels import DEFAULT_LABELS
from fingerspell.predictor import Predictor


@pytest.fixture
def copy(tiny_bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle that a test may break."""
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


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
    assert meta["format_version"] == bundle.FORMAT_VERSION
    assert meta["labels"] == list(DEFAULT_LABELS) and meta["num_outputs"] == 29
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
    meta = {"kind": "landmarks", "labels": ["A", "B", "C"], "num_outputs": 3}
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
    edit_meta(cnn, kind="landmarks")
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
        bundle.write_bundle(copy, {"kind": "landmarks", "labels": list(DEFAULT_LABELS), "num_outputs": 29}, files)
    assert (copy / bundle.META).read_bytes() == before
    assert not (copy / bundle.CARD).exists()
    bundle.load_meta(copy)
    assert leftovers(copy.parent) == []


def test_a_new_bundle_that_would_not_load_is_never_moved_into_place(copy):
    before = (copy / bundle.META).read_bytes()
    tflite = (copy / bundle.TFLITE).read_bytes()
    with pytest.raises(BundleError, match="3 labels but the model has 4 outputs"):
        bundle.write_bundle(copy, {"kind": "landmarks", "labels": list("ABC"), "num_outputs": 4}, {bundle.TFLITE: tflite})
    assert (copy / bundle.META).read_bytes() == before
    assert leftovers(copy.parent) == []


def test_an_interrupt_during_the_save_keeps_the_old_bundle(copy, monkeypatch):
    before = (copy / bundle.META).read_bytes()
    tflite = (copy / bundle.TFLITE).read_bytes()

    def interrupted(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(bundle, "load_meta", interrupted)  # the check that runs just before the swap
    with pytest.raises(KeyboardInterrupt):
        bundle.write_bundle(copy, {"kind": "landmarks", "labels": list(DEFAULT_LABELS), "num_outputs": 29},
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
        assert bundle.load_meta(copy)["kind"] == "landmarks"
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
    bundle.write_bundle(copy, {"kind": "landmarks", "labels": list(DEFAULT_LABELS), "num_outputs": 29,
                               "metrics": {"marker": 2}}, {bundle.TFLITE: tflite})
    assert bundle.load_meta(copy)["metrics"] == {"marker": 2}
    assert not (copy / bundle.KERAS).exists() and not (copy / bundle.PLOTS).exists()
    assert leftovers(copy.parent) == []


def test_a_bundle_holding_a_file_it_never_had_is_not_replaced(copy):
    # ...but a file someone put in the folder is never deleted: the save is refused instead.
    (copy / "stale.txt").write_text("put here by hand")
    tflite = (copy / bundle.TFLITE).read_bytes()
    with pytest.raises(BundleError, match=r"stale\.txt, which fingerspell did not write"):
        bundle.write_bundle(copy, {"kind": "landmarks", "labels": list(DEFAULT_LABELS), "num_outputs": 29},
                            {bundle.TFLITE: tflite})
    assert (copy / "stale.txt").read_text() == "put here by hand"
    assert bundle.load_meta(copy)["metrics"] == {"note": "untrained test fixture"}
    assert leftovers(copy.parent) == []


# -- bundles written by train ---------------------------------------------------------------------


QUICK = TrainParams(split=SplitParams(grouping="random", val_fraction=0.25), workers=1,
                    landmarks=LandmarkParams(hidden=(16,), epochs=2, augment_copies=1))


@pytest.mark.slow  # a Keras fit
def test_a_trained_bundle_holds_no_pickle(fake_hands, synthetic_data, tmp_path, tiny_bundle):
    out = tmp_path / "trained"
    fake_hands.train([synthetic_data], out, QUICK, progress=False)
    meta = bundle.load_meta(out)
    assert meta["labels"] == ["A", "B", "C"] and meta["config"]["landmarks"]["hidden"] == [16]
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
    with caplog.at_level(logging.INFO, logger="fingerspell.train"):
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
    logging.getLogger("fingerspell.train").addHandler(hook)
    endless = dataclasses.replace(QUICK, landmarks=dataclasses.replace(QUICK.landmarks, epochs=10**7))
    try:
        with caplog.at_level(logging.INFO, logger="fingerspell.train"), pytest.raises(KeyboardInterrupt) as caught:
            with ctrl_c_asks_to_stop() as stop:  # what `fingerspell train` runs the library inside
                fake_hands.train([synthetic_data], copy, endless, progress=False, stop=stop)
    finally:
        logging.getLogger("fingerspell.train").removeHandler(hook)
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
    meta = bundle.BundleMeta(kind="landmarks", labels=["A", "B"], preprocessing={"kind": "landmarks", "depth": False},
                             metrics={"val": {"n": 2, "top1": 0.5, "macro_f1": 0.5, "no_hand_rate": 0.0}})
    written = meta.to_json()
    assert written["format_version"] == bundle.FORMAT_VERSION and written["num_outputs"] == 2
    assert "split" not in written  # unset fields are left out, not written as null
    assert list(written)[:4] == ["format_version", "kind", "labels", "num_outputs"]
    out = bundle.write_bundle(tmp_path / "m", meta, {bundle.TFLITE: (tiny_bundle / bundle.TFLITE).read_bytes()})
    assert bundle.load_meta(out) == written
