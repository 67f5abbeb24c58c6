"""The earlier readings (`readings=v1`), with which docs/benchmark.md's existing tables were run.

Issue 34 brought every open reading to what its sources support (docs/methods.md, "Readings"); the
new defaults are `readings=v2`. `readings=v1` restores, key by key, what wsolax did before, so those
runs stay reproducible:

* the fine-tuning protocol of the embedded benchmark: SGD without Nesterov, the CAM classifier at
  Flax's default init (v2: Nesterov as wsolevaluation's main.py, N(0, 0.01) as its wsol/util.py);
* which layers are new: the head and backbone/wsol_ only, so SPG's two inserted taps trained at the
  backbone's rate (v2: every parameter the pretrained backbone lacks, taps included);
* Where to Look: fusion loss summed over positions, CAAM's softmax over rows then transposed,
  ReLU after the aggregation conv, gradient norm clipped at 5 (v2: mean over batch and positions,
  softmax over the summed index, no activation, no clipping);
* DFM: the identity at evaluation (v2: F + F, Eq. 16 with the branch passing its input).
"""

VERSIONS = ("v1", "v2")


def check(version: str) -> str:
    if version not in VERSIONS:
        raise ValueError(f"readings={version!r}: expected one of {', '.join(VERSIONS)}")
    return version


def layers_v1(c):
    """Which layers were new under v1 (any config; the protocol's other keys: _benchmark.apply)."""
    c.optim.new_layer_prefixes = ("head", "backbone/wsol_")
    return c


WHERE_TO_LOOK_V1 = {"fusion_reduction": "sum", "caam_softmax": "row", "agg_activation": "relu",
                    "eval_input": "sum"}
WHERE_TO_LOOK_V1_CLIP = 5.0
DFM_V1 = {"eval_output": "identity"}
