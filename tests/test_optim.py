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


def _main_py_rates(lr, epochs, freq):
    """wsolevaluation's main.py, transcribed: `for epoch in range(epochs):
    adjust_learning_rate(epoch + 1); train()`, where adjust multiplies every group's lr by 0.1
    `if epoch != 0 and epoch % lr_decay_frequency == 0`. The rate each epoch trains at."""
    rates = []
    for epoch in range(epochs):
        e = epoch + 1
        if e != 0 and e % freq == 0:
            lr *= 0.1
        rates.append(lr)
    return rates


@pytest.mark.parametrize("epochs,freq", [(10, 3), (50, 15), (6, 2), (4, 1)])
def test_step_schedule_of_wsolevaluation_decays_as_its_main_py(epochs, freq):
    spe = 7
    s = make_schedule(_cfg(lr=0.01, schedule="step", decay_epochs=freq, decay_factor=0.1,
                           decay_rule="wsolevaluation"), spe, epochs * spe)
    want = _main_py_rates(0.01, epochs, freq)
    for epoch, rate in enumerate(want):
        for step in (epoch * spe, epoch * spe + spe - 1):
            assert float(s(step)) == pytest.approx(rate, rel=1e-5), (epoch, step)
    # "every" decays one epoch later: after epochs freq, 2 freq, ...
    later = make_schedule(_cfg(lr=0.01, schedule="step", decay_epochs=freq, decay_factor=0.1),
                          spe, epochs * spe)
    for epoch in range(epochs):
        assert float(later(epoch * spe)) == pytest.approx(0.01 * 0.1 ** (epoch // freq), rel=1e-5)


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
    # `*` in a prefix matches any characters; everything else is a plain prefix.
    params = {"backbone": {"stage2_insert1": {"k": 1}, "stage2": {"k": 2},
                           "wsol_conv6": {"k": 3}, "my_insert": {"k": 4}}, "header": 5}
    labels = param_groups(params, ("head", "backbone/wsol_", "backbone/*_insert"))
    assert labels == {"backbone": {"stage2_insert1": {"k": "new"}, "stage2": {"k": "backbone"},
                                   "wsol_conv6": {"k": "new"}, "my_insert": {"k": "new"}},
                      "header": "new"}


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
