"""Every key base_config() defines is read somewhere in the library: a key that nothing reads is a
setting that silently does nothing (the drift this test exists to catch)."""

import re
from pathlib import Path

import pytest

from wsolax.config import FREE_FORM, base_config

LIBRARY = Path(__file__).resolve().parents[1] / "wsolax"


def _leaf_keys(cfg, prefix=""):
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if hasattr(value, "items") and name not in FREE_FORM:
            yield from _leaf_keys(value, name + ".")
        else:
            yield name


def _reader_sources() -> str:
    # config.py defines and validates the keys; reading them there is not a use.
    return "\n".join(p.read_text() for p in LIBRARY.rglob("*.py") if p.name != "config.py")


def _is_read(key: str, sources: str) -> bool:
    """`train.epochs` is read where the library writes `cfg.epochs`, `train.epochs`, `t.epochs`,
    `train_cfg.epochs` (the section under its name, initial or `<name>_cfg`) or the key as a string
    (`.get("epochs")`, `["epochs"]`)."""
    section, leaf = key.rsplit(".", 1) if "." in key else ("", key)
    last = section.rsplit(".", 1)[-1]
    owners = {"cfg", "config"} | ({last, last[0], f"{last}_cfg"} if last else set())
    pattern = rf"\b(?:{'|'.join(sorted(owners))})\.{leaf}\b|[\"']{leaf}[\"']"
    return re.search(pattern, sources) is not None


def test_every_config_key_is_read_by_the_library():
    sources = _reader_sources()
    unread = [key for key in _leaf_keys(base_config()) if not _is_read(key, sources)]
    assert not unread, f"config keys read by nothing in wsolax/: {unread}"


@pytest.mark.parametrize("key, source, read", [
    ("train.epochs", "n = cfg.train.epochs", True),
    ("train.epochs", "t = cfg.train\nn = t.epochs", True),
    ("model.wtl.fill", 'value = model_cfg.wtl.get("fill")', True),
    ("train.epochs", "n = cfg.train.epoch", False),  # another key
    ("model.wtl.fill", "x = np.fill(3)", False),  # the name, but not read from its section
])
def test_the_check_tells_a_read_key_from_an_unread_one(key, source, read):
    assert _is_read(key, source) is read
