"""The ``fingerspell`` command: setup | download | train | crossval | evaluate | predict | serve.

Thin over the library: it parses flags, configures logging, and turns typed errors into one
line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import faulthandler
import importlib.util
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .errors import FingerspellError

log = logging.getLogger("fingerspell")
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
DEFAULT_DATA = Path("..") / "shared" / "data"
# What training, evaluation and downloading import beyond the serving install (pyproject's [train]).
TRAIN_MODULES = {"tensorflow": "TensorFlow", "keras": "Keras", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}
EVALUATE_MODULES = {"sklearn": "scikit-learn", "matplotlib": "matplotlib"}
EXIT_CODES = """exit codes:
  0  done
  1  any other error a user can fix (the message says what to do)
  2  bad flags or settings (argparse, --config, --port, FINGERSPELL_* variables)
  3  a data folder is missing, empty or has no class folders
  4  a model bundle is missing, corrupt, or --out is not a place a bundle may be written
  5  the MediaPipe hand model could not be obtained, verified or loaded
  6  an image or video could not be read (predict: any input that failed)
  130  interrupted (Ctrl-C)"""
REPORT_FILES = {"crossval": ("crossval.json", "confusion.png"), "evaluate": ("metrics.json", "confusion.png")}


def _quiet_native_logs() -> None:
    """Silence what MediaPipe, LiteRT, absl and TensorFlow's C++ code write to stderr.

    Their loggers write to file descriptor 2 directly; the ones that read an environment
    variable are told first, and fd 2 is then pointed at /dev/null while Python's own
    ``sys.stderr`` (our messages, logging, tracebacks, progress bars) keeps the real stderr.
    Only when run as a program: a caller's process keeps its file descriptors.
    """
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # no oneDNN banner; the same kernels otherwise
    try:
        sys.stderr.flush()
        real = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except OSError:
        return
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                           errors="backslashreplace")
    if faulthandler.is_enabled():  # PYTHONFAULTHANDLER: keep its stack dumps visible
        faulthandler.enable(file=sys.stderr, all_threads=True)


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


def _add_cache(p):
    p.add_argument("--cache-dir", help="where the hand model and landmark cache live "
                   "(default: $FINGERSPELL_CACHE_DIR or the user cache folder)")


def _add_decoder(p):
    p.add_argument("--decoder", choices=("words", "letters"),
                   help="words: letters from segments, then words from a lexicon (default); letters: the old "
                        "hold-and-release rules, one letter at a time")
    p.add_argument("--no-lexicon", action="store_true", help="write the letters as signed, never a dictionary word")
    p.add_argument("--vocab", metavar="FILE", help="your own words (names, places), one a line: chosen like common words")


def _add_recipe(p):
    """The flags of a training recipe, shared by train and crossval."""
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of class folders, or the Kaggle layout; repeat for several sources")
    from .recognisers import DEFAULT, KINDS

    p.add_argument("--kind", choices=tuple(KINDS), default=DEFAULT,
                   help="landmarks (default): hand landmarks into an MLP; cnn: the tutorial's 64x64 CNN baseline")
    p.add_argument("--epochs", type=int, help="training epochs (default: 10 for each of the 3 landmark MLPs, 15 cnn)")
    p.add_argument("--grouping", default="auto", choices=("auto", "kaggle-frames", "signer", "roboflow", "regex", "random"),
                   help="how images are grouped so that near-duplicates never straddle a split; 'random' is "
                        "optimistic and the report says so (default: %(default)s)")
    p.add_argument("--group-regex", help="with --grouping regex: first capture group of the file name is the group")
    p.add_argument("--frame-block", type=int, default=300, help="Kaggle frames per group (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1234,
                   help="seed of the split and the training run; the same seed gives the same split (default: %(default)s)")
    p.add_argument("--workers", type=int, default=0, help="landmark-extraction processes (default: one per core)")
    p.add_argument("--limit-per-class", type=int, help="at most this many images per class and folder (quick runs)")
    p.add_argument("--config", help="JSON file of TrainParams fields (flags given override it)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="fingerspell", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 description="ASL fingerspelling recognition: train, evaluate, predict, serve.")
    ap.add_argument("--version", action="version", version=f"fingerspell {__version__}")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="debug logging, and the native libraries' own logging (MediaPipe, LiteRT, TensorFlow)")
    ap.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only, no progress bars")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help, description):
        return sub.add_parser(name, help=help, description=description, epilog=EXIT_CODES,
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("setup", "obtain, verify and cache the MediaPipe hand model",
                "Obtain hand_landmarker.task (official URL, else the mediapipe==0.10.21 wheel from the package "
                "index), verify its sha256 and cache it. First use does this by itself.")
    _add_cache(p)

    p = command("download", "download the Kaggle ASL Alphabet set (needs Kaggle credentials)",
                "Download and unpack the Kaggle 'ASL Alphabet' set (about 1 GB) with the official kaggle "
                "client and your API token. Needs the training install.")
    p.add_argument("--dest", default="data/asl-alphabet",
                   help="new or empty folder to unpack into, or an earlier download to refresh (default: %(default)s)")

    p = command("train", "train a recogniser on image folders and write a model bundle",
                "Detect hands in every image (cached), split by group, train the recipe, check the LiteRT "
                "export and write a bundle folder. Needs the training install.")
    _add_recipe(p)
    p.add_argument("--out", required=True,
                   help="bundle folder to write: a new or empty folder, or a bundle to replace (atomically); "
                        "anything else is refused")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the groups held out for validation, 0 for none (default: %(default)s)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="share of the groups held out as a test set, 0 for none (default: %(default)s)")
    _add_cache(p)

    p = command("crossval", "k-fold figures of a training recipe: every image held out once",
                "Group-aware, class-stratified k-fold cross-validation: the recipe is trained once per fold and "
                "scores the fold it did not see. Prints each fold, the spread, and the figure over every image. "
                "Writes no bundle. Needs the training install.")
    _add_recipe(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds (default: %(default)s)")
    p.add_argument("--out", help="new or empty folder for the report JSON and the pooled confusion-matrix PNG "
                                 "(or a report written before)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_cache(p)

    p = command("evaluate", "figures of a bundle on image folders (top-1, macro-F1, per class, confusion)",
                "Recognise every image of the data folders with a bundle and print top-1, macro-F1 and the "
                "per-class figures; an image without a hand counts as 'nothing'. Needs the training install.")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of class folders to evaluate on; repeat for several sources")
    p.add_argument("--out", help="new or empty folder for metrics JSON and the confusion-matrix PNG "
                                 "(or a report written before)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--workers", type=int, default=0, help="landmark-extraction processes (default: one per core)")
    _add_cache(p)

    p = command("predict", "letters in image files or folders; spelled text of video files",
                "Print the letter, its confidence and the top 3 for every image, and the spelled text of every "
                "video. Inputs that cannot be read are reported on stderr and the others still printed; the "
                "exit code is then 6.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, or video files")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    _add_decoder(p)
    _add_cache(p)

    p = command("serve", "run the web app (camera page, WebSocket stream, /predict)",
                "Serve the camera page, the WebSocket stream, POST /predict, /health and /docs until Ctrl-C.")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--host", help="address to bind (default: $FINGERSPELL_HOST or 127.0.0.1, this machine only; "
                   "0.0.0.0 accepts frames from the network)")
    p.add_argument("--port", type=int, help="port, 1-65535 (default: $FINGERSPELL_PORT or 5000)")
    p.add_argument("--tls-cert", help="certificate file: serve HTTPS so phones on the network may use their camera")
    p.add_argument("--tls-key", help="private key file for --tls-cert")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name or address browsers may use to reach the server (repeat for more); others "
                        "are refused, against DNS rebinding (default: localhost and 127.0.0.1, and on another "
                        "--host that address and this machine's names)")
    _add_decoder(p)
    _add_cache(p)
    return ap


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


def cmd_setup(args):
    from .hand_model import ensure_hand_model, sha256_file

    path = ensure_hand_model(args.cache_dir)
    print(f"hand model ready: {path} (sha256 {sha256_file(path)})")


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


def _expand(paths):
    """Image files, in folders too; video files separately. Missing paths are errors."""
    from .images import is_image_name

    images, videos = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            images += sorted(str(f) for f in p.rglob("*") if f.is_file() and is_image_name(f.name))
        elif p.is_file():
            (videos if p.suffix.lower() in VIDEO_SUFFIXES else images).append(str(p))
        else:
            raise FingerspellError(f"{raw}: no such file or folder")
    if not images and not videos:
        raise FingerspellError(f"no images or videos found in {', '.join(paths)}")
    return images, videos


def cmd_predict(args):
    from .errors import FrameError
    from .images import read_image
    from .predictor import Predictor

    images, videos = _expand(args.paths)
    predictor = Predictor.from_bundle(args.model, cache_dir=args.cache_dir)
    results, failed = [], 0
    for path in images:
        try:
            pred = predictor.predict(read_image(path))
        except FrameError as exc:
            failed += 1
            results.append({"path": path, "error": str(exc)})
            if not args.json:  # the error names the file; name it once
                reason = str(exc).removeprefix(f"{path}: ")
                print(f"{path}: error: {reason}", file=sys.stderr)
            continue
        rec = {"path": path, **pred.to_json()}
        results.append(rec)
        if not args.json:
            top = "  ".join(f"{k} {v:.2f}" for k, v in pred.top)
            print(f"{path}: {pred.letter} ({pred.score:.2f})  top-3: {top}")
    if videos:
        from .config import DecoderParams
        from .decoding import english, read_words, wants_lexicon
        from .video import spell_video

        decoding = DecoderParams(kind=args.decoder or "words", lexicon=not args.no_lexicon)
        vocab = read_words(args.vocab) if args.vocab else ()
        lexicon = english() if wants_lexicon(decoding) else None
    for path in videos:
        text, frames = spell_video(predictor, path, decoding=decoding, lexicon=lexicon, vocab=vocab)
        results.append({"path": path, "text": text, "frames": frames})
        if not args.json:
            print(f"{path}: {text!r} ({frames} frames)")
    if args.json:
        print(json.dumps(results, indent=1))
    if failed:
        if not args.json:
            print(f"fingerspell predict: error: {failed} of {len(results)} input(s) could not be read", file=sys.stderr)
        return FrameError.exit_code
    return 0


def cmd_serve(args):
    import dataclasses

    from .server.app import params_from_env, run

    changes = {k: v for k, v in (("decoder", args.decoder), ("vocab", args.vocab)) if v is not None}
    if args.no_lexicon:
        changes["lexicon"] = False
    run(host=args.host, port=args.port, model=args.model, tls_cert=args.tls_cert, tls_key=args.tls_key,
        cache_dir=args.cache_dir, allowed_hosts=args.allowed_host,
        params=dataclasses.replace(params_from_env(), **changes))


COMMANDS = {"setup": cmd_setup, "download": cmd_download, "train": cmd_train, "crossval": cmd_crossval,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "serve": cmd_serve}


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


def main(argv=None) -> int:
    """Run one command; returns its exit code.

    Args:
        argv: the arguments; None reads the command line, and only then (run as a program) are
            the native libraries' stderr writes silenced (unless ``-v``).
    """
    args = _parser().parse_args(argv)
    if argv is None and not args.verbose:
        _quiet_native_logs()
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        for noisy in ("tensorflow", "absl", "h5py", "matplotlib", "PIL"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args) or 0
    except FingerspellError as exc:
        print(f"fingerspell {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"fingerspell {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
