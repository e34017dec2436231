"""The ``fingerspell`` command: setup | download | train | crossval | evaluate | predict | landmarks | serve.

Thin over the library: it parses flags, configures logging, and turns typed errors into one
line on stderr and an exit code. The commands themselves are in ``training.py`` (those of the
training install) and ``serving.py`` (those of the serving install).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys

from .. import __version__
from .serving import cmd_landmarks, cmd_predict, cmd_serve, cmd_setup, cmd_teach
from .training import cmd_crossval, cmd_download, cmd_evaluate, cmd_train
from ..config import SplitParams
from ..errors import FingerspellError

log = logging.getLogger("fingerspell")
# The README's "Exit codes" table says the same, line for line (tests/test_cli.py compares them).
EXIT_CODES = """exit codes:
  0  done
  1  any other error a user can fix (the message says what to do)
  2  bad flags or settings (a flag's value, --config, --port, FINGERSPELL_* variables), refused before any work starts
  3  a data folder is missing, empty or has no class folders
  4  a model bundle is missing or corrupt
  5  the MediaPipe hand model could not be obtained, verified or loaded
  6  an image or video could not be read (predict: any input that failed; the others are still printed)
  7  --out or --dest names a folder fingerspell may not write: one holding files it did not write, a file, or the home, current or root folder
  130  interrupted (Ctrl-C)"""


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


def _add_cache(p):
    p.add_argument("--cache-dir", help="where the hand model and landmark cache live "
                   "(default: $FINGERSPELL_CACHE_DIR or the user cache folder)")


def _add_workers(p):
    p.add_argument("--workers", type=int, default=0, help="landmark-extraction processes (default: one per core)")


def _add_decoder(p):
    from ..decoding import KINDS as DECODERS

    p.add_argument("--decoder", choices=DECODERS,
                   help="words: letters from segments, then words from a lexicon (default); letters: the old "
                        "hold-and-release rules, one letter at a time")
    p.add_argument("--no-lexicon", action="store_true", help="write the letters as signed, never a dictionary word")
    p.add_argument("--vocab", metavar="FILE", help="your own words (names, places), one a line: chosen like common words")


def _add_recipe(p):
    """The flags of a training recipe, shared by train and crossval.

    Their parser defaults are None: a flag left out lets the --config file's value, or else
    TrainParams' default (shown in the help), stand.
    """
    from ..config import TrainParams
    from ..recognisers import KINDS

    d = TrainParams()
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of class folders, the Kaggle layout, a landmark records file (.jsonl) or a folder "
                        "of landmark arrays (static/<LABEL>.npy); repeat for several sources")
    p.add_argument("--kind", choices=tuple(KINDS),
                   help="landmarks: hand landmarks into an MLP; cnn: the tutorial's 64x64 CNN baseline "
                        f"(default: {d.kind})")
    p.add_argument("--epochs", type=int, help=f"training epochs (default: {d.landmarks.epochs} for each of the "
                                              f"{d.landmarks.members} landmark MLPs, {d.cnn.epochs} cnn)")
    p.add_argument("--grouping", choices=("auto", "kaggle-frames", "signer", "roboflow", "regex", "random"),
                   help="how images are grouped so that near-duplicates never straddle a split; 'random' is "
                        f"optimistic and the report says so (default: {d.split.grouping})")
    p.add_argument("--group-regex", help="with --grouping regex: first capture group of the file name is the group")
    p.add_argument("--frame-block", type=int, help=f"Kaggle frames per group (default: {d.split.frame_block})")
    p.add_argument("--seed", type=int, help="seed of the split and the training run; the same seed gives the same "
                                            f"split (default: {d.seed})")
    p.add_argument("--workers", type=int, help="landmark-extraction processes (default: 0, one per core)")
    p.add_argument("--limit-per-class", type=int, help="at most this many images per class and folder (quick runs)")
    p.add_argument("--config", metavar="FILE",
                   help="JSON file of TrainParams fields (as in a bundle's bundle.json \"config\"), over the "
                        "defaults; the flags given on the command line override it")


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

    p = command("setup", "obtain, verify and cache the MediaPipe hand model (and the page's own)",
                "Obtain hand_landmarker.task (official URL, else the mediapipe==0.10.21 wheel from the package "
                "index), verify its sha256 and cache it; then the page's hand landmarker, the pinned "
                "@mediapipe/tasks-vision release from the npm registry (npm pack, or HTTPS without npm), checked against "
                "its integrity hash. First use does "
                "this by itself.")
    _add_cache(p)
    p.add_argument("--tasks-vision", metavar="FILE.tgz",
                   help="take the page's hand landmarker from this tarball of the pinned release (made with npm pack "
                        "elsewhere) instead of fetching it")

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
    p.add_argument("--val-fraction", type=float,
                   help="share of the groups held out for validation, 0 for none "
                        f"(default: {SplitParams().val_fraction})")
    p.add_argument("--test-fraction", type=float,
                   help="share of the groups held out as a test set, 0 for none "
                        f"(default: {SplitParams().test_fraction})")
    p.add_argument("--motion", action="store_true",
                   help="learn J and Z from recorded motion instead (--data: recordings and static hands, e.g. "
                        "landmarks_tresajoby) and write --base with it beside its model; recordings 80-99 of each "
                        "file are held out (docs/motion.md)")
    p.add_argument("--base", help="with --motion: the bundle the motion recogniser joins (default: the bundled model)")
    _add_cache(p)

    p = command("crossval", "k-fold figures of a training recipe: every image held out once",
                "Group-aware, class-stratified k-fold cross-validation: the recipe is trained once per fold and "
                "scores the fold it did not see. Prints each fold, the spread, and the figure over every image. "
                "Writes no bundle. Needs the training install.")
    _add_recipe(p)
    p.add_argument("--folds", type=int, default=5, help="number of folds, 2 or more (default: %(default)s)")
    p.add_argument("--out", help="new or empty folder for the report JSON and the pooled confusion-matrix PNG "
                                 "(or a report written before)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_cache(p)

    p = command("evaluate", "figures of a bundle on image folders (top-1, macro-F1, per class, confusion)",
                "Recognise every image of the data folders with a bundle and print top-1, macro-F1 and the "
                "per-class figures; an image without a hand counts as 'nothing'. Needs the training install.")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--data", action="append", required=True, metavar="DIR",
                   help="folder of class folders, landmark records file (.jsonl) or folder of landmark arrays to "
                        "evaluate on; repeat for several sources")
    p.add_argument("--out", help="new or empty folder for metrics JSON and the confusion-matrix PNG "
                                 "(or a report written before)")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    _add_workers(p)
    _add_cache(p)

    p = command("predict", "letters in image files or folders; spelled text of videos and landmark recordings",
                "Print the letter, its confidence and the top 3 for every image, and the spelled text of every "
                "video or landmark recording (a records file with t_ms). An input that is missing or cannot be read is reported on stderr, one line each, and "
                "the others are still printed; the exit code is then 6.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, folders of images, video files, or landmark recordings (.jsonl)")
    p.add_argument("--model", help="bundle folder (default: the bundled model)")
    p.add_argument("--json", action="store_true", help="print a JSON array, one object per image")
    _add_decoder(p)
    _add_cache(p)

    p = command("landmarks", "save the hands of images, a video or recorded arrays as landmark records",
                "Find the hand in every image of a data folder (labelled by its class folder, grouped as training "
                "groups it) or every frame of a video (timed), or convert landmark arrays (static/<LABEL>.npy) "
                "or records, and write them as one landmark records file (JSON Lines, docs/protocol.md): "
                "usable as --data by train, evaluate and crossval, and by predict as a recording.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a folder of class folders, a video file, a folder of landmark arrays, or a records file")
    p.add_argument("--out", required=True, help="the records file to write (.jsonl): a new file")
    p.add_argument("--model", help="the bundle whose hand finding to use (default: the bundled model)")
    _add_workers(p)
    _add_cache(p)

    p = command("teach", "adapt a model to one person's hands from their samples, in seconds",
                "Fit a personal model over a bundle from one person's labelled samples (a landmark records file "
                "such as the page's download, a folder of landmark arrays, or an image folder of class folders) "
                "and write it as a bundle, usable with --model. Labels the model never had become new signs. "
                "Needs no TensorFlow.")
    p.add_argument("--model", help="the bundle to adapt (default: the bundled model)")
    p.add_argument("--data", action="append", required=True, metavar="SAMPLES",
                   help="landmark records file (.jsonl), folder of landmark arrays or folder of class folders of "
                        "images; repeat for several")
    p.add_argument("--out", required=True,
                   help="bundle folder to write: a new or empty folder, or a bundle to replace (atomically)")
    _add_workers(p)
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
    p.add_argument("--data-dir", metavar="DIR",
                   help="where profiles keep their samples and personal models (default: $FINGERSPELL_DATA_DIR or "
                        "the user data folder); made, readable by you only, when the first profile is")
    p.add_argument("--workers", type=int, metavar="N",
                   help="server processes on the one port (default: $FINGERSPELL_WORKERS or 1): each holds its own "
                        "streams and model; a process that dies is started again and its pages reconnect to the others")
    _add_decoder(p)
    _add_cache(p)
    return ap


COMMANDS = {"setup": cmd_setup, "download": cmd_download, "train": cmd_train, "crossval": cmd_crossval,
            "evaluate": cmd_evaluate, "predict": cmd_predict, "landmarks": cmd_landmarks, "teach": cmd_teach,
            "serve": cmd_serve}


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
