"""Configs as code: load `configs/<name>.py:arg`, apply `--config.a.b=value` overrides, validate.

Every config starts from :func:`base_config`, which lists every key wsolax knows with its default.
Overrides and config files may only set keys that exist there, so a typo fails loudly with the key's
name instead of being silently ignored.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import math
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import ml_collections
from absl import flags
from ml_collections import config_flags

from wsolax.data.transforms import IMAGENET_MEAN, IMAGENET_STD, RESIZE_METHODS



# Sections whose keys are checked by their consumer rather than by base_config(): method
# hyperparameters (against the method's dataclass, wsolax.registry.selected_methods) and the
# generator's knobs (against SyntheticSpec).
FREE_FORM = ("model.methods", "data.synthetic")


class ConfigError(ValueError):
    """A config file, override or value that wsolax cannot use."""


def parse_arg(arg: str | None, known: Sequence[str]) -> dict[str, str]:
    """A config's `file.py:arg` (the string config_flags passes to get_config), read as
    comma-separated tokens: 'a,b=1' -> {'a': '', 'b': '1'}; a token not in `known` is an error."""
    opts = {}
    for token in (arg or "").split(","):
        if not token:
            continue
        name, _, value = token.partition("=")
        if name not in known:
            raise ConfigError(f"unknown variant token {token!r}; known: {', '.join(known)}")
        opts[name] = value
    return opts


def arg_suffix(arg: str | None) -> str:
    """A workdir suffix naming the variant ('finegrained,block=3' -> '_finegrained_block3')."""
    return "" if not arg else "_" + arg.replace(",", "_").replace("=", "")


def base_config() -> ml_collections.ConfigDict:
    """All keys with their defaults; configs override a subset."""
    c = ml_collections.ConfigDict()
    c.name = "unnamed"
    c.seed = 0
    c.workdir = "runs/unnamed"

    c.data = ml_collections.ConfigDict()
    # 'synthetic': generated on first use into `root`; 'folder': any dataset already on disk in the
    # wsolevaluation metadata layout (metadata_root/<split>/*.txt, image ids relative to image_root).
    c.data.source = "synthetic"
    c.data.root = "data/synthetic"
    c.data.metadata_root = ""
    c.data.image_root = ""
    # data.source='tfds': records prepared by `python -m wsolax.data.tfds_builder` under
    # tfds_data_dir (its --data-dir), for the builder config tfds_name (cub, ilsvrc, ...).
    c.data.tfds_data_dir = ""
    c.data.tfds_name = ""
    c.data.num_classes = 10
    c.data.train_split = "train"
    c.data.resize_size = 72
    c.data.crop_size = 64
    # How images are decoded and resized (wsolax/data/transforms.py): "pil_bilinear" is the
    # benchmark's (Pillow opens and resizes, antialiasing when it shrinks), "cv2_linear" OpenCV's
    # (no antialiasing; the embedded benchmark's configs keep it, as their published runs used it).
    c.data.resize = "pil_bilinear"
    c.data.mean = IMAGENET_MEAN
    c.data.std = IMAGENET_STD
    c.data.max_boxes = 4
    c.data.num_threads = 2
    # Decode every training image once before training starts, so a corrupt or mis-sized file
    # stops the run before any step (seconds for small sets; turn off for ImageNet-sized ones).
    c.data.verify_images = True
    # What that check does with an image that does not decode or whose size disagrees with
    # image_sizes.txt: 'fail' stops the run naming it; 'skip' drops it from the split (with a count).
    c.data.bad_images = "fail"
    # Before the first step the metadata of every split the run will evaluate on is checked too;
    # their images are also decoded when the split is small ('auto': at most 20,000 images, as
    # CUB, OpenImages30k and the embedded set), always ('all') or never ('none'; ILSVRC's 50,000
    # are decoded under 'auto' only by `python -m wsolax.validate --decode`).
    c.data.verify_eval_images = "auto"
    # Keep decoded training images in memory (small datasets: takes decoding out of the loop).
    c.data.cache_images = False
    # Generator knobs for the embedded dataset (see wsolax.data.synthetic.SyntheticSpec); only the
    # keys given here override the spec's defaults.
    c.data.synthetic = ml_collections.ConfigDict()
    c.data.synthetic.image_size = 64
    c.data.synthetic.num_train = 2000
    c.data.synthetic.num_val = 200
    c.data.synthetic.num_test = 500

    c.model = ml_collections.ConfigDict()
    c.model.backbone = "tiny"
    c.model.width = 16
    c.model.head = "gap_linear"
    # The CAM head's linear classifier: 0 keeps Flax's default (LeCun normal), > 0 draws its kernel
    # from N(0, std^2) with zero bias, as wsolevaluation's wsol/util.py initialize_weights does for
    # every nn.Linear (std 0.01).
    c.model.classifier_init_std = 0.0
    # The convs the WSOL variants add inside a backbone (VGG16-GAP's conv6, InceptionV3's two head
    # convs): "flax" (LeCun normal) or "wsolevaluation" (its initialize_weights: Kaiming normal
    # fan-out for VggCam, Xavier uniform for InceptionCam).
    c.model.new_conv_init = "flax"
    c.model.dtype = "float32"  # compute dtype; params stay float32 (float64: both, needs x64)
    # ImageNet backbones: 28x28 instead of 14x14 maps at 224 px (VGG without pool4, ResNet with
    # layer3 stride 1), BatchNorm statistics frozen while fine-tuning, and converted weights
    # (`python -m wsolax.convert`) to start from; "" trains from scratch.
    c.model.large_feature_map = False
    c.model.bn_frozen = False
    c.model.init_from = ""
    # Methods (wsolax/methods/, docs/adding-a-method.md). model.methods.<name> holds a method's
    # hyperparameters (checked against its dataclass when the model is built) and selects a method
    # that inserts no layer: `c.model.methods.where_to_look = {}` is Where to Look with the paper's
    # settings. Layers are placed by model.inserts, a tuple of (stage_name, method_name) pairs
    # after named backbone stages. A method with its own head replaces model.head.
    c.model.inserts = ()
    c.model.methods = ml_collections.ConfigDict()

    c.optim = ml_collections.ConfigDict()
    c.optim.lr = 0.1
    c.optim.momentum = 0.9
    c.optim.nesterov = True
    c.optim.weight_decay = 1e-4
    c.optim.schedule = "cosine"  # 'cosine' | 'step' | 'constant'
    c.optim.warmup_epochs = 0.0
    c.optim.decay_epochs = 10  # step schedule: multiply by decay_factor every decay_epochs
    c.optim.decay_factor = 0.1
    # 'every': after every decay_epochs epochs; 'wsolevaluation': one epoch earlier, as its main.py
    # (before the 1-based epoch e with e % decay_epochs == 0), see wsolax/training/optim.py.
    c.optim.decay_rule = "every"
    # Layers that are new on top of a (possibly pretrained) backbone learn faster (x10 in the papers).
    c.optim.new_layer_lr_mult = 10.0
    # The rule (docs/methods.md, "Which layers are new"): a parameter is new iff the pretrained
    # backbone does not have it -- the head, the layers the WSOL variants add inside a backbone
    # ("backbone/wsol_": VGG16-GAP's conv6, InceptionV3's head convs) and every layer inserted after
    # a stage ("backbone/<stage>_insert<i>": SPG's taps, any method's inserted parameters). `*`
    # matches any characters.
    c.optim.new_layer_prefixes = ("head", "backbone/wsol_", "backbone/*_insert")
    c.optim.clip_grad_norm = 0.0  # > 0: clip the gradient's global norm first (0: off)

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 64
    c.train.epochs = 10
    c.train.log_every_steps = 20
    c.train.checkpoint_every_steps = 200
    c.train.keep_checkpoints = 2
    c.train.val_every_epochs = 0.0  # 0: no validation during training; else every N epochs
    c.train.max_steps = 0  # 0: epochs decide; >0 stops early (smoke runs, tests)
    c.train.progress_bar = True
    # Stop at the first step whose loss, a loss term or the gradient norm is not finite (checked
    # once per logging interval and before each checkpoint; wsolax/training/nonfinite.py), keeping
    # the last checkpoint of finite steps; False trains on (for debugging a divergence).
    c.train.stop_on_nonfinite = True

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 100
    c.eval.cam_curve_interval = 0.001
    c.eval.iou_thresholds = (30, 50, 70)
    c.eval.splits = ("test",)
    c.eval.threshold_split = "val"
    # A fixed CAM threshold instead of the one chosen on threshold_split (on the grid of
    # cam_curve_interval), e.g. for a dataset with only a test split; None: choose it.
    c.eval.tau = ml_collections.config_dict.placeholder(float)
    c.eval.num_overlays = 16
    c.eval.workers = 1
    # Score maps from CAMs: "exact" = the reference's float64 cv2 resize + normalisation on the
    # host (bit-identical maps); "device_float32" = on device in float32 (faster, not identical:
    # docs/evaluation.md has the measured deviation).
    c.eval.scoremap = "exact"
    c.eval.after_training = True
    return c


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """Load `path` (optionally `path:arg` passed to get_config), apply `--config.a.b=value`
    overrides, validate.

    `ml_collections.config_flags` loads the file and parses the overrides, typed by the value they
    replace; on top, an unknown key is named with the closest known one, and every value is
    checked (:func:`validate`).
    """
    path = str(path)
    file = Path(path.rsplit(":", 1)[0] if ":" in Path(path).name else path)
    if not file.is_file():
        raise ConfigError(f"config file not found: {file}")
    known = flatten(base_config())
    overrides = [_checked_override(item, known) for item in overrides]
    argv = ["wsolax", f"--config={path}", *overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", default=None, flag_values=flag_values,
                                    lock_config=False, accept_new_attributes=True, sys_argv=argv)
    with _siblings_importable(file):
        try:
            flag_values(argv)
            cfg = flag_values.config
        except flags.Error as e:
            raise ConfigError(_flag_error_message(e)) from None
        except KeyError as e:  # an override inside a free-form section the config lacks
            section = str(e.args[0]).strip("'")
            raise ConfigError(f"config has no section '{section}' for the override(s) "
                              f"{' '.join(overrides)}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise ConfigError(f"{file}: get_config() must return an ml_collections.ConfigDict")
    check_known_keys(cfg, known)
    validate(cfg)
    return cfg


@contextlib.contextmanager
def _siblings_importable(file: Path):
    """Configs build on each other (`import synthetic_cam`, `import _paper`): their folder is
    importable while one is loaded and built. Sibling modules are forgotten afterwards, so the
    next load reads the files again (edited configs, or another folder with the same names)."""
    folder = str(file.resolve().parent)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.path.remove(folder)
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None) or ""
            if name == "config_config" or str(Path(origin).resolve().parent) == folder:
                del sys.modules[name]


def _checked_override(item: str, known: dict[str, Any]) -> str:
    """`--config.a.b=v` (prefixes optional) with its key known to base_config(), or a ConfigError
    naming the key and the closest known one (config_flags alone would accept any new key, as the
    free-form sections need)."""
    item = item.removeprefix("--").removeprefix("config.")
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like --config.key=value")
    key, text = item.split("=", 1)
    if key not in known and not key.startswith(tuple(f + "." for f in FREE_FORM)):
        raise _unknown_key_error(key, list(known))
    if isinstance(known.get(key), str) and text[:1] in "'\"" and len(text) > 1:
        # A string key also takes a quoted Python literal (--config.workdir="'runs/a b'"), as the
        # free-form keys do; config_flags would keep the quotes.
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, str):
            text = value
    return f"--config.{key}={text}"


def _flag_error_message(error: flags.Error) -> str:
    """absl's message, with the flag named as the config key (`--config.a.b` -> 'a.b'); an error
    raised by the config's get_config() is given as its own last line, without the traceback
    config_flags wraps it in."""
    lines = [line for line in str(error).splitlines() if line.strip()]
    if "Error whilst parsing config file" in str(error):
        return lines[-1].split(": ", 1)[-1]
    text = " ".join(str(error).split())
    match = re.search(r"--config\.([\w.]+)", text) or re.search(r"flag --([\w.]+)", text)
    key = match[1] if match else "config"
    return f"config key '{key}': {text}"


def flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """{dotted key: value} of every leaf (free-form sections such as model.methods stay whole)."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict) and not name.startswith(FREE_FORM):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


# Sections that moved (old prefix -> new), so that an old config or command line is told where.
MOVED = {"model.wtl.": "model.methods.where_to_look."}


def _unknown_key_error(key: str, known: Sequence[str]) -> ConfigError:
    for old, new in MOVED.items():
        if key.startswith(old):
            return ConfigError(f"unknown config key '{key}': it is now "
                               f"'{new}{key.removeprefix(old)}'")
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"unknown config key '{key}'{hint}")


def check_known_keys(cfg: ml_collections.ConfigDict, known: dict[str, Any] | None = None) -> None:
    """Reject keys that base_config() (flattened: `known`) does not define (method
    hyperparameters are free-form)."""
    known = flatten(base_config()) if known is None else known
    for key in flatten(cfg):
        if key not in known and not key.startswith(FREE_FORM):
            raise _unknown_key_error(key, list(known))


def _require(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"config key '{key}': {message}")


def check_synthetic(synthetic: ml_collections.ConfigDict) -> None:
    """Reject `data.synthetic` keys that are not SyntheticSpec fields."""
    import dataclasses

    from wsolax.data.synth_spec import SyntheticSpec

    fields = [f.name for f in dataclasses.fields(SyntheticSpec)]
    for key in synthetic.keys():
        if key not in fields:
            raise _unknown_key_error(f"data.synthetic.{key}", [f"data.synthetic.{f}" for f in fields])


def validate(cfg: ml_collections.ConfigDict) -> None:
    """Check values, naming the offending key."""
    d, m, o, t, e = cfg.data, cfg.model, cfg.optim, cfg.train, cfg.eval
    _require(d.source in ("synthetic", "folder", "tfds"), "data.source",
             "must be 'synthetic', 'folder' or 'tfds'")
    if d.source == "tfds":
        _require(bool(d.tfds_data_dir), "data.tfds_data_dir", "must be set for data.source='tfds'")
        _require(bool(d.tfds_name), "data.tfds_name", "must be set for data.source='tfds'")
    if d.source == "folder":
        _require(bool(d.metadata_root), "data.metadata_root", "must be set for data.source='folder'")
        _require(bool(d.image_root), "data.image_root", "must be set for data.source='folder'")
    _require(d.num_classes >= 2, "data.num_classes", f"must be >= 2, got {d.num_classes}")
    _require(e.tau is None or 0 <= e.tau < 1, "eval.tau", f"must be in [0, 1), got {e.tau}")
    _require(d.resize in RESIZE_METHODS, "data.resize",
             f"must be one of {RESIZE_METHODS}, got {d.resize!r}")
    _require(d.crop_size >= 16, "data.crop_size", f"must be >= 16, got {d.crop_size}")
    _require(d.resize_size >= d.crop_size, "data.resize_size",
             f"must be >= data.crop_size ({d.crop_size}), got {d.resize_size}")
    _require(len(d.mean) == 3 and len(d.std) == 3, "data.mean", "mean and std need 3 values")
    _require(all(s > 0 for s in d.std), "data.std", "must be positive")
    _require(d.max_boxes >= 1, "data.max_boxes", "must be >= 1")
    _require(d.bad_images in ("fail", "skip"), "data.bad_images",
             f"must be 'fail' or 'skip', got {d.bad_images!r}")
    _require(d.verify_eval_images in ("auto", "all", "none"), "data.verify_eval_images",
             f"must be 'auto', 'all' or 'none', got {d.verify_eval_images!r}")
    check_synthetic(d.synthetic)
    _require(m.dtype in ("float32", "bfloat16", "float64"), "model.dtype",
             "must be 'float32', 'bfloat16' or 'float64' (float64 needs JAX_ENABLE_X64=1)")
    _require(m.width >= 1, "model.width", "must be >= 1")
    _require(m.classifier_init_std >= 0, "model.classifier_init_std", "must be >= 0 (0: Flax's)")
    _require(m.new_conv_init in ("flax", "wsolevaluation"), "model.new_conv_init",
             f"must be 'flax' or 'wsolevaluation', got {m.new_conv_init!r}")
    for pair in m.inserts:
        _require(isinstance(pair, (tuple, list)) and len(pair) == 2, "model.inserts",
                 f"entries must be (stage, method) pairs, got {pair!r}")
    _require(o.lr > 0 and math.isfinite(o.lr), "optim.lr", f"must be a positive number, got {o.lr}")
    _require(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1), got {o.momentum}")
    _require(o.weight_decay >= 0, "optim.weight_decay", "must be >= 0")
    _require(o.schedule in ("cosine", "step", "constant"), "optim.schedule",
             f"must be 'cosine', 'step' or 'constant', got {o.schedule!r}")
    _require(o.decay_epochs > 0, "optim.decay_epochs", "must be > 0")
    _require(0 < o.decay_factor <= 1, "optim.decay_factor", "must be in (0, 1]")
    _require(o.decay_rule in ("every", "wsolevaluation"), "optim.decay_rule",
             f"must be 'every' or 'wsolevaluation', got {o.decay_rule!r}")
    _require(o.new_layer_lr_mult > 0, "optim.new_layer_lr_mult", "must be > 0")
    _require(o.warmup_epochs >= 0, "optim.warmup_epochs", "must be >= 0")
    _require(o.clip_grad_norm >= 0, "optim.clip_grad_norm", "must be >= 0 (0: off)")
    _require(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    _require(t.epochs >= 1, "train.epochs", f"must be >= 1, got {t.epochs}")
    _require(t.max_steps >= 0, "train.max_steps", "must be >= 0")
    _require(t.val_every_epochs >= 0, "train.val_every_epochs", "must be >= 0")
    _require(t.checkpoint_every_steps >= 1, "train.checkpoint_every_steps", "must be >= 1")
    _require(t.keep_checkpoints >= 1, "train.keep_checkpoints", "must be >= 1")
    _require(t.log_every_steps >= 1, "train.log_every_steps", "must be >= 1")
    _require(e.batch_size >= 1, "eval.batch_size", "must be >= 1")
    _require(0 < e.cam_curve_interval < 1, "eval.cam_curve_interval", "must be in (0, 1)")
    _require(all(0 < x <= 100 for x in e.iou_thresholds), "eval.iou_thresholds",
             "must be percentages in (0, 100]")
    _require(e.num_overlays >= 0, "eval.num_overlays", "must be >= 0")
    _require(e.workers >= 1, "eval.workers", "must be >= 1")
    _require(e.scoremap in ("exact", "device_float32"), "eval.scoremap",
             f"must be 'exact' or 'device_float32', got {e.scoremap!r}")
