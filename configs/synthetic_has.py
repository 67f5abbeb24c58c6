"""Hide-and-Seek (Singh & Lee, ICCV'17) on the embedded dataset, as the CVPR'20 benchmark's code
runs it (wsolax.methods.has): the CAM baseline's tiny backbone and schedule, nothing inserted, and
grid cells of each training image hidden at random (evaluation: the plain CAM model).

Cell size: the benchmark's `--has_grid_size` default is 4 px at its 224 px crops; scaled to this
config's crops it is max(1, round(4 x crop / 224)): 1 px at the 64 px crops (2 px with the
`finegrained` variant's 96 px). Drop rate 0.5 (`--has_drop_rate`, the paper's hiding probability).

Variants (comma-separated, e.g. `synthetic_has.py:runlocal,grid=4`):
  runlocal, finetune, finegrained, scratch   as synthetic_cam.py
  grid=N     cells of N px instead of the scaled default (0: HaS off, as in the reference)
  drop=P     hiding probability P
"""

import synthetic_cam

from wsolax.config import arg_suffix, parse_arg

# The benchmark's default cell size and the crop size it is given at (config.py).
BENCHMARK_GRID_SIZE = 4
BENCHMARK_CROP_SIZE = 224


def get_config(variant: str | None = None):
    opts = parse_arg(variant, synthetic_cam.BASE_TOKENS + ("grid", "drop"))
    c = synthetic_cam.get_config(synthetic_cam.base_variant(opts))
    c.name = "synthetic_has"
    c.workdir = "runs/synthetic_has" + arg_suffix(variant)
    grid = max(1, round(BENCHMARK_GRID_SIZE * c.data.crop_size / BENCHMARK_CROP_SIZE))
    c.model.methods.has = {
        "grid_size": int(opts["grid"]) if "grid" in opts else grid,
        "drop_rate": float(opts["drop"]) if "drop" in opts else 0.5,
    }
    return c
