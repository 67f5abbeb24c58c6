"""VGG16-GAP: the VGG16 backbone of the CAM / ADL / CVPR'20-benchmark WSOL papers.

Source layout: torchvision `vgg16` (no BatchNorm). Its `features` Sequential holds the 13 convs at
indices 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28 (3x3, padding 1, with bias, each followed by
ReLU) and 2x2/2 max pools at 4, 9, 16, 23, 30; `classifier.{0,3,6}` are the FC layers.

WSOL changes (Zhou et al. CVPR'16; Choe et al. CVPR'20 "Evaluating WSOL Methods Right"):

* pool5 (features.30) and the FC layers (classifier.*) are removed;
* a new 3x3 conv 512 -> 1024 (padding 1, bias) + ReLU follows conv5_3; it is a *new* layer and lives
  at ``backbone/wsol_conv6`` (add the prefix "backbone/wsol_" to `optim.new_layer_prefixes` for the
  x10 learning rate);
* GAP + linear classifier are the shared `GAPLinearHead` (not part of this module).

Feature maps at 224 px: 14x14x1024 (stride 16). With ``model.large_feature_map=True`` pool4
(features.23) is removed as well: 28x28x1024 (stride 8), as the benchmark's "28x28" VGG config.

Named stages (``model.inserts``): ``conv1_1`` ... ``conv5_3`` after each conv + ReLU, ``pool1`` ...
``pool4`` after each max pool, and ``conv6`` after the new conv + ReLU. In the large variant there
is no pool4, but the ``pool4`` stage is kept at the place pool4 would be (right after conv4_3 and
its inserted layers, at 28x28), so a config such as ADL's "pool3, pool4, conv5_3" works unchanged
for both variants -- exactly where the benchmark's 28x28 ADL config puts its second ADL layer.
The conv weights map to the same `features.<i>` indices in both variants (names do not shift).

ACoL's variant (``acol_pooling=True``, set when the config selects the method ``acol``; the
benchmark's `wsol/vgg.py` layer list ``configs_dict['acol']`` and `VggAcol.forward`): pool1-pool4
are 3x3/2 max pools with padding 1 ('M1'); with the large map pool4 is a 3x3/1 max pool with
padding 1 ('M2') instead of being removed; an 'M2' follows conv5_3 (features.30), then a 3x3/1
average pool with padding 1 (counting the padding, torch's default); no conv6 -- ACoL's two
classifiers read these 512-channel maps (14x14, or 28x28, at 224 px). Each pool takes one slot of
`features` as in torchvision, so the conv indices are unchanged.

SPG's variant (``spg_pool4=True`` and ``conv6_features=0``, set when the config inserts the method
``spg``; the benchmark's `VggSpg`): conv4_x and conv5_x are its SPG_A_1 and SPG_A_2, and pool4 is
the 3x3/2 max pool with padding 1 between them (`F.max_pool2d(x, kernel_size=3, stride=2,
padding=1)`; none with the large map, as there); no conv6 (``conv6_features=0``) -- the features
end at conv5_3 (512 channels) and SPG's head holds the rest (wsolax.methods.spg).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import avg_pool, max_pool, pad
from wsolax.models.stages import Inserts, check_stages, insert

# (name, output channels, torchvision features index); None marks a 2x2/2 max pool.
_LAYOUT = (
    ("conv1_1", 64, 0), ("conv1_2", 64, 2), ("pool1", None, 4),
    ("conv2_1", 128, 5), ("conv2_2", 128, 7), ("pool2", None, 9),
    ("conv3_1", 256, 10), ("conv3_2", 256, 12), ("conv3_3", 256, 14), ("pool3", None, 16),
    ("conv4_1", 512, 17), ("conv4_2", 512, 19), ("conv4_3", 512, 21), ("pool4", None, 23),
    ("conv5_1", 512, 24), ("conv5_2", 512, 26), ("conv5_3", 512, 28),
)
STAGES = tuple(name for name, _, _ in _LAYOUT) + ("conv6",)
_TORCH_CONVS = {name: f"features.{idx}" for name, ch, idx in _LAYOUT if ch is not None}
NEW_LAYER_PREFIX = "backbone/wsol_"


class VGG16GAP(nn.Module):
    """VGG16 convs (torchvision names conv1_1 ... conv5_3) + the WSOL conv6 (3x3 -> 1024, ReLU)."""

    large_feature_map: bool = False
    conv6_features: int = 1024
    acol_pooling: bool = False
    spg_pool4: bool = False
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32
    # conv6's kernel: "flax" (LeCun normal) or "wsolevaluation" (its VggCam's initialize_weights
    # 'he': Kaiming normal, fan_out, ReLU gain); biases start at 0 either way.
    new_conv_init: str = "flax"
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "vgg16_gap")
        for name, features, _ in _LAYOUT:
            if features is None:
                if self.acol_pooling:
                    stride = 1 if name == "pool4" and self.large_feature_map else 2
                    x = max_pool(x, 3, stride, padding=1)
                elif name == "pool4" and self.spg_pool4:
                    if not self.large_feature_map:
                        x = max_pool(x, 3, 2, padding=1)
                elif not (name == "pool4" and self.large_feature_map):
                    x = max_pool(x, 2, 2)
            else:
                x = nn.relu(nn.Conv(features, (3, 3), padding=pad(1), dtype=self.dtype,
                                    name=name)(x))
            x = insert(self, self.inserts, name, x, train)
        if self.acol_pooling:
            return avg_pool(max_pool(x, 3, 1, padding=1), 3, 1, 1)
        if not self.conv6_features:
            return x
        init = ({"kernel_init": nn.initializers.variance_scaling(2.0, "fan_out",
                                                                 "normal")}
                if self.new_conv_init == "wsolevaluation" else {})
        x = nn.relu(nn.Conv(self.conv6_features, (3, 3), padding=pad(1), dtype=self.dtype,
                            name="wsol_conv6", **init)(x))
        return insert(self, self.inserts, "conv6", x, train)


def build_backbone(name: str, model_cfg, inserts: Inserts, dtype) -> nn.Module:
    if name != "vgg16_gap":
        raise ValueError(f"wsolax.models.vgg builds 'vgg16_gap', not '{name}'")
    spg = any(method == "spg" for _, method in model_cfg.inserts)
    return VGG16GAP(large_feature_map=bool(model_cfg.large_feature_map), inserts=inserts,
                    acol_pooling="acol" in model_cfg.methods, spg_pool4=spg,
                    conv6_features=0 if spg else 1024, dtype=dtype,
                    new_conv_init=model_cfg.new_conv_init)


def torch_name(path: tuple[str, ...]) -> str | None:
    """Flax module path -> torchvision vgg16 module prefix (None: new layer or no counterpart).

    The classifier is None: torchvision's FC layers (25088 -> 4096 -> 4096 -> 1000) have no
    counterpart in the GAP head, so the head's linear layer starts fresh.
    """
    if len(path) == 2 and path[0] == "backbone":
        return _TORCH_CONVS.get(path[1])
    return None
