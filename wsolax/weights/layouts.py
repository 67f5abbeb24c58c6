"""Source layouts: which torch names a config's model reads from a weights file.

* ``torchvision`` (default): ImageNet classification weights, torchvision / timm names, through
  each backbone module's `torch_name`. WSOL layers that ImageNet networks lack (VGG's conv6, the
  CAM classifier, InceptionV3's head convs) start fresh.
* ``wsolevaluation``: a whole model trained by the CVPR'20 benchmark's code (Choe et al.,
  github.com/clovaai/wsolevaluation; `last_checkpoint.pth.tar` / `best_checkpoint.pth.tar`, a dict
  whose `state_dict` holds the model's tensors), CAM and ADL on VGG16, ResNet50 and InceptionV3
  (here), and methods whose benchmark models have their own heads in
  `wsolax/weights/wsolevaluation_<method>.py`. Every tensor of the model must come from the file
  and every tensor of the file must be used.

The benchmark's names, from its architecture description (`wsol/vgg.py`, `wsol/resnet.py`,
`wsol/inception.py`):

VGG16 (wsolax `vgg16_gap`): `features` is one `nn.Sequential` built from a layer list: each conv
takes two slots (conv, ReLU), each 2x2 max pool one, and each ADL one ('A' entries), so the conv
indices depend on the method and the map size: CAM at 14x14 has torchvision's indices 0 ... 28,
CAM at 28x28 drops pool4 and conv5_x move to 23, 25, 27; ADL adds a slot after pool3, conv4_3
and conv5_3. Then `conv6` (3x3, 512 -> 1024, bias) and `fc` (Linear 1024 -> classes) -- wsolax's
`backbone/wsol_conv6` and `head/classifier`.
ResNet50: torchvision names, but ADL modules sit inside the `layerX` Sequentials (after layer3's
block 0 and after layer4's blocks 0 and 2), so block j of a stage is stored at index j + (number
of ADL layers before it in that stage). `fc` is the CAM classifier.
InceptionV3: torchvision names up to Mixed_6e; the two new convs are `SPG_A3_1b.0` and
`SPG_A3_2b.0` (3x3 with bias, in Sequentials with their ReLU) and the class conv `SPG_A4`
(1x1 with bias, 1024 -> classes, averaged to logits) is wsolax's linear classifier on the averaged
features (a linear map commutes with the average). ADL modules are named attributes (`ADL_5d`,
...) without tensors, so nothing shifts.

The slot counting runs over the config's own inserted layers, so a checkpoint loads only into a
config whose ADL layers sit where the checkpoint's did (otherwise names are missing or left over
and the strict load refuses it). ADL has no tensors; inserted layers with tensors (DGDM, DFM) have
no counterpart in the benchmark and are refused.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections import Counter

import ml_collections

from wsolax.weights.convert import TorchName, WeightError

LAYOUTS = ("torchvision", "wsolevaluation")
# Layouts whose files hold a whole trained model (nothing may start fresh or be left over).
WHOLE_MODEL = ("wsolevaluation",)
WSOLEVALUATION_BACKBONES = ("vgg16_gap", "resnet50", "inception_v3")
_PARAMETER_FREE_INSERTS = ("adl",)


def torch_name_for(cfg: ml_collections.ConfigDict, layout: str = "torchvision") -> TorchName:
    """`torch_name(module_path)` of `cfg`'s model in the source `layout`."""
    from wsolax.registry import backbone_module

    if layout not in LAYOUTS:
        raise WeightError(f"unknown layout '{layout}'; known: {', '.join(LAYOUTS)}")
    backbone = cfg.model.backbone
    if layout == "torchvision":
        module = backbone_module(backbone)
        if module is None or not hasattr(module, "torch_name"):
            raise WeightError(f"backbone '{backbone}' has no ImageNet weight layout to "
                              f"convert from")
        return module.torch_name
    return wsolevaluation_torch_name(cfg.model)


def wsolevaluation_torch_name(model_cfg: ml_collections.ConfigDict) -> TorchName:
    """Flax module path -> module prefix in a state dict saved by the benchmark's code."""
    backbone = model_cfg.backbone
    if backbone not in WSOLEVALUATION_BACKBONES:
        raise WeightError(f"the wsolevaluation layout has {', '.join(WSOLEVALUATION_BACKBONES)}, "
                          f"not '{backbone}'")
    method_layout = _method_layout(model_cfg)
    if method_layout is not None:
        return method_layout.torch_name(model_cfg)
    if model_cfg.head != "gap_linear":
        raise WeightError(f"the wsolevaluation layout needs the CAM head 'gap_linear', not "
                          f"'{model_cfg.head}'")
    others = sorted({m for _, m in model_cfg.inserts} - set(_PARAMETER_FREE_INSERTS))
    if others:
        raise WeightError(f"the wsolevaluation layout has no counterpart for inserted layers "
                          f"{others} (only {', '.join(_PARAMETER_FREE_INSERTS)})")
    inserted = Counter(stage for stage, _ in model_cfg.inserts)
    if backbone == "vgg16_gap":
        return _vgg(inserted, bool(model_cfg.large_feature_map))
    if backbone == "resnet50":
        return _resnet(inserted)
    return _inception()


def _method_layout(model_cfg: ml_collections.ConfigDict):
    """The module `wsolax.weights.wsolevaluation_<method>` of the selected method that brings its
    own head (the benchmark's ACoL and SPG models differ from its CAM model beyond inserted
    layers), or None when no selected method has a head. Its `torch_name(model_cfg)` gives the
    whole model's names; a method with a head but no such module has no counterpart there."""
    from wsolax.registry import selected_methods

    heads = [s.method.name for s in selected_methods(model_cfg) if s.method.head is not None]
    if not heads:
        return None
    module = f"{__package__}.wsolevaluation_{heads[0]}"
    if importlib.util.find_spec(module) is None:
        raise WeightError(f"the wsolevaluation layout has no counterpart for the method "
                          f"'{heads[0]}'")
    return importlib.import_module(module)


def _vgg(inserted: Counter, large: bool) -> TorchName:
    from wsolax.models import vgg

    convs, index = {}, 0
    for stage in vgg.STAGES:
        if stage == "conv6":  # its own module after `features`
            continue
        if stage.startswith("conv"):
            convs[stage] = f"features.{index}"
            index += 2  # conv, ReLU
        elif not (stage == "pool4" and large):
            index += 1  # max pool
        index += inserted[stage]  # an ADL slot each

    def torch_name(path: tuple[str, ...]) -> str | None:
        path = tuple(path)
        if path == ("head", "classifier"):
            return "fc"
        if len(path) == 2 and path[0] == "backbone":
            return "conv6" if path[1] == "wsol_conv6" else convs.get(path[1])
        return None

    return torch_name


def _resnet(inserted: Counter) -> TorchName:
    from wsolax.models import resnet

    def torch_name(path: tuple[str, ...]) -> str | None:
        name = resnet.torch_name(path)
        if name is None or not name.startswith("layer"):
            return name
        stage, block, rest = name.split(".", 2)
        j = int(block)
        j += sum(inserted[f"{stage}_{k}"] for k in range(j))  # ADL slots before block j
        return f"{stage}.{j}.{rest}"

    return torch_name


_INCEPTION_HEAD = {("backbone", "wsol_head_conv1"): "SPG_A3_1b.0",
                   ("backbone", "wsol_head_conv2"): "SPG_A3_2b.0",
                   ("head", "classifier"): "SPG_A4"}


def _inception() -> TorchName:
    from wsolax.models import inception

    def torch_name(path: tuple[str, ...]) -> str | None:
        path = tuple(path)
        return _INCEPTION_HEAD.get(path) or inception.torch_name(path)

    return torch_name


def check_whole_model(report, layout: str) -> None:
    """Refuse a conversion of a whole-model layout that left anything fresh or unused."""
    if layout not in WHOLE_MODEL:
        return
    problems = ([f"not in the file (would start fresh): {x}" for x in report.new_layers]
                + [f"MISSING: {x}" for x in report.missing]
                + [f"shape differs (class count?): {x}" for x in report.skipped]
                + [f"unused tensor in the file: {x}" for x in report.unused])
    if problems:
        raise WeightError(f"the {layout} file does not hold exactly this config's model (are "
                          f"backbone, method, its placement, large_feature_map and the class "
                          f"count those it was trained with?):\n  " + "\n  ".join(problems))
