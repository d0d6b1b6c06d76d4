"""The renderer's alpha test: a card (hair card, lash strip) with an alpha-textured base colour is cut out where its
coverage is under `ALPHA_CUTOFF`, so the face behind it shows there, and drawn opaque elsewhere."""

from __future__ import annotations

import numpy as np

from generation.face.hair import HairMesh
from generation.render import ALPHA_CUTOFF
from generation.views import View

FRONTAL = View("frontal", 0.0, 0.0)


def _card(face_model, alpha_left: int, alpha_right: int) -> HairMesh:
    """A flat square card 40 mm in front of the nose, white, its left half one coverage and its right half another."""
    front = face_model.neutral[:, 2].max() + 40.0
    x0, x1, y0, y1 = -40.0, 40.0, -10.0, 50.0
    vertices = np.array([[x0, y0, front], [x1, y0, front], [x0, y1, front], [x1, y1, front]], np.float32)
    strands = np.full((8, 8, 4), 255, np.uint8)
    strands[:, :4, 3], strands[:, 4:, 3] = alpha_left, alpha_right
    return HairMesh(vertices, np.array([[0, 1, 2], [1, 3, 2]], np.int32), np.full((4, 3), 0.9, np.float32), 0.7,
                    texcoords=np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32), strands=strands)


def test_a_card_pixel_under_the_alpha_cutoff_shows_the_face_behind_it(renderer, face_model):
    low, high = int(255 * ALPHA_CUTOFF) - 40, int(255 * ALPHA_CUTOFF) + 40
    bare = renderer.render(face_model.neutral, FRONTAL, background=(0, 0, 255)).image.astype(int)
    carded = renderer.render(face_model.neutral, FRONTAL, background=(0, 0, 255),
                             hair=_card(face_model, low, high)).image.astype(int)
    pixels, _ = renderer.project(np.array([[-20.0, 20.0, face_model.neutral[:, 2].max() + 40.0],
                                           [20.0, 20.0, face_model.neutral[:, 2].max() + 40.0]]), FRONTAL)
    (left_col, left_row), (right_col, right_row) = np.floor(pixels).astype(int)
    around = (slice(-3, 4), slice(-3, 4))
    left = (slice(left_row + around[0].start, left_row + around[0].stop),
            slice(left_col + around[1].start, left_col + around[1].stop))
    right = (slice(right_row + around[0].start, right_row + around[0].stop),
             slice(right_col + around[1].start, right_col + around[1].stop))
    # under the cutoff: the face behind, pixel for pixel (no blend of the card's white into it)
    assert np.array_equal(carded[left], bare[left])
    assert bare[left].mean() < 200  # and that is the face, not white
    # over the cutoff: the opaque card, lit white-grey, nothing of the face
    assert (carded[right] > 150).all() and not np.array_equal(carded[right], bare[right])
    assert np.ptp(carded[right], axis=(0, 1)).max() <= 2  # flat: one opaque colour, no mix of the face through it


def test_an_untextured_card_is_drawn_opaque_as_before(renderer, face_model):
    card = _card(face_model, 0, 0)
    plain = HairMesh(card.vertices, card.faces, card.colors, card.roughness)
    image = renderer.render(face_model.neutral, FRONTAL, background=(0, 0, 255), hair=plain).image.astype(int)
    bare = renderer.render(face_model.neutral, FRONTAL, background=(0, 0, 255)).image.astype(int)
    cut = renderer.render(face_model.neutral, FRONTAL, background=(0, 0, 255), hair=card).image.astype(int)
    assert (np.abs(image - bare).sum(axis=-1) > 30).mean() > 0.05  # the plain card covers the face
    assert np.array_equal(cut, bare)  # a fully transparent card is not there at all
