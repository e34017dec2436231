"""Recogniser kinds: one module each, registered in one place; serving makes the inputs training made."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import fake_extract
from fingerspell import bundle, recognisers
from fingerspell.config import CnnParams, SplitParams, TrainParams
from fingerspell.errors import BundleError, FingerspellError
from fingerspell.recognisers.litert import Classifier
from fingerspell.predictor import Predictor


def test_every_kind_has_a_runtime_and_a_training_half():
    for kind in recognisers.KINDS:
        rec = recognisers.get(kind)
        assert rec.KIND == kind
        record = rec.preprocessing(TrainParams(kind=kind))
        assert record["kind"] == kind
        runtime = rec.Runtime.from_record(record)
        assert isinstance(runtime.reads_pixels, bool)
        assert callable(rec.fit) and callable(rec.build)


def test_an_unknown_kind_is_refused_in_one_line_naming_the_known_ones():
    with pytest.raises(FingerspellError, match="unknown model kind 'svm'; choose one of landmarks, cnn"):
        recognisers.get("svm")
    with pytest.raises(BundleError):
        recognisers.get("svm", BundleError)


def test_the_runtime_halves_import_no_tensorflow():
    code = ("import sys\n"
            "from fingerspell import recognisers, predictor\n"
            "for k in recognisers.KINDS: recognisers.get(k)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def textured(path, seed):
    """A noisy picture: a crop of it differs from the whole, unlike a flat colour."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("crop", [True, False])
def test_a_cnn_is_served_the_crop_it_was_trained_on(fake_hands, tmp_path, hand_model, crop):
    data = tmp_path / "data"
    for label in "AB":
        (data / label).mkdir(parents=True)
        for i in range(6):
            textured(data / label / f"{label.lower()}_{i}.png", ord(label) * 100 + i)
    params = TrainParams(kind="cnn", split=SplitParams(grouping="random", val_fraction=0.25), workers=1,
                         cnn=CnnParams(image_size=16, epochs=1, crop_to_hand=crop, augment=False))
    out = tmp_path / "cnn"
    fake_hands.train([data], out, params, progress=False)
    assert bundle.load_meta(out).preprocessing["crop_to_hand"] is crop

    photo = textured(tmp_path / "new.png", 7)
    image = np.asarray(Image.open(photo).convert("RGB"))
    hand = fake_extract([str(data / "A" / "a_0.png")])[0].hand
    served_as = {c: recognisers.get("cnn").Runtime(image_size=16, crop_to_hand=c).inputs(
        [recognisers.Seen(0, hand)], lambda: (image, hand)) for c in (True, False)}
    assert not np.allclose(served_as[True], served_as[False])  # the setting changes what the CNN sees
    model = Classifier(out / bundle.TFLITE)
    with contextlib.closing(Predictor.from_bundle(out, hand_model=hand_model)) as p:
        assert p.runtime.crop_to_hand is crop
        got = dict(p.classify(hand, lambda: image))
    want = model(served_as[crop])
    assert got[p.labels[int(np.argmax(want))]] == pytest.approx(float(want.max()), abs=1e-6)


def test_the_bundled_model_is_served_with_the_feature_version_it_records(hand_model):
    import json

    from fingerspell import features

    record = json.loads((bundle.DEFAULT_BUNDLE / bundle.META).read_text())["preprocessing"]
    with contextlib.closing(Predictor.from_bundle(None, hand_model=hand_model)) as p:
        assert p.runtime.version == features.version_of(record)
        assert p.runtime.depth is record["depth"]
