"""wsolax.models.conv: 1x1 convolutions as matrix products, everything else lax's convolution.

Oracles: `lax.conv_general_dilated` itself (the function must equal it: a different code path,
dot_general, checked to be the one taken) and, for one case, the sum over channels written as
numpy loops; in float64, so that agreement to 1e-12 means the same mathematics, not rounding.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from wsolax.models import resnet
from wsolax.models.conv import CHOICES, conv_general_dilated, resolve
from wsolax.models.layers import ConvBN

NHWC = ("NHWC", "HWIO", "NHWC")


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _primitives(fn, *args) -> set[str]:
    return {eqn.primitive.name for eqn in jax.make_jaxpr(fn)(*args).jaxpr.eqns}


def _rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


@pytest.mark.parametrize("strides", [(1, 1), (2, 2), (1, 2)])
@pytest.mark.parametrize("cin, cout, padding", [(1, 1, ((0, 0), (0, 0))), (3, 5, "VALID"),
                                                (8, 2, "SAME"), (8, 2, ((0, 0), (0, 0)))])
def test_1x1_equals_lax_forward_and_both_gradients(x64, strides, cin, cout, padding):
    rng = np.random.default_rng(cin * 10 + cout)
    x = rng.standard_normal((2, 5, 7, cin))
    w = rng.standard_normal((1, 1, cin, cout))
    ours = functools.partial(conv_general_dilated, window_strides=strides, padding=padding,
                             dimension_numbers=NHWC)
    ref = functools.partial(lax.conv_general_dilated, window_strides=strides, padding=padding,
                            dimension_numbers=NHWC)
    # the matrix-product path is the one taken (else this would compare lax with itself)
    prims = _primitives(lambda x, w: ours(x, w), x, w)
    assert "dot_general" in prims and "conv_general_dilated" not in prims
    y, y_ref = ours(x, w), ref(x, w)
    assert y.shape == y_ref.shape == (2, -(-5 // strides[0]), -(-7 // strides[1]), cout)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(y.shape)
    dx, dw = jax.vjp(lambda x, w: ours(x, w), x, w)[1](g)
    dx_ref, dw_ref = jax.vjp(lambda x, w: ref(x, w), x, w)[1](g)
    assert dx.shape == x.shape and dw.shape == w.shape
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-12, atol=1e-12)
    # jax.grad of a scalar function of the output, too (the path a train step takes)
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))  # noqa: E731
    for a, b in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_1x1_stride_2_equals_the_channel_sum_written_as_loops(x64):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 4, 3))
    w = rng.standard_normal((1, 1, 3, 2))
    want = np.zeros((2, 3, 2, 2))
    for n in range(2):
        for i in range(3):
            for j in range(2):
                for o in range(2):
                    want[n, i, j, o] = sum(x[n, 2 * i, 2 * j, c] * w[0, 0, c, o] for c in range(3))
    got = conv_general_dilated(x, w, (2, 2), ((0, 0), (0, 0)), dimension_numbers=NHWC)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dn", [None, ("NCHW", "OIHW", "NCHW"), ("NCHW", "IOHW", "NHWC"),
                                ("NHWC", "OIHW", "NCHW")])
def test_1x1_any_dimension_numbers(x64, dn):
    rng = np.random.default_rng(2)
    lhs_spec, rhs_spec, _ = dn or ("NCHW", "OIHW", "NCHW")
    sizes = {"N": 2, "C": 3, "H": 5, "W": 6}
    x = rng.standard_normal([sizes[d] for d in lhs_spec])
    w = rng.standard_normal([{"O": 4, "I": 3, "H": 1, "W": 1}[d] for d in rhs_spec])
    got = conv_general_dilated(x, w, (2, 1), "VALID", dimension_numbers=dn)
    want = lax.conv_general_dilated(x, w, (2, 1), "VALID", dimension_numbers=dn)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel, kwargs", [
    ((3, 3), dict(padding=((1, 1), (1, 1)))),
    ((3, 3), dict(padding="SAME", window_strides=(2, 2))),
    ((1, 1), dict(padding=((1, 1), (1, 1)))),  # a padded 1x1
    ((1, 1), dict(padding=((0, 0), (0, 0)), lhs_dilation=(2, 2))),
    ((1, 1), dict(padding=((0, 0), (0, 0)), rhs_dilation=(2, 2))),
    ((1, 1), dict(padding=((0, 0), (0, 0)), feature_group_count=2)),  # grouped
    ((1, 1), dict(padding=((0, 0), (0, 0)), batch_group_count=2)),
    ((7, 7), dict(padding=((3, 3), (3, 3)), window_strides=(2, 2))),
])
def test_everything_else_is_lax_bit_for_bit(kernel, kwargs):
    kwargs = {"window_strides": (1, 1), **kwargs}
    groups = kwargs.get("feature_group_count", 1)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((4, 6, 6, 4)), jnp.float32)
    w = jnp.asarray(rng.standard_normal(kernel + (4 // groups, 4)), jnp.float32)
    ours = lambda x, w: conv_general_dilated(x, w, dimension_numbers=NHWC, **kwargs)  # noqa: E731
    ref = lambda x, w: lax.conv_general_dilated(x, w, dimension_numbers=NHWC, **kwargs)  # noqa: E731
    assert "dot_general" not in _primitives(ours, x, w)
    y = ours(x, w)
    assert np.array_equal(y, ref(x, w))
    g = jnp.ones_like(y)
    for a, b in zip(jax.vjp(ours, x, w)[1](g), jax.vjp(ref, x, w)[1](g)):
        assert np.array_equal(a, b)


def test_resolve_choices(monkeypatch):
    assert CHOICES == ("auto", "conv", "dot")
    assert resolve("conv") is None  # flax's default, lax.conv_general_dilated
    assert resolve("dot") is conv_general_dilated
    assert jax.default_backend() == "cpu"
    assert resolve("auto") is conv_general_dilated
    for backend in ("gpu", "tpu"):
        monkeypatch.setattr(jax, "default_backend", lambda b=backend: b)
        assert resolve("auto") is None
        assert resolve("dot") is conv_general_dilated
    with pytest.raises(ValueError, match="'einsum'.*auto.*conv.*dot"):
        resolve("einsum")


def _apply(module, variables, x):
    y, updates = module.apply(variables, x, train=True, mutable=["batch_stats"])
    return y, updates["batch_stats"]


@pytest.mark.parametrize("kernel, strides, padding", [(1, 1, 0), (1, 2, 0), (3, 2, 1)])
def test_convbn_both_ways_same_outputs_gradients_and_parameters(x64, kernel, strides, padding):
    x = jnp.asarray(np.random.default_rng(4).standard_normal((2, 5, 5, 3)))
    made = {c: ConvBN(4, kernel, strides, padding, dtype=jnp.float64, conv_1x1=c) for c in CHOICES}
    variables = made["conv"].init(jax.random.key(0), x, train=True)
    variables = jax.tree.map(lambda v: v.astype(jnp.float64), variables)
    for c in ("auto", "dot"):
        other = made[c].init(jax.random.key(0), x, train=True)
        assert jax.tree.map(jnp.shape, other) == jax.tree.map(jnp.shape, variables)

    @functools.partial(jax.jit, static_argnums=0)
    def outputs_and_grads(m, params, x):
        def loss(p, x):
            return jnp.sum(jnp.cos(_apply(m, {**variables, "params": p}, x)[0]))

        return _apply(m, {**variables, "params": params}, x), jax.grad(loss, (0, 1))(params, x)

    want = outputs_and_grads(made["conv"], variables["params"], x)
    for c in ("auto", "dot"):
        got = outputs_and_grads(made[c], variables["params"], x)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_bottleneck_both_ways_same_outputs_gradients_and_torchvision_tree(x64, monkeypatch):
    """A ResNet bottleneck with a strided projection shortcut (1x1 stride 2: conv1, conv3 and
    downsample are 1x1) built as the library builds it (auto: matrix products on CPU) and with
    XLA's convolutions; the parameter tree is torchvision's layout, written out by hand."""
    x = jnp.asarray(np.random.default_rng(5).standard_normal((2, 6, 6, 8)))
    block = resnet.Bottleneck(planes=2, strides=2, dtype=jnp.float64)
    variables = jax.tree.map(lambda v: v.astype(jnp.float64),
                             block.init(jax.random.key(0), x, train=True))
    shapes = jax.tree.map(jnp.shape, variables["params"])
    bn = lambda c: {"scale": (c,), "bias": (c,)}  # noqa: E731
    assert shapes == {
        "conv1": {"conv": {"kernel": (1, 1, 8, 2)}, "bn": bn(2)},
        "conv2": {"conv": {"kernel": (3, 3, 2, 2)}, "bn": bn(2)},
        "conv3": {"conv": {"kernel": (1, 1, 2, 8)}, "bn": bn(8)},
        "downsample": {"conv": {"kernel": (1, 1, 8, 8)}, "bn": bn(8)}}

    def results():
        # fresh functions each time: jax caches a trace by the function traced, and the
        # formulation is chosen when the block is traced
        def run(x, params):
            return _apply(block, {**variables, "params": params}, x)[0]

        def loss(x, params):
            return jnp.sum(jnp.tanh(run(x, params)))

        text = str(jax.make_jaxpr(run)(x, variables["params"]))
        return text, jax.jit(lambda x, p: (run(x, p), jax.grad(loss, (0, 1))(x, p)))(
            x, variables["params"])

    text, got = results()
    assert text.count("dot_general") == 3 and text.count("conv_general_dilated") == 1  # conv2
    monkeypatch.setattr(resnet, "ConvBN", functools.partial(ConvBN, conv_1x1="conv"))
    text, want = results()
    assert "dot_general" not in text and text.count("conv_general_dilated") == 4
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        assert _rel(a, b) < 1e-12


def test_convbn_bfloat16_dot_path():
    x = jnp.asarray(np.random.default_rng(6).standard_normal((2, 4, 4, 8)), jnp.bfloat16)
    made = {c: ConvBN(8, 1, dtype=jnp.bfloat16, conv_1x1=c) for c in ("conv", "dot")}
    variables = made["conv"].init(jax.random.key(0), x, train=True)
    ys = {c: _apply(m, variables, x)[0] for c, m in made.items()}
    assert ys["dot"].dtype == jnp.bfloat16
    assert _rel(ys["dot"].astype(jnp.float32), ys["conv"].astype(jnp.float32)) < 2e-2


def test_model_param_tree_is_the_same_both_ways(monkeypatch):
    """ResNet50's whole parameter tree (names, shapes, dtypes) does not depend on the formulation,
    so checkpoints and converted torchvision weights load as before."""
    model = resnet.ResNet(arch="resnet50")
    x = jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32)
    init = lambda: jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(x.shape), train=False))  # noqa: E731
    auto = init()
    monkeypatch.setattr(resnet, "ConvBN", functools.partial(ConvBN, conv_1x1="conv"))
    conv = init()
    assert jax.tree.structure(auto) == jax.tree.structure(conv)
    assert jax.tree.leaves(auto) == jax.tree.leaves(conv)
    assert len(jax.tree.leaves(auto["params"])) == 53 * 3  # 53 conv+bn pairs: kernel, scale, bias
