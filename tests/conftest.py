"""Shared fixtures. Everything is built at test time; real hands come from ../shared/data."""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fingerspell.extract import Extracted
from fingerspell.hands import Hand

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis's example database and constants cache, and schemathesis's store, are written
# relative to the folder the suite runs from, some of it while test modules are collected: point
# them at a temporary folder now, before any of that, and remove it when the run ends.
_STORES = Path(tempfile.mkdtemp(prefix="fingerspell-test-stores-"))
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(_STORES / "hypothesis"))
# An app made without a data folder keeps its profiles here, not in the user's own data folder.
os.environ.setdefault("FINGERSPELL_DATA_DIR", str(_STORES / "data"))
try:
    from schemathesis.core import storage as _schemathesis_storage
except ImportError:
    pass
else:
    _schemathesis_storage.DEFAULT_ROOT = _STORES / "schemathesis"


def pytest_unconfigure(config):
    shutil.rmtree(_STORES, ignore_errors=True)

DATA = Path(os.environ.get("FINGERSPELL_DATA", ROOT.parent / "shared" / "data"))
KAGGLE = DATA / "asl_alphabet_sample"
ROBOFLOW = DATA / "roboflow_letters_train"


def need_data(*folders: Path) -> None:
    """Skip, saying why, where the real hand images are absent."""
    for folder in folders or (KAGGLE, ROBOFLOW):
        if not folder.is_dir():
            pytest.skip(f"real hand images not found at {folder} (set FINGERSPELL_DATA to ../shared/data)")


def real_images(letter: str, n: int = 3, folder: Path = ROBOFLOW) -> list[Path]:
    need_data(folder)
    return sorted((folder / letter).glob("*.jpg"))[:n]


@pytest.fixture(scope="session")
def hand_model() -> Path:
    """The verified MediaPipe hand model (obtained once per machine, then cached)."""
    from fingerspell.hands.model import ensure_hand_model

    return ensure_hand_model()


def make_tiny_bundle(out: Path, labels=None, kind: str = "landmarks", seed: int = 0) -> Path:
    """A real, loadable bundle with an untrained (random-weight) Keras model exported to LiteRT."""
    import keras

    from fingerspell import bundle, features
    from fingerspell.labels import DEFAULT_LABELS
    from fingerspell.training.train import export_tflite

    labels = list(labels or DEFAULT_LABELS)
    keras.utils.set_random_seed(seed)
    if kind == "landmarks":
        model = keras.Sequential([keras.Input((features.N_FEATURES,)), keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(len(labels), activation="softmax")])
        pre = {"kind": "landmarks", **features.PREPROCESSING}
    else:
        model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.Flatten(), keras.layers.Dense(len(labels), activation="softmax")])
        pre = {"kind": "cnn", "image_size": 16, "crop_margin": 0.25}
    meta = bundle.BundleMeta(kind=kind, labels=labels, preprocessing=pre, metrics={"note": "untrained test fixture"})
    return bundle.write_bundle(out, meta, {bundle.TFLITE: export_tflite(model)})


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def real_slice(tmp_path) -> Path:
    """Three letters, six real photos each: enough for a short training run."""
    need_data(ROBOFLOW)
    root = tmp_path / "data"
    for letter in "ABC":
        (root / letter).mkdir(parents=True)
        for photo in sorted((ROBOFLOW / letter).glob("*.jpg"))[:6]:
            shutil.copyfile(photo, root / letter / photo.name)
    return root


# A right hand seen from the front, fingers up, in pixels (y grows downwards), about 180 px tall.
TEMPLATE = np.array([
    [0, 0, 0],                                                            # wrist
    [-30, -20, -5], [-50, -40, -8], [-65, -60, -10], [-75, -80, -12],     # thumb
    [-25, -90, -4], [-28, -130, -6], [-30, -155, -8], [-32, -175, -9],    # index
    [0, -95, -3], [0, -140, -5], [0, -168, -7], [0, -190, -8],            # middle
    [22, -90, -3], [24, -130, -5], [25, -155, -7], [26, -175, -8],        # ring
    [42, -80, -2], [46, -110, -4], [48, -130, -6], [50, -148, -7],        # little
], dtype=np.float64)


@pytest.fixture
def synthetic_data(tmp_path) -> Path:
    """Three class folders of small drawn images; the fake detector below gives their hands."""
    root = tmp_path / "data"
    for label in "ABC":
        (root / label).mkdir(parents=True)
        for i in range(8):
            Image.new("RGB", (32, 32), (40 * i, 0, 0)).save(root / label / f"{label.lower()}_{i}.png")
    return root


def fake_extract(paths, params=None, **kwargs):
    """The seam: one synthetic hand per file, shaped by its class folder."""
    out = []
    for p in paths:
        label = Path(p).parent.name
        shape = np.random.default_rng(ord(label)).normal(0, 20, (21, 3))
        noise = np.random.default_rng(zlib.crc32(str(p).encode())).normal(0, 2, (21, 3))
        px = TEMPLATE + shape + noise + np.array([320, 400, 0])
        lm = (px / np.array([640, 480, 640])).astype(np.float32)
        out.append(Extracted(Hand(lm, lm, "Right", 0.9, (640, 480))))
    return out


@pytest.fixture
def fake_hands(monkeypatch, hand_model):
    from fingerspell.training import train as train_mod

    monkeypatch.setattr(train_mod, "extract", fake_extract)
    # far copies of drawn images hold no hand worth detecting: none, as where every copy failed
    monkeypatch.setattr(train_mod, "extract_far", lambda paths, hands, *a, **k: [[] for _ in paths])
    monkeypatch.setattr(train_mod, "ensure_hand_model", lambda cache=None: hand_model)
    return train_mod
