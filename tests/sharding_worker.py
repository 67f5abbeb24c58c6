"""Run a few sharded train steps on fixed data and print losses + a parameter checksum as JSON.

Launched in a subprocess by test_sharding.py, because the device count (XLA_FLAGS) must be set
before JAX starts: `python tests/sharding_worker.py <mesh>:<mode>:<precision> ...` runs each
setting on the first <mesh> devices, one after the other in this one process (imports and start-up
paid once, 1- and 8-device meshes side by side), and prints one JSON line keyed by setting.
`float64` turns on 64-bit JAX for that setting and builds the whole model in
float64 (parameters, activations, statistics, loss), the setting in which 1 and 8 devices must agree
to rounding on any CPU; in float32 a ReLU input within rounding of zero can flip its derivative
between two reduction orders, and that one flip moves the gradients of a tiny model by percents.
"""

import json
import sys

import jax
import numpy as np

from wsolax.config import base_config
from wsolax.localization.cams import make_cam_extractor
from wsolax.registry import build_model
from wsolax import sharding
from wsolax.training.optim import make_optimizer
from wsolax.training.objectives import build_objective
from wsolax.models.wsol_model import init_key
from wsolax.training.state import init_state
from wsolax.training.step import make_train_step


def main(num_devices: int, mode: str = "cam", precision: str = "float32", steps: int = 3,
         batch: int = 16) -> dict:
    with jax.enable_x64(precision == "float64"):
        return _train_and_extract(num_devices, mode, precision, steps, batch)


def _train_and_extract(num_devices: int, mode: str, precision: str, steps: int,
                       batch: int) -> dict:
    dtype = np.dtype(precision)
    cfg = base_config()
    cfg.model.dtype = precision
    cfg.model.width = 4
    if mode == "methods":  # every attention-dropout layer, drawing per image, in one model
        cfg.model.inserts = (("stage2", "adl"), ("stage3", "dgdm"), ("stage4", "dfm"))
        for name in ("adl", "dgdm", "dfm"):
            cfg.model.methods[name] = {"per_sample": True}
    elif mode == "wtl":  # Where to Look: the pair is drawn per image inside the step
        cfg.model.methods.where_to_look = {"patch_sizes": (4, 6, 8)}
        cfg.optim.clip_grad_norm = 5.0
    mesh = sharding.data_mesh(jax.devices()[:num_devices])
    model = build_model(cfg)
    tx, _ = make_optimizer(cfg.optim, 10, 100)
    init = jax.jit(lambda k: init_state(model, tx, k, (1, 32, 32, 3)),
                   out_shardings=sharding.replicated(mesh))
    state = init(init_key(0))
    step = sharding.shard_step(make_train_step(model, tx, build_objective(cfg)), mesh)
    rng = np.random.default_rng(0)
    losses = []
    for _ in range(steps):
        data = {"image": rng.normal(size=(batch, 32, 32, 3)).astype(dtype),
                "label": rng.integers(0, cfg.data.num_classes, batch).astype(np.int32)}
        state, metrics = step(state, sharding.put_batch(data, mesh), jax.random.key(7))
        losses.append(float(metrics["loss"]))
    # Jitted, sharded CAM extraction on the trained state (as eval.py runs it).
    # Device-made score maps, so that their sharding can be checked.
    extract = make_cam_extractor(model, mesh, (48, 40), scoremap="device_float32")
    data = {"image": rng.normal(size=(batch, 32, 32, 3)).astype(dtype),
            "label": rng.integers(0, cfg.data.num_classes, batch).astype(np.int32)}
    device_batch = sharding.put_batch(data, mesh)
    out = extract({"params": state.params}, device_batch["image"], device_batch["label"])
    scoremaps = np.asarray(jax.device_get(out["scoremap_gt"]), np.float64)
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(state.params)]
    shard_counts = {len(x.sharding.device_set) for x in jax.tree.leaves(state.params)}
    return {"devices": len(jax.devices()), "mesh": mesh.size, "losses": losses,
            "param_dtypes": sorted({str(x.dtype) for x in jax.tree.leaves(state.params)}),
            "param_sum": float(sum(np.abs(x).sum() for x in leaves)),
            "replicated_on": sorted(shard_counts),
            "scoremap_shards": len(out["scoremap_gt"].sharding.device_set),
            "scoremap_shape": list(scoremaps.shape), "scoremap_sum": float(scoremaps.sum()),
            "scoremap_range": [float(scoremaps.min()), float(scoremaps.max())],
            "top1": np.asarray(out["top1"]).tolist()}


def _run_settings(settings: list[str]) -> dict:
    results = {}
    for setting in settings:
        mesh, mode, precision = setting.split(":")
        results[setting] = main(int(mesh), mode, precision)
    return results


if __name__ == "__main__":
    print(json.dumps(_run_settings(sys.argv[1:])))
