"""How the method contract (tests/test_method_contract.py, tests/method_sharding_worker.py) places
each registered method on the tiny test backbone.

A method is placed the way a config selects it (docs/adding-a-method.md): a method with a layer
after `stage3`, any other by an empty section (its paper's settings). A method whose defaults do
not fit the tiny 32 px model names its small settings in SMALL; nothing else needs writing for a
new method to get the contract's tests.
"""

from __future__ import annotations

from wsolax import registry
from wsolax.config import base_config

IMAGE = 32  # px, square
BATCH = 4
# name -> (inserts, section) for methods whose default placement or settings need the change.
SMALL: dict[str, tuple[tuple[tuple[str, str], ...] | None, dict]] = {
    # patch sizes of the paper's 224 px images scaled to 32 px
    "where_to_look": (None, {"patch_sizes": (4, 8)}),
    # ACoL's and SPG's branches in proportion to the width-4 backbone (and SPG's masks at the
    # image size): the benchmark's 512-1024 channels and 224 px masks, which the full backbones'
    # steps keep (tests/test_benchmark_backbone_steps.py), made these the contract's slowest
    "acol": (None, {"features": 16}),
    # its two taps (B1, B2 read the features there), as configs/synthetic_spg.py places them
    "spg": ((("stage3", "spg"), ("stage4", "spg")),
            {"b_features": 16, "c_features": 16, "mask_size": IMAGE}),
}


def contract_methods() -> tuple[str, ...]:
    return registry.method_names()


def tiny_method_config(name: str, dtype: str = "float32", width: int = 4):
    c = base_config()
    c.model.width = width
    c.model.dtype = dtype
    method = registry.get_method(name)
    inserts, section = SMALL.get(name, (None, {}))
    if inserts is None and method.layer is not None:
        inserts = (("stage3", name),)
    if inserts:
        c.model.inserts = inserts
    if section or method.layer is None:
        c.model.methods[name] = dict(section)
    return c
