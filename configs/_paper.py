"""Shared settings of the paper-reproduction configs (ImageNet-pretrained backbones, real datasets).

What the method papers state is used as stated and cited in each config. What they leave out
(ADL, DGDM and DFM give no learning rate, batch size or epochs) follows the fine-tuning protocol
of Choe et al. CVPR'20 ("Evaluating WSOL Methods Right"): batch 32, SGD with momentum 0.9,
classifier/new layers at 10x the learning rate, step decay x0.1 (CUB: 50 epochs, every 15;
ILSVRC: 10 epochs, every 3), resize 256 -> random crop 224 + flip for training, 224 for evaluation,
CAM threshold chosen on the fully supervised val split. Its learning rates were tuned per method on
val; the `lr` values here are starting points to tune the same way, not the papers' values.

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
    "cub": (200, 50, 15),
    "ilsvrc": (1000, 10, 3),
    "cars": (196, 50, 15),
    "openimages": (100, 10, 3),  # OpenImages30k of Choe et al. CVPR'20: 10 epochs, decay every 3
}
MAX_BOXES = {"ilsvrc": 64, "openimages": 64}


def paper_config(name: str, dataset: str, backbone: str, inserts=(), methods=None,
                 weight_decay: float = 1e-4, lr: float = 1e-3):
    num_classes, epochs, decay_every = DATASETS[dataset]
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

    c.optim.lr = lr
    c.optim.momentum = 0.9
    c.optim.nesterov = False  # the papers' plain SGD with momentum
    c.optim.weight_decay = weight_decay
    c.optim.schedule = "step"
    c.optim.decay_epochs = decay_every
    c.optim.decay_factor = 0.1
    c.optim.warmup_epochs = 0.0
    c.optim.new_layer_lr_mult = 10.0

    c.train.batch_size = 32
    c.train.epochs = epochs
    c.train.checkpoint_every_steps = 1000
    c.eval.batch_size = 64
    c.eval.splits = ("test",)
    c.eval.threshold_split = "val"
    return c

