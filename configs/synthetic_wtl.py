"""Where to Look (Babar & Das, WACV 2021) on the embedded dataset: the CAM baseline's tiny backbone
and schedule, with the complementary pair, CAAM + SSAM and the fusion loss on its last map.

Patch sizes: the paper's {16, 32, 44, 56} at 224 px scaled to the 64 px crops, {5, 9, 13, 16},
drawn per image per step ("Mixed", the paper's best, Table 6). Fusion weight 50 (Sec. 4.3), the
loss reduced as attention transfer reduces it; no gradient clipping (the paper gives none).
`readings=v1` restores the earlier readings: summed fusion loss, CAAM's row softmax, ReLU after the
aggregation conv and the gradient norm clipped at 5 (configs/_readings.py).

Variants (comma-separated, e.g. `synthetic_wtl.py:runlocal,patch=9`):
  runlocal      seconds-long smoke run (as synthetic_cam.py:runlocal)
  finetune      from a CAM run's backbone (as synthetic_cam.py:finetune)
  patch=N       one fixed patch size (Table 6 rows, scaled: 5, 9, 13, 16)
  nofusion      fusion weight 0 (Table 5's row without L_at_fuse)
  test=x_tilde  the test CAM from the X~ branch's classifier instead of X's
"""

import _readings
import synthetic_cam

from wsolax.config import arg_suffix, parse_arg

from wsolax.methods.where_to_look import scaled_patch_sizes


def get_config(variant: str | None = None):
    opts = parse_arg(
        variant, synthetic_cam.BASE_TOKENS + ("patch", "nofusion", "test"))
    c = synthetic_cam.get_config(synthetic_cam.base_variant(opts))
    c.name = "synthetic_wtl"
    c.workdir = "runs/synthetic_wtl" + arg_suffix(variant)

    # A section selects the method; keys it does not set keep the paper's values.
    c.model.methods.where_to_look = {}
    wtl = c.model.methods.where_to_look
    wtl.patch_sizes = scaled_patch_sizes(c.data.crop_size)
    if "patch" in opts:
        wtl.patch_sizes = (int(opts["patch"]),)
    if "nofusion" in opts:
        wtl.fusion_weight = 0.0
    wtl.test_branch = opts.get("test", "x")
    if synthetic_cam.readings(opts) == "v1":
        wtl.update(_readings.WHERE_TO_LOOK_V1)
        # v1's summed loss from scratch: unclipped, the first steps' gradient norm was ~1000 and
        # training diverged within ten steps (lr 0.05).
        c.optim.clip_grad_norm = _readings.WHERE_TO_LOOK_V1_CLIP
    return c
