"""Hand boxes: the one box both the CNN's crop and the far copies use."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

from fingerspell.hands import Hand
from fingerspell.images import crop_resize, hand_box


def known_hand(**change) -> Hand:
    """A fixed hand in a 640x480 image, its landmarks within (0.3 .. 0.57) of the frame."""
    lm = (np.arange(63, dtype=np.float32).reshape(21, 3) % 17) / np.float32(60) + np.float32(0.3)
    world = np.linspace(-0.05, 0.05, 63, dtype=np.float32).reshape(21, 3)
    return dataclasses.replace(Hand(lm, world, "Left", 0.875, (640, 480)), **change)


def test_one_hand_box_gives_the_far_copies_tight_box_and_the_cnns_square_crop():
    hand = known_hand()
    # far copies: the landmarks' own box in the pixels of the image the hand was found in
    assert hand_box(hand) == (192.0, 144.0, 362.66668701171875, 272.0000305175781)
    # the CNN's crop: square, grown by the margin, whole pixels, in the pixels of the image cropped
    assert hand_box(hand, 0.25, (640, 480)) == (149, 80, 406, 337)
    assert hand_box(hand, 0.25, (320, 240)) == (74, 40, 203, 169)  # the same photo at half size
    assert hand_box(hand, 0.0, (1280, 960)) == (384, 245, 726, 587)
    assert hand_box(hand, 0.6, (640, 480)) == (89, 20, 466, 396)
    # clipped to the image; at least 16 px across
    assert hand_box(known_hand(landmarks=hand.landmarks - np.float32(0.25)), 0.25, (640, 480)) == (0, 0, 246, 217)
    assert hand_box(known_hand(landmarks=hand.landmarks + np.float32(0.4)), 0.25, (1280, 720)) == (810, 344, 1280, 720)
    assert hand_box(known_hand(landmarks=np.full((21, 3), 0.5, np.float32)), 0.25, (640, 480)) == (312, 232, 328, 248)
    assert hand_box(hand, 0.25) == hand_box(hand, 0.25, hand.image_size)


def test_the_cnn_input_is_the_hand_box_of_the_image_resized_and_the_whole_image_without_a_hand():
    rgb = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    crop = rgb[40:169, 74:203]  # the known hand's box at this size, margin 0.25
    assert np.array_equal(crop_resize(rgb, 32, known_hand()), np.asarray(Image.fromarray(crop).resize((32, 32), Image.BILINEAR)))
    assert np.array_equal(crop_resize(rgb, 32), np.asarray(Image.fromarray(rgb).resize((32, 32), Image.BILINEAR)))
