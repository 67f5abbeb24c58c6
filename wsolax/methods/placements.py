"""Where each paper (or reference implementation) inserts its layer, per backbone, as
`config.model.inserts` tuples, and the hyperparameters that source uses.

Stage names are the backbones' named hook points (wsolax/models/*.py). A *placement* names the
source a config follows:

``adl_paper`` -- the method papers and their authors' code (the default of `paper_inserts`):
  ADL (Choe & Shim CVPR'19): VGG-GAP after pool3, pool4 and conv5_3 (Table 2's best placement; the
  ADL authors' code puts the second layer after pool4); ResNet50 / SE-ResNet50 after layer3's
  first block, layer4's first block and layer4's end. gamma 0.8 for VGG-GAP and InceptionV3, 0.9
  for ResNet (Sec. 4); drop rate 0.75.
  DGDM: VGG-GAP "in all the pooling layers and conv5_3". For ResNets (Cars: ResNet18/34/50; CUB:
  ResNet50) the paper only says "intermediate and higher-level layers" and that it follows ADL, so
  ADL's ResNet placement is used (wsolax's reading, not stated in the paper).
  DFM: ResNet50 "following the conv5_3 and conv4_1" = layer4's end and layer3's first block
  (torchvision's layer3 is conv4_x).

``wsolevaluation`` -- the CVPR'20 benchmark's code (Choe et al., "Evaluating WSOL Methods Right",
  `wsol/vgg.py`, `wsol/resnet.py`, `wsol/inception.py`), ADL only:
  VGG16: after pool3, after conv4_3 *before* pool4, after conv5_3 (its layer list
  `..., 'M', 'A', 512, 512, 512, 'A', 'M', 512, 512, 512, 'A'`); with the 28x28 map (no pool4) both
  placements are the same point. The two VGG placements compute the same thing at evaluation (ADL
  is the identity there) but train differently: ADL before pool4 sees the 2x larger map.
  ResNet50: after layer3's first block, layer4's first block and layer4's last block (= its end).
  InceptionV3: after Mixed_5d (before the extra pool), after Mixed_6e, after the second new conv.
  gamma 0.9 for every backbone (its `--adl_threshold` default), drop rate 0.75.
  HaS and CutMix: input transforms on its CAM architecture, nothing inserted on any backbone;
  config.py defaults `--has_grid_size 4`, `--has_drop_rate 0.5`, `--cutmix_beta 1.0`,
  `--cutmix_prob 1.0`.
  ACoL: its own head on every backbone, nothing inserted; `--acol_threshold 0.7`; the branches'
  convs Xavier-initialised on VGG16 and InceptionV3, Kaiming on ResNet50 (`initialize_weights`).
  SPG: its two taps and head per backbone as wsolax.methods.spg's BENCHMARK_STAGES /
  BENCHMARK_HPARAMS (written there once, beside the architecture they describe).
"""

from __future__ import annotations

from wsolax.methods.spg import BENCHMARK_HPARAMS as _SPG_HPARAMS
from wsolax.methods.spg import BENCHMARK_STAGES as _SPG_STAGES

PLACEMENTS = ("adl_paper", "wsolevaluation")
# Methods that change the input, not the network: nothing is inserted on any backbone.
INPUT_METHODS = ("has", "cutmix")

_RESNET_ADL = ("layer3_0", "layer4_0", "layer4")
_STAGES = {
    "adl_paper": {
        ("adl", "vgg16_gap"): ("pool3", "pool4", "conv5_3"),
        ("adl", "resnet50"): _RESNET_ADL,
        ("adl", "se_resnet50"): _RESNET_ADL,
        ("dgdm", "vgg16_gap"): ("pool1", "pool2", "pool3", "pool4", "conv5_3"),
        **{("dgdm", b): _RESNET_ADL
           for b in ("resnet18", "resnet34", "resnet50", "se_resnet50")},
        ("dfm", "resnet50"): ("layer3_0", "layer4"),
    },
    "wsolevaluation": {
        ("adl", "vgg16_gap"): ("pool3", "conv4_3", "conv5_3"),
        ("adl", "resnet50"): _RESNET_ADL,
        ("adl", "inception_v3"): ("Mixed_5d", "Mixed_6e", "head_conv2"),
        **{("spg", b): stages for b, stages in _SPG_STAGES.items()},
    },
}
# (placement, method) -> {backbone (or "*"): hyperparameters}
_HPARAMS = {
    ("adl_paper", "adl"): {"vgg16_gap": {"drop_rate": 0.75, "gamma": 0.8},
                           "inception_v3": {"drop_rate": 0.75, "gamma": 0.8},
                           "*": {"drop_rate": 0.75, "gamma": 0.9}},
    ("wsolevaluation", "adl"): {"*": {"drop_rate": 0.75, "gamma": 0.9}},
    ("wsolevaluation", "has"): {"*": {"grid_size": 4, "drop_rate": 0.5}},
    ("wsolevaluation", "cutmix"): {"*": {"beta": 1.0, "prob": 1.0}},
    ("wsolevaluation", "acol"): {"resnet50": {"threshold": 0.7, "init": "he"},
                                 "*": {"threshold": 0.7, "init": "xavier"}},
    ("wsolevaluation", "spg"): {b: dict(h) for b, h in _SPG_HPARAMS.items()},
}
# Kept for callers of the first version of this module (the ADL-paper placements).
_PAPER_STAGES = _STAGES["adl_paper"]


def _check_placement(placement: str) -> None:
    if placement not in PLACEMENTS:
        raise ValueError(f"unknown placement '{placement}'; known: {', '.join(PLACEMENTS)}")


def paper_inserts(method: str, backbone: str, placement: str = "adl_paper"
                  ) -> tuple[tuple[str, str], ...]:
    """`model.inserts` for `method` on `backbone` as the source `placement` places it."""
    _check_placement(placement)
    if method in ("cam", "acol") or method in INPUT_METHODS:  # acol: a head, nothing inserted
        return ()
    table = _STAGES[placement]
    stages = table.get((method, backbone))
    if stages is None:
        known = sorted(b for m, b in table if m == method)
        raise ValueError(f"placement '{placement}' gives no {method} placement on '{backbone}' "
                         f"(it does for {known}); set config.model.inserts explicitly")
    return tuple((stage, method) for stage in stages)


def source_hparams(method: str, backbone: str, placement: str = "adl_paper") -> dict:
    """`model.methods.<method>` as the source `placement` sets it on `backbone` ({} if none)."""
    _check_placement(placement)
    table = _HPARAMS.get((placement, method), {})
    return dict(table.get(backbone, table.get("*", {})))
