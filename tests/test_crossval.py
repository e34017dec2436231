"""k-fold cross-validation: folds are whole groups, every image is held out once, figures add up."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerspell.config import LandmarkParams, SplitParams, TrainParams
from fingerspell.errors import FingerspellError

QUICK = TrainParams(split=SplitParams(grouping="random"), workers=1,
                    landmarks=LandmarkParams(hidden=(16,), epochs=20, augment_copies=1, members=1))
# 20 epochs: with 3, some seeds scored near chance on the synthetic hands (29-88% pooled).


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.sampled_from("ABC")), min_size=8, max_size=60),
       st.integers(2, 4), st.integers(0, 2**16))
def test_folds_hold_out_every_sample_once_and_never_split_a_group(rows, folds, seed):
    from fingerspell.training.crossval import fold_sides

    groups = [f"g{g}" for g, _ in rows]
    labels = [label for _, label in rows]
    if len(set(groups)) < folds:
        with pytest.raises(FingerspellError, match=f"{folds} folds need at least {folds} groups"):
            fold_sides(groups, labels, folds, seed)
        return
    if max(Counter(labels).values()) < folds:
        with pytest.raises(FingerspellError, match=f"{folds} folds need a class with at least {folds} images"):
            fold_sides(groups, labels, folds, seed)
        return
    held = fold_sides(groups, labels, folds, seed)
    assert len(held) == folds and all(held)
    assert sorted(i for fold in held for i in fold) == list(range(len(rows)))
    for g in set(groups):
        assert sum(any(groups[i] == g for i in fold) for fold in held) == 1, f"group {g} in two folds"
    assert held == fold_sides(groups, labels, folds, seed)  # seeded


def test_fewer_than_two_folds_or_more_folds_than_any_class_has_images_are_refused():
    from fingerspell.training.crossval import fold_sides

    with pytest.raises(FingerspellError, match="at least 2"):
        fold_sides(["a", "b", "c"], ["A", "B", "C"], 1, 0)
    with pytest.raises(FingerspellError, match="4 folds need a class with at least 4 images; the largest has 3"):
        fold_sides(list("abcdefgh"), list("AAABBBCC"), 4, 0)


@pytest.mark.slow  # a Keras fit
def test_cross_validation_scores_every_image_once_from_a_model_that_never_saw_it(
        fake_hands, synthetic_data, monkeypatch, caplog):
    from fingerspell.training import crossval

    fitted = []
    real_fit = crossval.fit_recipe

    def spy(prep, sides, params, **kw):
        assert not set(sides["train"]) & set(sides["val"]), "a held-out image was trained on"
        fitted.append((list(sides["train"]), list(sides["val"])))
        return real_fit(prep, sides, params, **kw)

    monkeypatch.setattr(crossval, "fit_recipe", spy)
    with caplog.at_level(logging.INFO, logger="fingerspell.training"):
        report = crossval.cross_validate([synthetic_data], QUICK, folds=4, progress=False)
    assert len(fitted) == 4 and len(report["folds"]) == 4
    held = [i for _, val in fitted for i in val]
    assert sorted(held) == list(range(24))  # 3 classes x 8 images, each held out exactly once
    for train, val in fitted:
        assert sorted(train + val) == list(range(24))
    assert report["pooled"]["n"] == 24 == sum(m["n"] for m in report["folds"])
    correct = sum(round(m["top1"] * m["n"]) for m in report["folds"])
    assert report["pooled"]["top1"] == pytest.approx(correct / 24)
    spread = report["spread"]["all"]
    tops = [m["top1"] for m in report["folds"]]
    assert spread["mean"] == pytest.approx(sum(tops) / 4) and spread["min"] == min(tops) and spread["folds"] == 4
    assert report["pooled"]["top1"] > 0.8  # the three synthetic hand shapes are easy to tell apart
    assert "warning" in report["split"]  # random grouping: the report says it is optimistic
    assert sum("fold 4/4" in r.getMessage() for r in caplog.records) == 2  # started, then its figure


def test_more_folds_than_groups_fail_before_detecting_any_hand(fake_hands, synthetic_data, monkeypatch):
    from fingerspell.training import crossval

    monkeypatch.setattr(fake_hands, "extract", lambda *a, **k: pytest.fail("detected hands for nothing"))
    with pytest.raises(FingerspellError, match="at least 2"):
        crossval.cross_validate([synthetic_data], QUICK, folds=1, progress=False)


@pytest.mark.slow
def test_crossval_command_prints_each_fold_and_the_pooled_figure_and_writes_its_report(real_slice, tmp_path,
                                                                                       hand_model):
    data = real_slice
    env = {"FINGERSPELL_HAND_MODEL": str(hand_model), "FINGERSPELL_CACHE_DIR": str(tmp_path / "cache"),
           "PYTHONWARNINGS": "ignore", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "fingerspell", "-q", "crossval", "--data", str(data), "--folds", "3",
                          "--epochs", "2", "--workers", "1", "--out", str(tmp_path / "cv")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["fold 1/3", "fold 2/3", "fold 3/3"], out.stdout
    assert "every image held out once (auto grouping" in out.stdout and "(n=18)" in out.stdout, out.stdout
    report = json.loads((tmp_path / "cv" / "crossval.json").read_text())
    assert report["pooled"]["n"] == 18 and report["split"]["grouping"] == "auto"
    assert report["split"]["rules"] == {"roboflow source photo": 18}
    assert (tmp_path / "cv" / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    counts = Counter(c for m in report["folds"] for c, s in m["per_class"].items() for _ in range(s["support"]))
    assert counts == {"A": 6, "B": 6, "C": 6}


@pytest.mark.parametrize("argv, message", [
    (["--folds", "1"], "--folds must be at least 2, got 1"),
    (["--folds", "50"], "50 folds need at least 50 groups"),
])
def test_crossval_mistakes_print_one_line_and_exit_non_zero(argv, message, fake_hands, synthetic_data, capsys):
    from fingerspell import cli

    code = cli.main(["-q", "crossval", "--data", str(synthetic_data), "--grouping", "random", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and message in err[0] and err[0].startswith("fingerspell crossval: error:")


def test_recipe_flags_reach_cross_validation(monkeypatch, synthetic_data):
    from fingerspell import cli
    from fingerspell.training import crossval

    seen = {}

    def fake(data, params, folds, **kw):
        seen.update(data=data, params=params, folds=folds)
        return {"folds": [], "pooled": {"n": 0}, "spread": {}, "split": {"grouping": "x", "seed": 1},
                "data": {"skipped": 0}}

    monkeypatch.setattr(crossval, "cross_validate", fake)
    assert cli.main(["-q", "crossval", "--data", str(synthetic_data), "--folds", "7", "--seed", "9",
                     "--grouping", "signer", "--epochs", "4", "--kind", "cnn"]) == 0
    params = seen["params"]
    assert seen["folds"] == 7 and params.kind == "cnn" and params.split.seed == 9
    assert params.split.grouping == "signer" and params.landmarks.epochs == 4 and params.cnn.epochs == 4
