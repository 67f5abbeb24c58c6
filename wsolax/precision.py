"""Compute dtypes: the model's dtype by name, and "at least float32" for statistics.

Attention maps, normalisation statistics, logits and CAMs are computed in float32 when the model
computes in bfloat16 (precision) and in float64 when it computes in float64 (a float64 model, e.g.
for exact parity or sharding checks, must not round through float32 anywhere). `widen` gives both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float64": jnp.float64}


def compute_dtype(name: str) -> jnp.dtype:
    """The dtype `model.dtype` names; float64 needs 64-bit JAX (JAX_ENABLE_X64=1)."""
    if name not in COMPUTE_DTYPES:
        raise ValueError(f"unknown model dtype {name!r}; known: {sorted(COMPUTE_DTYPES)}")
    if name == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("model.dtype='float64' needs 64-bit JAX: set JAX_ENABLE_X64=1 (or "
                         "jax.config.update('jax_enable_x64', True) before building the model)")
    return COMPUTE_DTYPES[name]


def at_least_float32(dtype) -> jnp.dtype:
    return jnp.promote_types(dtype, jnp.float32)


def widen(x: jax.Array) -> jax.Array:
    """`x` in float32, or in its own dtype when that is wider (float64)."""
    return x.astype(at_least_float32(x.dtype))


def param_dtype(dtype) -> jnp.dtype:
    """Parameters stay float32 under float32/bfloat16 compute, and are float64 in a float64 model."""
    return jnp.float64 if jnp.dtype(dtype) == jnp.float64 else jnp.float32
