"""Training on real hands, through the CLI: figures, bundle contents, the landmark cache, the cnn kind.

Small slices of ../shared/data keep this to a few minutes on two cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import KAGGLE, ROBOFLOW, need_data
from fingerspell.dataset import ROBOFLOW as ROBOFLOW_NAME
from fingerspell.dataset import scan
from fingerspell.hands.model import TASK_SHA256
from fingerspell.labels import DEFAULT_LABELS

pytestmark = pytest.mark.slow

LIMIT = 12  # images per class and folder
CHANCE = 1 / len(DEFAULT_LABELS)
CACHED = re.compile(r"landmarks: (\d+) of (\d+) images cached, (\d+) to detect")


@pytest.fixture(scope="module")
def env(tmp_path_factory, hand_model) -> dict:
    need_data(KAGGLE, ROBOFLOW)
    home = tmp_path_factory.mktemp("home")
    e = {k: v for k, v in os.environ.items() if not k.startswith("FINGERSPELL_")}
    e.update(HOME=str(home), PYTHONWARNINGS="ignore")
    return e


@pytest.fixture(scope="module")
def cache(tmp_path_factory, hand_model) -> Path:
    """A cold landmark cache. The hand model is copied in, so nothing is downloaded."""
    folder = tmp_path_factory.mktemp("cache")
    shutil.copyfile(hand_model, folder / "hand_landmarker.task")
    return folder


def cli(*args, env, timeout=400) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "fingerspell", *map(str, args)], capture_output=True, text=True,
                         env=env, timeout=timeout)
    assert out.returncode == 0, f"fingerspell {args[0]} failed ({out.returncode}):\n{out.stderr[-4000:]}"
    return out


def train_args(out: Path, cache: Path, *extra) -> list:
    return ["train", "--data", ROBOFLOW, "--data", KAGGLE, "--out", out, "--limit-per-class", LIMIT,
            "--cache-dir", cache, *extra]


def cached_counts(stderr: str) -> tuple[int, int, int]:
    m = CACHED.search(stderr)
    assert m, f"no cache summary line in the log:\n{stderr[-3000:]}"
    return tuple(int(x) for x in m.groups())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, env, cache):
    out = tmp_path_factory.mktemp("landmarks") / "bundle"
    t = time.perf_counter()
    run = cli(*train_args(out, cache, "--epochs", 40), env=env)
    return out, run, time.perf_counter() - t


def test_a_landmark_model_trained_on_a_slice_beats_chance_by_far(trained):
    out, run, _ = trained
    metrics = json.loads((out / "metrics.json").read_text())
    val = metrics["val"]
    assert val["n"] >= 100
    assert val["top1"] > 0.5, f"val top-1 {val['top1']:.1%} (chance {CHANCE:.1%})"
    assert set(val["per_source"]) == {"asl_alphabet_sample", "roboflow_letters_train"}
    assert all(s["top1"] > 3 * CHANCE for s in val["per_source"].values())
    # the CLI prints the same figure it wrote
    assert f"{val['top1']:.1%} top-1" in run.stdout
    assert f"bundle: {out.resolve()}" in run.stdout


def test_the_trained_bundle_is_complete_and_self_describing(trained):
    out, _, _ = trained
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert {"bundle.json", "model.keras", "model.tflite", "metrics.json", "MODEL_CARD.md",
            "plots/training_curves.png", "plots/confusion_val.png"} <= names
    assert all((out / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in names if n.endswith(".png"))
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["format_version"] == 1 and meta["kind"] == "landmarks"
    assert meta["labels"] == list(DEFAULT_LABELS) and meta["num_outputs"] == 29
    assert meta["hand_model_sha256"] == TASK_SHA256
    assert meta["config"]["landmarks"]["epochs"] == 40 and meta["config"]["limit_per_class"] == LIMIT
    assert meta["split"]["grouping"] == "auto"
    assert set(meta["split"]["rules"]) == {"roboflow source photo", "kaggle frame blocks of 300"}
    assert "warning" not in meta["split"]
    assert meta["preprocessing"]["features"] == "fingerspell.features.v2"
    assert meta["metrics"]["val"]["top1"] > 0.5
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Split" in card and "roboflow_letters_train" in card and "J and Z are motion letters" in card


def test_a_second_run_detects_nothing_again(trained, tmp_path, env, cache):
    _, first, _ = trained
    cached, total, todo = cached_counts(first.stderr)
    assert (cached, todo) == (0, total) and total == LIMIT * (26 + 29)
    again = cli(*train_args(tmp_path / "again", cache, "--epochs", 1), env=env)
    assert cached_counts(again.stderr) == (total, total, 0)


def held_out_roboflow(folder: Path, per_class: int = 2) -> Path:
    """Roboflow photos whose source photo is in none of the training images (links, not copies)."""
    used = {(s.label, ROBOFLOW_NAME.match(Path(s.path).name)["id"])
            for s in scan(ROBOFLOW, limit_per_class=LIMIT).samples}
    for cls_dir in sorted(p for p in ROBOFLOW.iterdir() if p.is_dir()):
        picked = 0
        for f in sorted(cls_dir.glob("*.jpg")):
            m = ROBOFLOW_NAME.match(f.name)
            if m and (cls_dir.name, m["id"]) not in used and picked < per_class:
                (folder / cls_dir.name).mkdir(parents=True, exist_ok=True)
                os.symlink(f, folder / cls_dir.name / f.name)
                picked += 1
    return folder


def test_evaluate_on_unseen_photos_gives_figures_and_a_confusion_plot(trained, tmp_path, env, cache):
    out, _, _ = trained
    data = held_out_roboflow(tmp_path / "held_out")
    n = sum(1 for _ in data.rglob("*.jpg"))
    run = cli("evaluate", "--model", out, "--data", data, "--json", "--out", tmp_path / "eval", "--cache-dir", cache,
              env=env)
    m = json.loads(run.stdout)
    assert m["n"] == n == 52
    assert m["top1"] > 0.4, f"top-1 on unseen photos {m['top1']:.1%} (chance {CHANCE:.1%})"
    assert set(m["per_class"]) == set(DEFAULT_LABELS[:26])
    assert m["model"]["kind"] == "landmarks"
    assert (tmp_path / "eval" / "confusion.png").is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["n"] == n


def test_a_tiny_cnn_run_writes_a_bundle_that_predicts(tmp_path, env, cache, hand_model):
    out = tmp_path / "cnn"
    cli("train", "--kind", "cnn", "--epochs", 1, "--limit-per-class", 5, "--data", ROBOFLOW, "--out", out,
        "--cache-dir", cache, env=env)
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["kind"] == "cnn" and meta["labels"] == list(DEFAULT_LABELS[:26])
    assert meta["preprocessing"]["image_size"] == 64
    from fingerspell.images import read_image
    from fingerspell.predictor import Predictor

    p = Predictor.from_bundle(out, hand_model=hand_model)
    try:
        pred = p.predict(read_image(next((ROBOFLOW / "A").glob("*.jpg"))))
        assert pred.letter in meta["labels"] and len(pred.top) == 3
    finally:
        p.close()
