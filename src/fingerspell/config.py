"""Configuration: frozen dataclasses, each field documented.

Precedence: these defaults < a ``--config`` file < flags given on the command line (the CLI's
recipe flags default to None, so only those given override). The resolved values are written
into the model bundle so a model always says how it was made. Unknown keys are errors (``from_dict``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field

from .errors import FingerspellError


class ConfigError(FingerspellError):
    """A configuration key or value is not understood."""

    exit_code = 2


def from_dict(cls, data: dict | None):
    """Build dataclass ``cls`` from ``data``, refusing keys it does not have.

    JSON lists become tuples: every sequence setting is a tuple, so the frozen settings stay hashable.
    """
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in (data or {}).items()}
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown {cls.__name__} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    return cls(**data)


@dataclass(frozen=True)
class DetectParams:
    """How the MediaPipe hand landmarker is run, and how hard it tries before saying "no hand"."""

    min_detection_confidence: float = 0.3  # palm detector; 0.5 (MediaPipe's default) misses more hands
    min_presence_confidence: float = 0.3  # landmark model's "is this a hand" score
    min_tracking_confidence: float = 0.3  # VIDEO mode: a followed hand scoring below this is lost; the palm detector runs again
    # Retries, in order, while no hand is found (each costs one more detector run, ~25 ms):
    # "pad:F" adds a black border of F times the side (the palm detector misses hands that fill
    # the frame), "edge:F" a border that repeats the edge pixels, "equalize:F" a padded,
    # contrast-equalised image (dim rooms). "centre:F" skips the palm detector: the landmark
    # network alone looks at the centred square F times the long side, and its presence score
    # decides (~7 ms; finds most hands the palm detector cannot). Measured by bench/bench_detection.py.
    # For a hand far from the camera (a fifth of the frame or less), "zoom:F" runs the palm
    # detector on overlapping tiles F of the frame (9 for 0.5), the centre first, and "scan:F" the
    # landmark network alone on squares F of the short side across the frame (15 for 0.5), the
    # most confident kept: at a 144 px hand in a 640x480 frame, no hand 17% -> 0% on 100 held-out
    # photos (bench/bench_distance.py). Last, so they cost only frames nothing else found a hand in.
    retries: tuple[str, ...] = ("pad:0.3", "pad:1.0", "edge:0.3", "equalize:0.3", "centre:1.0", "centre:0.75",
                                "centre:1.25", "zoom:0.5", "scan:0.5")
    # Landmark-network passes on the region a found hand's own landmarks give (the region
    # tracking uses; the palm detector's is coarser): steadier landmarks, ~7 ms a pass.
    refine: int = 1
    # IMAGE mode: a hand found small in the image (its first region, the one refinement starts
    # from, under reframe_below times the image's short side) is looked at again before it is
    # refined: the landmark network on that region scaled by each of these, the pass with the
    # highest presence score kept. The palm detector sees the whole image at 192x192 and can frame
    # a small hand badly (a region a third of the hand's, or turned a quarter), and refining a badly
    # framed hand keeps it bad: a photo's pixels placed unscaled on a 640x480 frame scored 90%
    # against 98% on the photo, and 97% from the photo's region. At a 144 px hand 89% -> 97% (100
    # held-out photos, bench/bench_distance.py). ~7 ms a pass. A stream reframes the frame it finds a hand in.
    reframe: tuple[float, ...] = (1.0, 1.6, 2.4)  # smaller scales (0.6) and more of them gained nothing
    # A Roboflow photo's first region is 0.44-1.09 of its side (median 0.78): 37% are reframed, and gain too.
    reframe_below: float = 0.7
    # A stream frame without a hand must stay cheap, so it runs the palm detector on the whole frame,
    # then (within ``near_ms`` of the last hand seen) the landmark network alone around where that
    # hand was, then ``video_retries`` rungs of ``stream_retries``: each such frame goes on where the
    # last one stopped (zoom and scan look at one tile a visit), so a few frames cover the ladder.
    # A hand filling the frame first (one close to the camera), then the rungs most often right.
    video_retries: int = 1
    stream_retries: tuple[str, ...] = ("pad:0.3", "centre:0.75", "zoom:0.5", "centre:1.0", "scan:0.5",
                                       "centre:1.25", "pad:1.0", "edge:0.3", "equalize:0.3")
    near_ms: int = 1000  # 0: never look near the last hand seen
    max_side: int = 640  # larger images are downscaled first; detection needs no more


@dataclass(frozen=True)
class LandmarkParams:
    """The landmark recogniser: features from 21 hand points into a small MLP."""

    hidden: tuple[int, ...] = (256, 128)  # two layers were enough in our trials; wider overfits one signer
    members: int = 3  # MLPs trained with different seeds and averaged into one model (~+1.5 points on new people)
    depth: bool = False  # use MediaPipe's z; without it, as good or better on new people (see features.py)
    unrefined: bool = True  # also train on each hand's landmarks before refinement (DetectParams.refine): +5 points on new people
    dropout: float = 0.3
    # per member, over two estimates of each hand (refined and unrefined): as many updates as 20
    # epochs over one, and within a point of 20 epochs over both at half the time (measured)
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 2e-3
    label_smoothing: float = 0.05
    rotate_degrees: float = 15.0  # in-plane rotation augmentation; larger confuses H/U, G/Q, K/P
    scale_range: float = 0.15  # +-15% scale augmentation (features are scale-normalised; this covers aspect)
    jitter: float = 0.03  # landmark noise, as a fraction of the hand size (0.01 before tilt_degrees)
    augment_copies: int = 4  # augmented copies of each training hand per epoch
    # Turn each hand out of the image plane by up to this much (another camera angle), with the
    # jitter above: trained on the Kaggle sample alone, 62.2 -> 67.8% on the Roboflow photos and
    # 69.3 -> 72.8% on the third person's hands; trained on both sets, Roboflow validation and the
    # third person within a point or better (bench/bench_recipe.py, 3-member ensembles).
    # 60 with dropout 0.5 did 1.4 points more on one signer and 1-2 points worse on two.
    tilt_degrees: float = 45.0
    finger_range: float = 0.0  # each finger's bones scaled by 1 +- this (another person's proportions): no gain measured
    # Hands found in copies of each training photo shrunk onto a 640x480 frame, blurred, dimmed,
    # noised and JPEG-compressed (extract.far_frame): a hand at arm's length has noisier
    # landmarks than any photo shows, and the model learns them. Training side only, cached.
    far_copies: int = 1  # per photo; each copy costs one more detection of the photo (cached)
    # Far copies of at most this many photos per class and folder, evenly spaced (None: all): the
    # Kaggle folder is video frames of one person, 200 a class, whose neighbours' copies teach
    # nothing new; 20 (a third of the Roboflow photos, about one of each source photo's three
    # copies) adds a sixth to the detections of a cold training run.
    far_per_class: int | None = 20
    far_sizes: tuple[int, int] = (80, 216)  # the hand's long side in the frame (px), drawn per copy: arm's length


@dataclass(frozen=True)
class CnnParams:
    """The tutorial's 64x64 CNN, kept as an option and a baseline."""

    image_size: int = 64  # the tutorial's input size
    epochs: int = 15
    batch_size: int = 64
    learning_rate: float = 1e-3
    crop_to_hand: bool = True  # crop to the detected hand (with margin) when one is found
    crop_margin: float = 0.25
    augment: bool = True  # mild random rotation, zoom, shift, brightness and contrast (no flips)


@dataclass(frozen=True)
class SplitParams:
    """How images are split into train / validation / test. Never at random unless asked."""

    val_fraction: float = 0.2
    test_fraction: float = 0.0
    seed: int = 1234
    grouping: str = "auto"  # auto | kaggle-frames | signer | roboflow | regex | random
    group_regex: str | None = None  # with grouping=regex: the first capture group is the group id
    frame_block: int = 300  # Kaggle frames per block: 10 s of video at 30 frames/s


@dataclass(frozen=True)
class TrainParams:
    """Everything a training run needs; written resolved into the bundle."""

    kind: str = "landmarks"  # a recogniser kind: recognisers/registry.py lists them
    split: SplitParams = field(default_factory=SplitParams)
    detect: DetectParams = field(default_factory=DetectParams)
    landmarks: LandmarkParams = field(default_factory=LandmarkParams)
    cnn: CnnParams = field(default_factory=CnnParams)
    seed: int = 1234
    workers: int = 0  # landmark-extraction processes; 0 = one per CPU core
    limit_per_class: int | None = None  # for quick runs: at most this many images per class and folder


@dataclass(frozen=True)
class DecoderParams:
    """How per-frame predictions become text (``fingerspell.decoding``); times in milliseconds."""

    kind: str = "words"  # a decoding.KINDS: words (segments + lexicon, the default) or letters (hold-and-release rules)
    lexicon: bool = True  # words only: choose among dictionary words; False writes the letters as signed
    min_letter_ms: float = 80.0  # evidence (sum of frame time x top probability) that writes a letter: ~2 clear frames
    special_ms: float = 300.0  # the space and del signs act on the text: they need a longer, deliberate hold
    flicker_ms: float = 120.0  # a lost hand shorter than this does not end the letter being held
    word_pause_ms: float = 550.0  # no hand this long ends the word; the page's pauses between words are 0.6 s or more
    letter_ms: float = 400.0  # the signer's typical letter length before any is measured (then the median of the last 12)
    slide: float = 0.35  # hand sizes the hand moves within slide_window_ms with one handshape: a double letter
    slide_window_ms: float = 300.0  # a slow drift over a long hold is not a slide
    join_letters: float = 2.5  # a pause up to this many letter lengths may be a letter the camera lost: the word after it may join the one before
    join_cost: float = 1.0  # nats per letter length of pause for reading a pause as inside a word (the lexicon must explain the joined word that much better)
    keep_signed: float = 3.9  # log-odds a dictionary word must beat to replace the letters as signed (names survive); under channel.DELETE_ROOMY + DELETE_TIGHT (4.0), so a word with a letter the timing left no room for never wins on that letter alone (O is not OF)
    spelling_weight: float = 0.0  # nats per nat by which the letters as signed are spelled less like English words than names are (TNXT, not LUPITA); off: it also costs names spelled unlike English (NGOZI)
    letter_trust: float = 0.6  # weight of the letters' own log-probabilities in the channel: below 1 where the model is surer than it is right
    # A model that reads this signer badly makes the lexicon change many words: where it changed
    # more than adapt_from of the last adapt_words words, the letters' weight (letter_trust and the
    # sure and closed-hand floors) falls, reaching trust_floor of it at adapt_to; a word the user
    # reverts to the letters as signed counts as unchanged. 0 words: never adapt.
    adapt_words: int = 12
    adapt_from: float = 0.35
    adapt_to: float = 0.5
    trust_floor: float = 0.4
    frequency_weight: float = 0.15  # nats per nat of word rarity: common words need less evidence
    max_word: int = 40  # letters in one word; longer is not a word and is written as signed

    def __post_init__(self) -> None:
        from .decoding import KINDS  # the decoders import this module: the list is theirs

        if self.kind not in KINDS:
            raise ConfigError(f"decoder kind {self.kind!r} is not known; choose one of {', '.join(KINDS)}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # `not value >= 0` also refuses NaN, which would make every comparison false.
            if isinstance(value, float) and not value >= 0:
                raise ConfigError(f"decoder {f.name} must be 0 or more, got {value}")
        if self.max_word < 1:
            raise ConfigError(f"decoder max_word must be at least 1, got {self.max_word}")
        if self.trust_floor > 1:
            raise ConfigError(f"decoder trust_floor is a share of the letters' weight: at most 1, got {self.trust_floor}")
        if not self.adapt_to > self.adapt_from:
            raise ConfigError(f"decoder adapt_to ({self.adapt_to}) must be more than adapt_from ({self.adapt_from})")



@dataclass(frozen=True)
class ServeParams:
    """Server limits and settings (also from FINGERSPELL_* environment variables)."""

    host: str = "127.0.0.1"  # loopback: frames are not accepted from the network unless asked
    port: int = 5000
    max_body_bytes: int = 8 * 1024 * 1024  # POST /predict body limit, enforced while reading
    max_message_bytes: int = 2 * 1024 * 1024  # one WebSocket message; larger closes with 1009
    max_pixels: int = 4096 * 4096  # checked from the image header before decoding
    max_connections: int = 16  # concurrent WebSocket streams; more are refused with close code 1013
    cors_origins: tuple[str, ...] = ()  # closed unless configured
    save_frames_dir: str | None = None  # frames are never written to disk unless this is set
    # Host names requests may be addressed to (any port) besides localhost, 127.0.0.1 and [::1];
    # others get 421, so a site whose name resolves to this machine (DNS rebinding) is refused.
    # Empty on a non-loopback bind: the bind address and this machine's names.
    allowed_hosts: tuple[str, ...] = ()
    # POST /predict requests recognised at once: each holds up to max_body_bytes 3-4 times over
    # (body, JSON, decoded image). More wait up to predict_wait_s, then get 503 + Retry-After.
    max_predicts: int = 4
    predict_wait_s: float = 2.0
    # POST /predict bodies held at once: being received, waiting for one of the max_predicts, or
    # being recognised. A body is read before a recognition slot is taken, so slow uploaders hold
    # one of these, not a recognition slot; this bounds their memory. More wait predict_wait_s, then 503.
    max_uploads: int = 16
    header_timeout_s: float = 10.0  # a connection's request line and headers must arrive within this
    body_timeout_s: float = 60.0  # a POST /predict body must arrive within this (8 MiB at 140 kB/s); else 408
    send_timeout_s: float = 10.0  # a client that reads nothing for this long is disconnected (its slot freed)
    close_timeout_s: float = 5.0  # a close the client does not complete in this long becomes an abort
    stream_idle_s: float = 300.0  # a stream with no frame and no command for this long is closed (1001), its slot freed
    decoder: str = DecoderParams.kind  # which decoder (DecoderParams.kind)
    lexicon: bool = True  # choose dictionary words when a word ends; False writes what was signed
    vocab: str | None = None  # a text file of extra words (names, places), one a line, for every stream
    # Where profiles keep their samples and personal models (None: $FINGERSPELL_DATA_DIR or the
    # user data folder, platformdirs'); made 0o700 when the first profile is, never before.
    data_dir: str | None = None
    # Server processes sharing the port (fingerspell serve --workers): each holds its own streams
    # (max_connections each) and model; profiles are shared through data_dir. 1: this process alone.
    workers: int = 1


def to_dict(obj) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(obj)


def train_params_from_dict(data: dict) -> TrainParams:
    """Rebuild TrainParams (with its nested dataclasses) from ``to_dict`` output."""
    data = dict(data)
    hints = typing.get_type_hints(TrainParams)
    nested = {f.name: hints[f.name] for f in dataclasses.fields(TrainParams) if dataclasses.is_dataclass(hints[f.name])}
    for key, cls in nested.items():
        if key in data:
            if not isinstance(data[key], dict):
                raise ConfigError(f"{key} must be an object of {cls.__name__} settings, got {data[key]!r}")
            data[key] = from_dict(cls, data[key])
    return from_dict(TrainParams, data)
