"""The ``fingerspell`` command, run as a user runs it: in a subprocess, reading its output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _live import free_port
from conftest import real_images
from fingerspell.hands.model import TASK_SHA256

COMMANDS = ["setup", "download", "train", "crossval", "evaluate", "predict", "landmarks", "teach", "serve"]


@pytest.fixture
def env(tmp_path, hand_model) -> dict:
    """A clean environment: the verified hand model placed by hand, a private cache, no Kaggle."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("FINGERSPELL_", "KAGGLE_"))}
    e.update(FINGERSPELL_HAND_MODEL=str(hand_model), FINGERSPELL_CACHE_DIR=str(tmp_path / "cache"),
             HOME=str(tmp_path / "home"), PYTHONWARNINGS="ignore")
    (tmp_path / "home").mkdir()
    return e


def cli(*args, env: dict, timeout: float = 180, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fingerspell", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout, cwd=cwd)


def assert_one_line_error(out: subprocess.CompletedProcess, command: str, fragment: str) -> str:
    """A user mistake: non-zero exit, exactly one line on stderr, saying what to fix."""
    assert out.returncode != 0, out.stdout
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{out.stderr}"
    assert lines[0].startswith(f"fingerspell {command}: error: "), lines[0]
    assert fragment in lines[0], lines[0]
    return lines[0]


def drawn_folder(root: Path, classes="AB", n=2) -> Path:
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (32, 32), (60 * i, 90, 30)).save(root / c / f"{c}{i}.png")
    return root


# -- help -----------------------------------------------------------------------------------------


def test_top_level_help_lists_every_command(env):
    out = cli("--help", env=env)
    assert out.returncode == 0
    for command in COMMANDS:
        assert command in out.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_exits_zero(env, command):
    out = cli(command, "--help", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: fingerspell {command}")
    assert out.stderr == ""


def test_version_is_printed(env):
    from fingerspell import __version__

    out = cli("--version", env=env)
    assert out.returncode == 0 and out.stdout.strip() == f"fingerspell {__version__}"


# -- user mistakes: one line, non-zero exit -------------------------------------------------------


def test_predict_of_a_missing_path_says_so_and_exits_6(env, tmp_path):
    out = cli("predict", tmp_path / "nope.jpg", env=env)
    assert out.returncode == 6
    assert out.stderr.splitlines() == [f"{tmp_path / 'nope.jpg'}: error: no such file or folder",
                                       "fingerspell predict: error: 1 of 1 input(s) could not be read"]


def test_predict_of_a_folder_without_images_says_so(env, tmp_path):
    (tmp_path / "empty").mkdir()
    out = cli("predict", tmp_path / "empty", env=env)
    assert_one_line_error(out, "predict", "no images, videos or landmark recordings found in")


def test_predict_with_a_nonexistent_model_says_what_to_give(env, tmp_path):
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    out = cli("predict", img, "--model", tmp_path / "no-model", env=env)
    line = assert_one_line_error(out, "predict", "no-model does not exist")
    assert "--model" in line
    assert out.returncode == 4


def test_evaluate_with_a_nonexistent_model_says_what_to_give(env, tmp_path):
    out = cli("evaluate", "--model", tmp_path / "no-model", "--data", drawn_folder(tmp_path / "d"), env=env)
    assert_one_line_error(out, "evaluate", "no-model does not exist")


def test_predict_with_a_corrupt_bundle_says_it_is_corrupt(env, tmp_path, tiny_bundle):
    broken = Path(shutil.copytree(tiny_bundle, tmp_path / "broken"))
    (broken / "bundle.json").write_text('{"kind": ')
    img = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(img)
    out = cli("predict", img, "--model", broken, env=env)
    assert_one_line_error(out, "predict", "bundle.json is corrupt")
    assert out.returncode == 4


def test_train_on_a_data_folder_that_does_not_exist(env, tmp_path):
    out = cli("train", "--data", tmp_path / "nowhere", "--out", tmp_path / "m", env=env)
    assert_one_line_error(out, "train", "nowhere does not exist")
    assert out.returncode == 3
    assert not (tmp_path / "m").exists()


def test_train_on_a_file_asks_for_a_folder(env, tmp_path):
    f = tmp_path / "A.jpg"
    Image.new("RGB", (32, 32)).save(f)
    out = cli("train", "--data", f, "--out", tmp_path / "m", env=env)
    assert_one_line_error(out, "train", "is a file; give a folder of class folders")


@pytest.mark.parametrize("epochs", ["0", "-3"])
def test_train_refuses_fewer_than_one_epoch(env, tmp_path, epochs):
    data = drawn_folder(tmp_path / "d")
    out = cli("train", "--data", data, "--out", tmp_path / "m", "--epochs", epochs, env=env, timeout=60)
    assert_one_line_error(out, "train", "--epochs must be at least 1")
    assert not (tmp_path / "m").exists()


def test_a_bad_grouping_is_an_argparse_error_listing_the_choices(env, tmp_path):
    out = cli("train", "--data", tmp_path, "--out", tmp_path / "m", "--grouping", "folders", env=env)
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("fingerspell train: error: argument --grouping: invalid choice: 'folders'")
    assert "kaggle-frames" in last


def test_regex_grouping_without_a_regex_says_what_to_add(env, tmp_path):
    out = cli("train", "--data", drawn_folder(tmp_path / "d"), "--out", tmp_path / "m", "--grouping", "regex",
              env=env)
    assert_one_line_error(out, "train", "grouping 'regex' needs --group-regex")


def test_a_missing_command_is_an_argparse_error(env):
    out = cli(env=env)
    assert out.returncode == 2 and "fingerspell: error:" in out.stderr


# -- download and setup ---------------------------------------------------------------------------


def test_download_without_kaggle_credentials_says_how_to_get_them(env, tmp_path):
    out = cli("download", "--dest", tmp_path / "kaggle", env=env)
    line = assert_one_line_error(out, "download", "no Kaggle credentials")
    assert "kaggle.json" in line and "KAGGLE_USERNAME" in line
    assert not (tmp_path / "kaggle").exists()


def test_setup_prints_the_path_and_hash_of_the_cached_hand_model(env, tmp_path, hand_model):
    cache = tmp_path / "setup-cache"
    cache.mkdir()
    shutil.copyfile(hand_model, cache / "hand_landmarker.task")  # already there: setup downloads nothing
    del env["FINGERSPELL_HAND_MODEL"]
    env["PATH"] = str(tmp_path / "no-npm")  # and the page's landmarker cannot be had: one line says how
    env["npm_config_registry"] = f"http://127.0.0.1:{free_port()}/"  # nothing listens there
    out = cli("setup", "--cache-dir", cache, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"hand model ready: {cache / 'hand_landmarker.task'} (sha256 {TASK_SHA256})"
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("fingerspell setup: the page will find hands on the server: ") and "npm is not installed" in line
    assert "cannot download http://127.0.0.1:" in line
    assert "npm pack @mediapipe/tasks-vision@0.10.35" in line and "fingerspell setup --tasks-vision" in line


def test_setup_honours_a_model_placed_by_hand(env, hand_model):
    out = cli("setup", env=env)
    assert out.returncode == 0, out.stderr
    assert f"hand model ready: {hand_model} (sha256 {TASK_SHA256})" in out.stdout


def test_setup_with_a_damaged_placed_model_says_to_replace_it(env, tmp_path):
    bad = tmp_path / "hand.task"
    bad.write_bytes(b"junk")
    env["FINGERSPELL_HAND_MODEL"] = str(bad)
    out = cli("setup", env=env)
    assert_one_line_error(out, "setup", "not a readable .task file")
    assert out.returncode == 5


# -- predict --------------------------------------------------------------------------------------


def test_predict_json_prints_one_object_per_image(env, tmp_path, tiny_bundle):
    photos = real_images("A", 2) + real_images("V", 1)
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((240, 320, 3), 255, np.uint8)).save(blank)
    out = cli("predict", *photos, blank, "--model", tiny_bundle, "--json", env=env)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    assert [r["path"] for r in records] == [str(p) for p in photos] + [str(blank)]
    for r in records:
        assert {"path", "letter", "confidence", "top", "hand"} <= set(r)
        assert isinstance(r["confidence"], float) and 0 <= r["confidence"] <= 1
        assert r["top"][0]["label"] == r["letter"]
    assert records[-1]["letter"] == "nothing" and records[-1]["hand"] is None
    with_hand = [r for r in records[:-1] if r["hand"] is not None]
    assert len(with_hand) >= 2 and all(len(r["top"]) == 3 for r in with_hand)


def test_predict_of_a_folder_prints_a_line_per_image(env, tmp_path, tiny_bundle):
    folder = drawn_folder(tmp_path / "imgs", classes="AB", n=2)
    out = cli("predict", folder, "--model", tiny_bundle, env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 4
    assert all(": nothing (1.00)  top-3: nothing 1.00" in line for line in lines)


def test_predict_reports_an_unreadable_image_and_carries_on(env, tmp_path, tiny_bundle):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = cli("predict", bad, good, "--model", tiny_bundle, env=env)
    assert out.returncode == 6  # a script can tell that an input failed
    assert f"{bad}: error: " in out.stderr and "not an image" in out.stderr
    assert f"{good}: nothing" in out.stdout


def test_predict_exits_non_zero_when_no_image_could_be_read(env, tmp_path, tiny_bundle):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = cli("predict", bad, "--model", tiny_bundle, "--json", env=env)
    assert out.returncode == 6
    assert json.loads(out.stdout)[0]["error"].startswith(f"{bad}: ")


def test_predict_exits_non_zero_when_one_of_several_inputs_failed_and_prints_the_others(env, tmp_path, tiny_bundle):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32)).save(good)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = cli("predict", good, bad, "--model", tiny_bundle, "--json", env=env)
    assert out.returncode == 6
    records = json.loads(out.stdout)
    assert records[0]["path"] == str(good) and records[0]["letter"] == "nothing"
    assert "error" in records[1]


def test_an_unreadable_image_is_named_once_in_words_for_a_cli_user(env, tmp_path, tiny_bundle):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    out = cli("predict", bad, "--model", tiny_bundle, env=env)
    first = out.stderr.splitlines()[0]
    assert first.count(str(bad)) == 1, first
    assert "send JPEG" not in out.stderr


# -- help, exit codes -------------------------------------------------------------------------------


def test_every_flag_has_help_and_every_command_a_description():
    import argparse

    from fingerspell.cli import _parser

    top = _parser()
    subs = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(subs.choices) == sorted(COMMANDS)
    for name, p in [("fingerspell", top), *subs.choices.items()]:
        if p is not top:
            assert p.description, f"{name} has no description"
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_help_lists_every_exit_code_the_errors_use(env):
    from fingerspell import errors
    from fingerspell.config import ConfigError

    out = cli("--help", env=env)
    codes = {cls.exit_code for cls in vars(errors).values() if isinstance(cls, type)
             and issubclass(cls, errors.FingerspellError)} | {ConfigError.exit_code, 0, 130}
    listed = {int(line.split()[0]) for line in out.stdout.split("exit codes:")[1].strip().splitlines()}
    assert codes <= listed
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for code in codes:
        assert f"| {code} |" in readme, f"exit code {code} is not in the README's table"


# -- a serving-only install -------------------------------------------------------------------------


def _without(modules, *args, env, cwd=None):
    """The CLI in a process where ``modules`` cannot be imported, as in the serving-only install."""
    code = ("import sys\n"
            f"for m in {list(modules)!r}: sys.modules[m] = None\n"
            "from fingerspell.cli import main\n"
            f"sys.argv = ['fingerspell', *{[str(a) for a in args]!r}]\n"
            "sys.exit(main())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, cwd=cwd)


@pytest.mark.parametrize("command", ["train", "crossval", "evaluate"])
def test_training_commands_without_the_training_install_say_how_to_install_it(env, tmp_path, command):
    data = drawn_folder(tmp_path / "d")
    args = {"train": ["--out", tmp_path / "m"], "crossval": [], "evaluate": []}[command]
    out = _without(["sklearn", "tensorflow"], command, "--data", data, *args, env=env)
    line = assert_one_line_error(out, command, "scikit-learn")
    assert "pip install -e '" in line and "[train]'" in line
    assert not (tmp_path / "m").exists()


# -- serve: ports and hosts -------------------------------------------------------------------------


@pytest.mark.parametrize("port", ["99999", "-1", "0"])
def test_serve_refuses_a_port_out_of_range_in_one_line(env, port):
    out = cli("serve", "--port", port, env=env, timeout=60)
    assert_one_line_error(out, "serve", "from 1 to 65535")


def test_serve_on_a_port_in_use_says_so_without_printing_the_url(env):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", "--port", port, env=env, timeout=60)
    line = assert_one_line_error(out, "serve", f"port {port} on 127.0.0.1 is already in use")
    assert "http://" not in out.stderr + out.stdout, line


def test_serve_refuses_a_host_that_is_not_an_address_here(env):
    # TEST-NET-1 (RFC 5737): on no machine's interfaces; binding to it fails without sending anything
    out = cli("serve", "--host", "192.0.2.1", "--port", "5999", env=env, timeout=60)
    assert_one_line_error(out, "serve", "--host 192.0.2.1 is not an address of this machine")


# -- quiet by default -------------------------------------------------------------------------------

NATIVE = ("I0000", "W0000", "E0000", "INFO: ", "WARNING: ", "oneDNN", "cpu_feature_guard", "absl::",
          "XNNPACK", "TensorFlow binary")


def native_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(mark in line for mark in NATIVE)]


def test_predict_writes_its_result_and_nothing_else(env):
    photo = real_images("A", 1)[0]
    out = cli("predict", photo, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    assert len(out.stdout.splitlines()) == 1 and out.stdout.startswith(f"{photo}: ")


def test_verbose_lets_the_native_logging_through(env):
    photo = real_images("A", 1)[0]
    out = cli("-v", "predict", photo, env=env)
    assert out.returncode == 0, out.stderr
    assert native_lines(out.stderr), out.stderr


@pytest.mark.slow
def test_train_quiet_writes_no_native_log_lines(env, tmp_path, real_slice):
    out = cli("-q", "train", "--data", real_slice, "--out", tmp_path / "m", "--epochs", "1", env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert native_lines(out.stderr) == [], out.stderr[-3000:]


# -- one exit-code table for every command (issue 19, item 8) ----------------------------------------


def readme_exit_codes() -> dict[int, str]:
    """The README's "Exit codes" table, code -> meaning, as a user reads it (backticks dropped)."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n#", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| ")]
    return {int(code): meaning.strip().replace("`", "") for code, meaning in rows if code.strip().isdigit()}


def test_the_help_and_the_readme_give_the_same_exit_code_table():
    from fingerspell import errors
    from fingerspell.cli import EXIT_CODES
    from fingerspell.config import ConfigError

    in_help = {}
    for line in EXIT_CODES.split("exit codes:", 1)[1].strip().splitlines():
        code, meaning = line.split(maxsplit=1)
        in_help[int(code)] = meaning
    assert in_help == readme_exit_codes()
    used = {cls.exit_code for cls in vars(errors).values()
            if isinstance(cls, type) and issubclass(cls, errors.FingerspellError)}
    assert used | {ConfigError.exit_code, 0, 130} <= set(in_help)
    assert len({errors.OutputFolderError.exit_code, errors.BundleError.exit_code, errors.DatasetError.exit_code,
                ConfigError.exit_code, errors.FingerspellError.exit_code}) == 5  # each mistake its own code


def foreign_folder(path: Path) -> Path:
    """Someone's folder: not empty, and nothing in it written by fingerspell."""
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("mine")
    return path


@pytest.mark.parametrize("command", ["train", "crossval", "evaluate", "download", "landmarks"])
def test_a_foreign_output_folder_gives_the_same_exit_code_from_every_command(env, tmp_path, command):
    from fingerspell.errors import OutputFolderError

    data = drawn_folder(tmp_path / "d")
    victim = foreign_folder(tmp_path / "work")
    args = {"train": ["--data", data, "--out", victim], "crossval": ["--data", data, "--out", victim],
            "evaluate": ["--data", data, "--out", victim], "download": ["--dest", victim],
            "landmarks": [data, "--out", victim / "notes.txt"]}[command]  # its --out is a file: the user's
    out = cli(command, *args, env=env, timeout=60)
    assert_one_line_error(out, command, str(victim))
    assert out.returncode == OutputFolderError.exit_code == 7
    assert sorted(p.name for p in victim.iterdir()) == ["notes.txt"]
    assert (victim / "notes.txt").read_text() == "mine"


def run_main(argv, capsys) -> tuple[int, str]:
    """``fingerspell ARGV`` in this process: its exit code (argparse's SystemExit too) and stderr."""
    from fingerspell import cli as cli_mod

    try:
        code = cli_mod.main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.fixture
def no_work(monkeypatch):
    """Every door to real work fails the test if opened: reading a data folder (every image list
    starts at resolve_root), loading a model, fetching the hand model, serving, downloading."""
    from fingerspell import dataset, hands, predictor, serve
    from fingerspell.training import download, train

    def tripwire(what):
        def fail(*args, **kwargs):
            raise AssertionError(f"work started before the flags were checked: {what}")
        return fail

    monkeypatch.setattr(dataset, "resolve_root", tripwire("a data folder was read"))
    monkeypatch.setattr(predictor.Predictor, "from_bundle", tripwire("a model was loaded"))
    monkeypatch.setattr(hands, "ensure_hand_model", tripwire("the hand model was fetched"))
    monkeypatch.setattr(train, "ensure_hand_model", tripwire("the hand model was fetched"))
    monkeypatch.setattr(serve, "serve_app", tripwire("the server started"))
    monkeypatch.setattr(download, "download_kaggle", tripwire("a download started"))


def config_file(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(data))
    return path


# (argv after the command's data and output flags, what the one line must say)
BAD_TRAIN_FLAGS = [
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--val-fraction", "1.5"], "--val-fraction must be in [0, 1), got 1.5"),
    (["--val-fraction", "nan"], "--val-fraction must be in [0, 1), got nan"),
    (["--test-fraction", "-1"], "--test-fraction must be in [0, 1), got -1.0"),
    (["--val-fraction", "0.6", "--test-fraction", "0.5"],
     "--val-fraction + --test-fraction must leave images for training"),
    (["--seed", "-1"], "--seed must be a whole number, 0 or more, got -1"),
    (["--frame-block", "0"], "--frame-block must be at least 1, got 0"),
    (["--workers", "-2"], "--workers must be 0 (one per core) or more, got -2"),
    (["--limit-per-class", "0"], "--limit-per-class must be at least 1, got 0"),
    (["--grouping", "regex"], "grouping 'regex' needs --group-regex"),
    (["--grouping", "regex", "--group-regex", "(unclosed"], "--group-regex '(unclosed' is not a valid regex"),
    (["--kind", "resnet"], "argument --kind: invalid choice: 'resnet'"),
    (["--config", "{missing}"], "recipe-missing.json: cannot read it as JSON"),
    (["--config", "{config}"], "--config {config}: unknown TrainParams setting(s): learning_rate"),
]


def bad_flag_cases():
    for argv, message in BAD_TRAIN_FLAGS:
        yield pytest.param("train", argv, message, id="train " + " ".join(argv))
    for argv, message in [(["--folds", "1"], "--folds must be at least 2, got 1"),
                          (["--epochs", "0"], "--epochs must be at least 1, got 0"),
                          (["--seed", "-5"], "--seed must be a whole number, 0 or more, got -5")]:
        yield pytest.param("crossval", argv, message, id="crossval " + " ".join(argv))
    yield pytest.param("evaluate", ["--workers", "-1"], "--workers must be 0 (one per core) or more, got -1",
                       id="evaluate --workers -1")
    yield pytest.param("predict", ["--vocab", "{missing}"], "--vocab ", id="predict --vocab missing")
    yield pytest.param("predict", ["--decoder", "spellcheck"], "argument --decoder: invalid choice",
                       id="predict --decoder spellcheck")
    for port in ("0", "70000"):
        yield pytest.param("serve", ["--port", port], "give --port a number from 1 to 65535", id=f"serve --port {port}")
    yield pytest.param("serve", ["--port", "5999", "--tls-cert", "{missing}"], "give both --tls-cert and --tls-key",
                       id="serve --tls-cert alone")


@pytest.mark.parametrize("command, argv, message", list(bad_flag_cases()))
def test_bad_flags_exit_2_naming_the_flag_before_any_work(command, argv, message, tmp_path, capsys, no_work):
    missing, config = tmp_path / "recipe-missing.json", config_file(tmp_path, {"learning_rate": 0.1})
    argv = [a.format(missing=missing, config=config) for a in argv]
    message = message.format(missing=missing, config=config)
    photo = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(photo)
    # A data folder and an output folder that would give 3 and 7 if they were looked at first.
    nowhere, victim = tmp_path / "no-such-data", foreign_folder(tmp_path / "work")
    lead = {"train": ["--data", nowhere, "--out", victim], "crossval": ["--data", nowhere, "--out", victim],
            "evaluate": ["--data", nowhere, "--out", victim], "predict": [photo], "serve": []}[command]
    code, err = run_main([command, *lead, *argv], capsys)
    assert code == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"fingerspell {command}: error: "), err
    assert message in last, last
    if "--config" not in argv:  # (a file's unknown key is answered with the known ones)
        for field in ("val_fraction", "test_fraction", "frame_block", "limit_per_class"):
            assert field not in last  # the flag, not the internal name


def test_a_bad_setting_from_the_config_file_is_named_as_the_files_field(tmp_path, capsys, no_work):
    config = config_file(tmp_path, {"split": {"val_fraction": 1.5}})
    code, err = run_main(["train", "--data", tmp_path / "nowhere", "--out", tmp_path / "m", "--config", config],
                         capsys)
    assert code == 2
    assert f"split.val_fraction in --config {config} must be in [0, 1), got 1.5" in err
    # the flag given on the command line replaces the file's value, and is named if it is bad
    code, err = run_main(["train", "--data", tmp_path / "nowhere", "--out", tmp_path / "m", "--config", config,
                          "--val-fraction", "-0.5"], capsys)
    assert code == 2 and "--val-fraction must be in [0, 1), got -0.5" in err


def test_a_bad_fraction_on_the_real_data_is_refused_before_a_single_image_is_listed(env, tmp_path):
    from conftest import KAGGLE, ROBOFLOW, need_data

    need_data(KAGGLE, ROBOFLOW)
    out = cli("train", "--data", KAGGLE, "--data", ROBOFLOW, "--out", tmp_path / "m", "--val-fraction", "1.5",
              env=env, timeout=60)
    assert_one_line_error(out, "train", "--val-fraction must be in [0, 1), got 1.5")
    assert out.returncode == 2
    assert not (tmp_path / "m").exists() and not (tmp_path / "cache").exists()


# -- predict carries on past a missing file; a folder of loose images (issue 19, item 9) --------------


def test_predict_prints_every_readable_input_past_a_missing_one_and_exits_6(env, tmp_path, tiny_bundle):
    good = tmp_path / "good.png"
    Image.new("RGB", (32, 32)).save(good)
    nope, gone = tmp_path / "nope.jpg", tmp_path / "gone"
    out = cli("predict", nope, good, gone, "--model", tiny_bundle, env=env)
    assert out.returncode == 6
    assert out.stdout.splitlines() == [f"{good}: nothing (1.00)  top-3: nothing 1.00"]
    assert out.stderr.splitlines() == [f"{nope}: error: no such file or folder",
                                       f"{gone}: error: no such file or folder",
                                       "fingerspell predict: error: 2 of 3 input(s) could not be read"]
    out = cli("predict", nope, good, "--model", tiny_bundle, "--json", env=env)
    assert out.returncode == 6
    records = json.loads(out.stdout)
    assert records[0] == {"path": str(nope), "error": f"{nope}: no such file or folder"}
    assert records[1]["path"] == str(good) and records[1]["letter"] == "nothing"


def test_evaluate_on_a_folder_of_loose_images_says_which_layout_is_expected(env, tmp_path):
    loose = tmp_path / "photos"
    loose.mkdir()
    for i in range(12):
        Image.new("RGB", (32, 32), (20 * i, 0, 0)).save(loose / f"IMG_{i:04d}.jpg")
    out = cli("evaluate", "--data", loose, env=env, timeout=60)
    assert_one_line_error(out, "evaluate", f"{loose} holds 12 image(s) but no class folders: put each letter's "
                                           f"images in a folder named after it, {loose}/A/*.jpg, {loose}/B/*.jpg, ...")
    assert out.returncode == 3


def test_evaluate_on_a_wrapper_of_one_unlabelled_folder_says_which_layout_is_expected(env, tmp_path):
    # data/photos/*.jpg: "photos" looks like a class folder, but is no label the model knows
    wrapper = tmp_path / "data"
    (wrapper / "photos").mkdir(parents=True)
    for i in range(3):
        Image.new("RGB", (32, 32)).save(wrapper / "photos" / f"IMG_{i}.jpg")
    out = cli("evaluate", "--data", wrapper, env=env, timeout=60)
    line = assert_one_line_error(out, "evaluate", "photos are named for no label it knows")
    assert f"{wrapper}/A/*.jpg" in line and "no images found" not in line
    assert out.returncode == 3


# -- --config, then the flags given (issue 19, item 12) -----------------------------------------------


@pytest.mark.parametrize("command", ["train", "crossval"])
def test_the_config_file_beats_the_defaults_and_a_flag_given_beats_the_file(command, tmp_path):
    from fingerspell.cli import _parser
    from fingerspell.cli.training import train_params
    from fingerspell.config import TrainParams

    config = config_file(tmp_path, {"kind": "cnn", "seed": 7, "split": {"val_fraction": 0.3, "grouping": "signer"},
                                    "cnn": {"epochs": 3}})
    plain = [command, "--data", str(tmp_path)] + (["--out", str(tmp_path / "m")] if command == "train" else [])
    lead = [*plain, "--config", str(config)]
    params = train_params(_parser().parse_args(lead))
    assert params.kind == "cnn" and params.seed == 7 and params.cnn.epochs == 3
    assert params.split.val_fraction == 0.3 and params.split.grouping == "signer"
    assert params.split.seed == 1234  # the file set the training seed only; split.seed keeps its default
    params = train_params(_parser().parse_args([*lead, "--seed", "9", "--grouping", "random", "--epochs", "5"]))
    assert params.kind == "cnn" and params.seed == 9 and params.split.seed == 9
    assert params.split.grouping == "random" and params.cnn.epochs == 5 and params.landmarks.epochs == 5
    assert params.split.val_fraction == 0.3
    assert train_params(_parser().parse_args(plain)) == TrainParams()  # no file, no flags: the defaults


@pytest.mark.parametrize("command", ["train", "crossval"])
def test_the_config_file_reaches_the_library_through_the_command(command, tmp_path, monkeypatch, capsys):
    from fingerspell.training import crossval, train

    seen = {}
    monkeypatch.setattr(train, "train", lambda data, out, params, **kw: seen.update(params=params) or {"split": {}})
    monkeypatch.setattr(crossval, "cross_validate", lambda data, params, folds, **kw: seen.update(params=params) or
                        {"folds": [], "pooled": {"n": 0}, "spread": {}, "split": {"grouping": "x", "seed": 1},
                         "data": {"skipped": 0}})
    config = config_file(tmp_path, {"kind": "cnn", "seed": 7})
    data = drawn_folder(tmp_path / "d")
    lead = [command, "--data", data, "--config", config] + (["--out", tmp_path / "m"] if command == "train" else [])
    run_main(["-q", *lead], capsys)
    assert (seen["params"].kind, seen["params"].seed) == ("cnn", 7)
    run_main(["-q", *lead, "--seed", "9"], capsys)
    assert (seen["params"].kind, seen["params"].seed) == ("cnn", 9)


def test_a_real_train_run_resolves_the_config_before_it_fails_on_the_data(env, tmp_path):
    config = config_file(tmp_path, {"kind": "cnn", "seed": 7})
    out = cli("-v", "train", "--data", tmp_path / "nowhere", "--out", tmp_path / "m", "--config", config, env=env,
              timeout=60)
    assert out.returncode == 3 and "nowhere does not exist" in out.stderr
    line = next(line for line in out.stderr.splitlines() if "recipe (defaults < --config < flags given): " in line)
    recipe = json.loads(line.split("flags given): ", 1)[1])
    assert recipe["kind"] == "cnn" and recipe["seed"] == 7 and recipe["split"]["seed"] == 1234
