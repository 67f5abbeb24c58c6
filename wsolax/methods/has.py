"""Hide-and-Seek (Singh & Lee, ICCV 2017), as the CVPR'20 benchmark's code runs it (Choe et al.,
"Evaluating WSOL Methods Right", github.com/clovaai/wsolevaluation, `wsol/method/has.py`, called
from `main.py`'s `_wsol_training` on the normalised training batch before the forward).

Selected by `config.model.methods.has` (`{}`: the benchmark's defaults); a `transform` only, so the
model is the plain CAM model (the benchmark trains and evaluates HaS with its 'cam' architecture,
config.py `get_architecture_type`) and evaluation is the plain CAM path (the transform is the
identity there; the paper hides nothing at test time, Sec. 3).

The rule, as the reference applies it:
* the image is cut into square cells of `grid_size` pixels from the top-left corner; where the side
  is not a multiple of `grid_size` the last row / column of cells is cut short at the border
  (`x_end = min(height, x + grid_size)`);
* every cell of every image is hidden independently with probability `drop_rate` (one Python
  `random.random()` per image and cell: the draws are per image, not per batch);
* hidden pixels are set to 0 on every channel. The batch is normalised by then, so 0 is the
  normalisation mean -- the paper's fill, the expected pixel value of the training data
  (Sec. 3), for ImageNet statistics, which wsolax normalises with as well;
* `grid_size` 0 is the identity (the reference returns the batch unchanged).

Defaults: config.py `--has_grid_size 4` (pixels, at its 224 px crops) and `--has_drop_rate 0.5`
(the paper's hiding probability). The paper's own ILSVRC patch sizes were 16-56 px at 224 px;
the benchmark's code uses its 4 px default, which wsolax follows. The paper's "mixed"
patch size (a size drawn per image) is Where to Look's pair (wsolax.methods.where_to_look.pair);
HaS here keeps the benchmark's single size.

Deviations: the reference draws `random.random() <= drop_rate`, wsolax `uniform < drop_rate` (they
differ only when the draw equals `drop_rate` exactly; `<` makes drop_rate 0 exactly the identity).
The reference's loops swap height and width names (rows run over `range(0, width, grid_size)`, the
cell ends clip at `height` on both axes), which only matters for non-square images: on them it
never hides below row `width` or right of column `height`. Its crops are square (224 px), where
the two agree; wsolax covers the whole grid of any image.

Randomness: one `jax.random.uniform` draw of shape (batch, rows of cells, columns of cells) from
the transform's key: a pure function of the key, identical however the batch is sharded.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from wsolax.methods.api import Method, require

NAME = "has"


@dataclasses.dataclass(frozen=True)
class HasHparams:
    """`grid_size`: the cell side in pixels (config.py `--has_grid_size`, 4; 0 turns HaS off as in
    the reference); `drop_rate`: each cell's hiding probability (`--has_drop_rate`, 0.5)."""

    grid_size: int = 4
    drop_rate: float = 0.5

    def __post_init__(self):
        require(isinstance(self.grid_size, int) and not isinstance(self.grid_size, bool)
                and self.grid_size >= 0, NAME, "grid_size",
                f"must be an integer number of pixels >= 0, got {self.grid_size!r}")
        require(0.0 <= self.drop_rate <= 1.0, NAME, "drop_rate",
                f"must be in [0, 1], got {self.drop_rate!r}")


def grid_shape(height: int, width: int, grid_size: int) -> tuple[int, int]:
    """Cells per column and per row; a partial cell at the border counts as one."""
    return -(-height // grid_size), -(-width // grid_size)


def draw_hidden_cells(key: jax.Array, batch: int, height: int, width: int, *, grid_size: int,
                      drop_rate: float) -> jax.Array:
    """(batch, cell rows, cell columns) bool: True for a hidden cell, each with p = drop_rate."""
    rows, cols = grid_shape(height, width, grid_size)
    return jax.random.uniform(key, (batch, rows, cols)) < drop_rate


def hide_cells(images: jax.Array, hidden: jax.Array, grid_size: int,
               fill: float = 0.0) -> jax.Array:
    """NHWC `images` with every pixel of the cells `hidden` marks set to `fill` (all channels)."""
    _, height, width, _ = images.shape
    cell_of_row = jnp.arange(height) // grid_size
    cell_of_col = jnp.arange(width) // grid_size
    per_pixel = hidden[:, cell_of_row][:, :, cell_of_col]  # (B, H, W)
    return jnp.where(per_pixel[..., None], jnp.asarray(fill, images.dtype), images)


def hide_and_seek(key: jax.Array, images: jax.Array, *, grid_size: int = 4,
                  drop_rate: float = 0.5) -> jax.Array:
    """HaS on an NHWC batch; the result has the images' shape and dtype."""
    if grid_size == 0:
        return images
    b, h, w, _ = images.shape
    hidden = draw_hidden_cells(key, b, h, w, grid_size=grid_size, drop_rate=drop_rate)
    return hide_cells(images, hidden, grid_size)


def transform(key, batch: dict, hp: HasHparams, *, train: bool, num_classes: int | None) -> dict:
    """Hides cells of "image"; the labels are untouched (the reference's loss is the plain
    cross-entropy on the hidden images)."""
    del num_classes
    if not train:
        return batch
    return {**batch, "image": hide_and_seek(key, batch["image"], grid_size=hp.grid_size,
                                            drop_rate=hp.drop_rate)}


METHOD = Method(name=NAME, hparams=HasHparams, transform=transform)
