"""SPG's network around a backbone, as the CVPR'20 benchmark builds it (clovaai/wsolevaluation
`wsol/vgg.py` VggSpg, `wsol/resnet.py` ResNetSpg, `wsol/inception.py` InceptionSpg).

The benchmark's modules and their wsolax places:

* ``SPG_B_1a`` / ``SPG_B_2a`` (3x3 conv + ReLU each, own weights) read the backbone's features at
  two points: `SPGTap`, the layer this method inserts (`config.model.inserts`); the first tap in
  the backbone's stage order is B1, the second B2. A tap is the identity on the backbone's path;
  it computes its conv only when its output is collected (`spg_apply`) or at initialisation, and
  sows the result into the ``intermediates`` collection.
* ``SPG_B_shared`` (3x3 conv + ReLU, 1x1 conv to one map), applied to both B branches -- one
  module, so one parameter set -- ``SPG_C`` (the same structure, own weights), the VGG16
  ``SPG_A_3`` / InceptionV3 ``SPG_A3_1b``, ``SPG_A3_2b`` convs after the backbone (`a3_features`,
  3x3 + ReLU each; InceptionV3 drops out 0.5 before each and after the last, `dropout`) and the
  1x1 class conv ``SPG_A_4`` / ``SPG_A4`` (logits: its maps' spatial mean): `SPGHead`.
* Test CAM (`return_cam`): the class conv's map of the requested class, bias included
  (`feat_map[range(batch_size), labels]`).

Every conv has a bias; kernels are Xavier-uniform and biases 0 (`initialize_weights(...,
init_mode='xavier')`, which all three SPG models use).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.models.layers import pad
from wsolax.precision import widen

TAP = "spg_b"  # the name a tap sows its B-branch features under


def _conv(features: int, kernel: int, dtype, name: str | None = None) -> nn.Conv:
    return nn.Conv(features, (kernel, kernel), padding=pad(kernel // 2), dtype=dtype,
                   kernel_init=nn.initializers.xavier_uniform(),
                   bias_init=nn.initializers.zeros, name=name)


class SPGTap(nn.Module):
    """SPG_B_1a or SPG_B_2a at a backbone stage: relu(conv3x3(x)) sown as `TAP`; returns x.

    Computed only when someone collects it (`intermediates` mutable) or at initialisation (its
    parameters); plain evaluation skips it, since the test CAM does not read the B branches."""

    features: int = 512
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
        del train  # the same conv in both modes; whether it runs is decided above
        if self.is_initializing() or self.is_mutable_collection("intermediates"):
            b = nn.relu(_conv(self.features, 3, self.dtype, "conv")(x))
            self.sow("intermediates", TAP, b)
        return x


class ScoreBranch(nn.Module):
    """3x3 conv + ReLU, then a 1x1 conv to one map (SPG_B_shared, SPG_C): (B, h, w, C) ->
    (B, h, w)."""

    features: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.relu(_conv(self.features, 3, self.dtype, "conv")(x))
        return widen(_conv(1, 1, self.dtype, "score")(x)[..., 0])


class SPGHead(nn.Module):
    """`__call__` is evaluation (logits, CAMs); `branches` is the training forward's output."""

    num_classes: int
    b_features: int = 512
    c_features: int = 512
    a3_features: tuple[int, ...] = ()
    dropout: float = 0.0
    dtype: jnp.dtype = jnp.float32

    def setup(self):
        self.a3 = [_conv(f, 3, self.dtype) for f in self.a3_features]
        self.classes = _conv(self.num_classes, 1, self.dtype)
        self.b_shared = ScoreBranch(self.b_features, self.dtype)
        self.c = ScoreBranch(self.c_features, self.dtype)
        self.drop = nn.Dropout(self.dropout)

    def _trunk(self, features: jax.Array, train: bool) -> jax.Array:
        """The convs after the backbone; what SPG_C and the class conv both read."""
        x = features
        for conv in self.a3:
            x = self.drop(x, deterministic=not train)
            x = nn.relu(conv(x))
        return self.drop(x, deterministic=not train)

    def __call__(self, features: jax.Array, cam_classes: jax.Array | None = None):
        x = self._trunk(features, train=False)
        maps = widen(self.classes(x))
        if self.is_initializing():  # the training-only branches' parameters
            self.c(x)
            self.b_shared(jnp.zeros((1, 1, 1, self.b_features), x.dtype))
        logits = jnp.mean(maps, axis=(1, 2))
        if cam_classes is not None:
            maps = jnp.take_along_axis(maps, cam_classes[:, None, None, :], axis=-1)
        return logits, maps

    def branches(self, features: jax.Array, b1: jax.Array, b2: jax.Array, *, train: bool) -> dict:
        """{"logits", "maps" (B, h, w, K), "logits_b1", "logits_b2", "logits_c" (B, h, w)}: the
        reference's output dict without the attentions, which the loss derives (masks.py)."""
        x = self._trunk(features, train)
        maps = widen(self.classes(x))
        return {"logits": jnp.mean(maps, axis=(1, 2)), "maps": maps,
                "logits_b1": self.b_shared(b1), "logits_b2": self.b_shared(b2),
                "logits_c": self.c(x)}


def collect_taps(backbone: nn.Module) -> tuple[jax.Array, jax.Array]:
    """(B1, B2): the two taps' sown features, in the backbone's stage order (then config order).

    Called inside a bound apply right after the backbone ran, with `intermediates` mutable."""
    sown = backbone.variables.get("intermediates", {})
    stages = tuple(getattr(backbone, "stages", ()))
    found = []
    for name, values in sown.items():
        if TAP not in values:
            continue
        stage, _, index = name.rpartition("_insert")
        position = stages.index(stage) if stage in stages else len(stages)
        found.append(((position, int(index)), values[TAP][-1]))
    if len(found) != 2:
        raise ValueError(f"SPG reads the features at two backbone stages (B1, B2): config key "
                         f"'model.inserts' must place 'spg' at exactly two stages, found "
                         f"{len(found)}")
    found.sort(key=lambda item: item[0])
    return found[0][1], found[1][1]


def spg_apply(model, variables: dict, images: jax.Array, *, train: bool,
              rngs: dict | None = None) -> tuple[dict, dict]:
    """(out, updates) of the SPG network: `SPGHead.branches` on the backbone's features and the
    two taps; updates holds the new batch_stats (training). `train=False` gives the branches in
    evaluation mode (running BatchNorm statistics, no dropout), as the reference computes them
    in its eval forward."""

    def run(module, images):
        features = module.backbone(images, train=train)
        b1, b2 = collect_taps(module.backbone)
        return module.head.branches(features, b1, b2, train=train)

    out, state = model.apply(variables, images, method=run, rngs=rngs,
                             mutable=["batch_stats", "intermediates"])
    return out, ({"batch_stats": state["batch_stats"]} if "batch_stats" in state else {})
