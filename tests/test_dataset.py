"""Image folders -> samples, group-aware splits, and the report of what was left out."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from fingerspell.config import SplitParams
from fingerspell.dataset import Dataset, Sample, assign_groups, describe_split, group_of, resolve_root, scan, split
from fingerspell.errors import DatasetError
from fingerspell.labels import normalize_label


def draw_image(path: Path, seed: int = 0, size: int = 48) -> Path:
    """A small JPEG of coloured shapes (no hand in it)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
    d = ImageDraw.Draw(img)
    d.ellipse((8, 8, size - 8, size - 8), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, "JPEG")
    return path


def make_folder(root: Path, layout: dict[str, int]) -> Path:
    """``root/<class>/<class><i>.jpg`` for each class and count."""
    for cls, n in layout.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            draw_image(root / cls / f"{cls}{i}.jpg", seed=i)
    return root


def samples_of(spec: list[tuple[str, str, int]], source: str = "src") -> Dataset:
    """A dataset of (label, group, size) groups; files need not exist for splitting."""
    samples = [Sample(f"/d/{label}/{group}_{k}.jpg", label, source, group)
               for label, group, size in spec for k in range(size)]
    return Dataset(samples, sorted({s.label for s in samples}))


# -- labels ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder, label", [
    ("a", "A"), ("A", "A"), (" b ", "B"),
    ("Nothing", "nothing"), ("NOTHING", "nothing"), ("none", "nothing"),
    ("DELETE", "del"), ("del", "del"), ("Del", "del"),
    ("Space", "space"), ("thumbs_up", "thumbs_up"),
])
def test_folder_names_map_to_one_canonical_label(folder, label):
    assert normalize_label(folder) == label


def test_lower_and_upper_case_folders_of_one_letter_become_one_class(tmp_path):
    make_folder(tmp_path / "one", {"a": 2, "B": 2})
    make_folder(tmp_path / "two", {"A": 3, "b": 1})
    ds = scan([tmp_path / "one", tmp_path / "two"])
    assert ds.labels == ["A", "B"]
    assert Counter(s.label for s in ds.samples) == {"A": 5, "B": 3}
    assert Counter(s.source for s in ds.samples) == {"one": 4, "two": 4}


# -- finding the data -----------------------------------------------------------------------------


def test_the_kaggle_layout_is_found_inside_its_wrapper_folders(tmp_path):
    inner = make_folder(tmp_path / "asl_alphabet_train" / "asl_alphabet_train", {"A": 2, "B": 2, "nothing": 1})
    # the Kaggle archive also holds a test folder of loose images beside the train one
    draw_image(tmp_path / "asl_alphabet_test" / "asl_alphabet_test" / "A_test.jpg")
    assert resolve_root(tmp_path) == inner
    ds = scan(tmp_path)
    assert ds.labels == ["A", "B", "nothing"] and len(ds.samples) == 5


def test_a_folder_of_class_folders_is_its_own_root(tmp_path):
    make_folder(tmp_path, {"A": 1})
    assert resolve_root(tmp_path) == tmp_path


def test_a_missing_data_folder_says_it_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match=r"data folder .*nope does not exist"):
        scan(tmp_path / "nope")


def test_a_file_given_as_data_asks_for_a_folder_of_class_folders(tmp_path):
    f = draw_image(tmp_path / "A.jpg")
    with pytest.raises(DatasetError, match=r"--data .*A\.jpg is a file; give a folder of class folders"):
        scan(f)


def test_a_folder_without_class_folders_says_what_layout_is_expected(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"no class folders with images found in .*expected e\.g\. .*/A/\*\.jpg"):
        scan(tmp_path)


def test_no_data_folders_at_all_is_an_error():
    with pytest.raises(DatasetError, match="give at least one --data folder"):
        scan([])


# -- what is skipped ------------------------------------------------------------------------------


def test_scan_lists_non_images_and_empty_files_as_skipped_with_reasons(tmp_path):
    make_folder(tmp_path, {"A": 2, "B": 1})
    (tmp_path / "A" / "notes.txt").write_text("not a picture")
    (tmp_path / "A" / "Thumbs.db").write_bytes(b"\0" * 10)
    (tmp_path / "B" / "empty.jpg").write_bytes(b"")
    ds = scan(tmp_path)
    assert sorted(Path(s.path).name for s in ds.samples) == ["A0.jpg", "A1.jpg", "B0.jpg"]
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert reasons == {"notes.txt": "not an image file", "Thumbs.db": "not an image file",
                       "empty.jpg": "empty file (0 bytes)"}
    report = ds.report()
    assert report["skipped"] == 3 and {f["reason"] for f in report["skipped_files"]} == set(reasons.values())


def test_an_empty_class_folder_is_noted_and_left_out(tmp_path):
    make_folder(tmp_path, {"A": 2, "B": 1})
    (tmp_path / "C").mkdir()
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "empty.jpg").write_bytes(b"")
    ds = scan(tmp_path)
    assert ds.labels == ["A", "B"]
    assert any(f"class folder {tmp_path / 'C'} has no images" in n for n in ds.notes)
    assert any(f"class folder {tmp_path / 'D'} has no images" in n for n in ds.notes)


def test_images_in_sub_folders_of_a_class_folder_belong_to_that_class(tmp_path):
    make_folder(tmp_path, {"A": 1})
    draw_image(tmp_path / "A" / "session2" / "x.jpg")
    ds = scan(tmp_path)
    assert sorted(Path(s.path).name for s in ds.samples) == ["A0.jpg", "x.jpg"]
    assert {s.label for s in ds.samples} == {"A"}


def test_a_symlink_loop_inside_a_class_folder_does_not_hang_the_scan(tmp_path):
    data = make_folder(tmp_path / "data", {"A": 2, "B": 2})
    os.symlink(data, data / "A" / "loop")  # a link to the data folder, from inside a class folder
    os.symlink(data / "B", data / "B" / "self")  # and a link of a folder to itself
    result = {}
    worker = threading.Thread(target=lambda: result.update(ds=scan(data)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "scan() did not return within 30 s: it is walking a symlink loop"
    ds = result["ds"]
    assert any("symlink loop" in reason for _, reason in ds.skipped)
    assert {"A0.jpg", "A1.jpg", "B0.jpg", "B1.jpg"} <= {Path(s.path).name for s in ds.samples}


def test_scan_keeps_only_the_labels_asked_for_and_notes_the_rest(tmp_path):
    make_folder(tmp_path, {"A": 1, "B": 1, "space": 1})
    ds = scan(tmp_path, labels=["a", "space"])
    assert ds.labels == ["A", "space"]
    assert any("label 'B' is not in the model's labels" in n for n in ds.notes)


def test_limit_per_class_keeps_evenly_spaced_images_per_class_and_folder(tmp_path):
    make_folder(tmp_path, {"A": 10, "B": 3})
    ds = scan(tmp_path, limit_per_class=4)
    names = sorted(Path(s.path).name for s in ds.samples if s.label == "A")
    assert len(names) == 4 and "A0.jpg" in names and "A9.jpg" in names  # first and last of the sorted list
    assert sum(s.label == "B" for s in ds.samples) == 3


def test_unreadable_images_are_reported_by_extraction_not_raised(tmp_path, hand_model):
    from fingerspell.extract import extract

    good = draw_image(tmp_path / "A" / "shapes.jpg")
    truncated = tmp_path / "A" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    not_image = tmp_path / "A" / "fake.jpg"
    not_image.write_text("this is text with a .jpg name")
    ds = scan(tmp_path)
    assert len(ds.samples) == 3  # names and sizes look fine: only decoding can tell
    by_name = {Path(s.path).name: s.path for s in ds.samples}
    paths = [by_name["shapes.jpg"], by_name["truncated.jpg"], by_name["fake.jpg"]]
    out = extract(paths, workers=1, use_cache=False, progress=False)
    assert out[0].hand is None and out[0].error is None  # drawn shapes: a readable image without a hand
    assert out[1].hand is None and "truncated.jpg" in out[1].error and "truncated" in out[1].error
    assert out[2].hand is None and "fake.jpg" in out[2].error and "not an image" in out[2].error


def test_extraction_stops_after_the_image_in_hand_once_asked_and_keeps_what_it_found(tmp_path, hand_model):
    from fingerspell.extract import extract

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(paths[-1])
    stop = threading.Event()
    stop.set()  # asked before the first result arrives: one image is taken, then it stops
    with pytest.raises(KeyboardInterrupt):
        extract([str(p) for p in paths], workers=1, cache=tmp_path / "cache", progress=False, stop=stop)
    again = extract([str(p) for p in paths], workers=1, cache=tmp_path / "cache", progress=False)
    assert [e.cached for e in again] == [True, False, False, False]


# -- grouping -------------------------------------------------------------------------------------


def grp(name: str, label: str = "A", source: str = "src", **params) -> tuple[str, str]:
    return group_of(Sample(f"/data/{label}/{name}", label, source), SplitParams(**params))


def test_kaggle_frames_in_one_block_share_a_group():
    g1008, rule = grp("A1008.jpg")
    assert grp("A1010.jpg")[0] == g1008
    assert rule == "kaggle frame blocks of 300"


def test_kaggle_frames_in_different_blocks_are_in_different_groups():
    assert grp("A1008.jpg")[0] != grp("A2500.jpg")[0]
    assert grp("A1199.jpg")[0] != grp("A1200.jpg")[0]  # the block edge
    assert grp("A1008.jpg", frame_block=3000)[0] == grp("A2500.jpg", frame_block=3000)[0]


def test_kaggle_groups_do_not_join_classes_or_sources():
    assert grp("A1008.jpg", label="A")[0] != grp("B1008.jpg", label="B")[0]
    assert grp("A1008.jpg", source="one")[0] != grp("A1008.jpg", source="two")[0]


def test_the_three_roboflow_copies_of_one_photo_share_a_group():
    copies = ["A0_jpg.rf.292a080422ba984985192f413101af41.jpg", "A0_jpg.rf.a79ace20ea42b8f94360cef8aaec4030.jpg",
              "A0_jpg.rf.beea8a405220871911fb117e36526deb.jpg"]
    groups = {grp(n) for n in copies}
    assert groups == {("src:A:A0", "roboflow source photo")}
    assert grp("A11_jpg.rf.4126b388a474440c970d85a3b2a7bf09.jpg")[0] != "src:A:A0"
    # A0 must not be read as Kaggle frame 0
    assert grp("A0_jpg.rf.292a080422ba984985192f413101af41.jpg", grouping="kaggle-frames")[1].startswith("file")


def test_a_signer_prefix_groups_one_persons_images_across_classes():
    a, rule = grp("hand1_A_003.jpg", label="A")
    assert rule == "signer prefix"
    assert grp("Hand1-B-010.jpg", label="B")[0] == a
    assert grp("hand2_A_003.jpg", label="A")[0] != a


def test_a_regex_takes_its_first_capture_group_as_the_group():
    g, rule = grp("alice_0001.png", grouping="regex", group_regex=r"^([a-z]+)_")
    assert (g, rule) == ("A:alice", "regex")
    assert grp("alice_0002.png", grouping="regex", group_regex=r"^([a-z]+)_")[0] == g
    assert grp("bob_0001.png", grouping="regex", group_regex=r"^([a-z]+)_")[0] != g
    assert grp("0001.png", grouping="regex", group_regex=r"^([a-z]+)_")[1] == "file (regex did not match)"


def test_random_grouping_puts_every_file_in_its_own_group():
    assert grp("A1008.jpg", grouping="random") != grp("A1010.jpg", grouping="random")
    assert grp("A1008.jpg", grouping="random")[1] == "random"


def test_a_name_no_rule_knows_is_its_own_group():
    assert grp("IMG 2024-01-01.jpeg")[1] == "file (no grouping pattern matched)"


def test_assign_groups_counts_the_samples_each_rule_grouped():
    ds = Dataset([Sample(f"/d/A/{n}", "A", "s") for n in
                  ("A1.jpg", "A2.jpg", "A0_jpg.rf.00ff.jpg", "hand3_x.jpg", "photo.jpeg")], ["A"])
    assign_groups(ds, SplitParams())
    assert ds.grouping == {"kaggle frame blocks of 300": 2, "roboflow source photo": 1, "signer prefix": 1,
                           "file (no grouping pattern matched)": 1}
    assert all(s.group for s in ds.samples)


@pytest.mark.parametrize("params, message", [
    (SplitParams(grouping="folders"), r"unknown grouping 'folders'; choose one of auto, kaggle-frames"),
    (SplitParams(grouping="regex"), r"grouping 'regex' needs --group-regex"),
    (SplitParams(grouping="regex", group_regex="(unclosed"), r"--group-regex '\(unclosed' is not a valid regex"),
])
def test_bad_grouping_settings_say_what_to_give(params, message):
    ds = samples_of([("A", "", 2)])
    with pytest.raises(DatasetError, match=message):
        assign_groups(ds, params)


# -- splitting ------------------------------------------------------------------------------------


def uniform(n_classes: int = 29, groups: int = 10, size: int = 5) -> Dataset:
    return samples_of([(f"c{c:02d}", f"c{c:02d}g{g}", size) for c in range(n_classes) for g in range(groups)])


def side_of_groups(ds: Dataset, sides: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for side, idx in sides.items():
        for i in idx:
            out.setdefault(ds.samples[i].group, set()).add(side)
    return out


def test_the_same_seed_gives_the_same_split():
    assert split(uniform(), SplitParams(seed=5)) == split(uniform(), SplitParams(seed=5))


def test_a_different_seed_gives_a_different_split():
    assert split(uniform(), SplitParams(seed=5))["val"] != split(uniform(), SplitParams(seed=6))["val"]


def test_every_class_with_enough_groups_gets_validation_images_near_its_fraction():
    ds = uniform(n_classes=29, groups=10, size=5)
    sides = split(ds, SplitParams(val_fraction=0.2, test_fraction=0.1))
    for side, fraction in (("val", 0.2), ("test", 0.1)):
        per_class = Counter(ds.samples[i].label for i in sides[side])
        assert set(per_class) == set(ds.labels), f"classes without {side} images"
        assert all(abs(n - 50 * fraction) <= 5 for n in per_class.values()), per_class  # within one group
    assert len(sides["train"]) == pytest.approx(0.7 * len(ds.samples), abs=29 * 5)


def test_a_split_without_a_test_fraction_has_an_empty_test_side():
    sides = split(uniform(n_classes=3), SplitParams(val_fraction=0.3))
    assert sides["test"] == [] and sides["val"] and sides["train"]


@st.composite
def group_structures(draw):
    """Random groups: sizes 1-30, one to three labels each (signer groups span classes)."""
    spec = []
    for g in range(draw(st.integers(1, 40))):
        labels = draw(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=3, unique=True))
        for label in labels:
            spec.append((label, f"g{g}", draw(st.integers(1, 30))))
    return spec


@settings(max_examples=150, deadline=None)
@given(group_structures(), st.floats(0, 0.5), st.floats(0, 0.4), st.integers(0, 2**31))
def test_no_group_is_ever_on_two_sides_and_every_image_is_on_one(spec, val, test, seed):
    ds = samples_of(spec)
    sides = split(ds, SplitParams(val_fraction=val, test_fraction=test, seed=seed))
    every = sorted(sides["train"] + sides["val"] + sides["test"])
    assert every == list(range(len(ds.samples)))
    assert all(len(s) == 1 for s in side_of_groups(ds, sides).values())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.sampled_from([0.1, 0.2, 0.25, 0.3]), st.integers(0, 2**31))
def test_each_class_gets_its_validation_quota_to_within_one_group(n_classes, size, val, seed):
    groups = int(np.ceil(1 / val)) + 2  # enough groups that the quota is at least one group
    ds = uniform(n_classes=n_classes, groups=groups, size=size)
    sides = split(ds, SplitParams(val_fraction=val, seed=seed))
    per_class = Counter(ds.samples[i].label for i in sides["val"])
    for label in ds.labels:
        assert abs(per_class[label] - groups * size * val) <= size, (label, per_class)


@pytest.mark.parametrize("val, test, message", [
    (1.0, 0.0, r"val_fraction must be in \[0, 1\), got 1.0"),
    (-0.1, 0.0, r"val_fraction must be in \[0, 1\), got -0.1"),
    (0.2, 1.5, r"test_fraction must be in \[0, 1\), got 1.5"),
    (0.6, 0.4, r"val_fraction \+ test_fraction must leave images for training"),
])
def test_bad_fractions_are_refused(val, test, message):
    with pytest.raises(DatasetError, match=message):
        split(uniform(n_classes=2), SplitParams(val_fraction=val, test_fraction=test))


def test_split_groups_unassigned_samples_itself():
    ds = Dataset([Sample(f"/d/A/A{i}.jpg", "A", "s") for i in range(0, 3000, 50)], ["A"])
    sides = split(ds, SplitParams(frame_block=300, val_fraction=0.2))
    assert ds.grouping == {"kaggle frame blocks of 300": 60}
    assert all(len(s) == 1 for s in side_of_groups(ds, sides).values())
    assert len({ds.samples[i].group for i in sides["val"]}) == 2  # 2 of the 10 blocks


def test_describe_split_warns_that_a_random_split_is_optimistic():
    ds = samples_of([("A", "", 20), ("B", "", 20)])
    params = SplitParams(grouping="random")
    desc = describe_split(ds, split(ds, params), params)
    assert desc["grouping"] == "random" and desc["rules"] == {"random": 40}
    assert "optimistic" in desc["warning"]
    assert desc["images"]["train"] + desc["images"]["val"] == 40


def test_describe_split_warns_when_some_files_matched_no_grouping_rule():
    ds = Dataset([Sample(f"/d/A/{n}", "A", "s") for n in ("A1.jpg", "A2.jpg", "photo.jpeg")], ["A"])
    params = SplitParams()
    assert "optimistic" in describe_split(ds, split(ds, params), params)["warning"]


def test_describe_split_of_a_grouped_split_has_no_warning_and_counts_groups():
    ds = uniform(n_classes=3, groups=10, size=5)
    params = SplitParams(val_fraction=0.2)
    sides = split(ds, params)
    desc = describe_split(ds, sides, params)
    assert "warning" not in desc
    assert desc["groups"] == {"train": 24, "val": 6, "test": 0}
    assert desc["seed"] == params.seed


def test_a_link_up_to_the_data_folder_does_not_relabel_the_other_classes(tmp_path):
    data = make_folder(tmp_path / "data", {"A": 2, "B": 2})
    os.symlink(data, data / "A" / "loop")
    ds = scan(data)
    assert Counter(s.label for s in ds.samples) == {"A": 2, "B": 2}
