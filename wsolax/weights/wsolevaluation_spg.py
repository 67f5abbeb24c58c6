"""SPG checkpoints of the CVPR'20 benchmark's code (clovaai/wsolevaluation): Flax module path ->
the state-dict prefix its VggSpg / ResNetSpg / InceptionSpg store (read by the `wsolevaluation`
layout, wsolax/weights/layouts.py, when the config inserts `spg`).

The benchmark's names (`wsol/vgg.py`, `wsol/resnet.py`, `wsol/inception.py`; convs in an
`nn.Sequential` with their ReLU take two slots, so the second conv is `.2`):

* every backbone: ``SPG_B_1a.0`` and ``SPG_B_2a.0`` (the taps' convs, the first tap in forward
  order being B1), ``SPG_B_shared.0`` / ``.2`` (head ``b_shared`` conv / score), ``SPG_C.0`` /
  ``.2``;
* VGG16: ``features.0`` ... ``features.14`` up to pool3 (torchvision's indices: its 'spg' layer
  list stops at pool3), conv4_x ``SPG_A_1.{0,2,4}``, conv5_x ``SPG_A_2.{0,2,4}``, the head's two
  convs ``SPG_A_3.{0,2}``, the class conv ``SPG_A_4``;
* ResNet50: torchvision's names, except layer3 split in two: block 0 is ``SPG_A1.0``, blocks
  1-5 are ``SPG_A2.0`` ... ``SPG_A2.4``; the class conv ``SPG_A4`` (no ``fc``);
* InceptionV3: torchvision's names up to Mixed_6e, the head's convs ``SPG_A3_1b.0`` and
  ``SPG_A3_2b.0``, the class conv ``SPG_A4``.

A config loads such a file only with the benchmark's placement (`BENCHMARK_STAGES`) and no other
inserted layer; widths that differ fail on shapes, extra or missing convs on the whole-model check.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from wsolax.methods.spg import BENCHMARK_STAGES
from wsolax.weights.convert import TorchName, WeightError
from wsolax.weights.layouts import WSOLEVALUATION_BACKBONES

_SHARED = {("head", "b_shared", "conv"): "SPG_B_shared.0",
           ("head", "b_shared", "score"): "SPG_B_shared.2",
           ("head", "c", "conv"): "SPG_C.0", ("head", "c", "score"): "SPG_C.2"}
_HEADS = {
    "vgg16_gap": {("head", "a3_0"): "SPG_A_3.0", ("head", "a3_1"): "SPG_A_3.2",
                  ("head", "classes"): "SPG_A_4"},
    "resnet50": {("head", "classes"): "SPG_A4"},
    "inception_v3": {("head", "a3_0"): "SPG_A3_1b.0", ("head", "a3_1"): "SPG_A3_2b.0",
                     ("head", "classes"): "SPG_A4"},
}


def _stage_order(backbone: str) -> tuple[str, ...]:
    from wsolax.models import inception, resnet, vgg

    return {"vgg16_gap": vgg.STAGES, "resnet50": resnet.STAGES["resnet50"],
            "inception_v3": inception.STAGES}[backbone]


def _taps(model_cfg: ml_collections.ConfigDict) -> dict[tuple[str, ...], str]:
    """The taps' conv paths -> SPG_B_1a.0 / SPG_B_2a.0, refusing any other placement."""
    backbone = model_cfg.backbone
    inserts = tuple(tuple(pair) for pair in model_cfg.inserts)
    others = sorted({method for _, method in inserts} - {"spg"})
    if others:
        raise WeightError(f"the benchmark's SPG models have no counterpart for inserted layers "
                          f"{others}")
    order = _stage_order(backbone)
    taps = sorted(((stage, i) for i, (stage, method) in enumerate(inserts) if method == "spg"),
                  key=lambda t: (order.index(t[0]) if t[0] in order else len(order), t[1]))
    stages = tuple(stage for stage, _ in taps)
    if stages != BENCHMARK_STAGES[backbone]:
        raise WeightError(f"the benchmark's SPG on '{backbone}' reads its B branches after "
                          f"{BENCHMARK_STAGES[backbone]}; config key 'model.inserts' places "
                          f"them after {stages}")
    return {("backbone", f"{stage}_insert{i}", "conv"): name
            for (stage, i), name in zip(taps, ("SPG_B_1a.0", "SPG_B_2a.0"))}


def _vgg_backbone(path: tuple[str, ...]) -> str | None:
    from wsolax.models import vgg

    if len(path) != 2 or path[0] != "backbone":
        return None
    for block, sequential in (("conv4_", "SPG_A_1"), ("conv5_", "SPG_A_2")):
        if path[1].startswith(block):
            return f"{sequential}.{2 * (int(path[1][len(block):]) - 1)}"
    return vgg.torch_name(path)


def _resnet_backbone(path: tuple[str, ...]) -> str | None:
    from wsolax.models import resnet

    name = resnet.torch_name(path)
    if name is None or not name.startswith("layer3."):
        return name
    _, block, rest = name.split(".", 2)
    j = int(block)
    return f"SPG_A1.0.{rest}" if j == 0 else f"SPG_A2.{j - 1}.{rest}"


def _inception_backbone(path: tuple[str, ...]) -> str | None:
    from wsolax.models import inception

    return inception.torch_name(path)


_BACKBONES: dict[str, Callable[[tuple[str, ...]], str | None]] = {
    "vgg16_gap": _vgg_backbone, "resnet50": _resnet_backbone,
    "inception_v3": _inception_backbone}


def torch_name(model_cfg: ml_collections.ConfigDict) -> TorchName:
    """`torch_name(module_path)` of an SPG config's model in the benchmark's state dict."""
    backbone = model_cfg.backbone
    if backbone not in WSOLEVALUATION_BACKBONES:
        raise WeightError(f"the wsolevaluation layout has {', '.join(WSOLEVALUATION_BACKBONES)}, "
                          f"not '{backbone}'")
    names = {**_taps(model_cfg), **_SHARED, **_HEADS[backbone]}
    of_backbone = _BACKBONES[backbone]

    def name_of(path: tuple[str, ...]) -> str | None:
        path = tuple(path)
        if path in names:
            return names[path]
        if path and path[0] == "head":
            return None  # a conv the benchmark's head lacks: refused by the whole-model check
        return of_backbone(path)

    return name_of
