import pytest

from wsolax.config import ConfigError, load_config

CONFIG = "configs/synthetic_cam.py"


def test_loads_and_applies_typed_overrides():
    cfg = load_config(CONFIG, ["--config.train.epochs=3", "--config.optim.lr=0.5",
                               "--config.model.dtype=bfloat16", "--config.eval.splits=('val','test')",
                               "--config.optim.nesterov=False"])
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.optim.lr == 0.5
    assert cfg.model.dtype == "bfloat16"
    assert cfg.eval.splits == ("val", "test")
    assert cfg.optim.nesterov is False


def test_runlocal_variant():
    cfg = load_config(CONFIG + ":runlocal")
    assert cfg.train.epochs == 1 and cfg.data.synthetic.num_train == 128


@pytest.mark.parametrize("override, key", [
    ("--config.train.epoch=3", "train.epoch"),
    ("--config.modle.width=3", "modle.width"),
    ("--config.data.synthetic.nope=1", "data.synthetic.nope"),
])
def test_unknown_key_is_named(override, key):
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'"):
        load_config(CONFIG, [override])


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(ConfigError, match="did you mean 'train.epochs'"):
        load_config(CONFIG, ["--config.train.epoch=3"])


@pytest.mark.parametrize("override, key", [
    ("--config.train.epochs=abc", "train.epochs"),
    ("--config.train.epochs=1.5", "train.epochs"),
    ("--config.train.epochs=0", "train.epochs"),
    ("--config.optim.lr=-1", "optim.lr"),
    ("--config.optim.schedule=linear", "optim.schedule"),
    ("--config.optim.momentum=1.5", "optim.momentum"),
    ("--config.model.dtype=float16", "model.dtype"),
    ("--config.data.resize_size=32", "data.resize_size"),
    ("--config.eval.cam_curve_interval=0", "eval.cam_curve_interval"),
    ("--config.data.source=web", "data.source"),
])
def test_invalid_value_is_named(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(CONFIG, [override])


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/does_not_exist.py")


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(CONFIG, ["--config.train.epochs"])


def test_every_committed_config_validates():
    import pathlib
    paths = [p for p in sorted(pathlib.Path("configs").glob("*.py")) if not p.name.startswith("_")]
    assert len(paths) >= 10
    for path in paths:  # _*.py are shared helpers, not configs
        load_config(path)


def test_configs_import_their_siblings_from_their_own_folder(tmp_path):
    import sys

    for folder, lr in (("a", 0.5), ("b", 0.25)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "_shared.py").write_text(
            "from wsolax.config import base_config\n\n\n"
            f"def make():\n    c = base_config()\n    c.optim.lr = {lr}\n    return c\n")
        (tmp_path / folder / "exp.py").write_text(
            "import _shared\n\n\ndef get_config():\n    return _shared.make()\n")
    assert load_config(tmp_path / "a" / "exp.py").optim.lr == 0.5
    assert load_config(tmp_path / "b" / "exp.py").optim.lr == 0.25  # not a's cached _shared
    assert "_shared" not in sys.modules and str(tmp_path / "a") not in sys.path


@pytest.mark.parametrize("method", ["cam", "adl", "dgdm", "dfm", "wtl"])
def test_finetune_variant_of_every_synthetic_method(method):
    scratch = load_config(f"configs/synthetic_{method}.py")
    tuned = load_config(f"configs/synthetic_{method}.py:finetune,runlocal")
    assert scratch.model.init_from == "" and tuned.model.init_from.endswith(".safetensors")
    assert tuned.train.epochs == 1  # runlocal applies on top
    assert tuned.optim.lr * tuned.optim.new_layer_lr_mult == pytest.approx(scratch.optim.lr)
    assert tuned.model.inserts == scratch.model.inserts and tuned.model.head == scratch.model.head
    assert tuned.workdir != scratch.workdir
    with pytest.raises(ValueError, match="unknown variant token 'fine'"):
        load_config(f"configs/synthetic_{method}.py:fine")


def test_a_string_key_takes_plain_or_quoted_text():
    cfg = load_config(CONFIG, ["--config.workdir='/tmp/a b'", '--config.data.root="data/x"',
                               "--config.name=plain"])
    assert (cfg.workdir, cfg.data.root, cfg.name) == ("/tmp/a b", "data/x", "plain")


def test_free_form_sections_take_new_keys_typed_as_literals():
    cfg = load_config("configs/synthetic_adl.py", ["--config.model.methods.adl.gamma=0.5",
                                                   "--config.data.synthetic.num_test=7"])
    assert cfg.model.methods.adl.gamma == 0.5 and cfg.data.synthetic.num_test == 7


def test_a_section_the_config_lacks_is_named():
    with pytest.raises(ConfigError, match="no section 'dgdm'"):
        load_config(CONFIG, ["--config.model.methods.dgdm.alpha=0.5"])
