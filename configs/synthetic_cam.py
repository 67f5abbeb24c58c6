"""CAM baseline (Zhou et al. CVPR'16) on the embedded synthetic WSOL dataset, tiny backbone.

The default `python train.py --config configs/synthetic_cam.py` run: generate the dataset (seconds),
train, checkpoint, evaluate on test with the CAM threshold chosen on val. Budget: <= 5 min on 2 CPU
cores (see benchmarks/bench_default_run.py). `--config configs/synthetic_cam.py:runlocal` is a
seconds-long smoke variant.

Variants (comma-separated; the method configs built on this one accept them too):
  finegrained  the embedded *benchmark* instead (configs/_benchmark.py): the fine-grained 96 px set,
             fine-tuned from the backbone pretrained on whole objects with the papers' protocol
  scratch    with finegrained: the same without the pretrained backbone
  runlocal   seconds-long smoke run
  readings=v1  the earlier readings of the methods and the protocol, with which docs/benchmark.md's
             tables were run (configs/_readings.py); default v2
  finetune   start the backbone from a CAM run's weights instead of from scratch, with new heads,
             the way the papers fine-tune ImageNet networks: 5 epochs, backbone lr 0.005, new
             layers x10. The weights come from `model.init_from`, by default the backbone of the
             default CAM run:
               python train.py --config configs/synthetic_cam.py
               python -m wsolax.export --config configs/synthetic_cam.py --only backbone \
                   --out runs/synthetic_cam/backbone.safetensors
"""

import _benchmark
import _readings

from wsolax.config import arg_suffix, base_config, parse_arg


BASE_TOKENS = ("runlocal", "finetune", "finegrained", "scratch", "readings")


def base_variant(opts: dict[str, str]) -> str | None:
    """The tokens of `opts` that this config handles, for configs built on it."""
    tokens = [t + (f"={opts[t]}" if opts[t] else "") for t in BASE_TOKENS if t in opts]
    return ",".join(tokens) or None


def readings(opts: dict[str, str]) -> str:
    """`readings=v1`: the earlier readings (configs/_readings.py); default v2."""
    return _readings.check(opts.get("readings") or "v2")


def get_config(variant: str | None = None):
    opts = parse_arg(variant, BASE_TOKENS)
    c = base_config()
    c.name = "synthetic_cam"
    c.workdir = "runs/synthetic_cam"

    c.data.source = "synthetic"
    c.data.root = "data/synthetic"
    c.data.num_classes = 10
    c.data.resize_size = 72
    c.data.crop_size = 64
    c.data.resize = "cv2_linear"  # what the published runs used (wsolax/data/transforms.py)
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

    c.workdir += arg_suffix(variant)
    if "finetune" in opts:
        c.model.init_from = "runs/synthetic_cam/backbone.safetensors"
        c.train.epochs = 5
        c.optim.lr = 0.005
        c.optim.new_layer_lr_mult = 10.0  # the heads learn at the from-scratch rate
    if "scratch" in opts and "finegrained" not in opts:
        raise ValueError("variant 'scratch' goes with 'finegrained'")
    if "finegrained" in opts:
        if "finetune" in opts:
            raise ValueError("variants 'finegrained' and 'finetune' exclude each other")
        _benchmark.apply(c, scratch="scratch" in opts, readings=readings(opts))
    if readings(opts) == "v1":
        _readings.layers_v1(c)
    if "runlocal" in opts:
        c.data.root = "data/synthetic_runlocal" + ("_finegrained" if "finegrained" in opts else "")
        c.data.synthetic.num_train = 128
        c.data.synthetic.num_val = 32
        c.data.synthetic.num_test = 32
        c.train.batch_size = 32
        c.train.epochs = 1
        c.eval.num_overlays = 4
    return c
