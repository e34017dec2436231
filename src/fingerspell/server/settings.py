"""What the server was told: ``create_app`` arguments or ``FINGERSPELL_*`` environment variables.

The one place in the server that reads the environment. ``resolve`` turns the arguments into a
``Settings`` value, which the app keeps and the routes and the stream read (``deps.get_settings``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError, DecoderParams, ServeParams
from ..decoding import read_words, wants_lexicon
from ..decoding import SpellingParams
from .security import resolve_allowed_hosts

log = logging.getLogger(__name__)

ENV_PREFIX = "FINGERSPELL_"
# The decoders network bytes reach: what the page sends and /predict documents. Training reads
# more (BMP, WebP, GIF, TIFF); each is more decoder code for hostile bytes, and libtiff writes
# its complaints about a broken file straight to stderr.
SERVE_FORMATS = ("JPEG", "PNG")


def params_from_env(environ=None, base: ServeParams | None = None) -> ServeParams:
    """ServeParams with every ``FINGERSPELL_<FIELD>`` variable that is set applied over ``base``.

    ``FINGERSPELL_CORS_ORIGINS`` and ``FINGERSPELL_ALLOWED_HOSTS`` are comma-separated lists; an
    empty ``FINGERSPELL_SAVE_FRAMES_DIR`` means "do not save".

    Raises:
        ConfigError: a variable's value is not of its field's type.
    """
    environ = os.environ if environ is None else environ
    base = base or ServeParams()
    changes = {}
    for f in dataclasses.fields(ServeParams):
        name = ENV_PREFIX + f.name.upper()
        raw = environ.get(name)
        if raw is None:
            continue
        default = getattr(base, f.name)
        if isinstance(default, tuple):
            changes[f.name] = tuple(o.strip() for o in raw.split(",") if o.strip())
        elif f.name in ("save_frames_dir", "vocab", "data_dir"):
            changes[f.name] = raw.strip() or None
        elif isinstance(default, bool):
            value = raw.strip().lower()
            if value not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"{name}={raw!r} must be true or false")
            changes[f.name] = value in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            try:
                value = int(raw.replace("_", ""))
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a whole number") from None
            if value < (0 if f.name == "port" else 1):
                raise ConfigError(f"{name}={raw!r} must be positive")
            changes[f.name] = value
        elif isinstance(default, float):
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
            if not 0 < value < float("inf"):
                raise ConfigError(f"{name}={raw!r} must be a positive number of seconds")
            changes[f.name] = value
        else:
            changes[f.name] = raw
    return dataclasses.replace(base, **changes)


def data_dir(params: ServeParams, environ=None) -> Path:
    """Where profiles are kept: ``params.data_dir``, else ``$FINGERSPELL_DATA_DIR``, else the user
    data folder. The environment is read even beside ``params`` (as the hand model's cache folder
    is), so that a test's or an embedding program's variable keeps profiles out of the user's own."""
    environ = os.environ if environ is None else environ
    folder = params.data_dir or environ.get(ENV_PREFIX + "DATA_DIR")
    if folder:
        return Path(folder).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("fingerspell"))


def model_from_env(environ=None) -> str | None:
    """``$FINGERSPELL_MODEL``, the bundle folder to serve; None where unset or empty (the bundled default)."""
    environ = os.environ if environ is None else environ
    return environ.get(ENV_PREFIX + "MODEL") or None


@dataclass(frozen=True)
class Settings:
    """Everything the routes and the stream are told, resolved once by ``create_app``.

    Attributes:
        params: the limits and switches (``ServeParams``).
        spelling: the letters decoder's hold and release times.
        decoding: the decoder's settings.
        vocab: the extra words every stream's decoder knows (``params.vocab``'s file, read once).
        hosts: the host names (no port) requests may be addressed to.
        data_dir: where profiles keep their samples and personal models (made when first written).
    """

    params: ServeParams
    spelling: SpellingParams
    decoding: DecoderParams
    vocab: tuple[str, ...]
    hosts: frozenset[str]
    data_dir: Path

    @property
    def wants_lexicon(self) -> bool:
        """Whether the decoder chooses dictionary words, so the English lexicon must be loaded."""
        return wants_lexicon(self.decoding)

    def save_frame(self, name: str, data: bytes) -> None:
        """Keep a frame's bytes in ``params.save_frames_dir``; nothing is written where it is unset."""
        folder = self.params.save_frames_dir
        if not folder:
            return
        suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / f"{name}{suffix}").write_bytes(data)
        except OSError as exc:
            log.warning("could not save a frame in %s: %s", folder, exc.strerror)


def resolve(params: ServeParams | None = None, spelling: SpellingParams | None = None,
            decoding: DecoderParams | None = None) -> Settings:
    """The settings in force: ``params`` or the environment over the defaults, and what follows from them.

    Raises:
        ConfigError: an unknown decoder kind, an allowed host that is no host name, or
            ``params.vocab`` cannot be read.
    """
    params = params or params_from_env()
    hosts = resolve_allowed_hosts(params)
    decoding = decoding or DecoderParams(kind=params.decoder, lexicon=params.lexicon)
    vocab = tuple(read_words(params.vocab)) if params.vocab else ()
    return Settings(params, spelling or SpellingParams(), decoding, vocab, hosts, data_dir(params))
