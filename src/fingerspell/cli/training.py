"""The commands of the training install: download, train, crossval, evaluate.

Each checks what it can before anything slow, in this order: the flags and settings (exit 2), the
output folder (7), the data folders (3), the installed modules; then it runs the library and
prints a summary. The parser and the error-to-exit-code handling are in ``cli/__init__.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import re
import signal
import sys
import threading
from pathlib import Path

from ..config import ConfigError
from ..errors import FingerspellError

log = logging.getLogger(__name__)

# What training, evaluation and downloading import beyond the serving install (pyproject's [train]).
TRAIN_MODULES = {"tensorflow": "TensorFlow", "keras": "Keras", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}
EVALUATE_MODULES = {"sklearn": "scikit-learn", "matplotlib": "matplotlib"}
REPORT_FILES = {"crossval": ("crossval.json", "confusion.png"), "evaluate": ("metrics.json", "confusion.png")}


def _install_hint(extra: str) -> str:
    """The command that adds pyproject's ``[extra]`` to the Python running this."""
    python = sys.executable
    try:
        rel = os.path.relpath(python)
        python = rel if not rel.startswith("..") else python
    except ValueError:
        pass
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "pyproject.toml").is_file():  # a source checkout, installed with -e
        where = "." if checkout == Path.cwd().resolve() else str(checkout)
        return f"{python} -m pip install -e '{where}[{extra}]'"
    return f"{python} -m pip install 'fingerspell[{extra}]'"


def _require(modules: dict[str, str], command: str) -> None:
    """One line with the install command where a module of the training install is missing."""
    missing = [name for mod, name in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        names = ", ".join(missing[:-1]) + (" and " if len(missing) > 1 else "") + missing[-1]
        raise FingerspellError(f"{command} needs {names}, which this install lacks; install them with: "
                               f"{_install_hint('train')}")


def _check_data(sources) -> None:
    """Each ``--data``: a folder of class folders, a landmark records file or a folder of landmark arrays."""
    from ..dataset import resolve_root
    from ..records import is_arrays_folder, is_records_file

    for source in sources:
        if not (is_records_file(source) or is_arrays_folder(source)):
            resolve_root(source)


def _report_folder(args) -> Path | None:
    """``--out`` of crossval and evaluate: new, empty, or a report this command wrote before."""
    if not args.out:
        return None
    from ..outputs import check_folder

    return check_folder(args.out, REPORT_FILES[args.command], "report")


def _write_report(args, report: dict, confusion: dict, title: str) -> None:
    from ..training.plots import confusion_png

    out = _report_folder(args)  # again: the folder may have changed while the work ran
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILES[args.command][0]).write_text(json.dumps(report, indent=1) + "\n")
    confusion_png(confusion, out / "confusion.png", title)


# The recipe flags of train and crossval: argparse dest -> (flag, the TrainParams fields it sets, as
# dotted paths). The parser's defaults are None, so a flag left out lets the --config file's value,
# or else TrainParams' default, stand: defaults < config file < flags given on the command line.
RECIPE_FLAGS = {
    "kind": ("--kind", ("kind",)),
    "seed": ("--seed", ("seed", "split.seed")),  # one flag for the split and the training run
    "grouping": ("--grouping", ("split.grouping",)),
    "group_regex": ("--group-regex", ("split.group_regex",)),
    "frame_block": ("--frame-block", ("split.frame_block",)),
    "val_fraction": ("--val-fraction", ("split.val_fraction",)),
    "test_fraction": ("--test-fraction", ("split.test_fraction",)),
    "workers": ("--workers", ("workers",)),
    "limit_per_class": ("--limit-per-class", ("limit_per_class",)),
    "epochs": ("--epochs", ("landmarks.epochs", "cnn.epochs")),  # every kind's, so --kind may come from anywhere
}


def _replaced(obj, path: str, value):
    """A copy of the frozen dataclass ``obj`` with the field at dotted ``path`` set to ``value``."""
    head, _, rest = path.partition(".")
    return dataclasses.replace(obj, **{head: _replaced(getattr(obj, head), rest, value) if rest else value})


def _field(obj, path: str):
    for key in path.split("."):
        obj = getattr(obj, key)
    return obj


def _in_file(data: dict, path: str) -> bool:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return False
        data = data[key]
    return True


def _read_config(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a JSON object of TrainParams fields, got {type(data).__name__}")
    return data


def train_params(args):
    """The recipe of ``train`` and ``crossval``, resolved and checked; nothing is read but ``--config``.

    TrainParams' defaults, then the ``--config`` file's fields over them, then each recipe flag
    given on the command line over both.

    Raises:
        ConfigError: the file cannot be read, has unknown keys, or a setting is out of range
            (the message names the flag, or the file's field where the value came from the file).
    """
    from ..config import TrainParams, train_params_from_dict

    params, from_file = TrainParams(), {}
    if args.config:
        from_file = _read_config(args.config)
        try:
            params = train_params_from_dict(from_file)
        except ConfigError as exc:
            raise ConfigError(f"--config {args.config}: {exc}") from None
    for dest, (_, paths) in RECIPE_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            for path in paths:
                params = _replaced(params, path, value)
    _check_recipe(params, args, from_file)
    log.debug("recipe (defaults < --config < flags given): %s", json.dumps(dataclasses.asdict(params)))
    return params


def _whole(value, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _fraction(value) -> bool:
    # `0 <= value < 1` is false for NaN, which --val-fraction nan would otherwise slip through
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1


def _check_recipe(params, args, from_file: dict) -> None:
    """Refuse a recipe setting out of range, naming what the user wrote: the flag, or the file's field."""
    from ..dataset import GROUPINGS
    from ..recognisers import KINDS

    def name(path: str) -> str:
        for dest, (flag, paths) in RECIPE_FLAGS.items():
            if path in paths and (getattr(args, dest, None) is not None or not _in_file(from_file, path)):
                return flag
        return f"{path} in --config {args.config}"

    def need(ok: bool, path: str, what: str) -> None:
        if not ok:
            raise ConfigError(f"{name(path)} {what}, got {_field(params, path)!r}")

    need(params.kind in KINDS, "kind", f"must be one of {', '.join(KINDS)}")
    need(_whole(getattr(params, params.kind).epochs, 1), f"{params.kind}.epochs", "must be at least 1")
    for path in ("seed", "split.seed"):
        need(_whole(_field(params, path), 0), path, "must be a whole number, 0 or more")
    need(params.split.grouping in GROUPINGS, "split.grouping", f"must be one of {', '.join(GROUPINGS)}")
    if params.split.grouping == "regex":
        regex = params.split.group_regex
        if not regex:
            raise ConfigError(f"grouping 'regex' needs {name('split.group_regex')}, e.g. '^(\\w+?)_' (its first "
                              "capture group is the group id)")
        try:
            re.compile(regex)
        except (re.error, TypeError) as exc:
            raise ConfigError(f"{name('split.group_regex')} {regex!r} is not a valid regex: {exc}") from None
    need(_whole(params.split.frame_block, 1), "split.frame_block", "must be at least 1")
    need(_fraction(params.split.val_fraction), "split.val_fraction", "must be in [0, 1)")
    need(_fraction(params.split.test_fraction), "split.test_fraction", "must be in [0, 1)")
    if params.split.val_fraction + params.split.test_fraction >= 1:
        raise ConfigError(f"{name('split.val_fraction')} + {name('split.test_fraction')} must leave images for "
                          f"training, got {params.split.val_fraction} + {params.split.test_fraction}")
    need(_whole(params.workers, 0), "workers", "must be 0 (one per core) or more")
    need(params.limit_per_class is None or _whole(params.limit_per_class, 1), "limit_per_class", "must be at least 1")


def _check_workers(args) -> None:
    if args.workers < 0:
        raise ConfigError(f"--workers must be 0 (one per core) or more, got {args.workers}")


def _check_folds(args) -> None:
    if args.folds < 2:  # as crossval._check_folds, without importing the training half
        raise ConfigError(f"--folds must be at least 2, got {args.folds}")


@contextlib.contextmanager
def ctrl_c_asks_to_stop():
    """Ctrl-C while training: the first asks the library to stop, a second stops at once.

    A KeyboardInterrupt raised by a signal handler lands wherever Python happens to be: inside
    TensorFlow's graph tracing it surfaces as another error, inside a finaliser it is swallowed
    and training runs on. So the first Ctrl-C only sets the event this yields; the library checks
    it after every training step, detected image and stage, and raises KeyboardInterrupt from
    plain Python (the previous bundle stays as it was). Where Ctrl-C is ignored (a background
    job), or off the main thread, nothing changes.
    """
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if not callable(previous) or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_download(args):
    from ..training.download import check_dest, download_kaggle

    check_dest(args.dest)
    _require({"kaggle": "the kaggle client"}, "download")
    path = download_kaggle(args.dest)
    print(f"Kaggle ASL Alphabet unpacked in {path}; train with: fingerspell train --data {path} --out my-model")


def cmd_train(args):
    from ..bundle import check_target

    if args.motion:
        return _train_motion(args)
    params = train_params(args)
    check_target(args.out)  # before anything slow: never train for minutes, then refuse
    _check_data(args.data)
    _require(TRAIN_MODULES, "training")
    from ..training.metrics import brief
    from ..training.train import train

    with ctrl_c_asks_to_stop() as stop:
        metrics = train(args.data, args.out, params, cache=args.cache_dir, progress=not args.quiet, stop=stop)
    for side in ("val", "test"):
        if side in metrics:
            print(f"{side} ({metrics['split']['grouping']} grouping): {brief(metrics[side])}")
            for src, m in metrics[side].get("per_source", {}).items():
                print(f"  {src}: {m['top1']:.1%} top-1, no hand {m['no_hand_rate']:.1%} (n={m['n']:,})")
    if "warning" in metrics["split"]:
        print(f"note: {metrics['split']['warning']}")
    print(f"bundle: {Path(args.out).expanduser().resolve()}")


def _train_motion(args):
    from ..bundle import check_target, load_meta

    check_target(args.out)
    load_meta(args.base)  # a base that does not load is refused before any work
    _require(TRAIN_MODULES, "training")
    from ..training.motion_bundle import brief, train_motion

    with ctrl_c_asks_to_stop() as stop:
        figures = train_motion(args.data, args.out, args.base, seed=args.seed if args.seed is not None else 1,
                               epochs=args.epochs or 30, stop=stop)
    for fps, fig in figures["held_out"].items():
        print(f"held out at {fps} frames/s: {brief(fig)}")
    print(f"bundle: {Path(args.out).expanduser().resolve()}")


def cmd_crossval(args):
    params = train_params(args)
    _check_folds(args)
    _report_folder(args)
    _check_data(args.data)
    _require(TRAIN_MODULES, "cross-validation")
    from ..training.crossval import cross_validate
    from ..training.metrics import brief

    with ctrl_c_asks_to_stop() as stop:
        report = cross_validate(args.data, params, args.folds, cache=args.cache_dir, progress=not args.quiet,
                                stop=stop)
    if args.out:
        _write_report(args, report, report["pooled"], f"{args.kind}, {args.folds} folds, every image held out once")
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for k, m in enumerate(report["folds"]):
        print(f"fold {k + 1}/{len(report['folds'])}: {brief(m)}")
    split = report["split"]
    print(f"every image held out once ({split['grouping']} grouping, seed {split['seed']}): {brief(report['pooled'])}")
    for src, s in report["spread"].items():
        pooled = report["pooled"] if src == "all" else report["pooled"]["per_source"][src]
        print(f"  {src}: {pooled['top1']:.1%} top-1 (n={pooled['n']:,}); folds {s['min']:.1%}-{s['max']:.1%}, "
              f"mean {s['mean']:.1%}, sd {s['std']:.1%}")
    if "warning" in split:
        print(f"note: {split['warning']}")
    if report["data"]["skipped"]:
        print(f"skipped {report['data']['skipped']} unreadable file(s); see --json for the list")


def cmd_evaluate(args):
    _check_workers(args)
    _report_folder(args)
    _check_data(args.data)
    _require(EVALUATE_MODULES, "evaluation")
    from ..training.evaluate import evaluate
    from ..training.metrics import brief
    from ..predictor import Predictor

    predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    m = evaluate(predictor, args.data, workers=args.workers, cache=args.cache_dir, progress=not args.quiet)
    if args.out:
        _write_report(args, m, m, f"{predictor.kind} on {', '.join(Path(d).name for d in args.data)}")
    if args.json:
        print(json.dumps(m, indent=1))
        return
    print(f"{', '.join(args.data)}: {brief(m)}; top-1 where a hand was found {m['top1_where_hand_found']:.1%}")
    for src, s in m.get("per_source", {}).items():
        print(f"  {src}: {s['top1']:.1%} top-1, no hand {s['no_hand_rate']:.1%} (n={s['n']:,})")
    print(f"{'class':>8} {'prec':>6} {'recall':>6} {'f1':>6} {'n':>5}")
    for c, s in m["per_class"].items():
        print(f"{c:>8} {s['precision']:6.2f} {s['recall']:6.2f} {s['f1']:6.2f} {s['support']:5d}")
    if m["data"]["skipped"]:
        print(f"skipped {m['data']['skipped']} unreadable file(s); see --json for the list")
