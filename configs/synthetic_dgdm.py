"""DGDM (Yin et al.) on the embedded dataset: the CAM baseline plus DGDM after every stage of the
tiny backbone.

Placement. On VGG-GAP the paper inserts DGDM "in all the pooling layers and the conv5-3 layer"
(Sec. 4.2). The tiny net has four hooks and no hook right after a pool, so each VGG insertion maps
to the tiny stage whose output plays its role: conv5_3 (last map, /16) -> stage4 (last map, /8);
pool4 (same resolution as conv5_3, feeds the last block) -> stage3 (8x8, feeds stage4); pool3 ->
stage2 (16x16); pool1/pool2 (low-level, class-agnostic maps) -> stage1 (32x32).
Block size. The paper's best block_size 3 is used on 14x14 maps (pool4, conv5_3); scaled to the
tiny 8x8 maps that is 3 * 8/14 ~ 2, the default here (3 on the 12x12 maps of the 96 px
`finegrained` benchmark; one block_size serves every insert, as in the paper's Table 1).

Variants: `synthetic_dgdm.py:<tokens>`, comma-separated, e.g. `:runlocal,block=3`:
  runlocal          seconds-long smoke run (as synthetic_cam.py:runlocal)
  finetune          from a CAM run's backbone (as synthetic_cam.py:finetune)
  block=N           Table 1 block_size (1, 2, 3, 4)
  adap=D            Table 1's adaptive block, block_divisor=D (adap=7: "Adap_7")
  components=C      Table 1 rows: stage1 (M_drop2_stage1: discriminative blocks only, no CAGD),
                    stage2 (+ background blocks, no CAGD), full (+ CAGD M_drop1; default)
  beta=X            Table 1 lower block: CAGD threshold multiple (2, 2.5, 3, 3.5)
  inserts=all|high  all four stages (default) or stage3+stage4 only (ADL's conv5_3+pool4 analogue)
The same can be set with overrides, e.g. `--config.model.methods.dgdm.block_size=3`,
`--config.model.methods.dgdm.alpha=0.0`, `--config.model.inserts="(('stage4', 'dgdm'),)"`.
"""

import synthetic_cam

from wsolax.config import arg_suffix, parse_arg
from wsolax.methods.dgdm import DGDM

INSERTS = {
    "all": tuple((s, "dgdm") for s in ("stage1", "stage2", "stage3", "stage4")),
    "high": (("stage3", "dgdm"), ("stage4", "dgdm")),
}
DEFAULT_DELTA_LOW = DGDM.delta_low
# Table 1 component rows -> (delta_low, alpha).
COMPONENTS = {"stage1": (0.0, 0.0), "stage2": (DEFAULT_DELTA_LOW, 0.0),
              "full": (DEFAULT_DELTA_LOW, 0.5)}


def paper_block_size(crop_size: int, stride: int = 8) -> int:
    """The paper's block_size 3 on 14x14 maps, scaled to the tiny backbone's map (2 at 64 px)."""
    return max(1, round(3 * (crop_size // stride) / 14))


def get_config(variant: str | None = None):
    opts = parse_arg(
        variant, synthetic_cam.BASE_TOKENS + ("block", "adap", "components", "beta", "inserts"))
    c = synthetic_cam.get_config(synthetic_cam.base_variant(opts))
    c.name = "synthetic_dgdm"
    c.workdir = "runs/synthetic_dgdm" + arg_suffix(variant)

    if opts.get("inserts", "all") not in INSERTS:
        raise ValueError(f"inserts={opts['inserts']!r}; known: {sorted(INSERTS)}")
    c.model.inserts = INSERTS[opts.get("inserts", "all")]
    if opts.get("components", "full") not in COMPONENTS:
        raise ValueError(f"components={opts['components']!r}; known: {sorted(COMPONENTS)}")
    delta_low, alpha = COMPONENTS[opts.get("components", "full")]
    c.model.methods.dgdm = {
        "drop_rate": 0.75,
        "block_size": int(opts.get("block", paper_block_size(c.data.crop_size))),
        "block_divisor": int(opts.get("adap", 0)),
        "delta_low": delta_low,
        "delta_high": 0.8,
        "alpha": alpha,
        "beta": float(opts.get("beta", 3.0)),
    }
    return c
