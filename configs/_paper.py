"""Shared settings of the paper-reproduction configs (ImageNet-pretrained backbones, real datasets).

Training settings and where each comes from (table: docs/paper_configs.md). None of the method
papers gives a learning rate, batch size, epoch count, schedule or weight decay: ADL (Sec. 4,
"Implementation details"), DFM ("Implementation") and Where to Look (Sec. 4.2) only say they
fine-tune ImageNet-pretrained weights, DGDM (Sec. 3.4) adds that it uses SGD. So every training
number here follows the CVPR'20 benchmark (Choe et al., "Evaluating WSOL Methods Right",
github.com/clovaai/wsolevaluation):

* its main.py: SGD with Nesterov momentum, weight decay on every parameter, learning rate x0.1
  before every 1-based epoch that `--lr_decay_frequency` divides (`adjust_learning_rate(epoch + 1)`
  runs before each epoch: `optim.decay_rule = "wsolevaluation"`), new layers at
  `--lr_classifier_ratio` times the rate, and which layers are new: VGG's conv6 + fc, InceptionV3's
  new convs + fc, ResNet's layer4 + fc;
* its wsol/util.py `initialize_weights`: every nn.Linear from N(0, 0.01) with zero bias
  (`model.classifier_init_std = 0.01`), new convs Kaiming normal (fan-out) in VggCam and Xavier
  uniform in InceptionCam (`model.new_conv_init = "wsolevaluation"`); the pretrained layers
  overwrite the rest;
* its config.py defaults: lr 0.01, new-layer ratio 10, momentum 0.9, weight decay 1e-4, resize
  256 -> random crop 224 (evaluation at 224);
* its README's example run (OpenImages, VGG16, CAM): batch 32 (config.py's default is 64),
  10 epochs with decay every 3, weight decay 5e-4 -- wsolax uses 5e-4 for VGG16-GAP;
* its published per-run settings (the hyperparameter sheet its README links; how they were
  checked: docs/paper_configs.md): CUB 50 epochs with decay every 15, ILSVRC 10 with decay every 3.

The benchmark searched the learning rate per method, backbone and dataset on its train-fullsup
split (README); config.py's 0.01 is only the start of that search, so tune `optim.lr` on val
the same way. The CAM threshold is chosen on val (train-fullsup), scores are reported on test.

Data: any folder in the wsolevaluation metadata layout (see README, "Your own dataset"); paths come
from environment variables (or --config.data.* flags), never from the config file:
  WSOLAX_<NAME>_METADATA   metadata root (default data/<name>/metadata)
  WSOLAX_<NAME>_IMAGES     image root    (default data/<name>/images)
Weights: `python -m wsolax.convert --config <this config> --weights <torchvision .pth or timm
.safetensors>` writes `model.init_from` (default weights/<backbone>_imagenet.safetensors).
"""

from __future__ import annotations

import os

from wsolax.config import base_config

DATASETS = {  # name -> (classes, epochs, decay every N epochs)
    "cub": (200, 50, 15),  # the benchmark's per-run settings (sheet linked from its README)
    "ilsvrc": (1000, 10, 3),  # the same
    # No source trains on Stanford Cars (DGDM's Table 2 gives no settings): CUB's, the other
    # fine-grained set of similar size -- wsolax's choice.
    "cars": (196, 50, 15),
    "openimages": (100, 10, 3),  # the benchmark README's example run
}
MAX_BOXES = {"ilsvrc": 64, "openimages": 64}


def paper_config(name: str, dataset: str, backbone: str, inserts=(), methods=None,
                 weight_decay: float | None = None, lr: float = 0.01):
    """`lr`: the backbone's rate (benchmark config.py default); `weight_decay`: None picks the
    benchmark's (5e-4 for VGG16 as in its README's VGG16 run, else config.py's 1e-4)."""
    num_classes, epochs, decay_every = DATASETS[dataset]
    if weight_decay is None:
        weight_decay = 5e-4 if backbone.startswith("vgg") else 1e-4
    c = base_config()
    c.name = name
    c.workdir = f"runs/{name}"
    key = dataset.upper()
    c.data.source = "folder"
    c.data.metadata_root = os.environ.get(f"WSOLAX_{key}_METADATA", f"data/{dataset}/metadata")
    c.data.image_root = os.environ.get(f"WSOLAX_{key}_IMAGES", f"data/{dataset}/images")
    c.data.num_classes = num_classes
    c.data.resize_size = 256
    c.data.crop_size = 224
    c.data.num_threads = 8
    c.data.verify_images = dataset != "ilsvrc"  # decoding 1.28M images up front takes too long
    # Boxes per image are padded to a fixed count; ILSVRC val and OpenImages (one box per instance
    # mask) have images with many more than CUB's one (`python -m wsolax.validate` checks it).
    c.data.max_boxes = MAX_BOXES.get(dataset, 4)

    c.model.backbone = backbone
    c.model.inserts = tuple(inserts)
    if methods:
        for method, hparams in methods.items():
            c.model.methods[method] = dict(hparams)
    c.model.init_from = f"weights/{backbone}_imagenet.safetensors"
    c.model.classifier_init_std = 0.01  # the benchmark's wsol/util.py, every nn.Linear
    c.model.new_conv_init = "wsolevaluation"  # the same function, on conv6 / the head convs

    c.optim.lr = lr
    c.optim.momentum = 0.9
    c.optim.nesterov = True  # the benchmark's main.py (no method paper names the SGD variant)
    c.optim.weight_decay = weight_decay
    c.optim.schedule = "step"
    c.optim.decay_epochs = decay_every
    c.optim.decay_factor = 0.1
    c.optim.decay_rule = "wsolevaluation"  # its main.py: one epoch before "every"
    c.optim.warmup_epochs = 0.0
    c.optim.new_layer_lr_mult = 10.0
    if backbone.startswith(("resnet", "se_resnet")):
        # The benchmark's main.py trains a ResNet's layer4 at the new-layer rate too; VGG and
        # InceptionV3 keep the defaults (head + the WSOL variants' added convs), as it does.
        c.optim.new_layer_prefixes = ("head", "backbone/layer4_")

    c.train.batch_size = 32
    c.train.epochs = epochs
    c.train.checkpoint_every_steps = 1000
    c.eval.batch_size = 64
    c.eval.splits = ("test",)
    c.eval.threshold_split = "val"
    return c

