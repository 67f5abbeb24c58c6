"""The knobs of the generated WSOL dataset (see synthetic.py for the idea)."""

from __future__ import annotations

import dataclasses

SPLITS = ("train", "val", "test")
# "part_body": the WSOL set (synth_render.py); "whole_objects": the pretraining set of whole
# objects without a telling part (synth_objects.py), which uses the geometry-free knobs (sizes,
# counts, seed, scale_range, clutter, background, noise) and ignores the part and body ones.
KINDS = ("part_body", "whole_objects")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """Everything that determines the generated dataset, bit for bit.

    Ranges are (low, high) and sampled uniformly per image; integer ranges
    include both ends. Sizes are fractions of the image's shorter side so a
    spec keeps its look when `image_size` changes.
    """

    kind: str = "part_body"
    image_size: int | tuple[int, int] = 64  # int, or (height, width)
    num_classes: int = 10
    num_train: int = 5000
    num_val: int = 500
    num_test: int = 1000
    seed: int = 0

    # Object geometry. The body is an ellipse; scale is its length (major
    # axis), aspect its length / thickness; rotation is about the centre.
    scale_range: tuple[float, float] = (0.45, 0.85)
    aspect_range: tuple[float, float] = (1.4, 2.6)
    max_rotation_deg: float = 15.0
    flip_probability: float = 0.5  # probability that the part is on the left

    # The part ("bird's head"): a small disc at the front end of the body in a
    # saturated class colour. Always fully visible, always the true class
    # (unless part_cue_strength < 1), so it is the most predictive cue.
    part_fraction: tuple[float, float] = (0.03, 0.06)  # part area / object area
    part_cue_strength: float = 1.0  # P(part shows the true class, else random)
    part_hue_jitter: float = 0.15  # hue noise, in units of the class hue spacing

    # The body: pastel striped texture whose colour / stripe orientation /
    # period belong to a class. Weak cue: with probability body_cue_strength
    # it is the true class's texture, else a uniformly random class's.
    body_cue_strength: float = 0.5
    body_hue_jitter: float = 0.3  # in units of the class hue spacing
    stripe_contrast: float = 0.25
    stripe_scale: float = 1.0  # multiplies the class stripe periods (3, 4.5, 6 px at 64 px)

    # Label-independent clutter, kept off the object: shapes wearing random
    # classes' body textures, and optional free-floating part-like discs of
    # random classes (decoys that defeat a pure colour detector).
    num_distractors: tuple[int, int] = (2, 5)
    distractor_scale: tuple[float, float] = (0.12, 0.3)
    num_decoy_parts: tuple[int, int] = (0, 0)

    # Background: smooth random colour field plus per-pixel noise everywhere.
    background_cells: int = 6  # resolution of the smooth field's grid
    pixel_noise: float = 6.0  # std of additive grey-level noise

    def __post_init__(self):
        _check(self.kind in KINDS, f"kind must be one of {KINDS}, got {self.kind!r}")
        _check(self.num_classes >= 2, "num_classes must be >= 2")
        for name in ("num_train", "num_val", "num_test"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0")
        _check(0 <= self.seed < 2**63, "seed must be a non-negative int64")
        h, w = self.hw
        _check(min(h, w) >= 16, "image_size must be at least 16 pixels")
        _range(self, "scale_range", 0.05, 0.95)
        _range(self, "aspect_range", 1.0, 10.0)
        _range(self, "part_fraction", 1e-4, 0.5)
        _range(self, "distractor_scale", 0.01, 1.0)
        _range(self, "num_distractors", 0, 1000)
        _range(self, "num_decoy_parts", 0, 1000)
        for name in ("flip_probability", "part_cue_strength", "body_cue_strength",
                     "stripe_contrast"):
            _check(0.0 <= getattr(self, name) <= 1.0, f"{name} must be in [0, 1]")
        # Beyond ~80 degrees "left"/"right" of the part would lose its meaning.
        _check(0 <= self.max_rotation_deg <= 80, "max_rotation_deg must be in [0, 80]")
        _check(self.stripe_scale > 0, "stripe_scale must be > 0")
        _check(self.background_cells >= 1, "background_cells must be >= 1")
        _check(self.pixel_noise >= 0, "pixel_noise must be >= 0")

    @property
    def hw(self) -> tuple[int, int]:
        """(height, width) of every image."""
        if isinstance(self.image_size, int):
            return (self.image_size, self.image_size)
        h, w = self.image_size
        return (int(h), int(w))

    def num_images(self, split: str) -> int:
        return {"train": self.num_train, "val": self.num_val,
                "test": self.num_test}[split]

    def to_json_dict(self) -> dict:
        """Plain-JSON form (tuples become lists), used for the on-disk stamp."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json_dict(cls, data: dict) -> "SyntheticSpec":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        _check(not unknown, f"unknown SyntheticSpec fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in data.items()})


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"SyntheticSpec: {message}")


def _range(spec: SyntheticSpec, name: str, low: float, high: float) -> None:
    value = getattr(spec, name)
    _check(len(value) == 2 and low <= value[0] <= value[1] <= high,
           f"{name} must be (lo, hi) with {low} <= lo <= hi <= {high}, got {value}")
