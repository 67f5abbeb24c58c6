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
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import max_pool, pad
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
    inserts: Inserts = ()
    dtype: jnp.dtype = jnp.float32
    stages = STAGES

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        check_stages(self.inserts, STAGES, "vgg16_gap")
        for name, features, _ in _LAYOUT:
            if features is None:
                if not (name == "pool4" and self.large_feature_map):
                    x = max_pool(x, 2, 2)
            else:
                x = nn.relu(nn.Conv(features, (3, 3), padding=pad(1), dtype=self.dtype,
                                    name=name)(x))
            x = insert(self, self.inserts, name, x, train)
        x = nn.relu(nn.Conv(self.conv6_features, (3, 3), padding=pad(1), dtype=self.dtype,
                            name="wsol_conv6")(x))
        return insert(self, self.inserts, "conv6", x, train)


def build_backbone(name: str, model_cfg, inserts: Inserts, dtype) -> nn.Module:
    if name != "vgg16_gap":
        raise ValueError(f"wsolax.models.vgg builds 'vgg16_gap', not '{name}'")
    return VGG16GAP(large_feature_map=bool(model_cfg.large_feature_map), inserts=inserts,
                    dtype=dtype)


def torch_name(path: tuple[str, ...]) -> str | None:
    """Flax module path -> torchvision vgg16 module prefix (None: new layer or no counterpart).

    The classifier is None: torchvision's FC layers (25088 -> 4096 -> 4096 -> 1000) have no
    counterpart in the GAP head, so the head's linear layer starts fresh.
    """
    if len(path) == 2 and path[0] == "backbone":
        return _TORCH_CONVS.get(path[1])
    return None
