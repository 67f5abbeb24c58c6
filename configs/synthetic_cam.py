"""CAM baseline (Zhou et al. CVPR'16) on the embedded synthetic WSOL dataset, tiny backbone.

The default `python train.py --config configs/synthetic_cam.py` run: generate the dataset (seconds),
train, checkpoint, evaluate on test with the CAM threshold chosen on val. Budget: <= 5 min on 2 CPU
cores (see benchmarks/bench_default_run.py). `--config configs/synthetic_cam.py:runlocal` is a
seconds-long smoke variant.
"""

from wsolax.config import base_config


def get_config(variant: str | None = None):
    c = base_config()
    c.name = "synthetic_cam"
    c.workdir = "runs/synthetic_cam"

    c.data.source = "synthetic"
    c.data.root = "data/synthetic"
    c.data.num_classes = 10
    c.data.resize_size = 72
    c.data.crop_size = 64
    c.data.cache_images = True  # ~40 MB decoded; takes PNG decoding out of the training loop
    # The part is 5-8 % of the object's area: small enough that a CAM fixed on it misses most of
    # the object, large enough that the tiny model finds it within the 5-minute budget (at 3-6 %
    # training plateaued near 25 % accuracy for the first 150 steps; see the README's notes).
    c.data.synthetic.part_fraction = (0.05, 0.08)
    c.data.synthetic.num_train = 3000

    c.model.backbone = "tiny"
    c.model.width = 16

    # Trained from scratch, so the head needs no larger learning rate than the backbone.
    c.optim.lr = 0.05
    c.optim.schedule = "cosine"
    c.optim.warmup_epochs = 0.5
    c.optim.weight_decay = 5e-4
    c.optim.new_layer_lr_mult = 1.0

    c.train.batch_size = 64
    c.train.epochs = 10
    c.train.checkpoint_every_steps = 100

    c.eval.splits = ("test",)
    c.eval.threshold_split = "val"

    if variant == "runlocal":
        c.workdir = "runs/synthetic_cam_runlocal"
        c.data.root = "data/synthetic_runlocal"
        c.data.synthetic.num_train = 128
        c.data.synthetic.num_val = 32
        c.data.synthetic.num_test = 32
        c.train.batch_size = 32
        c.train.epochs = 1
        c.eval.num_overlays = 4
    elif variant is not None:
        raise ValueError(f"unknown variant {variant!r}; known: runlocal")
    return c
