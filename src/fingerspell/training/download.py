"""Fetch the Kaggle "ASL Alphabet" set through the official ``kaggle`` package."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import DatasetError, OutputFolderError
from ..outputs import check_folder

log = logging.getLogger(__name__)
DATASET = "grassknoted/asl-alphabet"
UNPACKED = ("asl_alphabet_train", "asl_alphabet_test")  # what the archive unpacks to


def check_dest(dest: str | os.PathLike) -> Path:
    """``dest`` resolved, if the download may unpack there: new, empty, or an earlier download.

    Raises:
        OutputFolderError: ``dest`` is a file or a folder holding anything else.
    """
    return check_folder(dest, UNPACKED, "download", OutputFolderError)


def _have_credentials() -> bool:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    cfg = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle"))
    return (cfg / "kaggle.json").is_file() or (cfg / "access_token").is_file()


def download_kaggle(dest: str | os.PathLike) -> Path:
    """Download and unpack the Kaggle set into ``dest``; returns the training folder.

    Raises:
        OutputFolderError: ``dest`` holds other files.
        DatasetError: no credentials, no ``kaggle`` package, or the download failed.
    """
    out = check_dest(dest)
    if not _have_credentials():
        raise DatasetError(
            "no Kaggle credentials: create an API token at kaggle.com (Settings > API > Create New Token), "
            "save it as ~/.kaggle/kaggle.json (chmod 600) or set KAGGLE_USERNAME and KAGGLE_KEY, then run again"
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError:
        raise DatasetError("the kaggle package is missing: pip install 'fingerspell[train]'") from None
    api = KaggleApi()
    try:
        api.authenticate()
        out.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s into %s (about 1 GB)", DATASET, out)
        api.dataset_download_files(DATASET, path=str(out), unzip=True, quiet=False)
    except Exception as exc:  # noqa: BLE001 - the kaggle client raises many kinds
        raise DatasetError(f"Kaggle download failed: {exc}") from None
    train = out / "asl_alphabet_train"
    return train if train.is_dir() else out
