"""Shared fixtures. Everything is built at test time; real hands come from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
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
    from fingerspell.hands import ensure_hand_model

    return ensure_hand_model()


def make_tiny_bundle(out: Path, labels=None, kind: str = "landmarks", seed: int = 0) -> Path:
    """A real, loadable bundle with an untrained (random-weight) Keras model exported to LiteRT."""
    import keras

    from fingerspell import bundle, features
    from fingerspell.labels import DEFAULT_LABELS
    from fingerspell.train import export_tflite

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
    meta = {"kind": kind, "labels": labels, "num_outputs": len(labels), "preprocessing": pre,
            "config": {}, "metrics": {"note": "untrained test fixture"}}
    return bundle.write_bundle(out, meta, {bundle.TFLITE: export_tflite(model)})


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
