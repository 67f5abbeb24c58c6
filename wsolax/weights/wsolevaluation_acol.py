"""The names of the CVPR'20 benchmark's ACoL models (clovaai/wsolevaluation `wsol/vgg.py` VggAcol,
`wsol/resnet.py` ResNetAcol, `wsol/inception.py` InceptionAcol) for wsolax's ACoL models, the
`wsolevaluation` layout (wsolax.weights.layouts) of a config that selects `model.methods.acol`.

* VGG16: `features` is built from the 'acol' layer list, where every pool (its 'M1' / 'M2') takes
  one slot as torchvision's 2x2 pools do, and the 28x28 list keeps an 'M2' where pool4 was: the
  convs sit at torchvision's indices 0 ... 28 for both map sizes (wsolax.models.vgg.torch_name).
  No conv6, no fc.
* ResNet50: torchvision's names (the ACoL model inserts nothing into the stages); no fc.
* InceptionV3: torchvision's names up to Mixed_6e; no SPG_A3_* convs and no SPG_A4.
* The two branches, the same on every backbone: `classifier_A` / `classifier_B`, each an
  `nn.Sequential(Conv2d 3x3, ReLU, Conv2d 3x3, ReLU, Conv2d 1x1)`, i.e. tensors at `.0`, `.2`,
  `.4` -- wsolax's `head/classifier_A/{conv1, conv2, classes}`.

The benchmark's ACoL models have no inserted layers, so a config that inserts any is refused.
"""

from __future__ import annotations

import ml_collections

from wsolax.weights.convert import TorchName, WeightError
from wsolax.weights.layouts import WSOLEVALUATION_BACKBONES

_BRANCHES = ("classifier_A", "classifier_B")
_BRANCH_LAYERS = {"conv1": "0", "conv2": "2", "classes": "4"}


def torch_name(model_cfg: ml_collections.ConfigDict) -> TorchName:
    """Flax module path -> module prefix in the state dict the benchmark saves for ACoL."""
    from wsolax.models import inception, resnet, vgg

    backbone = model_cfg.backbone
    if backbone not in WSOLEVALUATION_BACKBONES:
        raise WeightError(f"the wsolevaluation layout has ACoL on "
                          f"{', '.join(WSOLEVALUATION_BACKBONES)}, not '{backbone}'")
    if model_cfg.inserts:
        raise WeightError(f"the benchmark's ACoL models insert no layers; the config inserts "
                          f"{[m for _, m in model_cfg.inserts]}")
    backbone_name = {"vgg16_gap": vgg.torch_name, "resnet50": resnet.torch_name,
                     "inception_v3": inception.torch_name}[backbone]

    def name(path: tuple[str, ...]) -> str | None:
        path = tuple(path)
        if path and path[0] == "head":
            if len(path) == 3 and path[1] in _BRANCHES and path[2] in _BRANCH_LAYERS:
                return f"{path[1]}.{_BRANCH_LAYERS[path[2]]}"
            return None
        return backbone_name(path)

    return name
