"""Pretraining the tiny backbone on generated whole objects: the ImageNet stand-in of the embedded
benchmark (issue: a set on which the WSOL effect can show).

64 classes, each a combination of outline x texture x colour family (wsolax/data/synth_objects.py):
no factor and no small part alone names a class. 64 px images, objects 35-90 % of the side, any
rotation, 1-4 clutter shapes. Classification only (the boxes exist, but nothing here is about
localization); the backbone is then fine-tuned on the fine-grained WSOL set
(configs/finegrained_cam.py), as the papers fine-tune ImageNet networks on CUB.

    python -m wsolax.pretrain --config configs/pretrain_objects.py \
        --out weights/pretrain_objects_tiny16.safetensors

Budget: <= 15 minutes on 2 CPU cores, deterministic from `seed` (the committed file's checksum is
in weights/README.md). `:runlocal` is a seconds-long smoke variant.
"""

from wsolax.config import base_config


def get_config(variant: str | None = None):
    c = base_config()
    c.name = "pretrain_objects"
    c.workdir = "runs/pretrain_objects"

    c.data.source = "synthetic"
    c.data.root = "data/pretrain_objects"
    c.data.num_classes = 64
    c.data.resize_size = 72
    c.data.crop_size = 64
    c.data.resize = "cv2_linear"  # what the published runs used (wsolax/data/transforms.py)
    c.data.cache_images = True  # 16k x 72 x 72 x 3 bytes ~ 250 MB decoded
    c.data.synthetic.kind = "whole_objects"
    c.data.synthetic.num_train = 16000
    c.data.synthetic.num_val = 640
    c.data.synthetic.num_test = 0
    c.data.synthetic.scale_range = (0.45, 0.95)
    c.data.synthetic.num_distractors = (1, 4)
    c.data.synthetic.distractor_scale = (0.12, 0.3)
    c.data.synthetic.seed = 1000  # any; differs from the WSOL sets' seeds

    c.model.backbone = "tiny"
    c.model.width = 16

    c.optim.lr = 0.05
    c.optim.schedule = "cosine"
    c.optim.warmup_epochs = 0.25
    c.optim.weight_decay = 5e-4
    c.optim.new_layer_lr_mult = 1.0
    # Without clipping the loss jumps back up every few hundred steps at lr 0.05 and 0.1 (probes
    # of 400 steps: 7-10 % accuracy, against 19 % with clipping at 2).
    c.optim.clip_grad_norm = 2.0

    c.train.batch_size = 128
    c.train.epochs = 20
    c.train.checkpoint_every_steps = 250
    c.train.log_every_steps = 25

    c.eval.splits = ("val",)
    c.eval.threshold_split = "val"
    c.eval.num_overlays = 8
    if variant == "runlocal":
        c.data.root = "data/pretrain_objects_runlocal"
        c.workdir = "runs/pretrain_objects_runlocal"
        c.data.synthetic.num_train = 256
        c.data.synthetic.num_val = 64
        c.train.batch_size = 32
        c.train.epochs = 1
    elif variant:
        raise ValueError(f"unknown variant {variant!r}; known: runlocal")
    return c
