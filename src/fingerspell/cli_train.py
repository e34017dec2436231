"""The commands of the training install: download, train, crossval, evaluate.

Each checks what it can before anything slow (the output folder, the data folders, the flags,
the installed modules), then runs the library and prints a summary. The parser and the
error-to-exit-code handling are in ``cli.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import FingerspellError

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
    checkout = Path(__file__).resolve().parents[2]
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


def _check_data(folders) -> None:
    from .dataset import resolve_root

    for folder in folders:
        resolve_root(folder)


def _report_folder(args) -> Path | None:
    """``--out`` of crossval and evaluate: new, empty, or a report this command wrote before."""
    if not args.out:
        return None
    from .outputs import check_folder

    return check_folder(args.out, REPORT_FILES[args.command], "report")


def _write_report(args, report: dict, confusion: dict, title: str) -> None:
    from .plots import confusion_png

    out = _report_folder(args)  # again: the folder may have changed while the work ran
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILES[args.command][0]).write_text(json.dumps(report, indent=1) + "\n")
    confusion_png(confusion, out / "confusion.png", title)


def _train_params(args):
    from .config import TrainParams, train_params_from_dict
    from .recognisers import KINDS

    base = TrainParams()
    if args.config:
        try:
            base = train_params_from_dict(json.loads(Path(args.config).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise FingerspellError(f"--config {args.config}: {exc}") from None
    split = dataclasses.replace(base.split, val_fraction=getattr(args, "val_fraction", base.split.val_fraction),
                                test_fraction=getattr(args, "test_fraction", base.split.test_fraction),
                                seed=args.seed, grouping=args.grouping, group_regex=args.group_regex,
                                frame_block=args.frame_block)
    per_kind = {}  # each kind's settings are the TrainParams field of its name
    if args.epochs is not None:
        if args.epochs < 1:
            raise FingerspellError("--epochs must be at least 1")
        per_kind = {k: dataclasses.replace(getattr(base, k), epochs=args.epochs) for k in KINDS}
    return dataclasses.replace(base, kind=args.kind, split=split, **per_kind, seed=args.seed,
                               workers=args.workers, limit_per_class=args.limit_per_class)


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
    from .download import check_dest, download_kaggle

    check_dest(args.dest)
    _require({"kaggle": "the kaggle client"}, "download")
    path = download_kaggle(args.dest)
    print(f"Kaggle ASL Alphabet unpacked in {path}; train with: fingerspell train --data {path} --out my-model")


def cmd_train(args):
    from .bundle import check_target

    check_target(args.out)  # before anything slow: never train for minutes, then refuse
    _check_data(args.data)
    params = _train_params(args)
    _require(TRAIN_MODULES, "training")
    from .metrics import brief
    from .train import train

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


def cmd_crossval(args):
    _report_folder(args)
    _check_data(args.data)
    params = _train_params(args)
    _require(TRAIN_MODULES, "cross-validation")
    from .crossval import cross_validate
    from .metrics import brief

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
    _report_folder(args)
    _check_data(args.data)
    _require(EVALUATE_MODULES, "evaluation")
    from .evaluate import evaluate
    from .metrics import brief
    from .predictor import Predictor

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
