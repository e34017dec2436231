"""Landmark recordings as data: `fingerspell landmarks` writes them, `predict` spells them,
`evaluate`, `train` and `crossval` read them beside image folders."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, ROBOFLOW, TEMPLATE, need_data
from fingerspell import records
from fingerspell.bundle import DEFAULT_BUNDLE
from fingerspell.cli import main
from fingerspell.hands import Hand
from test_video import FPS, _confident_photo, _frames_of, _write_video

STATIC = DATA / "landmarks_tresajoby" / "static"


def fingerspell(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fingerspell", *map(str, args)], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.mark.slow
def test_a_videos_hands_saved_as_a_recording_spell_what_the_video_spells(tmp_path):
    need_data(ROBOFLOW)
    from fingerspell.predictor import Predictor

    predictor = Predictor.from_bundle(DEFAULT_BUNDLE)
    blank = np.full((480, 640, 3), 40, np.uint8)
    frames = []
    for letter in "BAD":
        frames += [_frames_of(_confident_photo(predictor, letter))] * FPS + [blank] * 3
    predictor.close()
    video = tmp_path / "bad.mp4"
    _write_video(video, frames)

    saved = fingerspell("landmarks", video, "--out", tmp_path / "bad.jsonl")
    assert saved.returncode == 0, saved.stderr
    assert f"{len(frames):,} records" in saved.stdout
    recording = records.read(tmp_path / "bad.jsonl")
    assert [r.t_ms for r in recording] == [int(i * 1000 / FPS) for i in range(len(frames))]
    assert sum(r.hand is not None for r in recording) >= 2 * FPS

    out = fingerspell("predict", "--json", video, tmp_path / "bad.jsonl")
    assert out.returncode == 0, out.stderr
    from_video, from_recording = json.loads(out.stdout)
    assert from_video["text"].strip() == "BAD"
    assert from_recording == {**from_video, "path": str(tmp_path / "bad.jsonl")}


@pytest.mark.slow
def test_the_third_persons_letters_score_the_same_read_directly_and_as_records(tmp_path):
    need_data(STATIC)
    converted = tmp_path / "static.jsonl"
    assert fingerspell("landmarks", STATIC, "--out", converted).returncode == 0
    figures = []
    for data in (STATIC, converted):
        out = fingerspell("evaluate", "--json", "--data", data)
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        figures.append((report["top1"], report["n"]))
    assert figures[0] == figures[1]
    top1, n = figures[0]
    assert n == 2400 and 0.75 <= top1 <= 0.86, figures  # the default model on a person it never saw


def _hand(shape: np.ndarray, rng) -> dict:
    px = TEMPLATE + shape + rng.normal(0, 2, (21, 3)) + [320, 400, 0]
    lm = (px / [640, 480, 640]).astype(np.float32)
    return records.hand_to_json(Hand(lm, lm, "Right", 1.0, (640, 480)))


def _samples_file(path, letters="ABC", per_letter=30, seed=0):
    rng = np.random.default_rng(seed)
    lines = [json.dumps(records.HEADER)]
    for k, letter in enumerate(letters):
        shape = np.random.default_rng(ord(letter)).normal(0, 20, (21, 3))
        for i in range(per_letter):
            lines.append(json.dumps({"label": letter, "group": f"{letter}{i % 3}", "hand": _hand(shape, rng)}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_train_and_crossval_learn_from_landmark_records(tmp_path):
    data = _samples_file(tmp_path / "samples.jsonl")
    model = tmp_path / "mine"
    assert main(["-q", "train", "--data", str(data), "--out", str(model), "--epochs", "15"]) == 0
    meta = json.loads((model / "bundle.json").read_text())
    assert meta["labels"] == ["A", "B", "C"]
    assert meta["split"]["rules"] == {"landmark records (their group, or else their file)": 90}
    held_out = _samples_file(tmp_path / "other.jsonl", seed=1)
    out = fingerspell("evaluate", "--json", "--model", model, "--data", held_out)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["top1"] >= 0.9
    assert main(["-q", "crossval", "--data", str(data), "--folds", "3", "--epochs", "3"]) == 0


def test_a_cnn_cannot_train_on_records_and_says_so(tmp_path, capsys):
    data = _samples_file(tmp_path / "samples.jsonl", per_letter=3)
    assert main(["train", "--kind", "cnn", "--data", str(data), "--out", str(tmp_path / "m")]) == 1
    assert "learns from images" in capsys.readouterr().err


def test_predict_refuses_a_recording_out_of_time_order_naming_the_line(tmp_path, tiny_bundle, capsys):
    rec = tmp_path / "rec.jsonl"
    records.write(rec, [records.Record(None, 0), records.Record(None, 66), records.Record(None, 33)])
    untimed = records.write(tmp_path / "untimed.jsonl", [records.Record(None)])
    assert main(["predict", "--model", str(tiny_bundle), str(rec), str(untimed)]) == 6
    err = capsys.readouterr().err
    assert f"{rec}:4: a recording's records are timed in order, and this one is at 33 ms" in err
    assert f"{untimed}:2: a recording's records are timed in order, and this one has no t_ms" in err


def test_landmarks_never_replaces_a_file(tmp_path, capsys):
    target = tmp_path / "mine.jsonl"
    target.write_text("my notes\n")
    assert main(["landmarks", str(tmp_path), "--out", str(target)]) == 7
    assert "already exists" in capsys.readouterr().err
    assert target.read_text() == "my notes\n"
    assert main(["landmarks", str(tmp_path), "--out", str(tmp_path / "no" / "x.jsonl")]) == 7


def test_a_folder_of_landmark_arrays_is_read_as_one_group_a_file(tmp_path):
    from fingerspell.config import SplitParams
    from fingerspell.dataset import assign_groups, scan

    static, dynamic = tmp_path / "rec" / "static", tmp_path / "rec" / "dynamic"
    static.mkdir(parents=True)
    dynamic.mkdir()
    pts = np.random.default_rng(0).uniform(0.2, 0.8, (4, 63)).astype(np.float32)
    np.save(static / "A.npy", pts)
    np.save(static / "B.npy", pts[:2])
    np.save(dynamic / "J.npy", np.stack([pts[:3], pts[1:]]))
    ds = assign_groups(scan([tmp_path / "rec"]), SplitParams())
    assert [s.label for s in ds.samples] == ["A"] * 4 + ["B"] * 2 + ["J"] * 6
    assert {s.group for s in ds.samples} == {"rec:static/A", "rec:static/B", "rec:dynamic/J"}
    assert all(s.recorded and s.hand is not None for s in ds.samples)
    timed = records.read_arrays(tmp_path / "rec")[6:]
    assert [(r.t_ms, r.extra["recording"]) for r in timed] == [(0, 0), (33, 0), (67, 0), (0, 1), (33, 1), (67, 1)]
    np.save(static / "C.npy", np.zeros((2, 5)))
    with pytest.raises(Exception, match=r"C\.npy: an array of shape \(2, 5\)"):
        scan([tmp_path / "rec"])
