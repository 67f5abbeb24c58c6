"""Where each paper inserts its layer, per backbone, as `config.model.inserts` tuples.

Stage names are the backbones' named hook points (wsolax/models/*.py). Sources:
  ADL (Choe & Shim CVPR'19): VGG-GAP after pool3, pool4 and conv5_3 (Table 2's best placement);
  ResNet50 / SE-ResNet50 after layer3's first block, layer4's first block and layer4's end.
  DGDM: VGG-GAP "in all the pooling layers and conv5_3". For ResNets (Cars: ResNet18/34/50; CUB:
  ResNet50) the paper only says "intermediate and higher-level layers" and that it follows ADL, so
  ADL's ResNet placement is used (wsolax's reading, not stated in the paper).
  DFM: ResNet50 "following the conv5_3 and conv4_1" = layer4's end and layer3's first block
  (torchvision's layer3 is conv4_x).
"""

from __future__ import annotations

_PAPER_STAGES = {
    ("adl", "vgg16_gap"): ("pool3", "pool4", "conv5_3"),
    ("adl", "resnet50"): ("layer3_0", "layer4_0", "layer4"),
    ("adl", "se_resnet50"): ("layer3_0", "layer4_0", "layer4"),
    ("dgdm", "vgg16_gap"): ("pool1", "pool2", "pool3", "pool4", "conv5_3"),
    **{("dgdm", b): ("layer3_0", "layer4_0", "layer4")
       for b in ("resnet18", "resnet34", "resnet50", "se_resnet50")},
    ("dfm", "resnet50"): ("layer3_0", "layer4"),
}


def paper_inserts(method: str, backbone: str) -> tuple[tuple[str, str], ...]:
    """`model.inserts` for `method` placed as its paper places it on `backbone`."""
    if method == "cam":
        return ()
    stages = _PAPER_STAGES.get((method, backbone))
    if stages is None:
        known = sorted(b for m, b in _PAPER_STAGES if m == method)
        raise ValueError(f"the {method} paper gives no placement on '{backbone}' (it does for "
                         f"{known}); set config.model.inserts explicitly")
    return tuple((stage, method) for stage in stages)
