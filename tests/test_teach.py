"""Teaching a model one person's hands: the personal head, ``teach`` and ``fingerspell teach``.

The hands come from the bundled default model's anchors (real training hands, committed with the
model), so these tests need no ../shared/data; the third person's figure reads it and skips without.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, need_data
from fingerspell import bundle, records, teach
from fingerspell.errors import BundleError, FingerspellError, OutputFolderError
from fingerspell.predictor import Predictor
from fingerspell.teach import personal
from test_cli import cli, env  # noqa: F401  (the fixture)

ANCHORS = records.read(bundle.DEFAULT_BUNDLE / bundle.ANCHORS)


def _hands(label: str) -> list:
    """Other people's hands of ``label`` that the base bundle of these tests (``base_folder``) does not carry."""
    return [r.hand for r in ANCHORS[1::2] if r.label == label]


def _person(label: str, turn: float, n: int = 20, seed: int = 0) -> list:
    """One person's ``n`` hands of a sign: one hand of ``label`` turned ``turn`` degrees about the
    wrist (their habit), as a webcam sees it time after time (a degree or two, a little noise)."""
    rng = np.random.default_rng(seed)
    hand = _hands(label)[0]
    w, h = hand.image_size
    out = []
    for _ in range(n):
        a = np.radians(turn + rng.normal(0, 2))
        p = hand.landmarks.astype(np.float64) * [w, h, w]
        d = p[:, :2] - p[0, :2]
        p[:, :2] = p[0, :2] + d @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        p[:, :2] += rng.normal(0, 1.0, (21, 2))  # a pixel of landmark noise
        out.append(dataclasses.replace(hand, landmarks=(p / [w, h, w]).astype(np.float32)))
    return out


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory) -> Path:
    """The default model, carrying every other one of its anchors: the rest are this test's "person"."""
    folder = tmp_path_factory.mktemp("base") / "model"
    folder.mkdir()
    for name in (bundle.META, bundle.TFLITE, *(e.file for e in bundle.load_meta(None).extra)):  # motion.tflite
        shutil.copyfile(bundle.DEFAULT_BUNDLE / name, folder / name)
    records.write(folder / bundle.ANCHORS, ANCHORS[0::2])
    return folder


def _samples(label: str, hands, group: str = "me") -> list[records.Record]:
    return [records.Record(h, None, label, group) for h in hands]


@pytest.fixture(scope="module")
def base(base_folder) -> Predictor:
    predictor = Predictor.from_bundle(base_folder)
    yield predictor
    predictor.close()


def test_a_head_of_zeros_is_the_base_model_and_new_labels_start_at_the_floor(rng):
    head = personal.Personal(["A", "B", "MINE"], 2, np.zeros(4), np.ones(4), np.zeros((4, 3)), np.zeros(3))
    probs = np.array([0.7, 0.3])
    out = head.adjust(rng.normal(size=4), probs)
    assert out[:2] / out[:2].sum() == pytest.approx(probs, abs=1e-3)
    assert out[2] < 1e-3


def test_the_fit_learns_a_systematic_confusion_from_samples_alone(rng):
    # The "base" reads every sample of class 1 as class 0; the samples say otherwise.
    x = np.concatenate([rng.normal(-1, 0.3, (20, 5)), rng.normal(1, 0.3, (20, 5))])
    y = np.array([0] * 20 + [1] * 20)
    base_probs = np.tile([0.9, 0.1], (40, 1))
    head = personal.fit(x, y, base_probs, ["A", "B"], 2)
    held_out = rng.normal(1, 0.3, (10, 5))
    assert (head.adjust(held_out, np.tile([0.9, 0.1], (10, 1))).argmax(1) == 1).all()


def test_a_person_whose_g_reads_as_h_is_read_right_after_teaching_and_others_keep_theirs(base, tmp_path, base_folder):
    # This person signs G as others sign H turned a quarter (a habit the model never saw): teach G
    # with half of those hands, and the other half is read as G, while other people's letters
    # stay as the base model read them.
    g_hands = _person("H", turn=90)
    mine, later = g_hands[:10], g_hands[10:]
    assert np.mean([base.classify(h)[0][0] == "G" for h in later]) < 0.5
    report = teach.teach(base_folder, _samples("G", mine), tmp_path / "mine")
    assert report.taught == {"G": len(mine)} and report.new_labels == [] and report.anchors > 0
    taught = Predictor.from_bundle(tmp_path / "mine")
    try:
        assert np.mean([taught.classify(h)[0][0] == "G" for h in later]) >= 0.8
        others = [r for r in ANCHORS[1::2] if r.label in ("A", "B", "L", "Y", "W", "H")]
        before = np.mean([base.classify(r.hand)[0][0] == r.label for r in others])
        assert np.mean([taught.classify(r.hand)[0][0] == r.label for r in others]) >= before - 0.05
    finally:
        taught.close()


def test_a_custom_sign_the_base_never_had_is_recognised_after_teaching(base, tmp_path, base_folder):
    y_hands = _person("Y", turn=120)
    report = teach.teach(base_folder, _samples("HELLO", y_hands[:8]), tmp_path / "mine")
    assert report.new_labels == ["HELLO"]
    taught = Predictor.from_bundle(tmp_path / "mine")
    try:
        assert taught.all_labels[-1] == "HELLO" and "HELLO" not in taught.labels
        assert np.mean([taught.classify(h)[0][0] == "HELLO" for h in y_hands[8:]]) >= 0.8
        meta = bundle.load_meta(tmp_path / "mine")
        assert meta.personal["taught"] == {"HELLO": 8} and meta.personal["new_labels"] == ["HELLO"]
        card = (tmp_path / "mine" / bundle.CARD).read_text()
        assert "8 samples" in card and "HELLO" in card
    finally:
        taught.close()


def test_teaching_a_personal_bundle_again_replaces_its_head_instead_of_stacking(tmp_path, base_folder):
    teach.teach(base_folder, _samples("HELLO", _hands("Y")[:10]), tmp_path / "one")
    report = teach.teach(tmp_path / "one", _samples("G", _hands("H")[:10]), tmp_path / "two")
    assert report.new_labels == []
    assert bundle.load_meta(tmp_path / "two").personal["labels"] == bundle.load_meta(None).labels


def test_single_letters_are_upper_cased_and_custom_signs_keep_their_spelling():
    assert teach.label_of("g") == "G" and teach.label_of(" Sam ") == "Sam"
    for bad in ("../x", "a/b", "x" * 65, "", "a\x00b"):
        with pytest.raises(ValueError):
            teach.label_of(bad)


def test_teaching_without_labelled_hands_says_what_to_record(tmp_path, base_folder):
    with pytest.raises(FingerspellError, match="record some samples"):
        teach.teach(base_folder, [records.Record(None, 0, "A"), records.Record(_hands("A")[0], 0, None)], tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_teaching_never_writes_over_a_folder_of_the_users(tmp_path, base_folder):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputFolderError):
        teach.teach(base_folder, _samples("G", _hands("H")[:5]), tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_stopped_teaching_writes_nothing(tmp_path, base_folder):
    import threading

    stop = threading.Event()
    stop.set()
    with pytest.raises(FingerspellError, match="stopped"):
        teach.teach(base_folder, _samples("G", _hands("H")[:5]), tmp_path / "mine", stop=stop)
    assert not (tmp_path / "mine").exists()


def test_a_damaged_head_or_one_taught_over_another_model_is_refused(base, tmp_path, base_folder):
    teach.teach(base_folder, _samples("G", _hands("H")[:5]), tmp_path / "mine")
    assert base.load_personal(tmp_path / "mine") is not None
    shutil.copytree(tmp_path / "mine", tmp_path / "bad")
    (tmp_path / "bad" / bundle.PERSONAL).write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a personal model"):
        Predictor.from_bundle(tmp_path / "bad")
    doc = json.loads((tmp_path / "mine" / bundle.META).read_text())
    doc["personal"]["base_model_sha256"] = "0" * 64
    (tmp_path / "mine" / bundle.META).write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="another model"):
        base.load_personal(tmp_path / "mine")


def test_a_stream_reads_with_its_own_personal_model_or_the_bare_one(base, tmp_path, base_folder):
    teach.teach(base_folder, _samples("HELLO", _person("Y", turn=120)[:8]), tmp_path / "mine")
    head = base.load_personal(tmp_path / "mine")
    hand = _person("Y", turn=120)[10]
    plain, mine = base.stream(), base.stream()
    mine.personal = head
    assert plain.push(hand, 0).letter != "HELLO"
    assert mine.push(hand, 0).letter == "HELLO"


def test_the_teach_command_prints_what_it_learned_and_how_long_it_took(env, tmp_path, base_folder):  # noqa: F811
    samples = records.write(tmp_path / "s.jsonl", _samples("G", _hands("H")[:8]) + _samples("Sam", _hands("Y")[:8]))
    out = cli("teach", "--model", base_folder, "--data", samples, "--out", tmp_path / "mine", env=env)
    assert out.returncode == 0, out.stderr
    assert "taught 16 samples of 2 labels in" in out.stdout and "G 8, Sam 8" in out.stdout
    assert "new signs: Sam" in out.stdout
    assert bundle.load_meta(tmp_path / "mine").personal["taught"] == {"G": 8, "Sam": 8}


def test_the_teach_command_refuses_bad_samples_and_a_foreign_folder_with_their_exit_codes(env, tmp_path):  # noqa: F811
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "fingerspell-landmarks", "version": 1}\n{"label": "A", "hand": {"landmarks": 1}}\n')
    out = cli("teach", "--data", bad, "--out", tmp_path / "mine", env=env)
    assert out.returncode == 3 and "bad.jsonl:2" in out.stderr and not (tmp_path / "mine").exists()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "a.txt").write_text("x")
    good = records.write(tmp_path / "s.jsonl", _samples("G", _hands("H")[:3]))
    out = cli("teach", "--data", good, "--out", tmp_path / "theirs", env=env)
    assert out.returncode == 7 and sorted(p.name for p in (tmp_path / "theirs").iterdir()) == ["a.txt"]


def test_the_third_person_taught_with_20_hands_a_letter_reads_the_rest_of_their_hands(base, tmp_path, base_folder):
    folder = DATA / "landmarks_tresajoby" / "static"
    need_data(folder)
    by: dict[str, list] = {}
    for r in records.read_arrays(folder):
        by.setdefault(r.label, []).append(r)
    report = teach.teach(base_folder, [r for rs in by.values() for r in rs[:20]], tmp_path / "mine")
    held_out = [r for rs in by.values() for r in rs[-50:]]
    taught = Predictor.from_bundle(tmp_path / "mine")
    try:
        before = np.mean([base.classify(r.hand)[0][0] == r.label for r in held_out])
        after = np.mean([taught.classify(r.hand)[0][0] == r.label for r in held_out])
    finally:
        taught.close()
    assert before < 0.85 and after >= 0.97, (before, after)
    assert report.seconds < 30


def test_train_writes_anchors_of_training_hands_only(tmp_path):
    hands = _hands("A")[:6] + _hands("B")[:6]
    labels = ["A"] * 6 + ["B"] * 6
    groups = [f"g{i % 3}" for i in range(12)]
    picked = teach.anchors_of(hands, labels, groups, per_label=3)
    assert sorted(r.label for r in picked) == ["A"] * 3 + ["B"] * 3
    assert len({r.group for r in picked if r.label == "A"}) == 3  # one from each group before a second
    assert dataclasses.asdict(picked[0])["hand"] is not None


def test_teaching_imports_no_tensorflow_so_the_serve_only_install_can_teach(tmp_path):
    import subprocess
    import sys

    samples = records.write(tmp_path / "s.jsonl", _samples("G", _hands("H")[:5]))
    code = ("import sys\n"
            "from fingerspell import records, teach\n"
            f"teach.teach(None, records.read({str(samples)!r}), {str(tmp_path / 'mine')!r})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]" and (tmp_path / "mine" / bundle.PERSONAL).is_file()
