"""Drawing one example of the generated *pretraining* set (``SyntheticSpec.kind = "whole_objects"``).

The stand-in for ImageNet in the embedded benchmark: many classes of whole objects, each class a
combination of an outline (ellipse, rounded square, five-lobed star, rhombus), a texture that
covers the whole object (stripes, checks, dots, rings, drawn in the object's own frame so they turn
with it) and a colour family. No factor alone names the class: each outline, texture and colour is
shared by many classes, so a classifier has to look at the whole object, and there is no small
part that gives the class away. Objects turn freely, vary in position, size and proportions, and
sit among label-independent clutter (small shapes with random textures and colours) on the same
noisy background as the WSOL set.

Classes: ``c -> (outline c % 4, texture (c // 4) % 4, colour c // 16)``; the colour families are
``ceil(num_classes / 16)`` hues spaced evenly around the wheel. None of these objects carries the
WSOL set's body plan (an ellipse with a saturated disc at one end), so the two sets' classes are
disjoint.

Like the WSOL set, everything is a pure function of (spec, split, index).
"""

from __future__ import annotations

import math

import numpy as np

from wsolax.data.synth_render import (
    SyntheticExample, _EXAMPLE_STREAM, _object_frame, _Painter, _Shape, _rgb, _tight_box)
from wsolax.data.synth_spec import SPLITS, SyntheticSpec

OUTLINES = ("ellipse", "rounded_square", "star", "rhombus")
TEXTURES = ("stripes", "checks", "dots", "rings")
CLASSES_PER_COLOUR = len(OUTLINES) * len(TEXTURES)
NO_PART_BOX = (-1, -1, -1, -1)


def class_factors(cls: int) -> tuple[int, int, int]:
    """(outline, texture, colour family) of class `cls`."""
    return cls % len(OUTLINES), (cls // len(OUTLINES)) % len(TEXTURES), cls // CLASSES_PER_COLOUR


def num_colour_families(num_classes: int) -> int:
    return -(-num_classes // CLASSES_PER_COLOUR)


def _outline_mask(outline: int, u: np.ndarray, v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Pixels inside outline `outline` with semi-axes a (along u) and b, in the object frame."""
    un, vn = u / a, v / b
    if OUTLINES[outline] == "ellipse":
        return un * un + vn * vn <= 1.0
    if OUTLINES[outline] == "rounded_square":
        return un ** 4 + vn ** 4 <= 1.0
    if OUTLINES[outline] == "rhombus":
        return np.abs(un) + np.abs(vn) <= 1.0
    # Five lobes: radius 1 at the tips, 0.55 between them.
    radius = np.hypot(un, vn)
    theta = np.arctan2(vn, un)
    return radius <= (1.0 + 0.45 * np.cos(5.0 * theta)) / 1.45


def _texture_shade(texture: int, u: np.ndarray, v: np.ndarray, period: float, phase: float
                   ) -> np.ndarray:
    """A pattern in [-1, 1] over the object's frame (u, v in pixels)."""
    w = 2.0 * math.pi / period
    name = TEXTURES[texture]
    if name == "stripes":
        return np.sin(w * u + phase)
    if name == "checks":
        return np.sign(np.sin(w * u + phase) * np.sin(w * v + phase))
    if name == "dots":
        fu = (u / period + phase) % 1.0 - 0.5
        fv = (v / period + phase) % 1.0 - 0.5
        return np.where(fu * fu + fv * fv < 0.09, 1.0, -0.6)
    return np.sin(w * np.hypot(u, v) + phase)  # rings around the object's centre


class _ObjectPainter(_Painter):
    """Adds whole-object classes to the WSOL set's painter (background, placement)."""

    def colour(self, family: int) -> np.ndarray:
        families = num_colour_families(self.spec.num_classes)
        hue = (family + self.rng.uniform(-0.2, 0.2)) / families
        return _rgb(hue, self.rng.uniform(0.45, 0.8), self.rng.uniform(0.6, 0.9))

    def draw(self, image: np.ndarray, cx: float, cy: float, a: float, b: float, angle: float,
             cls: int) -> _Shape:
        outline, texture, family = class_factors(cls)
        window, u, v = _object_frame(self.hw, cx, cy, max(a, b), angle)
        inside = _outline_mask(outline, u, v, a, b)
        colour = self.colour(family)
        period = self.rng.uniform(8.0, 16.0) * self.side / 64
        phase = self.rng.uniform(0, 2 * math.pi)
        contrast = self.rng.uniform(0.35, 0.55)
        shade = 1.0 + contrast * _texture_shade(texture, u[inside], v[inside], period, phase)
        image[window][inside] = shade[:, None].astype(np.float32) * colour
        return _Shape(window, inside)


def render_whole_object(spec: SyntheticSpec, split: str, index: int, label: int
                        ) -> SyntheticExample:
    """Draws image `index` of `split` of a whole-objects set, whose class is `label`."""
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), _EXAMPLE_STREAM, index])
    p = _ObjectPainter(spec, rng)
    h, w = p.hw
    k = spec.num_classes
    a = 0.5 * rng.uniform(*spec.scale_range) * p.side
    b = a / rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, 2 * math.pi)
    # The object's bounding radius is at most a: keep it inside the image.
    a_fit = min(a, 0.5 * (min(h, w) - 4))
    b *= a_fit / a
    a = a_fit
    cx = rng.uniform(a + 1, w - 2 - a)
    cy = rng.uniform(a + 1, h - 2 - a)
    box_guess = (cx - a, cy - a, cx + a, cy + a)

    image = p.background()
    clutter = np.zeros(p.hw, dtype=bool)
    for _ in range(rng.integers(spec.num_distractors[0], spec.num_distractors[1] + 1)):
        length = 0.5 * rng.uniform(*spec.distractor_scale) * p.side
        width = length / rng.uniform(1.0, 1.6)
        centre = p.place_off(box_guess, length)
        if centre is not None:
            shape = p.draw(image, *centre, length, width, rng.uniform(0, 2 * math.pi),
                           int(rng.integers(k)))
            clutter[shape.window] |= shape.mask
    body = p.draw(image, cx, cy, a, b, angle, label)
    mask = body.full_mask(p.hw)
    noise = rng.random(image.shape, dtype=np.float32) - np.float32(0.5)
    image += np.float32(spec.pixel_noise * math.sqrt(12.0)) * noise
    return SyntheticExample(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8), mask=mask,
        part_mask=np.zeros(p.hw, dtype=bool), clutter_mask=clutter & ~mask, label=int(label),
        box=_tight_box(mask), part_box=NO_PART_BOX, part_on_left=False,
        body_texture_class=int(label), part_class=-1)
