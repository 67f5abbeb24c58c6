"""Where to Look on ResNet50, CUB-200-2011 (Babar & Das, WACV 2021).

Paper: ImageNet-pretrained ResNet50, CAAM + SSAM after the last convolutional stage (Sec. 4.2:
"after conv5-3" on VGG16, "similar steps for ResNet50"), hide probability 0.5, "Mixed" patch sizes
{16, 32, 44, 56} drawn per image per step (Table 6), fusion weight beta 50 (Sec. 4.3); the test CAM
from the plain path with CAAM/SSAM off. Expected (Table 1 / Table 6, CUB, ResNet50 Mixed): Top-1
Loc 64.70, GT-known Loc 77.35, Top-1 Clas 77.28 (their ResNet50-CAM: 49.41 / 75.68).

Not in the paper (wsolax's choices, docs/methods.md "Readings"): the aggregation conv's size, here
1x1 to 1024 channels, with no activation as Eq. 9 writes (a 3x3 2048 -> 1024 conv on the 14x14
map costs ~7.4 GFLOPs per view, more than the whole ResNet50 forward:
benchmarks/bench_method_overhead.py measured +289 % step flops with it), one conv + classifier per
view, the X branch's classifier for the test CAM. No optimiser, learning rate, batch size or
schedule is given: configs/_paper.py (the CVPR'20 fine-tuning protocol). No gradient clipping:
the paper gives none (the scale-invariant fusion loss can give large gradients while the CAMs are
small; `--config.optim.clip_grad_norm=5` turns a clip on).
"""

import _paper


def where_to_look(c):
    """The paper's method settings (and wsolax's readings) on a paper_config `c`."""
    c.model.methods.where_to_look = {"patch_sizes": (16, 32, 44, 56), "hide_prob": 0.5,
                                     "fusion_weight": 50.0, "agg_features": 1024, "agg_kernel": 1}
    return c


def get_config():
    return where_to_look(_paper.paper_config("cub_wtl_resnet50", "cub", "resnet50"))
