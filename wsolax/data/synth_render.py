"""Drawing one example of the generated WSOL dataset.

An image holds one object: an elliptic body with a class-coloured striped
texture (a weak cue: often a random class's texture, see SyntheticSpec) and,
inside the body near its front end, a small saturated disc (the "part") whose
hue names the class. Clutter wearing random classes' textures, and optionally
random part-like decoys, sits on a smooth noisy background, never on the
object, so the ground truth box and mask are exactly the object's.

Everything is a pure function of (spec, split, index): each example has its
own numpy Generator, so changing the number of images of a split does not
change the images that remain.
"""

from __future__ import annotations

import colorsys
import dataclasses
import functools
import math
from typing import NamedTuple

import cv2
import numpy as np

from wsolax.data.synth_spec import SPLITS, SyntheticSpec

_EXAMPLE_STREAM = 0
_LABEL_STREAM = 1


@dataclasses.dataclass(frozen=True)
class SyntheticExample:
    """One rendered image with its ground truth and generation facts."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, the whole object (body; part lies inside)
    part_mask: np.ndarray  # (H, W) bool
    clutter_mask: np.ndarray  # (H, W) bool, distractors and decoys
    label: int
    box: tuple[int, int, int, int]  # tight x0, y0, x1, y1 of mask, inclusive
    part_box: tuple[int, int, int, int]
    part_on_left: bool
    body_texture_class: int  # whose texture the body wears (== label if cue on)
    part_class: int  # whose colour the part wears (== label if cue on)


def split_labels(spec: SyntheticSpec, split: str) -> np.ndarray:
    """Class of every image of a split: as balanced as the count allows."""
    n = spec.num_images(split)
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), _LABEL_STREAM])
    return rng.permutation(np.arange(n) % spec.num_classes)


@functools.lru_cache(maxsize=8)
def _pixel_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _rgb(hue: float, saturation: float, value: float) -> np.ndarray:
    return 255.0 * np.asarray(colorsys.hsv_to_rgb(hue % 1.0, saturation, value),
                              dtype=np.float32)


class _Shape(NamedTuple):
    """A shape as its bounding window of the image and its mask inside it."""

    window: tuple[slice, slice]
    mask: np.ndarray  # bool, the window's shape

    def full_mask(self, hw) -> np.ndarray:
        mask = np.zeros(hw, dtype=bool)
        mask[self.window] = self.mask
        return mask


def _reach(a: float, b: float, exponent: float) -> float:
    """Largest distance from the centre to a superellipse's outline: max(a, b)
    up to an ellipse, towards the corner (a, b) for boxier shapes."""
    return max(a, b) if exponent <= 2.0 else math.hypot(a, b)


def _object_frame(hw, cx, cy, reach: float, angle: float):
    """The window around (cx, cy) of half-size `reach` (shapes are small: only it is evaluated)
    and its pixel centres in the shape's frame, in pixels: u along `angle`, v across."""
    y0, y1 = max(0, int(cy - reach)), max(0, min(hw[0], int(cy + reach) + 2))
    x0, x1 = max(0, int(cx - reach)), max(0, min(hw[1], int(cx + reach) + 2))
    window = (slice(y0, y1), slice(x0, x1))
    yy, xx = _pixel_grid(*hw)
    c, s = math.cos(angle), math.sin(angle)
    dx, dy = xx[window] - cx, yy[window] - cy
    return window, dx * c + dy * s, dy * c - dx * s


def _superellipse(hw, cx, cy, a, b, angle, exponent=2.0) -> _Shape:
    """Pixels whose centre lies in a rotated superellipse (2: ellipse, 1: diamond,
    large: rounded rectangle) with semi-axes a (along `angle`) and b."""
    window, u, v = _object_frame(hw, cx, cy, _reach(a, b, exponent), angle)
    u, v = u / a, v / b
    if exponent == 2.0:
        inside = u * u + v * v <= 1.0
    else:
        inside = np.abs(u) ** exponent + np.abs(v) ** exponent <= 1.0
    return _Shape(window, inside)


def _disc(hw, cx, cy, r) -> _Shape:
    return _superellipse(hw, cx, cy, r, r, 0.0)


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return (int(xs[0]), int(ys[0]), int(xs[-1]), int(ys[-1]))


class _Painter:
    """Class appearance tables plus the per-image random draws that use them."""

    def __init__(self, spec: SyntheticSpec, rng: np.random.Generator):
        self.spec, self.rng = spec, rng
        self.hw = spec.hw
        self.side = min(self.hw)

    def part_colour(self, cls: int) -> np.ndarray:
        # Hues evenly spaced around the wheel, fully saturated: the strong cue.
        jitter = self.spec.part_hue_jitter * self.rng.uniform(-1, 1)
        return _rgb((cls + jitter) / self.spec.num_classes, 1.0, 1.0)

    def paint_texture(self, image: np.ndarray, shape: _Shape, cls: int) -> None:
        """Fills `shape` of `image` with a random instance of a class's texture."""
        k, rng = self.spec.num_classes, self.rng
        # Body hues sit between part hues and are desaturated, so a body never
        # looks like a part; orientation and period add class-linked texture.
        hue = (cls + 0.5 + self.spec.body_hue_jitter * rng.uniform(-1, 1)) / k
        colour = _rgb(hue, rng.uniform(0.35, 0.5), rng.uniform(0.6, 0.8))
        angle = 0.5 * math.pi * cls / k + rng.normal(0, 0.05)
        period = max(2.5, (3.0 + 1.5 * (cls % 3)) * self.side / 64 * self.spec.stripe_scale)
        offset = rng.uniform(0, 2 * math.pi)
        yy, xx = _pixel_grid(*self.hw)
        freq = 2 * math.pi / period
        # Evaluated at the shape's pixels only (2x faster than the window).
        phase = (xx[shape.window][shape.mask] * (freq * math.cos(angle))
                 + yy[shape.window][shape.mask] * (freq * math.sin(angle)) + offset)
        shade = 1.0 + self.spec.stripe_contrast * np.sin(phase)
        image[shape.window][shape.mask] = shade[:, None] * colour

    def background(self) -> np.ndarray:
        cells, rng = self.spec.background_cells, self.rng
        grey = rng.uniform(60, 190, size=(cells, cells, 1))
        tint = rng.normal(0, 12, size=(cells, cells, 3))
        field = (grey + tint).astype(np.float32)
        h, w = self.hw
        return cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)

    def place_off(self, box, radius: float) -> tuple[float, float] | None:
        """A centre for a shape of bounding radius `radius` that keeps it clear
        of `box`, or None if a few tries fail (crowded image: skip the shape)."""
        h, w = self.hw
        x0, y0, x1, y1 = box
        for _ in range(20):
            cx, cy = self.rng.uniform(0, w - 1), self.rng.uniform(0, h - 1)
            # Distance from the centre to the box, plus a 2-pixel margin.
            dx = max(x0 - cx, 0.0, cx - x1)
            dy = max(y0 - cy, 0.0, cy - y1)
            if dx * dx + dy * dy > (radius + 2.0) ** 2:
                return cx, cy
        return None


def _sample_object(p: _Painter):
    """Geometry of the object: body ellipse, part disc, orientation."""
    spec, rng = p.spec, p.rng
    h, w = p.hw
    a = 0.5 * rng.uniform(*spec.scale_range) * p.side
    b = a / rng.uniform(*spec.aspect_range)
    angle = math.radians(rng.uniform(-spec.max_rotation_deg, spec.max_rotation_deg))
    part_on_left = bool(rng.random() < spec.flip_probability)
    # Half extents of the rotated ellipse; shrink it if it cannot fit.
    ex = math.hypot(a * math.cos(angle), b * math.sin(angle))
    ey = math.hypot(a * math.sin(angle), b * math.cos(angle))
    fit = min(1.0, (w - 3) / (2 * ex), (h - 3) / (2 * ey))
    a, b, ex, ey = a * fit, b * fit, ex * fit, ey * fit
    cx = rng.uniform(ex + 1, w - 2 - ex)
    cy = rng.uniform(ey + 1, h - 2 - ey)
    # Part disc of area fraction f of the body: pi r^2 = f pi a b. Its centre
    # at a - r a / b along the axis keeps the disc inside the ellipse (a >= b).
    # r >= 0.75 px guarantees the disc covers at least one pixel centre.
    r = max(0.75, math.sqrt(rng.uniform(*spec.part_fraction) * a * b))
    d = max(0.0, a - r * a / b)
    sign = -1.0 if part_on_left else 1.0
    part_xy = (cx + sign * d * math.cos(angle), cy + sign * d * math.sin(angle))
    return (cx, cy, a, b, angle), (part_xy, r), part_on_left


def render_example(spec: SyntheticSpec, split: str, index: int, label: int, *,
                   paint_out_part: bool = False) -> SyntheticExample:
    """Draws image `index` of `split`, whose class is `label`.

    `paint_out_part=True` draws the same image with the part left out: its pixels keep the body's
    texture (every random draw is the same, so nothing else changes). The diagnostic of what a
    model learned beyond the part: its accuracy on such images.
    """
    rng = np.random.default_rng([spec.seed, SPLITS.index(split), _EXAMPLE_STREAM, index])
    p = _Painter(spec, rng)
    k = spec.num_classes
    body_geometry, ((px, py), r), part_on_left = _sample_object(p)
    body = _superellipse(p.hw, *body_geometry)
    body_mask = body.full_mask(p.hw)
    part_mask = _disc(p.hw, px, py, r).full_mask(p.hw) & body_mask
    if not part_mask.any():  # degenerate tiny body: fall back to one pixel
        part_mask[int(round(py)), int(round(px))] = True
    box = _tight_box(body_mask)

    image = p.background()
    clutter = np.zeros(p.hw, dtype=bool)
    # Clutter: its classes are drawn independently of the label.
    for _ in range(rng.integers(spec.num_distractors[0], spec.num_distractors[1] + 1)):
        length = 0.5 * rng.uniform(*spec.distractor_scale) * p.side
        width = length / rng.uniform(1.0, 2.5)
        exponent = (1.0, 2.0, 6.0)[rng.integers(3)]
        centre = p.place_off(box, _reach(length, width, exponent))
        if centre is not None:
            shape = _superellipse(p.hw, *centre, length, width, rng.uniform(0, math.pi), exponent)
            p.paint_texture(image, shape, int(rng.integers(k)))
            clutter[shape.window] |= shape.mask
    for _ in range(rng.integers(spec.num_decoy_parts[0], spec.num_decoy_parts[1] + 1)):
        centre = p.place_off(box, r)
        colour = p.part_colour(int(rng.integers(k)))
        if centre is not None:
            decoy = _disc(p.hw, *centre, r)
            image[decoy.window][decoy.mask] = colour
            clutter[decoy.window] |= decoy.mask

    body_class = label if rng.random() < spec.body_cue_strength else int(rng.integers(k))
    part_class = label if rng.random() < spec.part_cue_strength else int(rng.integers(k))
    p.paint_texture(image, body, body_class)
    part_colour = p.part_colour(part_class)  # drawn either way: the noise below stays the same
    if not paint_out_part:
        image[part_mask] = part_colour
    # Uniform noise scaled to std pixel_noise: 3x cheaper than Gaussian.
    noise = rng.random(image.shape, dtype=np.float32) - np.float32(0.5)
    image += np.float32(spec.pixel_noise * math.sqrt(12.0)) * noise
    return SyntheticExample(
        image=np.clip(np.rint(image), 0, 255).astype(np.uint8),
        mask=body_mask, part_mask=part_mask, clutter_mask=clutter, label=int(label), box=box,
        part_box=_tight_box(part_mask), part_on_left=part_on_left,
        body_texture_class=int(body_class), part_class=int(part_class))


def render_split(spec: SyntheticSpec, split: str) -> list[SyntheticExample]:
    """All examples of a split, in memory (handy for tests and notebooks)."""
    labels = split_labels(spec, split)
    return [render_example(spec, split, i, int(y)) for i, y in enumerate(labels)]
