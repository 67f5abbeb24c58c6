"""The two-branch head of "Where to Look" (Babar & Das, WACV 2021, Sec. 3.3-3.6 and Fig. 2).

Training (`pair`): backbone features of both views -> CAAM across the pair and SSAM on each view ->
aggregation F^t = conv(F^c + F^s) per view (Eq. 9) -> GAP -> one classifier per view. Returns the
logits of both views and their CAMs (Eq. 13) of the requested classes, for the fusion loss.

Evaluation (`__call__`, the model's plain path): one view, CAAM and SSAM switched off. The paper
"deactivates CAAM and SSAM during testing, similar to vanilla CAM" and does not say what replaces
their outputs; wsolax reads it as dropping their attention terms, so F^c = F^s = F and
F^t = conv(2F) of the test branch (`eval_input="sum"`). That is exactly the training path at
initialisation (delta = alpha = 0), so the aggregation conv sees features on the scale it was
trained on. `eval_input="single"` feeds conv(F), half that scale (the modules removed outright).

Readings of what the paper leaves open (each a field here, listed in docs/methods.md):
* test_branch: which classifier gives the test CAM; "x" (the hide view, default) or "x_tilde".
  Both were trained on half-hidden images and pulled together by the fusion loss.
* The aggregation conv: Eq. 9 writes `conv(.)`, "a convolution layer", with no activation, so
  there is none by default (`agg_activation="none"`; the conv keeps its bias, as a convolution
  layer has). `"relu"` is the earlier wsolax reading, mirroring VGG16-GAP's extra conv + ReLU. Its
  kernel (3) and width (0 = the backbone's width) are not given (paper configs use 1x1 to 1024
  channels, as VGG16-GAP's conv has 1024).
* One aggregation conv and one classifier per view (Algorithm 1 updates theta^x and theta^x~; Eq. 11
  writes one W for both, so `share_classifier=True` gives that reading).
* SSAM: one module (own projections and alpha) per view, as Eqs. 7-8 give each view its alpha.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.methods.where_to_look.attention import CAAM, SSAM
from wsolax.models.conv import resolve
from wsolax.models.heads import gap_classify

BRANCHES = ("x", "x_tilde")
AGG_ACTIVATIONS = ("none", "relu")
EVAL_INPUTS = ("sum", "single")


class AggregationConv(nn.Module):
    """conv(x) (relu(conv(x)) with `activation="relu"`) to `features` channels (0: as many as x
    has). Parameters `conv/{kernel,bias}` (HWIO kernel) whatever the kernel size. On the CPU a 1x1
    kernel runs as a matrix product (`wsolax.models.conv`, as the backbones' 1x1 convs do):
    XLA:CPU lowers its filter gradient ~2.6x slower as a convolution (the paper config's
    2048 -> 1024 aggregation, docs/speed.md)."""

    features: int = 0
    kernel: int = 3
    dtype: jnp.dtype = jnp.float32
    activation: str = "none"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        conv = nn.Conv(self.features or x.shape[-1], (self.kernel, self.kernel), padding="SAME",
                       dtype=self.dtype, name="conv",
                       conv_general_dilated=resolve("auto"))
        y = conv(x)
        return nn.relu(y) if self.activation == "relu" else y


class WhereToLookHead(nn.Module):
    num_classes: int
    agg_features: int = 0
    agg_kernel: int = 3
    test_branch: str = "x"
    share_classifier: bool = False
    dtype: jnp.dtype = jnp.float32
    caam_softmax: str = "summed_index"
    agg_activation: str = "none"
    eval_input: str = "sum"

    def setup(self):
        if self.test_branch not in BRANCHES:
            raise ValueError(f"test_branch must be one of {BRANCHES}, got {self.test_branch!r}")
        if self.agg_activation not in AGG_ACTIVATIONS:
            raise ValueError(f"agg_activation must be one of {AGG_ACTIVATIONS}, "
                             f"got {self.agg_activation!r}")
        if self.eval_input not in EVAL_INPUTS:
            raise ValueError(f"eval_input must be one of {EVAL_INPUTS}, got {self.eval_input!r}")
        self.caam = CAAM(softmax=self.caam_softmax)
        self.ssam_x, self.ssam_x_tilde = SSAM(), SSAM()
        agg = dict(features=self.agg_features, kernel=self.agg_kernel, dtype=self.dtype,
                   activation=self.agg_activation)
        self.agg_x = AggregationConv(**agg)
        self.agg_x_tilde = AggregationConv(**agg)
        if self.share_classifier:
            self.classifier = nn.Dense(self.num_classes, dtype=self.dtype)
        else:
            self.classifier_x = nn.Dense(self.num_classes, dtype=self.dtype)
            self.classifier_x_tilde = nn.Dense(self.num_classes, dtype=self.dtype)

    def _classify(self, branch: str, fused: jax.Array, cam_classes):
        agg = self.agg_x if branch == "x" else self.agg_x_tilde
        if self.share_classifier:
            classifier = self.classifier
        else:
            classifier = self.classifier_x if branch == "x" else self.classifier_x_tilde
        return gap_classify(classifier, agg(fused), cam_classes)

    def __call__(self, features: jax.Array, cam_classes: jax.Array | None = None):
        if self.is_initializing():  # create both branches' parameters, not only the test path's
            self.pair(features, features, jnp.zeros((features.shape[0], 1), jnp.int32))
        test_input = features + features if self.eval_input == "sum" else features
        return self._classify(self.test_branch, test_input, cam_classes)

    def pair(self, f_x: jax.Array, f_x_tilde: jax.Array, cam_classes: jax.Array | None):
        """Training path on the features of both views (see the module docstring)."""
        c_x, c_x_tilde = self.caam(f_x, f_x_tilde)
        logits_x, cams_x = self._classify("x", c_x + self.ssam_x(f_x), cam_classes)
        logits_xt, cams_xt = self._classify(
            "x_tilde", c_x_tilde + self.ssam_x_tilde(f_x_tilde), cam_classes)
        return {"logits": logits_x, "logits_tilde": logits_xt, "cams": cams_x,
                "cams_tilde": cams_xt}
