"""No command deletes or overwrites what it did not write: output folders are new, empty, or its own."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import make_tiny_bundle
from fingerspell import bundle, outputs
from fingerspell.errors import FingerspellError, OutputFolderError
from test_cli import assert_one_line_error, cli, drawn_folder, env  # noqa: F401 - env is a fixture


def user_folder(path: Path) -> Path:
    """A folder of someone's work: a file and a subfolder with a file."""
    (path / "sub").mkdir(parents=True)
    (path / "notes.txt").write_text("my notes")
    (path / "sub" / "thesis.tex").write_text("chapter 1")
    return path


def assert_intact(path: Path) -> None:
    assert (path / "notes.txt").read_text() == "my notes"
    assert (path / "sub" / "thesis.tex").read_text() == "chapter 1"
    assert sorted(p.name for p in path.iterdir()) == ["notes.txt", "sub"]


# -- train --out, as a user runs it -----------------------------------------------------------------


def test_train_refuses_a_folder_of_someone_elses_files_and_leaves_it_intact(env, tmp_path, real_slice):
    # Real hands, so that without the check this trains and reaches the write (as the bug did).
    data = real_slice
    victim = user_folder(tmp_path / "work")
    t = time.monotonic()
    out = cli("-q", "train", "--data", data, "--out", victim, "--epochs", "1", env=env, timeout=300)
    line = assert_one_line_error(out, "train", str(victim))
    assert "not a fingerspell bundle" in line and "new or empty folder" in line
    assert_intact(victim)
    # refused up front: no hand model was fetched, no image read, nothing trained
    assert time.monotonic() - t < 60
    assert not (tmp_path / "cache").exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_the_library_train_refuses_before_reading_any_image(fake_hands, synthetic_data, tmp_path, monkeypatch):
    from fingerspell.config import TrainParams

    seen = []
    monkeypatch.setattr(fake_hands, "extract", lambda paths, *a, **k: seen.append(paths) or [])
    victim = user_folder(tmp_path / "work")
    with pytest.raises(OutputFolderError, match="not a fingerspell bundle"):
        fake_hands.train([synthetic_data], victim, TrainParams())
    assert seen == []
    assert_intact(victim)


def test_train_refuses_the_current_folder_and_the_home_folder(env, tmp_path):
    data = drawn_folder(tmp_path / "d")
    here = user_folder(tmp_path / "here")
    out = cli("train", "--data", data, "--out", ".", env=env, cwd=here)
    assert_one_line_error(out, "train", "current folder")
    assert_intact(here)
    home = Path(env["HOME"])
    user_folder(home / "projects")
    out = cli("train", "--data", data, "--out", "~", env=env)
    assert_one_line_error(out, "train", "home folder")
    assert (home / "projects" / "notes.txt").read_text() == "my notes"


def test_train_refuses_a_path_that_is_a_file(env, tmp_path):
    data = drawn_folder(tmp_path / "d")
    f = tmp_path / "model.txt"
    f.write_text("keep me")
    out = cli("train", "--data", data, "--out", f, env=env)
    assert_one_line_error(out, "train", "is a file")
    assert f.read_text() == "keep me"


def test_crossval_and_evaluate_refuse_a_report_folder_of_other_files(env, tmp_path, tiny_bundle):
    data = drawn_folder(tmp_path / "d")
    victim = user_folder(tmp_path / "reports")
    out = cli("crossval", "--data", data, "--folds", "2", "--out", victim, env=env)
    assert_one_line_error(out, "crossval", "new or empty folder")
    out = cli("evaluate", "--model", tiny_bundle, "--data", data, "--out", victim, env=env)
    assert_one_line_error(out, "evaluate", "new or empty folder")
    assert_intact(victim)


# -- the library's checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["root", "home", "cwd", "parent of cwd"])
def test_check_target_refuses_the_root_home_and_current_folders_even_when_empty(tmp_path, monkeypatch, where):
    home, cwd = tmp_path / "home", tmp_path / "home" / "project"
    cwd.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    target = {"root": Path("/"), "home": Path("~"), "cwd": Path("."), "parent of cwd": Path("..")}[where]
    with pytest.raises(OutputFolderError, match="give a new folder"):
        bundle.check_target(target)


def test_check_target_accepts_a_new_path_an_empty_folder_and_a_bundle(tmp_path, tiny_bundle):
    assert bundle.check_target(tmp_path / "new" / "deeper") == (tmp_path / "new" / "deeper").resolve()
    (tmp_path / "empty").mkdir()
    bundle.check_target(tmp_path / "empty")
    bundle.check_target(tiny_bundle)


def test_check_target_refuses_a_bundle_holding_a_file_it_did_not_write(tmp_path):
    b = make_tiny_bundle(tmp_path / "b")
    (b / "my-notes.md").write_text("mine")
    with pytest.raises(OutputFolderError, match=r"my-notes\.md"):
        bundle.check_target(b)
    (b / "my-notes.md").unlink()
    (b / bundle.PLOTS).mkdir(exist_ok=True)
    (b / bundle.PLOTS / "holiday").mkdir()
    with pytest.raises(OutputFolderError, match="holiday"):
        bundle.check_target(b)


def test_check_target_refuses_a_bundle_json_that_fingerspell_did_not_write(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / bundle.META).write_text(json.dumps({"name": "some other tool's bundle"}))
    with pytest.raises(OutputFolderError, match="not a fingerspell bundle"):
        bundle.check_target(other)


def test_write_bundle_checks_again_at_write_time_and_keeps_a_folder_that_filled_up(tmp_path, tiny_bundle):
    # The folder was empty when training began; by the time the bundle is written it is not.
    out = tmp_path / "m"
    out.mkdir()
    bundle.check_target(out)
    user_folder(out)
    meta = json.loads((tiny_bundle / bundle.META).read_text())
    with pytest.raises(OutputFolderError, match="not a fingerspell bundle"):
        bundle.write_bundle(out, meta, {bundle.TFLITE: (tiny_bundle / bundle.TFLITE).read_bytes()})
    assert_intact(out)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_replacing_a_bundle_keeps_an_empty_folders_mode(tmp_path, tiny_bundle):
    out = tmp_path / "shared-model"
    out.mkdir()
    os.chmod(out, 0o2775)
    meta = json.loads((tiny_bundle / bundle.META).read_text())
    bundle.write_bundle(out, meta, {bundle.TFLITE: (tiny_bundle / bundle.TFLITE).read_bytes()})
    assert out.stat().st_mode & 0o7777 == 0o2775
    assert bundle.load_meta(out).labels == meta["labels"]


def test_report_folder_may_be_rewritten_only_while_it_holds_just_its_own_files(tmp_path):
    names = ("metrics.json", "confusion.png")
    folder = tmp_path / "report"
    assert outputs.check_folder(folder, names, "report") == folder.resolve()
    folder.mkdir()
    (folder / "metrics.json").write_text("{}")
    outputs.check_folder(folder, names, "report")  # a report written before: rewritten
    (folder / "other.csv").write_text("1,2")
    with pytest.raises(FingerspellError, match=r"other\.csv.*new or empty folder"):
        outputs.check_folder(folder, names, "report")
