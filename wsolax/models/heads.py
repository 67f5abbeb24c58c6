"""CAM heads: features -> (logits, class activation maps).

The CAM of class k is the classifier's weight vector for k applied at every position of the last
feature map (Zhou et al. CVPR'16), averaged over channels as the wsolevaluation benchmark does; the
scale is irrelevant after min-max normalisation but keeps values comparable across widths.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from wsolax.precision import widen


class GAPLinearHead(nn.Module):
    """Global average pooling then a linear classifier; optional conv (VGG16-GAP adds 3x3 -> 1024)."""

    num_classes: int
    conv_features: int = 0
    dtype: jnp.dtype = jnp.float32
    classifier_init_std: float = 0.0  # > 0: N(0, std^2) kernel, zero bias (wsolevaluation: 0.01)

    @nn.compact
    def __call__(self, features: jax.Array, cam_classes: jax.Array | None = None):
        x = features
        if self.conv_features:
            x = nn.relu(nn.Conv(self.conv_features, (3, 3), padding="SAME", dtype=self.dtype,
                                name="conv")(x))
        init = ({"kernel_init": nn.initializers.normal(self.classifier_init_std),
                 "bias_init": nn.initializers.zeros} if self.classifier_init_std > 0 else {})
        classifier = nn.Dense(self.num_classes, dtype=self.dtype, name="classifier", **init)
        return gap_classify(classifier, x, cam_classes)


def gap_classify(classifier: nn.Dense, x: jax.Array, cam_classes: jax.Array | None = None):
    """(logits, CAMs) of a linear `classifier` on global-average-pooled `x` (B, h, w, C).

    CAMs of every class, or of `cam_classes` (B, n) per image; float32 outputs (float64 in a float64 model).
    """
    logits = classifier(jnp.mean(x, axis=(1, 2)))
    kernel = classifier.variables["params"]["kernel"].astype(x.dtype)  # (C, K)
    if cam_classes is None:
        cams = jnp.einsum("bhwc,ck->bhwk", x, kernel) / x.shape[-1]
    else:
        weights = jnp.take(kernel, cam_classes, axis=1)  # (C, B, n)
        cams = jnp.einsum("bhwc,cbn->bhwn", x, weights) / x.shape[-1]
    return widen(logits), widen(cams)
