import jax.numpy as jnp
import numpy as np
import pytest

from wsolax.config import base_config
from wsolax.training.optim import make_optimizer, make_schedule, param_groups


def _cfg(**kw):
    c = base_config().optim
    for k, v in kw.items():
        c[k] = v
    return c


def test_step_schedule_by_hand():
    s = make_schedule(_cfg(lr=0.1, schedule="step", decay_epochs=2, decay_factor=0.1), 10, 100)
    assert float(s(0)) == pytest.approx(0.1)
    assert float(s(19)) == pytest.approx(0.1)
    assert float(s(20)) == pytest.approx(0.01)
    assert float(s(45)) == pytest.approx(0.001)


def test_cosine_schedule_with_warmup_by_hand():
    s = make_schedule(_cfg(lr=0.2, schedule="cosine", warmup_epochs=1), 10, 110)
    assert float(s(0)) == pytest.approx(0.0)
    assert float(s(5)) == pytest.approx(0.1)
    assert float(s(10)) == pytest.approx(0.2)
    # Half way through the 100 cosine steps: 0.2 * (1 + cos(pi/2)) / 2 = 0.1.
    assert float(s(60)) == pytest.approx(0.1, abs=1e-6)
    assert float(s(110)) == pytest.approx(0.0, abs=1e-7)


def test_param_groups():
    params = {"backbone": {"w": 1}, "head": {"classifier": {"kernel": 2}}, "stage3_insert0": {"d": 3}}
    labels = param_groups(params, ("head", "stage3_insert"))
    assert labels == {"backbone": {"w": "backbone"}, "head": {"classifier": {"kernel": "new"}},
                      "stage3_insert0": {"d": "new"}}


def test_new_layers_get_the_multiplier_and_sgd_matches_torch_rule():
    # One step of SGD (no momentum history yet): update = -lr * mult * (g + wd * p).
    cfg = _cfg(lr=0.1, schedule="constant", momentum=0.9, nesterov=True, weight_decay=0.01,
               new_layer_lr_mult=10.0, new_layer_prefixes=("head",))
    tx, _ = make_optimizer(cfg, 10, 100)
    params = {"backbone": jnp.array([1.0, 2.0]), "head": jnp.array([3.0])}
    grads = {"backbone": jnp.array([0.5, -1.0]), "head": jnp.array([2.0])}
    updates, state = tx.update(grads, tx.init(params), params)
    # Nesterov first step: buf = d; d + m * buf = (1 + m) d, with d = g + wd * p.
    d_b = np.array([0.5 + 0.01, -1.0 + 0.02])
    d_h = np.array([2.0 + 0.03])
    np.testing.assert_allclose(updates["backbone"], -0.1 * 1.9 * d_b, rtol=1e-6)
    np.testing.assert_allclose(updates["head"], -1.0 * 1.9 * d_h, rtol=1e-6)
